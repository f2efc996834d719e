//! The quorum coordinator.
//!
//! A write goes first to one *coordinating* replica, which numbers the new version (its
//! dot) against what it already holds — that is what keeps dotted version vectors exact —
//! and returns the resulting record. The coordinator then sends that record to the other
//! replicas at once and returns at the W-th acknowledgement, counting the coordinating
//! replica as one. A read asks replicas as [`ReadFanout`] says — all N at once, or R of
//! them with another asked whenever one fails or is slow — and returns at the R-th answer
//! with the merge of the answers. Either returns at once with a [`QuorumError`] as soon as
//! success has become impossible.
//!
//! Whatever is still in flight when a request returns is handed to [`Background`], bounded
//! by the per-call deadline, so it finishes (or times out) without holding up the client
//! and without outliving the deadline. Reads compare every answer — including late ones —
//! with the merged record and write the merge back to stale replicas (read repair).

mod members;
mod plan;
mod read;
mod read_repair;
mod request;
mod stand_ins;
mod write;

pub use members::MemberRecords;
pub use request::{
    Acks, GetResult, PutResult, Replies, WriteQuorum, WriteRequest, check_owner_quorum,
};

use crate::Clock;
use crate::error::check_quorum;
use crate::fanout::Fanout;
use crate::suspects::Suspects;
use crate::telemetry;
use crate::view::{View, ViewGuard, ViewHandle};
use crate::{Background, ClusterError, Handoff, QuorumError, ReplicaError};
use bytes::Bytes;
use futures::StreamExt;
use halka_ring::NodeIdx;
use halka_store::{Change, Limits, NodeId, VersionVector, Write};
use plan::Planner;
use std::sync::Arc;
use std::time::Duration;

/// Coordinator settings, with the defaults a new cluster gets.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Replication factor N.
    pub replication: usize,
    /// Deadline for each replica call.
    pub timeout: Duration,
    pub limits: Limits,
    /// Background tasks (stragglers, read repair) in flight at most.
    pub max_background: usize,
    /// This process's node, if it is a member: when it holds a key it coordinates the
    /// key's writes itself, saving a network round trip before the fan-out, and it is the
    /// first replica a read asks.
    pub local_node: Option<NodeId>,
    /// Which replicas a read asks.
    pub reads: ReadFanout,
    /// Let members beyond a key's owners stand in for owners that do not answer a write
    /// (sloppy quorum), keeping it as a hint for them.
    pub stand_ins: bool,
    /// The tombstone grace when tombstones are collected: read repair does not hand a
    /// tombstone older than this to a replica that holds nothing for the key (see
    /// `tombstones::collectible`).
    pub tombstone_grace: Option<Duration>,
    /// How long a write whose W acknowledgements are in waits for the key's first owner
    /// still to answer (see [`WriteRequest::at_first_owner`]). Past it, the owner is
    /// suspected until it answers, so the writes it would coordinate go to the next
    /// owner — one that acknowledged this write — and a hung first owner costs one such
    /// wait, not a deadline.
    pub first_owner_wait: Duration,
}

/// Which replicas a read asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFanout {
    /// All N at once; the read returns at the R-th answer and the rest are still compared
    /// (and repaired) when they arrive. The seed's design, and the cheapest when replicas
    /// are in-process: their answers are already there.
    All,
    /// R replicas first — this node when it holds the key, then preference order, recently
    /// failed replicas last — and one more each time an asked replica fails, or when they
    /// have not all answered after `hedge`. Saves N − R requests per read over the
    /// network; only the replicas that answered are compared and repaired.
    Quorum { hedge: Duration },
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            replication: 3,
            timeout: Duration::from_secs(1),
            limits: Limits::default(),
            max_background: 4096,
            local_node: None,
            reads: ReadFanout::All,
            stand_ins: true,
            tombstone_grace: None,
            first_owner_wait: Duration::from_millis(5),
        }
    }
}

/// Quorum reads and writes over the current [`View`].
#[derive(Debug)]
pub struct Coordinator {
    /// The current view and the clock, shared with the services beside the coordinator.
    views: ViewHandle,
    config: CoordinatorConfig,
    background: Background,
    /// Shared with background stragglers, whose late answers count too.
    suspects: Arc<Suspects>,
    /// Where writes a replica missed are kept for it; `None` keeps none.
    handoff: Option<Arc<Handoff>>,
}

