//! Counting one write's acknowledgements under a sloppy quorum (Dynamo §4.6).
//!
//! Each of the key's owners is a *slot*. A slot is filled by its owner's acknowledgement
//! or, when the owner fails, times out or is suspected, by a *stand-in*: a member beyond
//! the owners that keeps the record as a hint for that owner and hands it over later. W
//! counts filled slots; PW counts slots filled by their owners themselves. A stand-in
//! fills at most one slot per write, and never coordinates (it holds no record of the
//! key to number a version from).

use crate::{Durability, ReplicaError};
use halka_store::NodeId;
use smallvec::SmallVec;

/// Where one owner's slot stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// The owner's call is in flight.
    Asked,
    /// The owner acknowledged.
    Owner,
    /// The owner failed; this stand-in's call is in flight.
    Standing(NodeId),
    /// The owner failed and this stand-in acknowledged for it.
    StoodIn(NodeId),
    /// The owner failed and no stand-in is left to try.
    Empty,
}

/// A slot's owner and state.
type Slots = SmallVec<[(NodeId, Slot); 5]>;

/// The acknowledgements of one write, against W and PW.
#[derive(Debug)]
pub(crate) struct Tally {
    w: usize,
    pw: usize,
    slots: Slots,
    /// Every node that acknowledged, in order: owners and stand-ins.
    pub acked: SmallVec<[NodeId; 5]>,
    /// Those of them whose acknowledgement came after an fsync ([`Durability::Synced`]).
    pub synced: SmallVec<[NodeId; 5]>,
    pub failures: Vec<(NodeId, ReplicaError)>,
    /// A replica whose answer the write also waits for, whatever W says (see
    /// [`Tally::awaiting`]).
    awaited: Option<NodeId>,
}

/// What the coordinator does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Wait for more answers.
    Wait,
    /// W and PW are met.
    Done,
    /// They cannot be met any more.
    Failed,
}

impl Tally {
    /// A write to `owners`, each asked already, that needs `w` slots filled, `pw` of them
    /// by owners.
    pub(crate) fn new(owners: impl IntoIterator<Item = NodeId>, w: usize, pw: usize) -> Self {
        Self {
            w,
            pw,
            slots: owners.into_iter().map(|o| (o, Slot::Asked)).collect(),
            acked: SmallVec::new(),
            synced: SmallVec::new(),
            failures: Vec::new(),
            awaited: None,
        }
    }

    /// Also waits for `id` to answer, success or failure, before the write is done: the
    /// key's first owner, which coordinates the writes that depend on the stored value
    /// (`INCR`, `SET NX`…), so that those see this write once it is acknowledged. A
    /// failure ends the wait (the owner is then suspected, and the next one takes over).
    pub(crate) fn awaiting(&mut self, id: NodeId) {
        self.awaited = Some(id);
    }

    /// An answer from `id`, an owner or a stand-in. Returns the owner whose slot now
    /// needs a stand-in, if the answer was a failure that left one open.
    pub(crate) fn answer(
        &mut self,
        id: &NodeId,
        result: Result<Durability, ReplicaError>,
    ) -> Option<NodeId> {
        if self.awaited.as_ref() == Some(id) {
            self.awaited = None;
        }
        let i = self.slots.iter().position(|(owner, slot)| {
            (owner == id && *slot == Slot::Asked) || matches!(slot, Slot::Standing(s) if s == id)
        })?;
        let (owner, slot) = &mut self.slots[i];
        match (result, &*slot) {
            (Ok(durability), _) => {
                *slot = match slot {
                    Slot::Asked => Slot::Owner,
                    _ => Slot::StoodIn(id.clone()),
                };
                self.acked.push(id.clone());
                if durability == Durability::Synced {
                    self.synced.push(id.clone());
                }
                None
            }
            (Err(e), _) => {
                self.failures.push((id.clone(), e));
                *slot = Slot::Empty;
                Some(owner.clone())
            }
        }
    }

    /// `owner` failed before it was asked in the fan-out (as coordinating replica).
    pub(crate) fn failed_before(&mut self, owner: &NodeId, error: ReplicaError) -> bool {
        if self.awaited.as_ref() == Some(owner) {
            self.awaited = None;
        }
        let Some((_, slot)) = self.slots.iter_mut().find(|(o, _)| o == owner) else {
            return false;
        };
        *slot = Slot::Empty;
        self.failures.push((owner.clone(), error));
        true
    }

    /// `stand_in` is now asked to fill `owner`'s open slot.
    pub(crate) fn standing_in(&mut self, owner: &NodeId, stand_in: NodeId) {
        if let Some((_, slot)) =
            self.slots.iter_mut().find(|(o, s)| o == owner && *s == Slot::Empty)
        {
            *slot = Slot::Standing(stand_in);
        }
    }

    /// Whether W and PW are met and only the awaited first owner holds the write back.
    pub(crate) fn only_awaiting(&self) -> Option<&NodeId> {
        let filled = self.count(|s| matches!(s, Slot::Owner | Slot::StoodIn(_)));
        let by_owners = self.count(|s| *s == Slot::Owner);
        (filled >= self.w && by_owners >= self.pw).then_some(self.awaited.as_ref()).flatten()
    }

    /// Stops waiting for the awaited replica.
    pub(crate) fn stop_awaiting(&mut self) {
        self.awaited = None;
    }

