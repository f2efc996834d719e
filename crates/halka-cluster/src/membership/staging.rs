//! Changes an operator stages before committing them as the next layout version, and the
//! plan that says what they would move.
//!
//! Staged changes are kept by the node the operator talks to, in memory, until they are
//! committed (or cleared); the layout they make is only proposed at commit.

use super::spec::{LayoutSpec, MemberSpec, StateSpec};
use halka_ring::{Layout, Placement, PlacementError};
use serde::{Deserialize, Serialize};

/// One staged change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A new member takes a share of the partitions.
    Join(MemberSpec),
    /// A member hands its partitions to the others.
    Leave(String),
    /// `old` is gone (a machine lost with its data) and `new` takes a share in its place,
    /// streamed from the other owners.
    Replace { old: String, new: MemberSpec },
}

/// Why staged changes do not make a layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    #[error("node {0:?} is already a member; a node that has left may join again under its id")]
    AlreadyMember(String),
    #[error("node {0:?} is not an owning member of layout version {1}")]
    NotOwning(String, u64),
    #[error(
        "after these changes {left} member(s) would own data, fewer than the replication \
         factor {replication}: join another node first"
    )]
    TooFew { left: usize, replication: usize },
    #[error("nothing is staged: stage a join, leave or replace first")]
    Nothing,
    #[error(transparent)]
    Placement(#[from] PlacementError),
}

/// The layout `changes` make from `current`: version + 1, members that joined in
/// `current` now active, members that were leaving now gone from the roster.
///
/// # Errors
/// A change names a member it cannot apply to, or too few owners would remain.
pub fn next_layout(current: &LayoutSpec, changes: &[Change]) -> Result<LayoutSpec, StageError> {
    if changes.is_empty() {
        return Err(StageError::Nothing);
    }
    let mut members: Vec<MemberSpec> = current
        .members
        .iter()
        .filter(|m| !matches!(m.state, StateSpec::Leaving | StateSpec::Left))
        .cloned()
        .map(|mut m| {
            m.state = StateSpec::Active;
            m
        })
        .collect();
    let mut leaving: Vec<MemberSpec> = Vec::new();
    for change in changes {
        match change {
            Change::Join(m) => join(&mut members, m)?,
            Change::Leave(id) => leaving.push(leave(&mut members, id, current.version)?),
            Change::Replace { old, new } => {
                let mut gone = leave(&mut members, old, current.version)?;
                gone.state = StateSpec::Left;
                leaving.push(gone);
                join(&mut members, new)?;
            }
        }
    }
    let owning = members.len();
    if owning < current.replication {
        return Err(StageError::TooFew { left: owning, replication: current.replication });
    }
    members.extend(leaving);
    let next =
        LayoutSpec::new(current.version + 1, current.replication, current.partitions, members);
    next.layout()?;
    Ok(next)
}

fn join(members: &mut Vec<MemberSpec>, m: &MemberSpec) -> Result<(), StageError> {
    if members.iter().any(|o| o.id == m.id) {
        return Err(StageError::AlreadyMember(m.id.clone()));
    }
    members.push(MemberSpec { state: StateSpec::Joining, ..m.clone() });
    Ok(())
}

fn leave(members: &mut Vec<MemberSpec>, id: &str, version: u64) -> Result<MemberSpec, StageError> {
    let at = members
        .iter()
        .position(|m| m.id == id)
        .ok_or_else(|| StageError::NotOwning(id.to_string(), version))?;
    let mut m = members.remove(at);
    m.state = StateSpec::Leaving;
    Ok(m)
}

/// What a change would move, node by node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub from: u64,
    pub to: u64,
    pub nodes: Vec<NodePlan>,
    /// Partition copies that move (one per partition and new owner).
    pub transfers: usize,
}

/// One node's share before and after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodePlan {
    pub id: String,
    pub state: StateSpec,
    /// Partition copies held before and after.
    pub before: usize,
    pub after: usize,
    /// The copies its weight entitles it to after the change.
    pub ideal: f64,
    pub gains: usize,
    pub loses: usize,
}