impl Coordinator {
    #[must_use]
    pub fn new(view: View, config: CoordinatorConfig) -> Self {
        let background = Background::new(config.max_background);
        Self {
            views: ViewHandle::new(view, Clock::system()),
            config,
            background,
            suspects: Arc::default(),
            handoff: None,
        }
    }

    /// Passes over the replicas `liveness` convicts: they coordinate and serve reads only
    /// when no other owner can, and writes skip them (stand-ins take their place and
    /// hints are kept for them).
    #[must_use]
    pub fn with_liveness(mut self, liveness: crate::gossip::Liveness) -> Self {
        self.views.set_liveness(liveness.clone());
        self.suspects = Arc::new(Suspects::with_detector(liveness));
        self
    }

    /// Keeps writes that a replica did not acknowledge as hints in `handoff`, which
    /// delivers them when the replica answers again (see [`Handoff::run`]).
    #[must_use]
    pub fn with_handoff(mut self, handoff: Arc<Handoff>) -> Self {
        self.handoff = Some(handoff);
        self
    }

    /// The hints this coordinator keeps, if it keeps any.
    #[must_use]
    pub fn handoff(&self) -> Option<&Arc<Handoff>> {
        self.handoff.as_ref()
    }

    /// Replaces the timestamp source (microseconds) used for last-writer-wins ordering.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.views.set_clock(clock);
        self
    }

    /// The clock timestamps come from, in microseconds (see [`Coordinator::with_clock`]).
    #[must_use]
    pub fn now_us(&self) -> u64 {
        self.views.now_us()
    }

    #[must_use]
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The current view and the clock, for the services beside the coordinator.
    #[must_use]
    pub fn view_handle(&self) -> ViewHandle {
        self.views.clone()
    }

    /// The current membership view.
    #[must_use]
    pub fn view(&self) -> Arc<View> {
        self.views.view()
    }

    #[must_use]
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// Installs a new view and returns the previous one (not yet retired).
    pub fn swap_view(&self, view: View) -> Arc<View> {
        self.views.swap(view)
    }

    /// The current view, entered: it cannot be retired while the guard lives.
    fn enter(&self) -> ViewGuard {
        loop {
            if let Some(guard) = View::enter(self.views.load()) {
                return guard;
            }
        }
    }

    /// The plans of requests on `view` (see `plan`).
    fn planner<'a>(&'a self, view: &'a View) -> Planner<'a> {
        Planner { view, suspects: &self.suspects, local: self.config.local_node.as_ref() }
    }

    fn check_write(
        &self,
        view: &View,
        key: &[u8],
        quorum: WriteQuorum,
    ) -> Result<(), ClusterError> {
        let WriteQuorum { w, pw } = quorum;
        in_cluster(view, self.config.local_node.as_ref())?;
        check_quorum("w", w, self.config.replication)?;
        if w > view.width() {
            return Err(ClusterError::TooFewNodes { name: "w", given: w, nodes: view.width() });
        }
        check_owner_quorum(pw, w)?;
        self.config.limits.check_key(key)?;
        Ok(())
    }

    fn check_read(&self, view: &View, key: &[u8], r: usize) -> Result<(), ClusterError> {
        in_cluster(view, self.config.local_node.as_ref())?;
        check_quorum("r", r, self.config.replication)?;
        if r > view.width() {
            return Err(ClusterError::TooFewNodes { name: "r", given: r, nodes: view.width() });
        }
        self.config.limits.check_key(key)?;
        Ok(())
    }

    /// The write `request` asks for, timestamped now.
    ///
    /// # Errors
    /// A value over the size limit.
    fn stamp(&self, request: WriteRequest) -> Result<Write, ClusterError> {
        let mut write = Write::new(request.change, request.context, self.timestamp());
        write.condition = request.condition;
        write.want_previous = request.want_previous;
        write.content_type = request.content_type;
        if let Some(v) = write.payload() {
            self.config.limits.check_value(v)?;
        }
        Ok(write)
    }

    /// Writes `value` (or a tombstone for `None`) to `key` and waits for `w`
    /// acknowledgements. With a `context`, the write replaces exactly the versions that
    /// context covers; without one it replaces whatever the coordinating replica holds
    /// (plain `SET` semantics), and concurrent versions elsewhere survive as siblings.
    ///
    /// # Errors
    /// Bad `w` or sizes (before any I/O), or [`QuorumError`] naming the failed replicas.
    pub async fn write(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        context: Option<VersionVector>,
        w: usize,
    ) -> Result<PutResult, ClusterError> {
        self.write_with(key, value, context, WriteQuorum { w, pw: 0 }).await
    }

    /// [`Coordinator::write`] with the full quorum: `w` owner slots filled, by owners or
    /// by stand-ins keeping the write for owners that do not answer (sloppy quorum),
    /// `pw` of them by the owners themselves.
    ///
    /// # Errors
    /// As [`Coordinator::write`]; also `pw` above `w`.
    pub async fn write_with(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        context: Option<VersionVector>,
        quorum: WriteQuorum,
    ) -> Result<PutResult, ClusterError> {
        let change = match value {
            Some(value) => Change::Put { value, expiry: halka_store::Expiry::Never },
            None => Change::Delete,
        };
        self.apply(key, WriteRequest::new(change, context), quorum).await
    }

    /// The wall clock in microseconds, strictly increasing on each thread: a write never
    /// gets a timestamp at or below one made before it on the same thread, so sequential
    /// overwrites are ordered even when they meet as siblings (after a membership change,
    /// say, when the new write's coordinating replica had not yet received the old one).
    /// Within one microsecond the timestamp moves on by one per write, so it runs ahead of
    /// the clock only beyond a million writes per second per thread — unlike a per-write
    /// millisecond bump, which ran ahead under any real load and made last-writer-wins
    /// favour the busiest coordinator. Per thread rather than per coordinator, so the hot
    /// path writes no shared cache line.
    fn timestamp(&self) -> u64 {
        thread_local! {
            static LAST: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        let now = self.views.now_us();
        LAST.with(|last| {
            let t = now.max(last.get().saturating_add(1));
            last.set(t);
            t
        })
    }

    fn quorum_failed(
        &self,
        op: &'static str,
        required: usize,
        (succeeded, in_flight): (usize, usize),
        replicas: usize,
        failures: Vec<(NodeId, ReplicaError)>,
    ) -> ClusterError {
        metrics::counter!(telemetry::QUORUM_FAILURES, "op" => op).increment(1);
        ClusterError::Quorum(QuorumError { op, required, succeeded, in_flight, replicas, failures })
    }

    /// Lets the calls still in flight finish in the background (each is bounded by the
    /// per-call deadline), feeding successful answers to `on_answer`. The view guard moves
    /// along, so a membership change waits for them.
    fn finish_in_background<T, F>(&self, mut fanout: Fanout<T>, view: ViewGuard, mut on_answer: F)
    where
        T: Send + 'static,
        F: FnMut(&View, NodeId, Result<T, ReplicaError>) + Send + 'static,
    {
        fanout.drain_now(|id, result| on_answer(&view, id, result));
        let Some(mut pending) = fanout.into_pending() else {
            return;
        };
        self.background.spawn(async move {
            while let Some((id, result)) = pending.next().await {
                on_answer(&view, id, result);
            }
            drop(view);
        });
    }
}

/// Lets every replica of `key` start fetching it before any is asked, so that in-process
/// replicas' cache misses overlap rather than add up.
fn prefetch(view: &View, preference: &[NodeIdx], key: &[u8]) {
    for &idx in preference {
        view.replica(idx).prefetch(key);
    }
}

/// Refuses requests on a node that has no layout yet (it waits to be joined), or that
/// the newest layout marks replaced. (A member that left by `leave` still serves: the
/// members keep taking its requests.)
fn in_cluster(view: &View, local: Option<&NodeId>) -> Result<(), ClusterError> {
    let Some(layout) = view.layout() else { return Err(ClusterError::NotInCluster) };
    let roster = layout.roster();
    let replaced = |m: &halka_ring::LayoutMember| {
        m.state == halka_ring::MemberState::Left && local.is_some_and(|l| l.as_str() == m.member.id)
    };
    if roster.iter().any(replaced) {
        let members = roster.iter().filter(|m| m.state.owns()).map(|m| m.member.id.clone());
        return Err(ClusterError::Replaced {
            version: layout.version(),
            members: members.collect(),
        });
    }
    Ok(())
}
