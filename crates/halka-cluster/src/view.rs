//! An immutable membership snapshot: the layout plus the replica for each member that owns
//! data in it.
//!
//! Requests load the current view once and use it throughout, so a membership change never
//! tears a request in half. A change swaps in a new view, then closes the old view's gate
//! and waits for every request still inside; a request that reaches a closed gate late
//! reloads the current view instead.
//!
//! The gate counts requests in striped counters, one cache line per stripe, and a request
//! touches only its own thread's stripe: every operation enters a gate, and a shared
//! counter would bounce one cache line between all cores on every call.

use crate::Replica;
use crate::stripe::{self, STRIPES};
use crossbeam_utils::CachePadded;
use halka_ring::{Layout, Member, NodeIdx, Placement, PreferenceList, key_hash};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// The current view and the node's clock: what the services beside the coordinator
/// (handoff, anti-entropy, tombstone collection) read, without holding the coordinator.
/// Cheap to clone; every clone sees the view the coordinator last installed.
#[derive(Debug, Clone)]
pub struct ViewHandle {
    current: Arc<arc_swap::ArcSwap<View>>,
    clock: crate::Clock,
}

impl ViewHandle {
    #[must_use]
    pub fn new(view: View, clock: crate::Clock) -> Self {
        Self { current: Arc::new(arc_swap::ArcSwap::from_pointee(view)), clock }
    }

    /// The current view.
    #[must_use]
    pub fn view(&self) -> Arc<View> {
        self.current.load_full()
    }

    /// The node's wall clock in microseconds (the coordinator's timestamps).
    #[must_use]
    pub fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    /// The current view without touching its reference count (see `View::enter`).
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<View>> {
        self.current.load()
    }

    /// Installs `view`; returns the one it replaces.
    pub(crate) fn swap(&self, view: View) -> Arc<View> {
        self.current.swap(Arc::new(view))
    }

    pub(crate) fn set_clock(&mut self, clock: crate::Clock) {
        self.clock = clock;
    }
}

#[derive(Debug, Default)]
struct Gate {
    inside: [CachePadded<AtomicUsize>; STRIPES],
    closed: AtomicBool,
    /// Signalled by requests leaving a closed gate.
    left: Notify,
}

#[derive(Debug)]
pub struct View {
    epoch: u64,
    layout: Option<Layout>,
    /// Indexed by `NodeIdx` (the layout's owning members, sorted by id).
    replicas: Vec<Arc<dyn Replica>>,
    replication: usize,
    gate: Gate,
}

/// A request's pass through a view's gate: while it lives, the view is not retired.
#[derive(Debug)]
pub struct ViewGuard {
    /// An `arc_swap` guard rather than an `Arc`: loading one does not touch the view's
    /// shared reference count (see `stripe`) unless the thread holds many at once.
    view: arc_swap::Guard<Arc<View>>,
    stripe: usize,
}

impl Deref for ViewGuard {
    type Target = View;

    fn deref(&self) -> &View {
        &self.view
    }
}

impl Drop for ViewGuard {
    fn drop(&mut self) {
        let gate = &self.view.gate;
        // SeqCst pairs with `retire`: either it sees this request gone, or this sees the
        // gate closed and wakes it.
        gate.inside[self.stripe].fetch_sub(1, Ordering::SeqCst);
        if gate.closed.load(Ordering::SeqCst) {
            gate.left.notify_one();
        }
    }
}

