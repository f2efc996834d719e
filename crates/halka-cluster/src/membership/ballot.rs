//! Choosing the next layout version: single-decree Paxos among the members of the current
//! layout, one instance per version.
//!
//! Any member may commit staged changes, so two operators (or one operator retrying
//! against another node) can propose different layouts for the same version at once. If
//! each node took the first proposal it heard of, the cluster could split between two
//! layouts numbered alike, and writes acknowledged under one would not be where readers
//! under the other look. So a version is *chosen* before any node acts on it: a proposal
//! is chosen once a majority of the current layout's members accepted it under one
//! ballot, and Paxos guarantees that no other proposal can be chosen for that version
//! afterwards (a later proposer learns the accepted one from any majority, and must carry
//! it on instead of its own).
//!
//! This module is the acceptor's state and the proposer's arithmetic, without I/O;
//! `Membership` sends the messages and keeps [`Votes`] durable before answering.

use super::spec::LayoutSpec;
use serde::{Deserialize, Serialize};

/// A proposal number: the round, then the proposer's id, so that two proposers never
/// use the same ballot.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub node: String,
}

/// What this node promised and accepted for one layout version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Votes {
    /// The version these votes are for.
    pub version: u64,
    /// No ballot below this one is accepted.
    pub promised: Option<Ballot>,
    /// The last proposal accepted, with its ballot.
    pub accepted: Option<(Ballot, LayoutSpec)>,
}

/// An acceptor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vote {
    /// Phase 1: the ballot is promised; here is what was accepted before, if anything.
    Promise { accepted: Option<(Ballot, LayoutSpec)> },
    /// Phase 2: the proposal is accepted under the ballot.
    Accepted,
    /// A higher ballot was promised: try again above it.
    Outbid { promised: Ballot },
    /// This node has already installed a layout at or past the version: the proposer is
    /// behind.
    Installed { newest: u64 },
    /// This node cannot vote on the version (it has not installed the one before it, or
    /// a change is still under way): the reason says which.
    NotNow { reason: String },
}

impl Votes {
    /// The votes for `version`, starting afresh when they were for an earlier one.
    fn at(&mut self, version: u64) -> &mut Self {
        if self.version != version {
            *self = Votes { version, ..Votes::default() };
        }
        self
    }

    /// Phase 1: promise `ballot` for `version` unless a higher one was promised.
    pub fn prepare(&mut self, version: u64, ballot: Ballot) -> Vote {
        let votes = self.at(version);
        match &votes.promised {
            Some(p) if *p > ballot => Vote::Outbid { promised: p.clone() },
            _ => {
                votes.promised = Some(ballot);
                Vote::Promise { accepted: votes.accepted.clone() }
            }
        }
    }

    /// Phase 2: accept `proposal` under `ballot` unless a higher ballot was promised.
    pub fn accept(&mut self, ballot: Ballot, proposal: LayoutSpec) -> Vote {
        let votes = self.at(proposal.version);
        match &votes.promised {
            Some(p) if *p > ballot => Vote::Outbid { promised: p.clone() },
            _ => {
                votes.promised = Some(ballot.clone());
                votes.accepted = Some((ballot, proposal));
                Vote::Accepted
            }
        }
    }
}

/// The votes for `version` a node that lost its own takes from the other members'
/// (`theirs`; see `Membership::recover_votes`): it promises nothing below the highest
/// ballot any of them promised or accepted, and reports as accepted the proposal
/// accepted under the highest ballot. Reporting another member's acceptance is safe: it
/// is a proposal really accepted under that ballot, which is all a proposer's choice
/// rests on; and it carries a chosen proposal the lost votes may have been part of.
#[must_use]
pub fn recovered(version: u64, theirs: &[Votes]) -> Votes {
    let theirs = theirs.iter().filter(|v| v.version == version);
    let accepted = theirs.clone().filter_map(|v| v.accepted.clone()).max_by(|a, b| a.0.cmp(&b.0));
    let promised = theirs
        .flat_map(|v| v.promised.iter().chain(v.accepted.iter().map(|(b, _)| b)))
        .max()
        .cloned();
    Votes { version, promised, accepted }
}

/// What phase 1 leaves the proposer with: the proposal it must carry on (the one accepted
/// under the highest ballot among the promises, or its own), or why it cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    Propose(LayoutSpec),
    /// Fewer than a majority promised.
    NoMajority {
        promised: usize,
        needed: usize,
        outbid: Option<Ballot>,
        newest: Option<u64>,
    },
}

/// The smallest majority of `voters`.
#[must_use]
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// Tallies phase 1's answers (`None`: no answer) for `own`.
#[must_use]
pub fn tally_promises(answers: &[Option<Vote>], own: LayoutSpec) -> Prepared {
    let needed = majority(answers.len());
    let mut promised = 0;
    let mut best: Option<(Ballot, LayoutSpec)> = None;
    let mut outbid: Option<Ballot> = None;
    let mut newest: Option<u64> = None;
    for answer in answers.iter().flatten() {
        match answer {
            Vote::Promise { accepted } => {
                promised += 1;
                if let Some((b, spec)) = accepted
                    && best.as_ref().is_none_or(|(best, _)| b > best)
                {
                    best = Some((b.clone(), spec.clone()));
                }
            }
            Vote::Outbid { promised } => outbid = outbid.max(Some(promised.clone())),
            Vote::Installed { newest: n } => newest = newest.max(Some(*n)),
            Vote::Accepted | Vote::NotNow { .. } => {}
        }
    }
    if promised < needed {
        return Prepared::NoMajority { promised, needed, outbid, newest };
    }
    Prepared::Propose(best.map_or(own, |(_, spec)| spec))
}

