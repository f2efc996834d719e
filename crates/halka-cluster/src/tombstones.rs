//! Tombstone collection: a deleted key's record is removed once no replica can bring the
//! deleted value back.
//!
//! A delete is a version without a value (a tombstone); it has to stay as long as some
//! replica might still hold a value it replaced, or that value would come back the next
//! time the replicas compare. So each node removes a tombstone of its own only when:
//! 1. every version of the record is a tombstone, the newest written more than `grace`
//!    ago (by the deleting coordinator's clock);
//! 2. no member keeps a hint for the key (every member is asked; one that does not
//!    answer vetoes);
//! 3. every other owner of the key answers, and holds exactly the same record or none
//!    (none: it collected the tombstone already, or never held anything for the key).
//!    Asked after 2: a hint is removed only once delivered, so one gone by then is in
//!    the records read here.
//!
//! Never by a timer alone: an owner that is down, or still holds the old value, stops
//! the collection until anti-entropy has given it the tombstone. The removal is
//! conditional on the record being unchanged, under the key's lock, so a write racing the
//! collection wins.
//!
//! What else could carry an old value back, and why it cannot:
//! - hints: rule 2. Hints never expire: a stand-in's hint may be one of the copies a
//!   write was acknowledged with, so it lives until an owner takes it (its holder hands it
//!   to another owner when its own stays away, see [`Handoff`](crate::Handoff)), and
//!   while it lives the key's tombstones stay;
//! - in-flight repairs and straggling writes that read the value before the tombstone
//!   arrived: a replica removes a tombstone only after holding it for `settle`, longer
//!   than any such message lives. Every replica that sent or answered with the old value
//!   received the tombstone after doing so, so it still holds the tombstone when the
//!   message lands, and vetoes the others' collection until anti-entropy has repaired
//!   the replica the message reached;
//! - the dots of the removed record: the engine's counter floor keeps this node's next
//!   write to the key from reusing them (see `Engine::remove_if`).
//!
//! While some owners have collected and others not yet, anti-entropy and read repair
//! see a replica without the key beside one with an old tombstone; they leave it so (see
//! [`collectible`]) instead of handing the tombstone back. Clock skew between nodes
//! shortens the effective grace by the skew.

use crate::gossip::Liveness;
use crate::telemetry;
use crate::view::ViewHandle;
use crate::{Replica, View};
use bytes::Bytes;
use halka_store::layout::key_hash;
use halka_store::{Engine, NodeId, Record, TombstoneIndex};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Whether `record` is a tombstone whose delete is older than `cutoff_us` (`now - grace`):
/// one its owners may be collecting. Repairs do not copy such a record to a replica that
/// holds nothing for the key — it may be an owner that has just collected it, and would
/// otherwise get it back, collect it again and hand it on, for ever. A replica that holds
/// nothing for a key has no value a tombstone could be needed to hide.
#[must_use]
pub fn collectible(record: &Record, cutoff_us: Option<u64>) -> bool {
    cutoff_us.is_some_and(|cutoff| record.deleted_at().is_some_and(|at| at < cutoff))
}

/// `now_us - grace`, the cutoff for [`collectible`]; `None` without a grace.
#[must_use]
pub fn cutoff(now_us: u64, grace: Option<Duration>) -> Option<u64> {
    grace.map(|g| now_us.saturating_sub(u64::try_from(g.as_micros()).unwrap_or(u64::MAX)))
}

/// How tombstones are collected.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// How long a tombstone is kept at least after its delete.
    pub grace: Duration,
    /// Pause between collection rounds.
    pub interval: Duration,
    /// Tombstones examined per round at most.
    pub batch: usize,
    /// Deadline for asking another owner.
    pub timeout: Duration,
    /// How long this replica must have held a tombstone before removing it: longer than
    /// any message sent before it held the tombstone can stay in flight (repairs,
    /// stragglers), so none can carry the replaced value to a replica that already
    /// removed it while this one has not yet (see the module notes).
    pub settle: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
            interval: Duration::from_secs(1),
            batch: 1024,
            timeout: Duration::from_secs(5),
            settle: Duration::from_secs(30),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Tombstones past the grace that were examined.
    pub due: usize,
    /// Tombstones removed.
    pub collected: usize,
}