impl View {
    /// A view over `layout`'s owning members; `replicas[i]` serves member `i`. Its epoch is
    /// the layout's version (0 without a layout).
    #[must_use]
    pub fn new(
        layout: Option<Layout>,
        replicas: Vec<Arc<dyn Replica>>,
        replication: usize,
    ) -> Self {
        let epoch = layout.as_ref().map_or(0, Layout::version);
        Self { epoch, layout, replicas, replication, gate: Gate::default() }
    }

    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Members that own data, sorted by id.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        self.layout.as_ref().map_or(&[], |l| l.members())
    }

    #[must_use]
    pub fn layout(&self) -> Option<&Layout> {
        self.layout.as_ref()
    }

    /// Replicas a key actually gets: N, or fewer while the cluster is smaller than N.
    #[must_use]
    pub fn width(&self) -> usize {
        self.replication.min(self.replicas.len())
    }

    /// The preference list for `key`.
    #[must_use]
    pub fn preference(&self, key: &[u8]) -> PreferenceList {
        self.owners(key_hash(key))
    }

    /// The owners of the keys whose placement hash is `hash`.
    #[must_use]
    pub fn owners(&self, hash: u64) -> PreferenceList {
        let mut out = PreferenceList::new();
        if let Some(l) = &self.layout {
            l.preference_list_into(hash, self.replication, &mut out);
        }
        out
    }

    /// The members that stand in for the owners of `hash` when owners do not answer
    /// (sloppy quorum), best first: every member that is not an owner, ordered by a
    /// score of (partition, member). Every node computes the same order, and all keys of
    /// one partition share their stand-ins, so what a stand-in keeps for a partition can
    /// later be handed over as a range.
    #[must_use]
    pub fn stand_ins(&self, hash: u64) -> PreferenceList {
        let owners = self.owners(hash);
        let partition = self.layout.as_ref().map_or(0, |l| u64::from(l.partition_of(hash)));
        let mut others: Vec<(u64, NodeIdx)> = self
            .members()
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let idx = NodeIdx::try_from(i).ok()?;
                (!owners.contains(&idx)).then(|| {
                    (halka_ring::hash::mix(partition, halka_ring::hash::node_seed(&m.id)), idx)
                })
            })
            .collect();
        others.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = PreferenceList::new();
        for (_, idx) in others.into_iter().take(halka_ring::MAX_REPLICAS) {
            out.push_distinct(idx);
        }
        out
    }

    #[must_use]
    pub fn replica(&self, idx: NodeIdx) -> &Arc<dyn Replica> {
        &self.replicas[usize::from(idx)]
    }

    #[must_use]
    pub fn replicas(&self) -> &[Arc<dyn Replica>] {
        &self.replicas
    }

    /// A pass through this view's gate, or `None` once the view is being retired.
    pub(crate) fn enter(view: arc_swap::Guard<Arc<View>>) -> Option<ViewGuard> {
        let stripe = stripe::index();
        view.gate.inside[stripe].fetch_add(1, Ordering::SeqCst);
        let closed = view.gate.closed.load(Ordering::SeqCst);
        let guard = ViewGuard { view, stripe };
        // Dropping the pass of a request that came too late counts it out again.
        (!closed).then_some(guard)
    }

    /// Closes the gate and waits for every request inside to leave.
    pub(crate) async fn retire(&self) {
        let gate = &self.gate;
        gate.closed.store(true, Ordering::SeqCst);
        loop {
            let left = gate.left.notified();
            if gate.inside.iter().all(|n| n.load(Ordering::SeqCst) == 0) {
                return;
            }
            left.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn retire_waits_for_every_pass_and_turns_latecomers_away() {
        let current = arc_swap::ArcSwap::from_pointee(View::new(None, Vec::new(), 3));
        let view = current.load_full();
        let first = View::enter(current.load()).expect("open gate");
        // A pass moved to another thread counts out on its own stripe.
        let second = View::enter(current.load()).expect("open gate");
        let second = std::thread::spawn(move || second);

        let mut retire = Box::pin(view.retire());
        assert!((&mut retire).now_or_never().is_none(), "retired with passes outstanding");
        assert!(View::enter(current.load()).is_none(), "a closed gate let a request in");

        drop(first);
        assert!((&mut retire).now_or_never().is_none(), "retired with one pass outstanding");
        drop(second.join().expect("thread"));
        retire.await;
    }
}
