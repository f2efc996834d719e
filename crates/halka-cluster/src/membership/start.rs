//! How a node that kept no membership state takes its first layout: a new node of a
//! static member list, or one whose data directory was lost.
//!
//! Its static list (version 1) may be long gone: the cluster may have grown and shrunk
//! since, and retired version 1 everywhere. A node that routed by it would write to nodes
//! that no longer own the keys, and acknowledge writes that are later lost. So it routes
//! by nothing until the other static members tell it what to take:
//!
//! - one answers with a newer layout: the node takes the newest answered (a node behind
//!   by more than that catches up as any member does, by pulling);
//! - one that kept its state answers with version 1: no member has retired version 1
//!   (retiring it needs every member, that one included, to have installed version 2), so
//!   version 1 is the cluster's, or the start of a change the node joins in;
//! - a majority of the static members, this node included, kept no state either: the
//!   cluster is starting for the first time. (It could also be that a majority lost
//!   their disks at once, which loses data whatever is routed.)
//!
//! Otherwise it asks again, and refuses clients meanwhile.

use super::ballot::majority;
use super::service::Membership;
use super::spec::LayoutSpec;
use std::time::Duration;

/// What a node without kept state does with its static members' answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Start {
    /// Install these layouts (a member's, newer than the static list).
    Take(Vec<LayoutSpec>),
    /// Install the static list: a member kept it, so this node may have voted since.
    Static,
    /// Install the static list: the cluster starts for the first time, and nobody has
    /// voted on anything yet.
    First,
    /// Ask again later.
    Wait,
}

/// Decides from `answers` (one per other static member of `initial`: `None` if it did
/// not answer, an empty list if it kept no state either).
pub(super) fn decide(initial: &LayoutSpec, answers: &[Option<Vec<LayoutSpec>>]) -> Start {
    let newest = answers
        .iter()
        .flatten()
        .filter(|l| l.last().is_some_and(|s| s.version > initial.version))
        .max_by_key(|l| l.last().map_or(0, |s| s.version));
    if let Some(layouts) = newest {
        return Start::Take(layouts.clone());
    }
    if answers.iter().flatten().any(|l| !l.is_empty()) {
        return Start::Static;
    }
    let without_state = 1 + answers.iter().flatten().filter(|l| l.is_empty()).count();
    if without_state >= majority(initial.present().count()) {
        return Start::First;
    }
    Start::Wait
}

impl Membership {
    /// For a node that kept no membership state: asks its static members until their
    /// answers settle which layout it takes (see the module's notes), and installs it.
    /// Returns at once for a node that has a layout, or no static list (it waits to be
    /// joined).
    pub async fn catch_up_at_start(&self) {
        let Some(initial) = self.initial().cloned() else { return };
        let mut pause = Duration::from_millis(20);
        let mut waited = false;
        while self.newest().is_none() {
            let answers = self.ask_current(initial.present()).await;
            let decided = decide(&initial, &answers);
            let (layouts, how) = match decided.clone() {
                Start::Take(layouts) => (layouts, "took the cluster's layout from a member"),
                Start::Static => (vec![initial.clone()], "took the static member list"),
                Start::First => (vec![initial.clone()], "took the static member list"),
                Start::Wait => {
                    if !waited {
                        tracing::info!(
                            "no layout kept here: waiting for a static member that kept its \
                             state, or for a majority of them, to answer"
                        );
                        waited = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(self.config().retry);
                    continue;
                }
            };
            let versions: Vec<u64> = layouts.iter().map(|l| l.version).collect();
            // This node kept no votes, and may have cast some before (see `recovery`).
            if let (Some(&newest), false) = (versions.last(), decided == Start::First) {
                self.will_recover(newest);
            }
            match self.install(layouts) {
                Ok(_) => tracing::info!(?versions, "{how}"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot take a layout at start");
                    tokio::time::sleep(self.config().retry).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::spec::{Addresses, MemberSpec};

    fn layout(version: u64, ids: &[&str]) -> LayoutSpec {
        let members = ids
            .iter()
            .map(|id| {
                let addresses = Addresses { peer: format!("{id}:1"), ..Addresses::default() };
                MemberSpec::active(*id, addresses)
            })
            .collect();
        LayoutSpec::new(version, 3, 64, members)
    }

    #[test]
    fn a_newer_layout_answered_is_taken() {
        let v1 = layout(1, &["a", "b", "c"]);
        let v3 = layout(3, &["a", "b", "d"]);
        let answers = [None, Some(vec![v3.clone()])];
        assert_eq!(decide(&v1, &answers), Start::Take(vec![v3]));
    }

    #[test]
    fn the_newest_of_several_answers_is_taken() {
        let v1 = layout(1, &["a", "b", "c"]);
        let (v2, v3) = (layout(2, &["a", "b", "d"]), layout(3, &["a", "b", "e"]));
        let answers = [Some(vec![v2]), Some(vec![v3.clone()])];
        assert_eq!(decide(&v1, &answers), Start::Take(vec![v3]));
    }

    #[test]
    fn one_member_that_kept_the_static_list_settles_it() {
        let v1 = layout(1, &["a", "b", "c"]);
        assert_eq!(decide(&v1, &[None, Some(vec![v1.clone()])]), Start::Static);
    }

    #[test]
    fn no_answer_is_waited_out_rather_than_taken_for_the_static_list() {
        let v1 = layout(1, &["a", "b", "c"]);
        assert_eq!(decide(&v1, &[None, None]), Start::Wait);
    }

    #[test]
    fn a_majority_without_state_is_a_first_start() {
        let v1 = layout(1, &["a", "b", "c"]);
        assert_eq!(decide(&v1, &[Some(Vec::new()), None]), Start::First);
        let five = layout(1, &["a", "b", "c", "d", "e"]);
        assert_eq!(decide(&five, &[Some(Vec::new()), None, None, None]), Start::Wait);
        let answers = [Some(Vec::new()), Some(Vec::new()), None, None];
        assert_eq!(decide(&five, &answers), Start::First);
    }

    #[test]
    fn a_single_node_needs_no_answer() {
        let v1 = layout(1, &["a"]);
        assert_eq!(decide(&v1, &[]), Start::First);
    }
}