/// Whether phase 2's answers choose the proposal.
#[must_use]
pub fn chosen(answers: &[Option<Vote>]) -> bool {
    let accepted = answers.iter().flatten().filter(|a| matches!(a, Vote::Accepted)).count();
    accepted >= majority(answers.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::spec::{Addresses, MemberSpec};

    fn spec(version: u64, ids: &[&str]) -> LayoutSpec {
        let members = ids.iter().map(|id| MemberSpec::active(*id, Addresses::default())).collect();
        LayoutSpec::new(version, 3, 16, members)
    }

    fn ballot(round: u64, node: &str) -> Ballot {
        Ballot { round, node: node.into() }
    }

    #[test]
    fn an_acceptor_refuses_ballots_below_its_promise() {
        let mut v = Votes::default();
        assert!(matches!(v.prepare(2, ballot(5, "a")), Vote::Promise { accepted: None }));
        assert_eq!(v.prepare(2, ballot(4, "z")), Vote::Outbid { promised: ballot(5, "a") });
        assert_eq!(
            v.accept(ballot(4, "z"), spec(2, &["z"])),
            Vote::Outbid { promised: ballot(5, "a") }
        );
        assert_eq!(v.accept(ballot(5, "a"), spec(2, &["a"])), Vote::Accepted);
    }

    #[test]
    fn recovered_votes_promise_the_highest_ballot_seen_and_report_the_latest_acceptance() {
        let mut b = Votes::default();
        b.accept(ballot(3, "c"), spec(2, &["a", "b", "c", "d"]));
        let mut c = Votes::default();
        c.prepare(2, ballot(7, "b"));
        let stale = Votes { version: 1, promised: Some(ballot(99, "x")), accepted: None };
        let votes = recovered(2, &[b, c, stale, Votes::default()]);
        assert_eq!(votes.version, 2);
        assert_eq!(votes.promised, Some(ballot(7, "b")));
        assert_eq!(votes.accepted, Some((ballot(3, "c"), spec(2, &["a", "b", "c", "d"]))));
        let mut v = votes;
        assert_eq!(v.prepare(2, ballot(6, "z")), Vote::Outbid { promised: ballot(7, "b") });
        let Vote::Promise { accepted: Some((_, layout)) } = v.prepare(2, ballot(8, "z")) else {
            panic!("a promise reporting the recovered acceptance");
        };
        assert_eq!(layout, spec(2, &["a", "b", "c", "d"]));
    }

    #[test]
    fn a_promise_reports_what_was_accepted_before() {
        let mut v = Votes::default();
        v.accept(ballot(1, "a"), spec(2, &["a", "b"]));
        let Vote::Promise { accepted: Some((b, s)) } = v.prepare(2, ballot(2, "b")) else {
            panic!("a promise carrying the accepted proposal");
        };
        assert_eq!((b, s), (ballot(1, "a"), spec(2, &["a", "b"])));
    }

    #[test]
    fn votes_for_a_later_version_start_afresh() {
        let mut v = Votes::default();
        v.prepare(2, ballot(9, "a"));
        assert!(matches!(v.prepare(3, ballot(1, "b")), Vote::Promise { accepted: None }));
    }

    #[test]
    fn a_proposer_carries_on_the_proposal_accepted_under_the_highest_ballot() {
        let theirs = spec(2, &["a", "b", "c", "d"]);
        let older = spec(2, &["a", "b"]);
        let answers = [
            Some(Vote::Promise { accepted: Some((ballot(3, "x"), theirs.clone())) }),
            Some(Vote::Promise { accepted: Some((ballot(1, "y"), older)) }),
            None,
        ];
        assert_eq!(tally_promises(&answers, spec(2, &["mine"])), Prepared::Propose(theirs));
    }

    #[test]
    fn a_proposer_without_a_majority_of_promises_stops() {
        let answers = [
            Some(Vote::Promise { accepted: None }),
            Some(Vote::Outbid { promised: ballot(7, "q") }),
            None,
        ];
        assert_eq!(
            tally_promises(&answers, spec(2, &["a"])),
            Prepared::NoMajority {
                promised: 1,
                needed: 2,
                outbid: Some(ballot(7, "q")),
                newest: None
            }
        );
    }

    #[test]
    fn two_racing_proposers_cannot_both_be_chosen() {
        // Three acceptors; A prepares on a majority, B outbids it on one, then both try
        // to get their own proposal accepted.
        let mut acceptors = vec![Votes::default(); 3];
        let (a, b) = (ballot(1, "a"), ballot(2, "b"));
        let promises_a: Vec<_> =
            acceptors[..2].iter_mut().map(|v| Some(v.prepare(2, a.clone()))).collect();
        assert!(matches!(
            tally_promises(&[promises_a[0].clone(), promises_a[1].clone(), None], spec(2, &["a"])),
            Prepared::Propose(_)
        ));
        let promises_b: Vec<_> =
            acceptors[1..].iter_mut().map(|v| Some(v.prepare(2, b.clone()))).collect();
        assert!(matches!(
            tally_promises(&[None, promises_b[0].clone(), promises_b[1].clone()], spec(2, &["b"])),
            Prepared::Propose(_)
        ));
        let accept_a: Vec<_> =
            acceptors.iter_mut().map(|v| Some(v.accept(a.clone(), spec(2, &["a"])))).collect();
        let accept_b: Vec<_> =
            acceptors.iter_mut().map(|v| Some(v.accept(b.clone(), spec(2, &["b"])))).collect();
        assert!(!(chosen(&accept_a) && chosen(&accept_b)));
        assert!(chosen(&accept_b), "the higher ballot wins once it is accepted");
    }
}
