//! An immutable membership snapshot: the layout plus the replica for each member that owns
//! data in it — and, while partitions move to a new layout, the older layouts still active.
//!
//! During a change a key has one owner set per active layout (oldest first). Writes go to
//! the union and need W acknowledgements from each set, so whichever layout survives holds
//! every acknowledged write; reads ask the oldest set, whose owners hold the data until the
//! new owners have streamed it (see DESIGN.md, *During a change, both versions own*).
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
use smallvec::SmallVec;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Notify;

pub use crate::view_handle::ViewHandle;

#[derive(Debug, Default)]
struct Gate {
    inside: [CachePadded<AtomicUsize>; STRIPES],
    closed: AtomicBool,
    /// Signalled by requests leaving a closed gate.
    left: Notify,
}

/// A key's owner sets, one per active layout, oldest first.
pub type OwnerSets = SmallVec<[PreferenceList; 2]>;

#[derive(Debug)]
pub struct View {
    epoch: u64,
    /// The newest layout.
    layout: Option<Layout>,
    /// Older layouts still active, oldest first, each with the view index of each of its
    /// owning members.
    older: Vec<(Layout, Vec<NodeIdx>)>,
    /// Indexed by `NodeIdx`: the newest layout's owning members (sorted by id), then the
    /// members only older layouts have.
    replicas: Vec<Arc<dyn Replica>>,
    /// Whether reads (and the first owner) have moved to the newest layout: every new
    /// owner holds its partitions, while writes still go to every active layout.
    reads_newest: bool,
    replication: usize,
    gate: Gate,
}