/// The plan of moving from `current` to `next`.
///
/// # Errors
/// Either spec does not make a layout.
pub fn plan(current: &LayoutSpec, next: &LayoutSpec) -> Result<Plan, StageError> {
    let (a, b) = (current.layout()?, next.layout()?);
    let diff = a.diff(&b)?;
    let held = |layout: &Layout, id: &str| {
        (0..layout.partitions()).filter(|&p| layout.owner_ids(p).contains(&id)).count()
    };
    let copies = f64::from(b.partitions()) * b.width() as f64;
    let total_weight: f64 = b.members().iter().map(|m| f64::from(m.weight)).sum();
    let nodes = next
        .members
        .iter()
        .map(|m| {
            let ideal =
                if m.state.owns() { copies * f64::from(m.weight) / total_weight } else { 0.0 };
            NodePlan {
                id: m.id.clone(),
                state: m.state,
                before: held(&a, &m.id),
                after: held(&b, &m.id),
                ideal,
                gains: diff.moves.iter().filter(|mv| mv.gained.contains(&m.id)).count(),
                loses: diff.moves.iter().filter(|mv| mv.lost.contains(&m.id)).count(),
            }
        })
        .collect();
    Ok(Plan { from: current.version, to: next.version, nodes, transfers: diff.transfers() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::spec::Addresses;

    fn member(id: &str) -> MemberSpec {
        MemberSpec::active(id, Addresses { peer: format!("{id}:7380"), ..Addresses::default() })
    }

    fn three() -> LayoutSpec {
        LayoutSpec::new(1, 3, 256, vec![member("a"), member("b"), member("c")])
    }

    #[test]
    fn a_join_makes_the_next_version_with_the_new_member_joining() {
        let next = next_layout(&three(), &[Change::Join(member("d"))]).unwrap();
        assert_eq!(next.version, 2);
        assert_eq!(next.member("d").unwrap().state, StateSpec::Joining);
        let plan = plan(&three(), &next).unwrap();
        let d = plan.nodes.iter().find(|n| n.id == "d").unwrap();
        assert_eq!(d.before, 0);
        assert!(d.after > 0 && d.gains == d.after);
        assert!((d.after as f64 - d.ideal).abs() / d.ideal < 0.1, "{d:?}");
    }

    #[test]
    fn a_leave_keeps_the_member_on_the_roster_owning_nothing_then_drops_it() {
        let four = next_layout(&three(), &[Change::Join(member("d"))]).unwrap();
        let next = next_layout(&four, &[Change::Leave("a".into())]).unwrap();
        assert_eq!(next.member("a").unwrap().state, StateSpec::Leaving);
        assert_eq!(next.member("d").unwrap().state, StateSpec::Active);
        assert!(next.layout().unwrap().members().iter().all(|m| m.id != "a"));
        let after = next_layout(&next, &[Change::Leave("b".into())]);
        assert!(matches!(after, Err(StageError::TooFew { left: 2, replication: 3 })));
    }

    #[test]
    fn a_member_cannot_join_twice_nor_an_unknown_one_leave() {
        assert_eq!(
            next_layout(&three(), &[Change::Join(member("a"))]),
            Err(StageError::AlreadyMember("a".into()))
        );
        assert_eq!(
            next_layout(&three(), &[Change::Leave("x".into())]),
            Err(StageError::NotOwning("x".into(), 1))
        );
        assert_eq!(next_layout(&three(), &[]), Err(StageError::Nothing));
    }

    #[test]
    fn a_replace_hands_the_old_members_share_to_the_new_one() {
        let next = next_layout(&three(), &[Change::Replace { old: "c".into(), new: member("e") }])
            .unwrap();
        assert_eq!(next.member("c").unwrap().state, StateSpec::Left);
        assert_eq!(next.member("e").unwrap().state, StateSpec::Joining);
        assert_eq!(next.layout().unwrap().members().len(), 3);
    }
}
