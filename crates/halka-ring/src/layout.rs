//! The cluster's layout as a value: which members there are, where each stands, and which
//! of them own each partition, under a version number.
//!
//! A layout is what every node must agree on to route a request, so it is plain data
//! with a deterministic table: two nodes holding the same layout compute the same owners
//! for every key without talking. A membership change does not edit a layout; it builds
//! the next one (version + 1), and [`Layout::diff`] says which partitions move between
//! them — the work a change costs, before it is made.
//!
//! Only members that own data in this version ([`MemberState::Active`] and
//! [`MemberState::Joining`]) are in the partition table; [`Layout::members`] lists them,
//! sorted by id, and a [`NodeIdx`] indexes that list. [`Layout::roster`] lists every member,
//! including those leaving or gone.

use crate::member::canonical;
use crate::{Member, NodeIdx, Partitioned, Placement, PlacementError, PreferenceList};
use std::collections::BTreeSet;

/// A partition's number in a layout: the top `log2(partitions)` bits of a key's
/// placement hash.
pub type PartitionId = u32;

/// Where a member stands in a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum MemberState {
    /// Owns partitions in this layout and is receiving them from their previous owners.
    Joining,
    /// Owns partitions and holds them.
    Active,
    /// Owns nothing in this layout, but still holds what it owned in the previous one
    /// until the new owners have it.
    Leaving,
    /// Gone: owns and holds nothing.
    Left,
}

impl MemberState {
    /// Whether a member in this state is in the partition table.
    #[must_use]
    pub fn owns(self) -> bool {
        matches!(self, MemberState::Joining | MemberState::Active)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Joining => "joining",
            MemberState::Active => "active",
            MemberState::Leaving => "leaving",
            MemberState::Left => "left",
        }
    }
}

/// A member and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutMember {
    pub member: Member,
    pub state: MemberState,
}

impl LayoutMember {
    #[must_use]
    pub fn active(member: Member) -> Self {
        Self { member, state: MemberState::Active }
    }
}

/// One version of the cluster's layout.
#[derive(Debug, Clone)]
pub struct Layout {
    version: u64,
    /// Every member, sorted by id.
    roster: Vec<LayoutMember>,
    table: Partitioned,
}

impl Layout {
    /// Layout `version` over `roster`, with `replication` owners per partition (fewer
    /// while fewer members own data) and `partitions` partitions.
    ///
    /// # Errors
    /// No member owns data, ids are duplicated or empty, a weight is zero, or the
    /// replication or partition count is out of range.
    pub fn new(
        version: u64,
        roster: Vec<LayoutMember>,
        replication: usize,
        partitions: u32,
    ) -> Result<Self, PlacementError> {
        let everyone: Vec<Member> = roster.iter().map(|m| m.member.clone()).collect();
        canonical(&everyone)?;
        let owners: Vec<Member> =
            roster.iter().filter(|m| m.state.owns()).map(|m| m.member.clone()).collect();
        let table = Partitioned::new(&owners, partitions, replication)?;
        let mut roster = roster;
        roster.sort_by(|a, b| a.member.id.cmp(&b.member.id));
        Ok(Self { version, roster, table })
    }

    /// A layout in which every member of `members` is active.
    ///
    /// # Errors
    /// As [`Layout::new`].
    pub fn active(
        version: u64,
        members: &[Member],
        replication: usize,
        partitions: u32,
    ) -> Result<Self, PlacementError> {
        let roster = members.iter().cloned().map(LayoutMember::active).collect();
        Self::new(version, roster, replication, partitions)
    }

    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every member with its state, sorted by id.
    #[must_use]
    pub fn roster(&self) -> &[LayoutMember] {
        &self.roster
    }

    #[must_use]
    pub fn partitions(&self) -> u32 {
        self.table.partitions()
    }

    /// Owners per partition: the replication factor, or the owning member count if
    /// smaller.
    #[must_use]
    pub fn width(&self) -> usize {
        self.table.row(0).len()
    }

    /// The partition a placement hash falls into.
    #[inline]
    #[must_use]
    pub fn partition_of(&self, hash: u64) -> PartitionId {
        // At most 2^20 partitions: the index fits.
        self.table.partition(hash) as PartitionId
    }

    /// The placement hashes of partition `p`, first and last inclusive: partitions are
    /// contiguous ranges, so one partition's keys are one range of a store laid out by
    /// placement hash.
    #[must_use]
    pub fn hash_range(&self, p: PartitionId) -> (u64, u64) {
        let bits = self.partitions().trailing_zeros();
        if bits == 0 {
            return (0, u64::MAX);
        }
        let shift = 64 - bits;
        let first = u64::from(p) << shift;
        (first, first | (u64::MAX >> bits))
    }

    /// The owners of partition `p`, best first (indexes into [`Layout::members`]).
    #[must_use]
    pub fn owners(&self, p: PartitionId) -> &[NodeIdx] {
        self.table.row(p as usize)
    }

