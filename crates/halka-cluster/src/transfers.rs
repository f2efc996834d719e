//! Partition transfers during a layout change: each node streams the partitions it gains
//! from their old owners, then the change moves through its phases on every node.
//!
//! While a view holds more than one active layout (see `View::with_history`), a node
//! *gains* each partition it owns in the newest layout but not in the oldest. For each,
//! it streams the partition's hash range from its first old owner into its own store
//! ([`stream_range`]: a page at a time, checkpointed per source, so a stream that stops
//! resumes where it stopped), then catches up with every other old owner
//! ([`catch_up_range`]: key digests compared, only what differs copied). Every old owner,
//! because a write acknowledged at W < N is on only W of them, and they may not have
//! repaired each other yet; an old owner that does not answer holds the partition back
//! until it does. Records are merged, so they join with the writes the node has received
//! meanwhile as a new owner (writes go to both layouts' owners during a change).
//!
//! A node's [`ChangePhase`] then moves on, each step only once every member it depends on
//! has reached the step before (each member is asked over RPC, `TransferStatus`):
//! 1. *Streaming* until it holds every partition it gains, then *Synced*.
//! 2. Once every member of the newest layout is Synced, it *reads new*: reads and the
//!    first owner move to the newest layout (every new owner holds its partitions), while
//!    writes still go to every active layout — other nodes may still read the old owners.
//! 3. Once every member of any active layout reads new, nobody reads the old owners any
//!    more: the node retires the older layouts, and writes go to the newest alone. It
//!    then drops the partitions it no longer owns: nobody reads them there, and a node
//!    that owns them again later must not bring back what was deleted meanwhile.

use crate::catch_up::catch_up;
use crate::stream::{Checkpoints, StreamError, Streamed, stream_range};
use crate::view::ViewHandle;
use crate::{Replica, ReplicaError, View};
use futures::StreamExt;
use halka_ring::{PartitionId, Placement};
use halka_store::{HashRange, NodeId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a node transfers partitions.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// Partitions streamed at once.
    pub concurrency: usize,
    /// How long one page may take to read or to store before the stream is retried.
    pub deadline: Duration,
    /// How long to wait before trying again partitions whose every old owner failed.
    pub retry: Duration,
    /// Bytes a second this node serves to new owners streaming from it, at most (its
    /// transfer budget: a `RepairBudget` counted in bytes, of its own so that a change
    /// is not held to anti-entropy's key rate).
    pub max_bytes_per_second: u32,
    /// The same while this node serves clients (see `RepairBudget`).
    pub busy_bytes_per_second: u32,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            deadline: Duration::from_secs(10),
            retry: Duration::from_secs(1),
            max_bytes_per_second: 256 << 20,
            busy_bytes_per_second: 24 << 20,
        }
    }
}

/// A partition this node gains in a change, with the old owners it can stream it from
/// (every one but those the newest layout says are gone: a replaced member's data is
/// lost, and a write acknowledged by W of N owners is on another old owner too).
#[derive(Debug, Clone)]
pub struct Gain {
    /// The change's target version.
    pub version: u64,
    pub partition: PartitionId,
    pub range: HashRange,
    /// The partition's owners in the oldest active layout, best first.
    pub sources: Vec<Arc<dyn Replica>>,
}

/// Where this node's transfers for one change stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The newest layout's version: the change's target.
    pub version: u64,
    /// Partitions this node gains.
    pub gained: usize,
    /// Of those, the ones it holds in full.
    pub done: usize,
    /// Records streamed in so far.
    pub records: u64,
    /// Their size, as batches are weighed.
    pub bytes: u64,
    /// Partitions streaming in now.
    pub active: usize,
}

/// How far a node has come in a layout change, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ChangePhase {
    /// The node has not taken this change up (it has not seen it yet).
    Unaware,
    /// It is streaming the partitions it gains.
    Streaming,
    /// It holds every partition it gains.
    Synced,
    /// It reads from the newest layout, and still writes to the older ones.
    ReadingNew,
    /// It holds the newest layout alone (or a later one): the change is over here.
    Retired,
}