    /// Where the write stands.
    pub(crate) fn next(&self) -> Next {
        let filled = self.count(|s| matches!(s, Slot::Owner | Slot::StoodIn(_)));
        let by_owners = self.count(|s| *s == Slot::Owner);
        if filled >= self.w && by_owners >= self.pw {
            return if self.awaited.is_some() { Next::Wait } else { Next::Done };
        }
        let may_fill = self.count(|s| *s != Slot::Empty);
        let owners_may = self.count(|s| matches!(s, Slot::Owner | Slot::Asked));
        if may_fill < self.w || owners_may < self.pw { Next::Failed } else { Next::Wait }
    }

    /// Once [`Next::Failed`]: which quorum failed (`"write"` for W, `"owner-write"` for
    /// PW), how many it required, and how many it got.
    pub(crate) fn shortfall(&self) -> (&'static str, usize, usize) {
        let (filled, _) = self.progress();
        let owners_may = self.count(|s| matches!(s, Slot::Owner | Slot::Asked));
        if owners_may < self.pw {
            ("owner-write", self.pw, self.owner_acks())
        } else {
            ("write", self.w, filled)
        }
    }

    fn count(&self, f: impl Fn(&Slot) -> bool) -> usize {
        self.slots.iter().filter(|(_, s)| f(s)).count()
    }

    /// Slots filled so far, and calls still in flight.
    pub(crate) fn progress(&self) -> (usize, usize) {
        let filled = self.count(|s| matches!(s, Slot::Owner | Slot::StoodIn(_)));
        let in_flight = self.count(|s| matches!(s, Slot::Asked | Slot::Standing(_)));
        (filled, in_flight)
    }

    /// Acknowledgements by owners alone.
    pub(crate) fn owner_acks(&self) -> usize {
        self.count(|s| *s == Slot::Owner)
    }

    /// The stand-ins that acknowledged, each with the owner it stood in for.
    pub(crate) fn stand_ins(&self) -> SmallVec<[(NodeId, NodeId); 2]> {
        self.slots
            .iter()
            .filter_map(|(owner, s)| match s {
                Slot::StoodIn(by) => Some((by.clone(), owner.clone())),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s)
    }

    fn down() -> ReplicaError {
        ReplicaError::Unavailable("down".into())
    }

    #[test]
    fn a_stand_in_fills_the_slot_of_a_failed_owner() {
        let mut t = Tally::new([id("a"), id("b"), id("c")], 2, 0);
        assert_eq!(t.answer(&id("a"), Ok(Durability::Buffered)), None);
        assert_eq!(t.answer(&id("b"), Err(down())), Some(id("b")));
        t.standing_in(&id("b"), id("d"));
        assert_eq!(t.next(), Next::Wait);
        t.answer(&id("d"), Ok(Durability::Buffered));
        assert_eq!(t.next(), Next::Done);
        assert_eq!(t.stand_ins().to_vec(), vec![(id("d"), id("b"))]);
        assert_eq!(t.owner_acks(), 1);
    }

    #[test]
    fn the_awaited_first_owner_holds_the_write_until_it_answers() {
        let mut t = Tally::new([id("a"), id("b"), id("c")], 2, 0);
        t.awaiting(id("c"));
        t.answer(&id("a"), Ok(Durability::Buffered));
        t.answer(&id("b"), Ok(Durability::Buffered));
        assert_eq!(t.next(), Next::Wait, "W is met, the first owner has not answered");
        t.answer(&id("c"), Ok(Durability::Buffered));
        assert_eq!(t.next(), Next::Done);
    }

    #[test]
    fn a_failure_of_the_awaited_first_owner_ends_the_wait() {
        let mut t = Tally::new([id("a"), id("b"), id("c")], 2, 0);
        t.awaiting(id("c"));
        t.answer(&id("a"), Ok(Durability::Buffered));
        t.answer(&id("b"), Ok(Durability::Buffered));
        t.answer(&id("c"), Err(down()));
        assert_eq!(t.next(), Next::Done);
    }

    #[test]
    fn pw_counts_owners_only() {
        let mut t = Tally::new([id("a"), id("b"), id("c")], 2, 2);
        t.answer(&id("a"), Ok(Durability::Buffered));
        t.answer(&id("b"), Err(down()));
        t.standing_in(&id("b"), id("d"));
        t.answer(&id("d"), Ok(Durability::Buffered));
        assert_eq!(t.next(), Next::Wait, "c may still acknowledge");
        t.answer(&id("c"), Err(down()));
        assert_eq!(t.next(), Next::Failed);
    }

    #[test]
    fn an_owner_and_its_stand_in_fill_one_slot() {
        let mut t = Tally::new([id("a"), id("b"), id("c")], 2, 0);
        t.answer(&id("b"), Err(down()));
        t.standing_in(&id("b"), id("d"));
        t.answer(&id("d"), Ok(Durability::Buffered));
        // A late answer from b is not counted twice: its slot is already filled.
        assert_eq!(t.answer(&id("b"), Ok(Durability::Buffered)), None);
        assert_eq!(t.next(), Next::Wait);
        assert_eq!(t.progress(), (1, 2));
    }

    #[test]
    fn without_stand_ins_failed_owners_fail_the_write() {
        let mut t = Tally::new([id("a"), id("b"), id("c")], 2, 0);
        t.answer(&id("a"), Err(down()));
        t.answer(&id("b"), Err(down()));
        assert_eq!(t.next(), Next::Failed);
    }
}