/// Tombstone collection at one node, and what it has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CollectorStats {
    /// Tombstones waiting (indexed, whether or not past the grace).
    pub pending: u64,
    /// Age in seconds of the oldest of them.
    pub oldest_secs: u64,
    /// Tombstones removed since start.
    pub collected: u64,
}

#[derive(Debug)]
pub struct Collector {
    local: NodeId,
    engine: Arc<dyn Engine>,
    index: Arc<TombstoneIndex>,
    config: CollectorConfig,
    collected: AtomicU64,
}

impl Collector {
    /// Collection for the replica of `local`, whose store is `engine`; `None` when the
    /// engine keeps no tombstone index (see `TrackedEngine`).
    #[must_use]
    pub fn new(
        local: NodeId,
        engine: Arc<dyn Engine>,
        config: CollectorConfig,
    ) -> Option<Arc<Self>> {
        let index = Arc::clone(engine.tombstones()?);
        Some(Arc::new(Self { local, engine, index, config, collected: AtomicU64::new(0) }))
    }

    /// Statistics, with ages measured against `now_us`.
    #[must_use]
    pub fn stats(&self, now_us: u64) -> CollectorStats {
        let index = self.index.stats();
        CollectorStats {
            pending: index.pending + index.untracked,
            oldest_secs: index.oldest_us.map_or(0, |at| now_us.saturating_sub(at) / 1_000_000),
            collected: self.collected.load(Ordering::Relaxed),
        }
    }

