//! A request's replica plan: which replicas it asks and in what order, computed from the
//! view, the suspicions and the configuration before the request's first await. Pure, so
//! every routing rule is tested here without a network, and the request loops in
//! `coordinator` only carry the plan out.
//!
//! The rules:
//! - A key's *owners* are its preference list with recently failed owners moved last,
//!   keeping the order otherwise: every node computes the same order, and its head is the
//!   key's *first owner*, which coordinates the writes that depend on the stored value.
//! - This node goes first when it is one of the owners not suspected: a write it
//!   coordinates saves a hop, a read it serves saves a request.
//! - A write that depends on the stored value (see `WriteRequest::at_first_owner`) starts
//!   at the first owner instead.
//! - While partitions move (the view holds more than one active layout), a write goes to
//!   the owners of every active layout and needs W from each set; a read, and the first
//!   owner, come from the oldest layout, whose owners hold the data until the new ones
//!   have streamed it.

use super::ReadFanout;
use crate::quorum::SetMasks;
use crate::suspects::Suspects;
use crate::view::View;
use halka_ring::{NodeIdx, PreferenceList, key_hash};
use halka_store::NodeId;
use smallvec::SmallVec;
use std::time::Duration;

/// Where a write goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WritePlan {
    /// The owners in the order they are tried as coordinating replica; the rest of the
    /// list after the one that coordinates receives the record.
    pub order: PreferenceList,
    /// The key's first owner, whose acknowledgement the write also awaits for a moment.
    pub first_owner: Option<NodeIdx>,
    /// The owner set of each active layout, as masks over `order`.
    pub sets: SetMasks,
}

/// Where a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadPlan {
    /// The owners in the order they are asked.
    pub order: PreferenceList,
    /// How many are asked at once.
    pub first: usize,
    /// How long the asked ones may take before one more is asked (`None`: never).
    pub hedge: Option<Duration>,
}

/// What a plan is computed from.
pub(super) struct Planner<'a> {
    pub view: &'a View,
    pub suspects: &'a Suspects,
    /// This process's node, if it is a member.
    pub local: Option<&'a NodeId>,
}

impl Planner<'_> {
    /// The plan of a write to `key`.
    pub fn write(&self, key: &[u8], at_first_owner: bool) -> WritePlan {
        // One lookup per active layout; the union and the read set come from it.
        let owner_sets = self.view.owner_sets(key_hash(key));
        let (owners, healthy) = self.healthy_first(crate::view::union(&owner_sets));
        let reads = self.view.read_set(&owner_sets);
        let first_owner = owners.iter().copied().find(|i| reads.contains(i));
        let order = if at_first_owner {
            first_owner.map_or(owners, |first| lead_with(owners, first))
        } else {
            self.local_first(owners, healthy)
        };
        let sets = owner_sets
            .iter()
            .map(|set| {
                order
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| set.contains(i))
                    .fold(0, |m, (at, _)| m | 1 << at)
            })
            .collect();
        WritePlan { order, first_owner, sets }
    }

    /// The plan of a read of `key` at `r`.
    pub fn read(&self, key: &[u8], reads: ReadFanout, r: usize) -> ReadPlan {
        match reads {
            ReadFanout::All => {
                let order = self.view.read_owners(key_hash(key));
                ReadPlan { order, first: order.len(), hedge: None }
            }
            ReadFanout::Quorum { hedge } => {
                let (owners, healthy) = self.healthy_first(self.view.read_owners(key_hash(key)));
                let order = self.local_first(owners, healthy);
                ReadPlan { order, first: r.min(order.len()), hedge: Some(hedge) }
            }
        }
    }

    /// `owners` with suspected ones last, and how many lead that are not suspected.
    /// Suspicion is asked once per owner: asking renews a lapsed suspicion for everyone
    /// but the one caller that then probes the replica.
    fn healthy_first(&self, owners: PreferenceList) -> (PreferenceList, usize) {
        let mut preference = owners;
        let mut healthy = preference.len();
        if self.suspects.any() {
            let mut flagged: SmallVec<[(bool, NodeIdx); 5]> = preference
                .iter()
                .map(|&i| (self.suspects.is_suspected(self.view.replica(i).id()), i))
                .collect();
            // A stable sort: the order is otherwise kept.
            flagged.sort_by_key(|&(suspected, _)| suspected);
            healthy = flagged.iter().filter(|(suspected, _)| !suspected).count();
            for (slot, (_, i)) in preference.iter_mut().zip(flagged) {
                *slot = i;
            }
        }
        (preference, healthy)
    }

    /// `owners` with this node moved to the front when it is one of the `healthy`
    /// leading ones.
    fn local_first(&self, mut owners: PreferenceList, healthy: usize) -> PreferenceList {
        if let Some(local) = self.local
            && let Some(pos) =
                owners[..healthy].iter().position(|&i| self.view.replica(i).id() == local)
        {
            owners[..=pos].rotate_right(1);
        }
        owners
    }
}