/// Keeps a node's view of a change (its active layouts, and whether it reads from the
/// newest) before the node acts on it, so that a restart comes back to it: a node that
/// read from the new layout, or retired the old one, must not go back to reading the
/// old owners, which other nodes may have stopped writing to.
pub type KeepView = Arc<dyn Fn(&[halka_ring::Layout], bool) -> std::io::Result<()> + Send + Sync>;

/// One node's partition transfers.
pub struct Transfers {
    local: NodeId,
    config: TransferConfig,
    checkpoints: Arc<dyn Checkpoints>,
    /// `checkpoints` scoped to each source streamed from.
    scoped: Mutex<std::collections::HashMap<(u64, NodeId), Arc<dyn Checkpoints>>>,
    keep: Option<KeepView>,
    state: Mutex<State>,
    /// Partitions streaming in now (see `Progress::active`).
    active: std::sync::atomic::AtomicUsize,
    /// The node's views, once `run` starts: how far a change went here shows in them
    /// (a node restarted after retiring a change has no transfer state left, but its kept
    /// view holds the newest layout alone). Weak: the views hold the node's own replica,
    /// which holds these transfers.
    views: std::sync::OnceLock<std::sync::Weak<arc_swap::ArcSwap<View>>>,
}

#[derive(Default)]
struct State {
    version: u64,
    /// When this node took the change up.
    started: Option<std::time::Instant>,
    gained: usize,
    /// Partitions streamed in from one old owner.
    done: BTreeSet<PartitionId>,
    /// Old owners caught up with since every member took the change up.
    caught_up_with: BTreeSet<NodeId>,
    /// Whether every gained partition is streamed in and caught up with every old owner.
    caught_up: bool,
    records: u64,
    bytes: u64,
    /// Whether this node reads from `version`'s layout.
    reading_new: bool,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers").field("local", &self.local).finish_non_exhaustive()
    }
}

impl Transfers {
    #[must_use]
    pub fn new(local: NodeId, config: TransferConfig, checkpoints: Arc<dyn Checkpoints>) -> Self {
        Self {
            local,
            config,
            checkpoints,
            scoped: Mutex::default(),
            keep: None,
            state: Mutex::new(State::default()),
            active: std::sync::atomic::AtomicUsize::new(0),
            views: std::sync::OnceLock::new(),
        }
    }

    /// Keeps each view this node moves to with `keep` before installing it.
    #[must_use]
    pub fn keeping_views(mut self, keep: KeepView) -> Self {
        self.keep = Some(keep);
        self
    }