    /// Collects every `interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, views: ViewHandle, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.interval) => {}
            }
            if self.index.needs_rescan() {
                self.rescan().await;
            }
            let view = views.view();
            let now = views.now_us();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = self.round_among_live(&view, now, views.liveness()) => {}
            }
            let stats = self.stats(now);
            metrics::gauge!(telemetry::TOMBSTONES_PENDING).set(stats.pending as f64);
            metrics::gauge!(telemetry::TOMBSTONES_OLDEST).set(stats.oldest_secs as f64);
        }
    }

    /// Indexes again the tombstones the full index had to leave out.
    async fn rescan(&self) {
        self.index.begin_rescan();
        let (engine, index) = (Arc::clone(&self.engine), Arc::clone(&self.index));
        let scan = move || engine.scan(&mut |key, record| index.note(key, None, Some(&record)));
        let result = if self.engine.is_blocking() {
            tokio::task::spawn_blocking(scan).await.unwrap_or_else(|e| {
                Err(halka_store::StoreError::Io(format!("tombstone rescan failed: {e}")))
            })
        } else {
            scan()
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot rescan the store for tombstones");
        }
    }

    /// One round: the tombstones deleted before `now_us - grace`, oldest first, up to
    /// `batch`.
    pub async fn round(&self, view: &View, now_us: u64) -> Round {
        self.round_among_live(view, now_us, &Liveness::default()).await
    }

    /// A round in which a member `liveness` convicts vetoes what it would be asked about
    /// without being asked (it would not answer in time anyway).
    async fn round_among_live(&self, view: &View, now_us: u64, liveness: &Liveness) -> Round {
        let grace = u64::try_from(self.config.grace.as_micros()).unwrap_or(u64::MAX);
        let cutoff = now_us.saturating_sub(grace);
        // Rounds are at least `interval` apart, so this many epochs span `settle`.
        let settle_rounds =
            1 + (self.config.settle.as_micros() / self.config.interval.as_micros().max(1)) as u64;
        let epoch = self.index.advance_epoch();
        // Shortly after a start nothing is due: what the store held then may have just
        // arrived.
        let Some(held_since) = epoch.checked_sub(settle_rounds) else {
            return Round::default();
        };
        let due = self.index.due(cutoff, held_since, self.config.batch);
        let mut round = Round { due: due.len(), collected: 0 };
        let Some(me) = view.replicas().iter().position(|r| r.id() == &self.local) else {
            return round;
        };
        let candidates = self.candidates(due, cutoff);
        let mut vetoed = vec![false; candidates.len()];
        // Hints before records. A hint's delivery merges it into the owners before the
        // hint is removed, so a hint no member holds any more is in the owners' records
        // when they are read next. In the other order a hint delivered between the two
        // questions is missed by both: the owners answered before it arrived, and its
        // holder no longer has it when asked. The simulator found exactly that.
        self.veto_hinted(view, liveness, &candidates, &mut vetoed).await;
        self.veto_differing(view, me, liveness, &candidates, &mut vetoed).await;
        for ((key, record), vetoed) in candidates.iter().zip(vetoed) {
            if vetoed {
                continue;
            }
            match self.engine.remove_if(key, &mut |stored| stored.same_as(record)) {
                Ok(true) => round.collected += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(key = ?key, error = %e, "cannot remove a tombstone"),
            }
        }
        if round.collected > 0 {
            self.collected.fetch_add(round.collected as u64, Ordering::Relaxed);
            metrics::counter!(telemetry::TOMBSTONES_COLLECTED).increment(round.collected as u64);
            tracing::debug!(?round, "tombstones collected");
        }
        round
    }

    /// The due keys still deleted here, deleted before `cutoff`, with their records.
    fn candidates(&self, due: Vec<Bytes>, cutoff: u64) -> Vec<(Bytes, Arc<Record>)> {
        due.into_iter()
            .filter_map(|key| {
                let record = self.engine.get(&key).ok()??;
                record.deleted_at().is_some_and(|at| at < cutoff).then_some((key, record))
            })
            .collect()
    }

    /// Every member, this one included, is asked whether it keeps a hint for any
    /// candidate: a hint may carry a value a tombstone replaced, and it lives until an
    /// owner takes it. A member that does not answer vetoes them all.
    async fn veto_hinted(
        &self,
        view: &View,
        liveness: &Liveness,
        candidates: &[(Bytes, Arc<Record>)],
        vetoed: &mut [bool],
    ) {
        if candidates.is_empty() {
            return;
        }
        let keys: Vec<Bytes> = candidates.iter().map(|(k, _)| k.clone()).collect();
        let calls = view.replicas().iter().map(|replica| {
            let call = (!liveness.convicted(replica.id()))
                .then(|| tokio::time::timeout(self.config.timeout, replica.hinted(keys.clone())));
            async move {
                match call {
                    Some(call) => call.await,
                    None => Ok(Ok(Vec::new())),
                }
            }
        });
        for answer in futures::future::join_all(calls).await {
            let flags = match answer {
                Ok(Ok(flags)) if flags.len() == candidates.len() => flags,
                _ => vec![true; candidates.len()],
            };
            for (veto, hinted) in vetoed.iter_mut().zip(flags) {
                *veto |= hinted;
            }
        }
    }

    /// Every other owner of a candidate still standing — in any active layout: during a
    /// change, the old owners too — is asked for its record; one that does not answer, or
    /// holds something other than this replica's tombstone, vetoes.
    async fn veto_differing(
        &self,
        view: &View,
        me: usize,
        liveness: &Liveness,
        candidates: &[(Bytes, Arc<Record>)],
        vetoed: &mut [bool],
    ) {
        let mut asks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, (key, _)) in candidates.iter().enumerate().filter(|(i, _)| !vetoed[*i]) {
            for &o in view.all_owners(key_hash(key)).iter() {
                if usize::from(o) != me {
                    asks.entry(usize::from(o)).or_default().push(i);
                }
            }
        }
        let calls = asks.into_iter().map(|(owner, wanted)| {
            let replica: &Arc<dyn Replica> = &view.replicas()[owner];
            let keys = wanted.iter().map(|&i| candidates[i].0.clone()).collect();
            // A convicted owner is not asked (no request is sent): it vetoes.
            let call = (!liveness.convicted(replica.id()))
                .then(|| tokio::time::timeout(self.config.timeout, replica.get_many(keys)));
            async move {
                match call {
                    Some(call) => (wanted, call.await),
                    None => (wanted, Ok(Ok(Vec::new()))),
                }
            }
        });
        for (wanted, answer) in futures::future::join_all(calls).await {
            let records = match answer {
                Ok(Ok(records)) => records,
                _ => Vec::new(),
            };
            for (n, &i) in wanted.iter().enumerate() {
                let same = match records.get(n) {
                    Some(None) => true,
                    Some(Some(theirs)) => theirs.same_as(&candidates[i].1),
                    None => false,
                };
                vetoed[i] |= !same;
            }
        }
    }
}
