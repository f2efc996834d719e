//! One node's settings: kept before they are acknowledged, told to an observer as they
//! change, and compared every round with one member's, chosen at random.

use super::store::SettingsStore;
use super::table::{Setting, SettingError, SettingsTable};
use crate::membership::{MembershipRequest, MembershipResponse};
use crate::{Clock, Members};
use halka_store::NodeId;
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a node's settings need.
#[derive(Debug)]
pub struct SettingsSpec {
    pub store: Arc<dyn SettingsStore>,
    /// How often the node compares its table with a member's.
    pub interval: Duration,
    /// How long a comparison may take.
    pub deadline: Duration,
    /// Seeds the choice of member.
    pub rng_seed: u64,
}

type Observer = Box<dyn Fn(&SettingsTable) + Send + Sync>;

/// One node's copy of the cluster's settings.
pub struct Settings {
    node: NodeId,
    clock: Clock,
    /// The members it compares with.
    members: Members,
    spec: SettingsSpec,
    table: Mutex<SettingsTable>,
    observer: OnceLock<Observer>,
    rng: Mutex<SmallRng>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Settings {
    /// Node `node`'s settings, as its store kept them, compared with `members`.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn open(
        node: NodeId,
        clock: Clock,
        members: Members,
        spec: SettingsSpec,
    ) -> Result<Self, SettingError> {
        let table = spec.store.load().map_err(|e| SettingError::Store(e.to_string()))?;
        let rng = SmallRng::seed_from_u64(spec.rng_seed);
        Ok(Self {
            node,
            clock,
            members,
            spec,
            table: Mutex::new(table.unwrap_or_default()),
            observer: OnceLock::new(),
            rng: Mutex::new(rng),
        })
    }

    /// Calls `observer` with the table now and after every change, under the table's
    /// lock (so it sees changes in order): it must be quick and not touch the settings.
    pub fn observe(&self, observer: impl Fn(&SettingsTable) + Send + Sync + 'static) {
        let table = self.table.lock();
        observer(&table);
        let _ = self.observer.set(Box::new(observer));
    }

    /// Reads the table.
    pub fn read<R>(&self, f: impl FnOnce(&SettingsTable) -> R) -> R {
        f(&self.table.lock())
    }

    /// Writes `value` to `name` (`None` removes it) on this node alone, kept before it
    /// returns; the written entry. See `write` for the cluster-wide write.
    pub(super) async fn write_here(
        self: &Arc<Self>,
        name: &str,
        value: Option<String>,
    ) -> Result<Setting, SettingError> {
        let name = name.to_string();
        self.off_thread(move |this| {
            let mut written = None;
            this.change(|table, node, now| {
                written = Some(table.write(&name, value, node, now)?);
                Ok(true)
            })?;
            Ok(written.expect("written when the change succeeded"))
        })
        .await
    }

    /// Writes `value` to `name` unless the cluster ever wrote it (a removal counts): how
    /// settings from a node's config file seed the cluster at its first start.
    ///
    /// # Errors
    /// The value is refused, or cannot be kept.
    pub fn seed(&self, name: &str, value: String) -> Result<bool, SettingError> {
        self.change(|table, node, now| {
            if table.written(name) {
                return Ok(false);
            }
            table.write(name, Some(value), node, now).map(|_| true)
        })
    }

    /// Takes a peer's entries; whether any was news.
    ///
    /// # Errors
    /// The merged table cannot be kept.
    pub fn merge(&self, theirs: Vec<(String, Setting)>) -> Result<bool, SettingError> {
        self.change(|table, _, _| Ok(!table.merge(theirs).is_empty()))
    }

    /// Answers a peer that sent its table's `digest` (and its `entries`, when it found
    /// ours older): this node's entries when they differ from the peer's.
    ///
    /// # Errors
    /// The peer's entries cannot be kept.
    pub fn answer(
        &self,
        digest: u64,
        entries: Option<Vec<(String, Setting)>>,
    ) -> Result<Option<Vec<(String, Setting)>>, SettingError> {
        if let Some(theirs) = entries {
            self.merge(theirs)?;
            return Ok(None);
        }
        let table = self.table.lock();
        Ok((table.digest() != digest).then(|| table.entries()))
    }

    /// Whether keeping the settings blocks the thread.
    #[must_use]
    pub fn store_blocks(&self) -> bool {
        self.spec.store.blocks()
    }

    /// Changes a copy of the table with `change`; keeps it, then makes it the table and
    /// tells the observer, when `change` says it changed anything.
    fn change(
        &self,
        change: impl FnOnce(&mut SettingsTable, &str, u64) -> Result<bool, SettingError>,
    ) -> Result<bool, SettingError> {
        let mut table = self.table.lock();
        let mut next = table.clone();
        if !change(&mut next, self.node.as_str(), self.clock.now_us())? {
            return Ok(false);
        }
        self.spec.store.save(&next).map_err(|e| SettingError::Store(e.to_string()))?;
        *table = next;
        if let Some(observer) = self.observer.get() {
            observer(&table);
        }
        Ok(true)
    }

    /// Runs `f` where blocking is allowed when the store blocks.
    pub(super) async fn off_thread<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Self) -> Result<R, SettingError> + Send + 'static,
    ) -> Result<R, SettingError> {
        if !self.store_blocks() {
            return f(self);
        }
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| SettingError::Store(e.to_string()))?
    }

    /// The members other than this node.
    pub(super) fn peers(&self) -> Vec<Arc<dyn crate::Replica>> {
        let ids = self.members.ids().into_iter().filter(|id| *id != self.node);
        ids.filter_map(|id| self.members.get(&id)).collect()
    }

    /// How long one exchange with peers may take.
    pub(super) fn deadline(&self) -> std::time::Duration {
        self.spec.deadline
    }

    /// Compares tables with one member every interval until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut rounds = tokio::time::interval(self.spec.interval);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Biased: a stopped node starts no further round.
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                _ = rounds.tick() => {}
            }
            let peers: Vec<NodeId> =
                self.members.ids().into_iter().filter(|id| *id != self.node).collect();
            let chosen = peers.choose(&mut *self.rng.lock()).cloned();
            let Some(replica) = chosen.and_then(|id| self.members.get(&id)) else { continue };
            let compared = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                r = tokio::time::timeout(self.spec.deadline, self.compare(&*replica)) => r,
            };
            if let Ok(Err(e)) = compared {
                tracing::debug!(peer = %replica.id(), error = %e, "settings not compared");
            }
        }
    }

    /// Sends the table's digest to `peer`; takes its entries if they differ, and sends
    /// ours back if the peer's lacked anything ours holds.
    async fn compare(self: &Arc<Self>, peer: &dyn crate::Replica) -> Result<(), String> {
        let digest = self.read(SettingsTable::digest);
        let ask = MembershipRequest::Settings { digest, entries: None };
        let theirs = match peer.membership(ask).await.map_err(|e| e.to_string())? {
            MembershipResponse::Settings(Some(theirs)) => theirs,
            MembershipResponse::Settings(None) => return Ok(()),
            other => return Err(format!("unexpected answer {other:?}")),
        };
        let mut peers_table = SettingsTable::default();
        peers_table.merge(theirs.clone());
        let peers_digest = peers_table.digest();
        self.off_thread(move |this| this.merge(theirs)).await.map_err(|e| e.to_string())?;
        let (digest, ours) = self.read(|t| (t.digest(), t.entries()));
        if digest != peers_digest {
            let tell = MembershipRequest::Settings { digest, entries: Some(ours) };
            peer.membership(tell).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