/// Why a view cannot be built from a layout history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("no layout to build a view from")]
    Empty,
    #[error("layout version {version} names member {id:?}, which this node cannot reach")]
    Unreachable { version: u64, id: String },
    #[error("layout versions must rise from oldest to newest; {older} comes before {newer}")]
    OutOfOrder { older: u64, newer: u64 },
    #[error("the layouts name more than {} members in all", NodeIdx::MAX)]
    TooManyMembers,
    #[error(
        "layout version {older} has {had} partitions and {newer} has {has}: a change keeps the count"
    )]
    PartitionsDiffer { older: u64, had: u32, newer: u64, has: u32 },
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
        Self {
            epoch,
            layout,
            older: Vec::new(),
            replicas,
            replication,
            reads_newest: false,
            gate: Gate::default(),
        }
    }

    /// A view over the active layouts `history` (oldest first, the newest last), each
    /// member reached through `replica_of(id)`. Its epoch is the newest version.
    ///
    /// # Errors
    /// No layout, versions not rising, or a member `replica_of` does not know.
    pub fn with_history(
        mut history: Vec<Layout>,
        replica_of: &dyn Fn(&str) -> Option<Arc<dyn Replica>>,
        replication: usize,
    ) -> Result<Self, HistoryError> {
        let newest = history.pop().ok_or(HistoryError::Empty)?;
        let reach = |layout: &Layout, id: &str| {
            replica_of(id).ok_or_else(|| HistoryError::Unreachable {
                version: layout.version(),
                id: id.to_string(),
            })
        };
        let mut replicas: Vec<Arc<dyn Replica>> =
            newest.members().iter().map(|m| reach(&newest, &m.id)).collect::<Result<_, _>>()?;
        let mut ids: Vec<String> = newest.members().iter().map(|m| m.id.clone()).collect();
        let mut older = Vec::with_capacity(history.len());
        let mut next_version = newest.version();
        for layout in history.into_iter().rev() {
            if layout.version() >= next_version {
                return Err(HistoryError::OutOfOrder {
                    older: layout.version(),
                    newer: next_version,
                });
            }
            if layout.partitions() != newest.partitions() {
                return Err(HistoryError::PartitionsDiffer {
                    older: layout.version(),
                    had: layout.partitions(),
                    newer: newest.version(),
                    has: newest.partitions(),
                });
            }
            next_version = layout.version();
            let mut to_view = Vec::with_capacity(layout.members().len());
            for m in layout.members() {
                let at = match ids.iter().position(|id| *id == m.id) {
                    Some(at) => at,
                    None => {
                        replicas.push(reach(&layout, &m.id)?);
                        ids.push(m.id.clone());
                        ids.len() - 1
                    }
                };
                to_view.push(NodeIdx::try_from(at).map_err(|_| HistoryError::TooManyMembers)?);
            }
            older.push((layout, to_view));
        }
        older.reverse();
        let mut view = Self::new(Some(newest), replicas, replication);
        view.older = older;
        Ok(view)
    }

    /// Whether older layouts are still active: partitions are moving.
    #[must_use]
    pub fn is_changing(&self) -> bool {
        !self.older.is_empty()
    }

    /// Whether reads have moved to the newest layout (see [`View::reading_newest`]).
    #[must_use]
    pub fn reads_newest(&self) -> bool {
        self.reads_newest || self.older.is_empty()
    }

    /// This view with reads, and the first owner, moved to the newest layout, writes still
    /// going to every active one: for once every new owner holds its partitions.
    #[must_use]
    pub fn reading_newest(&self) -> View {
        let mut view = self.copy();
        view.reads_newest = true;
        view
    }

    /// This view with the newest layout alone: for once every member reads from it.
    #[must_use]
    pub fn retired(&self) -> View {
        let owning = self.members().len();
        View::new(self.layout.clone(), self.replicas[..owning].to_vec(), self.replication)
    }

    /// The same layouts and replicas behind a fresh gate.
    fn copy(&self) -> View {
        let mut view = View::new(self.layout.clone(), self.replicas.clone(), self.replication);
        view.older = self.older.clone();
        view.reads_newest = self.reads_newest;
        view
    }

    /// The active layouts, oldest first: what a node keeps to come back to the same view
    /// after a restart (with [`View::reads_newest`]).
    #[must_use]
    pub fn layouts(&self) -> Vec<Layout> {
        let older = self.older.iter().map(|(l, _)| l.clone());
        older.chain(self.layout.clone()).collect()
    }

    /// The versions of the active layouts, oldest first.
    #[must_use]
    pub fn active_versions(&self) -> Vec<u64> {
        let older = self.older.iter().map(|(l, _)| l.version());
        older.chain(self.layout.as_ref().map(Layout::version)).collect()
    }

    /// The owners of the keys whose placement hash is `hash` in each active layout, oldest
    /// first (one set when no change is under way).
    #[must_use]
    pub fn owner_sets(&self, hash: u64) -> OwnerSets {
        let mut sets = OwnerSets::new();
        for (layout, to_view) in &self.older {
            let mut theirs = PreferenceList::new();
            layout.preference_list_into(hash, self.replication, &mut theirs);
            let mut mapped = PreferenceList::new();
            for &i in theirs.iter() {
                mapped.push_distinct(to_view[usize::from(i)]);
            }
            sets.push(mapped);
        }
        sets.push(self.owners(hash));
        sets
    }

    /// Every owner of `hash` in any active layout: the oldest layout's owners first, in
    /// their order, then the ones newer layouts add.
    #[must_use]
    pub fn all_owners(&self, hash: u64) -> PreferenceList {
        if self.older.is_empty() {
            return self.owners(hash);
        }
        union(&self.owner_sets(hash))
    }

    /// The owners a read of `hash` asks: the oldest active layout's, which hold the data
    /// until the newer owners have streamed it; the newest layout's once they have.
    #[must_use]
    pub fn read_owners(&self, hash: u64) -> PreferenceList {
        if self.reads_newest() {
            return self.owners(hash);
        }
        self.owner_sets(hash)[0]
    }

    /// Of `sets` (as [`View::owner_sets`] gave them), the one reads ask: see
    /// [`View::read_owners`].
    #[must_use]
    pub fn read_set(&self, sets: &OwnerSets) -> PreferenceList {
        let newest = sets.last().copied().unwrap_or_default();
        if self.reads_newest() { newest } else { sets.first().copied().unwrap_or(newest) }
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

    /// Whether member `id` is gone in the newest layout (replaced: its data is lost), so
    /// nothing is streamed from it and nobody waits for it.
    #[must_use]
    pub fn is_gone(&self, id: &str) -> bool {
        self.layout.as_ref().is_some_and(|l| {
            l.roster().iter().any(|m| m.member.id == id && m.state == halka_ring::MemberState::Left)
        })
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
    /// (sloppy quorum), best first: every member of the newest layout that is not an
    /// owner in any active layout, ordered by a
    /// score of (partition, member). Every node computes the same order, and all keys of
    /// one partition share their stand-ins, so what a stand-in keeps for a partition can
    /// later be handed over as a range.
    #[must_use]
    pub fn stand_ins(&self, hash: u64) -> PreferenceList {
        let owners = self.all_owners(hash);
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

/// Every owner in `sets`, the oldest layout's first, in their order.
#[must_use]
pub fn union(sets: &OwnerSets) -> PreferenceList {
    let mut all = PreferenceList::new();
    for set in sets {
        for &i in set.iter() {
            all.push_distinct(i);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalReplica;
    use futures::FutureExt;
    use halka_ring::DEFAULT_PARTITIONS;
    use halka_store::{MemoryEngine, NodeId};

    fn layout(version: u64, ids: &[&str]) -> Layout {
        let members: Vec<Member> = ids.iter().map(|id| Member::new(*id)).collect();
        Layout::active(version, &members, 3, DEFAULT_PARTITIONS).unwrap()
    }

    fn reach(id: &str) -> Option<Arc<dyn Replica>> {
        Some(Arc::new(LocalReplica::new(NodeId::new(id), Arc::new(MemoryEngine::default()))))
    }

    fn ids(view: &View, list: &[NodeIdx]) -> Vec<String> {
        list.iter().map(|&i| view.replica(i).id().to_string()).collect()
    }

    /// A view of a change from nodes a..c (version 1) to b..e (version 2).
    fn changing() -> View {
        let history = vec![layout(1, &["a", "b", "c"]), layout(2, &["b", "c", "d", "e"])];
        View::with_history(history, &reach, 3).unwrap()
    }

    #[test]
    fn during_a_change_each_active_layout_has_its_own_owner_set() {
        let view = changing();
        assert_eq!(view.active_versions(), [1, 2]);
        assert_eq!(view.epoch(), 2);
        let old = layout(1, &["a", "b", "c"]);
        let new = layout(2, &["b", "c", "d", "e"]);
        for k in 0..200_u32 {
            let hash = key_hash(format!("k{k}").as_bytes());
            let sets = view.owner_sets(hash);
            let p = |l: &Layout| -> Vec<String> {
                l.owner_ids(l.partition_of(hash)).into_iter().map(String::from).collect()
            };
            assert_eq!(ids(&view, &sets[0]), p(&old), "old set of k{k}");
            assert_eq!(ids(&view, &sets[1]), p(&new), "new set of k{k}");
            assert_eq!(view.read_owners(hash), sets[0], "reads ask the old owners");
            let all = view.all_owners(hash);
            assert!(sets.iter().all(|s| s.iter().all(|i| all.contains(i))));
            assert!(view.stand_ins(hash).iter().all(|i| !all.contains(i)));
        }
    }

    #[test]
    fn a_member_only_the_older_layout_has_is_reached_too() {
        let view = changing();
        let ids: Vec<&str> = view.replicas().iter().map(|r| r.id().as_str()).collect();
        assert_eq!(ids, ["b", "c", "d", "e", "a"]);
        assert_eq!(view.members().len(), 4, "members are the newest layout's");
    }

    #[test]
    fn a_history_out_of_order_or_unreachable_is_refused() {
        let history = vec![layout(2, &["a"]), layout(1, &["a"])];
        let err = View::with_history(history, &reach, 3).unwrap_err();
        assert_eq!(err, HistoryError::OutOfOrder { older: 2, newer: 1 });
        let only_a = |id: &str| if id == "a" { reach(id) } else { None };
        let history = vec![layout(1, &["a", "x"]), layout(2, &["a"])];
        let err = View::with_history(history, &only_a, 3).unwrap_err();
        assert_eq!(err, HistoryError::Unreachable { version: 1, id: "x".into() });
    }

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

    #[tokio::test]
    async fn settling_waits_for_the_requests_still_inside_a_replaced_view() {
        let handle = ViewHandle::new(View::new(None, Vec::new(), 3), crate::Clock::system());
        let inside = View::enter(handle.load()).expect("open gate");
        let changed = handle.changed();
        assert!(handle.transition(None, |_| Ok(()), View::new(None, Vec::new(), 3)).unwrap());
        changed.await;
        let mut settle = Box::pin(handle.settle());
        assert!((&mut settle).now_or_never().is_none(), "settled with a request inside");
        assert!(View::enter(handle.load()).is_some(), "the new view lets requests in");
        drop(inside);
        settle.await;
        handle.settle().await;
    }
}