    /// Installs `view` in place of `from` once it is kept; `false` (and nothing
    /// installed) if keeping failed, or another view replaced `from` meanwhile.
    fn move_to(&self, views: &ViewHandle, from: &Arc<View>, view: View) -> bool {
        let keep = |view: &View| match &self.keep {
            Some(keep) => keep(&view.layouts(), view.reads_newest()),
            None => Ok(()),
        };
        views.transition(Some(from), keep, view).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot keep this node's layout state; the change waits");
            false
        })
    }

    /// The partitions `local` gains in `view`'s change (none when no change is under
    /// way).
    #[must_use]
    pub fn gains(view: &View, local: &NodeId) -> Vec<Gain> {
        let Some(newest) = view.layout().filter(|_| view.is_changing()) else {
            return Vec::new();
        };
        let Some(me) = view.replicas().iter().position(|r| r.id() == local) else {
            return Vec::new();
        };
        (0..newest.partitions())
            .filter_map(|partition| {
                let (first, last) = newest.hash_range(partition);
                let sets = view.owner_sets(first);
                let owns =
                    |set: &halka_ring::PreferenceList| set.iter().any(|&i| usize::from(i) == me);
                let (oldest, latest) = (sets.first()?, sets.last()?);
                (owns(latest) && !owns(oldest)).then(|| Gain {
                    version: newest.version(),
                    partition,
                    range: HashRange { first, last },
                    sources: oldest
                        .iter()
                        .map(|&i| view.replica(i))
                        .filter(|r| !view.is_gone(r.id().as_str()))
                        .cloned()
                        .collect(),
                })
            })
            .collect()
    }

    /// How far this node has come in the change to `version`.
    #[must_use]
    pub fn phase(&self, version: u64) -> ChangePhase {
        let views = self.views.get().and_then(std::sync::Weak::upgrade);
        if let Some(view) = views.map(|v| v.load_full()) {
            match view.epoch() {
                newer if newer > version => return ChangePhase::Retired,
                same if same == version && !view.is_changing() => return ChangePhase::Retired,
                same if same == version && view.reads_newest() => return ChangePhase::ReadingNew,
                _ => {}
            }
        }
        let state = self.state.lock();
        match () {
            () if state.version != version => ChangePhase::Unaware,
            () if state.reading_new => ChangePhase::ReadingNew,
            () if state.caught_up => ChangePhase::Synced,
            () => ChangePhase::Streaming,
        }
    }

    #[must_use]
    pub fn progress(&self) -> Progress {
        let state = self.state.lock();
        Progress {
            version: state.version,
            gained: state.gained,
            done: state.done.len(),
            records: state.records,
            bytes: state.bytes,
            active: self.active.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Takes `view`'s change up and moves it as far as it goes: streams in every
    /// partition this node gains that it does not hold yet, `concurrency` at a time, each
    /// from the first of its old owners that serves it; then, once every member of every
    /// active layout has taken the change up (from then on each writes to both layouts),
    /// catches up with every old owner ([`catch_up`]). Returns whether all of it is done;
    /// what failed is tried again on the next call.
    pub async fn sync(&self, view: &View) -> bool {
        let version = view.epoch();
        let gains = Self::gains(view, &self.local);
        {
            let mut state = self.state.lock();
            if state.version != version {
                *state = State { version, gained: gains.len(), ..State::default() };
                state.started = Some(std::time::Instant::now());
            }
            if state.caught_up {
                return true;
            }
        }
        let Some(target) = view.replicas().iter().find(|r| r.id() == &self.local) else {
            return gains.is_empty();
        };
        if !self.stream_in(&gains, &**target).await {
            return false;
        }
        // A member that has not taken the change up may still write to the old owners
        // alone: what it writes then must be caught up with too.
        if !self.all_reached(view, true, ChangePhase::Streaming).await {
            return false;
        }
        if !self.catch_up_all(&gains, &**target).await {
            return false;
        }
        let mut state = self.state.lock();
        state.caught_up = true;
        if !gains.is_empty() {
            let elapsed = state.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
            let (bytes, records, partitions) = (state.bytes, state.records, gains.len());
            let mb_per_second = bytes as f64 / 1e6 / elapsed.max(1e-3);
            tracing::info!(
                version,
                partitions,
                records,
                bytes,
                seconds = format!("{elapsed:.1}"),
                mb_per_second = format!("{mb_per_second:.1}"),
                "this node holds every partition it gains"
            );
        }
        true
    }

    /// Streams in each of `gains` not streamed yet; returns whether all are in.
    async fn stream_in(&self, gains: &[Gain], target: &dyn Replica) -> bool {
        let pending: Vec<Gain> = {
            let state = self.state.lock();
            gains.iter().filter(|g| !state.done.contains(&g.partition)).cloned().collect()
        };
        metrics::gauge!(crate::telemetry::TRANSFER_PENDING).set(pending.len() as f64);
        let streams = futures::stream::iter(pending)
            .map(|gain| async move {
                let _active = Active::count(&self.active);
                (gain.partition, self.fetch(&gain, target).await)
            })
            .buffer_unordered(self.config.concurrency.max(1));
        // Each partition counts as done as soon as it is in: progress shows as it goes.
        let mut streams = std::pin::pin!(streams);
        while let Some((partition, result)) = streams.next().await {
            match result {
                Ok(streamed) => {
                    let mut state = self.state.lock();
                    state.count(streamed);
                    if state.done.insert(partition) {
                        metrics::counter!(crate::telemetry::TRANSFER_DONE).increment(1);
                        let pending = state.gained - state.done.len();
                        metrics::gauge!(crate::telemetry::TRANSFER_PENDING).set(pending as f64);
                    }
                }
                Err(e) => {
                    tracing::info!(partition, error = %e, "partition transfer failed; will retry");
                }
            }
        }
        let state = self.state.lock();
        state.done.len() == state.gained
    }

    /// Streams `gain` from the first of its old owners that serves it in full (each
    /// resumes from its own checkpoint).
    async fn fetch(&self, gain: &Gain, target: &dyn Replica) -> Result<Streamed, StreamError> {
        let mut failure = StreamError::Source(ReplicaError::Unavailable(
            "the partition has no old owner left to stream it from".into(),
        ));
        for source in &gain.sources {
            let checkpoints =
                self.scoped(gain.version, source.id()).map_err(StreamError::Checkpoint)?;
            let deadline = self.config.deadline;
            match stream_range(&**source, target, gain.range, &*checkpoints, deadline).await {
                Ok(streamed) => return Ok(streamed),
                Err(e @ StreamError::Source(_)) => failure = e,
                Err(e) => return Err(e),
            }
        }
        Err(failure)
    }

    /// Catches up with every old owner of `gains` not caught up with yet, all at once;
    /// returns whether every one is.
    async fn catch_up_all(&self, gains: &[Gain], target: &dyn Replica) -> bool {
        let mut by_source: Vec<(Arc<dyn Replica>, Vec<HashRange>)> = Vec::new();
        for gain in gains {
            for source in &gain.sources {
                match by_source.iter_mut().find(|(s, _)| s.id() == source.id()) {
                    Some((_, ranges)) => ranges.push(gain.range),
                    None => by_source.push((Arc::clone(source), vec![gain.range])),
                }
            }
        }
        by_source.retain(|(s, _)| !self.state.lock().caught_up_with.contains(s.id()));
        let deadline = self.config.deadline;
        let catch_ups = by_source.into_iter().map(|(source, ranges)| async move {
            let result = catch_up(&*source, target, &ranges, deadline).await;
            (source.id().clone(), result)
        });
        let mut all = true;
        for (source, result) in futures::future::join_all(catch_ups).await {
            match result {
                Ok(streamed) => {
                    let mut state = self.state.lock();
                    state.count(streamed);
                    state.caught_up_with.insert(source);
                }
                Err(e) => {
                    all = false;
                    tracing::info!(%source, error = %e, "catching up with an old owner failed; will retry");
                }
            }
        }
        all
    }

    /// Removes the records of every partition this node owned in an older layout of
    /// `view` and does not own in its newest. A failure leaves them (logged): they are
    /// read by nobody.
    async fn drop_lost(&self, view: &View) {
        let Some(newest) = view.layout() else { return };
        let Some(me) = view.replicas().iter().position(|r| r.id() == &self.local) else {
            return;
        };
        let lost: Vec<HashRange> = (0..newest.partitions())
            .filter_map(|p| {
                let (first, last) = newest.hash_range(p);
                let sets = view.owner_sets(first);
                let (latest, older) = sets.split_last()?;
                let owns =
                    |set: &halka_ring::PreferenceList| set.iter().any(|&i| usize::from(i) == me);
                (older.iter().any(owns) && !owns(latest)).then_some(HashRange { first, last })
            })
            .collect();
        if lost.is_empty() {
            return;
        }
        let partitions = lost.len();
        let what = "the partitions this node no longer owns";
        match view.replicas()[me].drop_ranges(lost).await {
            Ok(records) => tracing::info!(partitions, records, "dropped {what}"),
            Err(e) => tracing::warn!(partitions, error = %e, "cannot drop {what}"),
        }
    }

    /// The checkpoints of streams from `source` in the change to `version`: scoped by
    /// version too, so that checkpoints a crash left behind never stand for a later
    /// change's streams.
    fn scoped(&self, version: u64, source: &NodeId) -> std::io::Result<Arc<dyn Checkpoints>> {
        let key = (version, source.clone());
        if let Some(c) = self.scoped.lock().get(&key) {
            return Ok(Arc::clone(c));
        }
        let scoped = self.checkpoints.scoped(&format!("v{version}-{source}"))?;
        self.scoped.lock().insert(key, Arc::clone(&scoped));
        Ok(scoped)
    }

    /// Forgets the checkpoints of a change that is over.
    fn clear_checkpoints(&self) {
        self.scoped.lock().clear();
        if let Err(e) = self.checkpoints.clear() {
            tracing::warn!(error = %e, "cannot clear the transfer checkpoints of a finished change");
        }
    }

    /// Carries the current view's change through its phases until `stop`: streams what
    /// this node gains, then moves reads to the newest layout and retires the older ones
    /// as the other members catch up. After a step forward, or a view installed, it goes
    /// on at once; while it waits for other members it asks again after 50 ms, doubling
    /// up to a quarter of `retry` (their answers are a few bytes each).
    pub async fn run(self: Arc<Self>, views: ViewHandle, stop: CancellationToken) {
        let _ = self.views.set(views.downgrade());
        let first_wait = Duration::from_millis(50).min(self.config.retry);
        let longest_wait = (self.config.retry / 4).max(first_wait);
        let mut wait = first_wait;
        loop {
            let changed = views.changed();
            let view = views.view();
            metrics::gauge!(crate::telemetry::LAYOUT_VERSION).set(view.epoch() as f64);
            if view.is_changing() {
                let before = self.phase(view.epoch());
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.advance(&views, &view) => {}
                }
                if self.phase(view.epoch()) > before {
                    wait = first_wait;
                    continue;
                }
            } else {
                // Nothing to do until a view is installed.
                wait = self.config.retry;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = changed => wait = first_wait,
                () = tokio::time::sleep(wait) => wait = (wait * 2).min(longest_wait),
            }
        }
    }

    /// One step of the change `view` is in, as far as the other members allow.
    pub async fn advance(&self, views: &ViewHandle, view: &Arc<View>) {
        let version = view.epoch();
        if self.phase(version) < ChangePhase::Synced {
            if self.phase(version) == ChangePhase::Unaware {
                // Taking the change up says this node writes to both layouts: true only
                // once no write begun under an older view is still under way.
                views.settle().await;
            }
            if !self.sync(view).await {
                return;
            }
        }
        if !view.reads_newest() {
            if self.all_reached(view, false, ChangePhase::Synced).await
                && self.move_to(views, view, view.reading_newest())
            {
                self.state.lock().reading_new = true;
                tracing::info!(
                    version,
                    "every new owner holds its partitions: reading from the new layout"
                );
            }
            return;
        }
        self.state.lock().reading_new = true;
        if self.all_reached(view, true, ChangePhase::ReadingNew).await
            && self.move_to(views, view, view.retired())
        {
            self.drop_lost(view).await;
            self.clear_checkpoints();
            let versions = view.active_versions();
            tracing::info!(
                ?versions,
                "every member reads from the new layout: older layouts retired"
            );
        }
    }

    /// Whether every member of `view`'s newest layout (with `everyone`, of any active
    /// layout) has reached `phase` in its change. Asks each member, this one included,
    /// through its replica; one that does not answer within the deadline has not.
    pub async fn all_reached(&self, view: &View, everyone: bool, phase: ChangePhase) -> bool {
        let Some(newest) = view.layout() else { return true };
        let version = newest.version();
        let members =
            if everyone { view.replicas() } else { &view.replicas()[..newest.members().len()] };
        let deadline = self.config.deadline;
        let members = members.iter().filter(|r| !view.is_gone(r.id().as_str()));
        let asks = members.map(|r| tokio::time::timeout(deadline, r.transfer_status(version)));
        let answers = futures::future::join_all(asks).await;
        answers.into_iter().all(|a| matches!(a, Ok(Ok(p)) if p >= phase))
    }
}

/// Counts one partition streaming in while it lives (dropped too when a stream is
/// cancelled).
struct Active<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Active<'a> {
    fn count(active: &'a std::sync::atomic::AtomicUsize) -> Self {
        active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(active)
    }
}

impl State {
    fn count(&mut self, streamed: Streamed) {
        metrics::counter!(crate::telemetry::TRANSFER_RECORDS).increment(streamed.records);
        metrics::counter!(crate::telemetry::TRANSFER_BYTES).increment(streamed.bytes);
        self.records += streamed.records;
        self.bytes += streamed.bytes;
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