    /// The ids of partition `p`'s owners, best first.
    #[must_use]
    pub fn owner_ids(&self, p: PartitionId) -> Vec<&str> {
        let members = self.table.members();
        self.owners(p).iter().map(|&i| members[usize::from(i)].id.as_str()).collect()
    }

    /// How many partitions each owning member leads (is first owner of), in
    /// [`Layout::members`] order.
    #[must_use]
    pub fn primaries(&self) -> Vec<u64> {
        let mut out = vec![0_u64; self.table.members().len()];
        for p in 0..self.partitions() {
            out[usize::from(self.owners(p)[0])] += 1;
        }
        out
    }

    /// What changes from this layout to `next`: for every partition whose owner set
    /// differs, who gains it and who gives it up. Partition counts never change in a
    /// cluster's life, so layouts with different counts cannot be compared.
    ///
    /// # Errors
    /// [`PlacementError::PartitionCountChanged`].
    pub fn diff(&self, next: &Layout) -> Result<LayoutDiff, PlacementError> {
        if self.partitions() != next.partitions() {
            return Err(PlacementError::PartitionCountChanged {
                from: self.partitions(),
                to: next.partitions(),
            });
        }
        let moves = (0..self.partitions())
            .filter_map(|p| {
                let before: BTreeSet<&str> = self.owner_ids(p).into_iter().collect();
                let after: BTreeSet<&str> = next.owner_ids(p).into_iter().collect();
                let gained: Vec<String> =
                    after.difference(&before).map(|s| (*s).to_string()).collect();
                let lost: Vec<String> =
                    before.difference(&after).map(|s| (*s).to_string()).collect();
                (!gained.is_empty() || !lost.is_empty()).then_some(PartitionMove {
                    partition: p,
                    gained,
                    lost,
                })
            })
            .collect();
        Ok(LayoutDiff { from: self.version, to: next.version, moves })
    }
}

impl Placement for Layout {
    fn name(&self) -> &'static str {
        "partitioned"
    }

    /// The members that own data in this layout, sorted by id.
    fn members(&self) -> &[Member] {
        self.table.members()
    }

    #[inline]
    fn owner(&self, hash: u64) -> NodeIdx {
        self.table.owner(hash)
    }

    #[inline]
    fn preference_list_into(&self, hash: u64, n: usize, out: &mut PreferenceList) {
        self.table.preference_list_into(hash, n, out);
    }
}

/// One partition's change of owners between two layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMove {
    pub partition: PartitionId,
    /// Members that own it in the next layout and not in this one: each must receive it.
    pub gained: Vec<String>,
    /// Members that own it in this layout and not in the next: each may drop it once
    /// every gaining member holds it.
    pub lost: Vec<String>,
}

/// What a layout change moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutDiff {
    pub from: u64,
    pub to: u64,
    /// In partition order.
    pub moves: Vec<PartitionMove>,
}

impl LayoutDiff {
    /// Partition copies to stream: one per (partition, gaining member).
    #[must_use]
    pub fn transfers(&self) -> usize {
        self.moves.iter().map(|m| m.gained.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<Member> {
        (1..=n).map(|i| Member::new(format!("node-{i}"))).collect()
    }

    #[test]
    fn hash_ranges_tile_the_hash_space_and_agree_with_partition_of() {
        let layout = Layout::active(1, &members(3), 3, 16).unwrap();
        let mut next = 0_u64;
        for p in 0..16 {
            let (first, last) = layout.hash_range(p);
            assert_eq!(first, next, "partition {p} starts where the last ended");
            assert_eq!((layout.partition_of(first), layout.partition_of(last)), (p, p));
            next = last.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last partition ends at u64::MAX");
    }

    #[test]
    fn a_leaving_member_owns_nothing_but_stays_on_the_roster() {
        let mut roster: Vec<LayoutMember> =
            members(4).into_iter().map(LayoutMember::active).collect();
        roster[3].state = MemberState::Leaving;
        let layout = Layout::new(2, roster, 3, 256).unwrap();
        assert_eq!(layout.roster().len(), 4);
        assert_eq!(layout.members().len(), 3);
        assert!((0..256).all(|p| !layout.owner_ids(p).contains(&"node-4")));
    }

    #[test]
    fn a_layout_with_no_owner_is_refused() {
        let roster = vec![LayoutMember { member: Member::new("a"), state: MemberState::Left }];
        assert_eq!(Layout::new(1, roster, 3, 16).unwrap_err(), PlacementError::NoMembers);
    }

    #[test]
    fn layouts_of_different_partition_counts_cannot_be_compared() {
        let a = Layout::active(1, &members(3), 3, 16).unwrap();
        let b = Layout::active(2, &members(3), 3, 32).unwrap();
        assert!(matches!(a.diff(&b), Err(PlacementError::PartitionCountChanged { .. })));
    }

    #[test]
    fn primaries_count_every_partition_once() {
        let layout = Layout::active(1, &members(5), 3, 4096).unwrap();
        assert_eq!(layout.primaries().iter().sum::<u64>(), 4096);
    }
}