/// `owners` with `first` moved to the front, the others in their order.
fn lead_with(mut owners: PreferenceList, first: NodeIdx) -> PreferenceList {
    if let Some(pos) = owners.iter().position(|&i| i == first) {
        owners[..=pos].rotate_right(1);
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalReplica, Replica};
    use halka_ring::{DEFAULT_PARTITIONS, Layout, Member};
    use halka_store::MemoryEngine;
    use std::sync::Arc;

    fn view(nodes: usize) -> View {
        let members: Vec<Member> = (1..=nodes).map(|i| Member::new(format!("n{i}"))).collect();
        let replicas: Vec<Arc<dyn Replica>> = members
            .iter()
            .map(|m| -> Arc<dyn Replica> {
                Arc::new(LocalReplica::new(NodeId::new(&m.id), Arc::new(MemoryEngine::default())))
            })
            .collect();
        let layout = Layout::active(1, &members, 3, DEFAULT_PARTITIONS).unwrap();
        View::new(Some(layout), replicas, 3)
    }

    fn id(view: &View, idx: NodeIdx) -> NodeId {
        view.replica(idx).id().clone()
    }

    /// A key whose owners (in preference order) do not start with `node`.
    fn key_not_led_by(view: &View, node: &NodeId) -> Vec<u8> {
        (0_u32..)
            .map(|i| format!("k{i}").into_bytes())
            .find(|k| {
                let p = view.preference(k);
                id(view, p[0]) != *node && p.iter().any(|&i| id(view, i) == *node)
            })
            .unwrap()
    }

    #[test]
    fn a_plain_write_starts_at_this_node_when_it_owns_the_key() {
        let view = view(5);
        let me = NodeId::new("n3");
        let key = key_not_led_by(&view, &me);
        let suspects = Suspects::default();
        let planner = Planner { view: &view, suspects: &suspects, local: Some(&me) };
        let plan = planner.write(&key, false);
        assert_eq!(id(&view, plan.order[0]), me);
        assert_eq!(plan.first_owner, Some(view.preference(&key)[0]));
    }

    #[test]
    fn a_write_that_reads_the_stored_value_starts_at_the_first_owner() {
        let view = view(5);
        let me = NodeId::new("n3");
        let key = key_not_led_by(&view, &me);
        let suspects = Suspects::default();
        let planner = Planner { view: &view, suspects: &suspects, local: Some(&me) };
        let plan = planner.write(&key, true);
        assert_eq!(&plan.order[..], &view.preference(&key)[..]);
    }

    #[test]
    fn a_suspected_owner_goes_last_and_the_next_owner_leads() {
        let view = view(5);
        let key = b"some key";
        let owners = view.preference(key);
        let suspects = Suspects::default();
        suspects.suspect(&id(&view, owners[0]));
        let planner = Planner { view: &view, suspects: &suspects, local: None };
        let plan = planner.write(key, true);
        assert_eq!(&plan.order[..], &[owners[1], owners[2], owners[0]]);
        assert_eq!(plan.first_owner, Some(owners[1]));
    }

    #[test]
    fn a_suspected_local_node_does_not_jump_the_queue() {
        let view = view(5);
        let key = b"another key";
        let owners = view.preference(key);
        let me = id(&view, owners[1]);
        let suspects = Suspects::default();
        suspects.suspect(&me);
        let planner = Planner { view: &view, suspects: &suspects, local: Some(&me) };
        let plan = planner.read(key, ReadFanout::Quorum { hedge: Duration::ZERO }, 2);
        assert_eq!(&plan.order[..], &[owners[0], owners[2], owners[1]]);
    }

    /// A view of a change from n1..n3 (version 1) to n2..n5 (version 2), and a key whose
    /// owners differ between the two.
    fn changing() -> (View, Vec<u8>) {
        let reach = |id: &str| -> Option<Arc<dyn Replica>> {
            Some(Arc::new(LocalReplica::new(NodeId::new(id), Arc::new(MemoryEngine::default()))))
        };
        let layout = |version, ids: &[&str]| {
            let members: Vec<Member> = ids.iter().map(|id| Member::new(*id)).collect();
            Layout::active(version, &members, 3, DEFAULT_PARTITIONS).unwrap()
        };
        let history = vec![layout(1, &["n1", "n2", "n3"]), layout(2, &["n2", "n3", "n4", "n5"])];
        let view = View::with_history(history, &reach, 3).unwrap();
        let key = (0_u32..)
            .map(|i| format!("k{i}").into_bytes())
            .find(|k| {
                let sets = view.owner_sets(key_hash(k));
                sets[1].iter().filter(|i| !sets[0].contains(i)).count() == 2
            })
            .unwrap();
        (view, key)
    }

    #[test]
    fn during_a_change_a_write_goes_to_the_owners_of_both_layouts() {
        let (view, key) = changing();
        let suspects = Suspects::default();
        let planner = Planner { view: &view, suspects: &suspects, local: None };
        let plan = planner.write(&key, false);
        let sets = view.owner_sets(key_hash(&key));
        assert_eq!(plan.order.len(), 5, "3 old owners and the 2 the new layout adds");
        for (set, mask) in sets.iter().zip(&plan.sets) {
            let chosen: Vec<NodeIdx> = (0..plan.order.len())
                .filter(|at| mask & (1 << at) != 0)
                .map(|at| plan.order[at])
                .collect();
            assert_eq!(chosen.len(), 3);
            assert!(chosen.iter().all(|i| set.contains(i)));
        }
    }

    #[test]
    fn during_a_change_reads_and_the_first_owner_come_from_the_old_layout() {
        let (view, key) = changing();
        let old = view.owner_sets(key_hash(&key))[0];
        let suspects = Suspects::default();
        let planner = Planner { view: &view, suspects: &suspects, local: None };
        let plan = planner.write(&key, true);
        assert_eq!(plan.first_owner, Some(old[0]));
        assert_eq!(plan.order[0], old[0]);
        let read = planner.read(&key, ReadFanout::Quorum { hedge: Duration::ZERO }, 2);
        assert_eq!(&read.order[..], &old[..]);
    }

    #[test]
    fn a_quorum_read_asks_r_first_and_hedges() {
        let view = view(5);
        let suspects = Suspects::default();
        let planner = Planner { view: &view, suspects: &suspects, local: None };
        let hedge = Duration::from_millis(5);
        let plan = planner.read(b"k", ReadFanout::Quorum { hedge }, 2);
        assert_eq!((plan.first, plan.hedge), (2, Some(hedge)));
        let all = planner.read(b"k", ReadFanout::All, 2);
        assert_eq!((all.first, all.hedge), (3, None));
    }
}
