//! Counting one write's acknowledgements under a sloppy quorum (Dynamo §4.6).
//!
//! Each of the key's owners is a *slot*. A slot is filled by its owner's acknowledgement
//! or, when the owner fails, times out or is suspected, by a *stand-in*: a member beyond
//! the owners that keeps the record as a hint for that owner and hands it over later. W
//! counts filled slots; PW counts slots filled by their owners themselves. A stand-in
//! fills at most one slot per write, and never coordinates (it holds no record of the
//! key to number a version from).
//!
//! While partitions move between layouts a key has an owner *set* per active layout, and
//! the write needs W (and PW) from each set, as Garage requires: whichever layout
//! survives the change then holds every acknowledged write. An owner in several sets
//! fills its slot in each.

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

/// The slots of one owner set, as bits by slot index (a write has at most
/// `MAX_REPLICAS` = 16 slots).
pub(crate) type SetMask = u32;

/// The owner sets of a write, as masks over its slots.
pub(crate) type SetMasks = SmallVec<[SetMask; 2]>;

/// The acknowledgements of one write, against W and PW.
#[derive(Debug)]
pub(crate) struct Tally {
    w: usize,
    pw: usize,
    slots: Slots,
    /// The owner sets, each of which needs W and PW (one set of every slot by default).
    sets: SetMasks,
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
        let slots: Slots = owners.into_iter().map(|o| (o, Slot::Asked)).collect();
        let all = (1 << slots.len()) - 1;
        Self {
            w,
            pw,
            sets: SmallVec::from_elem(all, 1),
            slots,
            acked: SmallVec::new(),
            synced: SmallVec::new(),
            failures: Vec::new(),
            awaited: None,
        }
    }

    /// The owner sets the write needs W from each of (masks over the owners as given to
    /// [`Tally::new`]); a set smaller than W needs all its owners.
    pub(crate) fn in_sets(mut self, sets: SetMasks) -> Self {
        if !sets.is_empty() {
            self.sets = sets;
        }
        self
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
        self.met().then_some(self.awaited.as_ref()).flatten()
    }

    /// Whether every set has W slots filled, PW of them by owners.
    fn met(&self) -> bool {
        self.sets.iter().all(|&set| {
            let (w, pw) = self.required(set);
            self.count_in(set, |s| matches!(s, Slot::Owner | Slot::StoodIn(_))) >= w
                && self.count_in(set, |s| *s == Slot::Owner) >= pw
        })
    }

    /// W and PW for `set`: a set smaller than W (a layout with fewer members) needs all
    /// its owners.
    fn required(&self, set: SetMask) -> (usize, usize) {
        let size = set.count_ones() as usize;
        (self.w.min(size), self.pw.min(size))
    }

    /// The first set that can no longer reach W or PW, and which of the two.
    fn hopeless(&self) -> Option<(SetMask, bool)> {
        self.sets.iter().find_map(|&set| {
            let (w, pw) = self.required(set);
            let may_fill = self.count_in(set, |s| *s != Slot::Empty);
            let owners_may = self.count_in(set, |s| matches!(s, Slot::Owner | Slot::Asked));
            if owners_may < pw {
                Some((set, true))
            } else if may_fill < w {
                Some((set, false))
            } else {
                None
            }
        })
    }

    /// Stops waiting for the awaited replica.
    pub(crate) fn stop_awaiting(&mut self) {
        self.awaited = None;
    }

    /// Where the write stands.
    pub(crate) fn next(&self) -> Next {
        if self.met() {
            return if self.awaited.is_some() { Next::Wait } else { Next::Done };
        }
        if self.hopeless().is_some() { Next::Failed } else { Next::Wait }
    }

    /// Once [`Next::Failed`]: which quorum failed (`"write"` for W, `"owner-write"` for
    /// PW), how many it required, and how many it got — in the set that failed.
    pub(crate) fn shortfall(&self) -> (&'static str, usize, usize) {
        let Some((set, by_owners)) = self.hopeless() else {
            let (filled, _) = self.progress();
            return ("write", self.w, filled);
        };
        let (w, pw) = self.required(set);
        if by_owners {
            ("owner-write", pw, self.count_in(set, |s| *s == Slot::Owner))
        } else {
            ("write", w, self.count_in(set, |s| matches!(s, Slot::Owner | Slot::StoodIn(_))))
        }
    }

    fn count(&self, f: impl Fn(&Slot) -> bool) -> usize {
        self.slots.iter().filter(|(_, s)| f(s)).count()
    }

    fn count_in(&self, set: SetMask, f: impl Fn(&Slot) -> bool) -> usize {
        let in_set = self.slots.iter().enumerate().filter(|(i, _)| set & (1 << i) != 0);
        in_set.filter(|(_, (_, s))| f(s)).count()
    }

    /// Slots filled so far, and calls still in flight.
    pub(crate) fn progress(&self) -> (usize, usize) {
        let filled = self.count(|s| matches!(s, Slot::Owner | Slot::StoodIn(_)));
        let in_flight = self.count(|s| matches!(s, Slot::Asked | Slot::Standing(_)));
        (filled, in_flight)
    }

    /// Acknowledgements by owners alone.
    #[cfg(test)]
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

    /// A change from owners {a, b, c} to {b, c, d}: slots a, b, c, d.
    fn changing(w: usize, pw: usize) -> Tally {
        let sets = SmallVec::from_slice(&[0b0111, 0b1110]);
        Tally::new([id("a"), id("b"), id("c"), id("d")], w, pw).in_sets(sets)
    }

    #[test]
    fn during_a_change_w_from_the_old_owners_alone_is_not_enough() {
        let mut t = changing(2, 0);
        t.answer(&id("a"), Ok(Durability::Buffered));
        t.answer(&id("b"), Ok(Durability::Buffered));
        assert_eq!(t.next(), Next::Wait, "the new set has one acknowledgement");
        t.answer(&id("d"), Ok(Durability::Buffered));
        assert_eq!(t.next(), Next::Done);
    }

    #[test]
    fn an_owner_in_both_sets_counts_in_each() {
        let mut t = changing(2, 0);
        t.answer(&id("b"), Ok(Durability::Buffered));
        t.answer(&id("c"), Ok(Durability::Buffered));
        assert_eq!(t.next(), Next::Done);
    }

    #[test]
    fn a_write_fails_when_one_set_cannot_reach_w_whatever_the_other_has() {
        let mut t = changing(3, 0);
        t.answer(&id("a"), Ok(Durability::Buffered));
        t.answer(&id("d"), Err(down()));
        assert_eq!(t.next(), Next::Failed, "the new set lost d: at most 2 of its 3");
        assert_eq!(t.shortfall(), ("write", 3, 0));
    }

    #[test]
    fn pw_is_counted_per_set_too() {
        let mut t = changing(2, 2);
        t.answer(&id("b"), Ok(Durability::Buffered));
        t.answer(&id("d"), Err(down()));
        t.standing_in(&id("d"), id("e"));
        t.answer(&id("e"), Ok(Durability::Buffered));
        t.answer(&id("a"), Ok(Durability::Buffered));
        assert_eq!(t.next(), Next::Wait, "the new set has one owner acknowledgement");
        t.answer(&id("c"), Ok(Durability::Buffered));
        assert_eq!(t.next(), Next::Done);
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
