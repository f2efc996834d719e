//! What nodes gossip: each node's announcement of itself, and how two tables of them
//! merge.
//!
//! An announcement is written only by the node it describes, and every change to it
//! (a heartbeat, a new layout installed) comes with a larger `(generation, heartbeat)`;
//! a restarted node starts a newer generation, so its heartbeat may start again from
//! zero. Merging keeps, for each node, the announcement with the larger pair: tables
//! merged in any order, any number of times, end the same (a join-semilattice), which is
//! what lets them spread by gossip.

use crate::membership::MemberSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most nodes a table holds: a peer's table that names more is taken only in part
/// (every sender is authenticated, but a bug must not make every node's memory grow).
pub const MAX_NODES: usize = 1024;

/// One node's announcement of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// Who the node is and where it is reached (its state is the layout's to say; here
    /// it is what the node was started as).
    pub member: MemberSpec,
    /// When this run of the node started (µs since the epoch): a restart counts anew.
    pub generation: u64,
    /// Raised by the node at every gossip round.
    pub heartbeat: u64,
    /// The newest layout the node has installed (0: none yet).
    pub layout_version: u64,
}

impl Announcement {
    fn stamp(&self) -> (u64, u64) {
        (self.generation, self.heartbeat)
    }

    #[must_use]
    pub fn id(&self) -> &str {
        &self.member.id
    }
}

/// The announcements a node knows, by node id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    nodes: BTreeMap<String, Announcement>,
    /// Nodes forgotten, with the stamp of the last announcement held of each: a peer
    /// that has not forgotten one yet sends that announcement again, which must not
    /// bring it back; a newer one (the node is alive after all) does.
    forgotten: BTreeMap<String, (u64, u64)>,
}

/// What merging a peer's announcements changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Nodes known before whose announcement is newer now: news of them arrived.
    pub heard: Vec<String>,
    /// Nodes not known before.
    pub new: Vec<String>,
}

impl Table {
    /// Keeps each of `theirs` that is newer than what the table holds for its node.
    /// `me` is never taken from a peer: only this node writes its own announcement.
    pub fn merge(&mut self, me: &str, theirs: Vec<Announcement>) -> Merged {
        let mut merged = Merged::default();
        for theirs in theirs {
            if theirs.id() == me {
                continue;
            }
            if let Some(stamp) = self.forgotten.get(theirs.id()) {
                if theirs.stamp() <= *stamp {
                    continue;
                }
                self.forgotten.remove(theirs.id());
            }
            let full = self.nodes.len() >= MAX_NODES;
            match self.nodes.get_mut(theirs.id()) {
                Some(ours) if theirs.stamp() > ours.stamp() => {
                    merged.heard.push(theirs.id().to_string());
                    *ours = theirs;
                }
                Some(_) => {}
                None if !full => {
                    merged.new.push(theirs.id().to_string());
                    self.nodes.insert(theirs.id().to_string(), theirs);
                }
                None => {
                    tracing::warn!(node = theirs.id(), "gossip table full: node not taken");
                }
            }
        }
        merged
    }

    /// Drops node `id`, and refuses its announcements up to the one held now (see
    /// `forgotten`). Returns whether it was known.
    pub fn forget(&mut self, id: &str) -> bool {
        let Some(gone) = self.nodes.remove(id) else { return false };
        self.forgotten.insert(id.to_string(), gone.stamp());
        true
    }

    /// Stops refusing node `id`'s old announcements: every peer has forgotten it too.
    pub fn unmark(&mut self, id: &str) {
        self.forgotten.remove(id);
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Announcement> {
        self.nodes.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Announcement> {
        self.nodes.values()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Addresses;

    fn ann(id: &str, generation: u64, heartbeat: u64) -> Announcement {
        let addresses = Addresses { peer: format!("{id}:7000"), ..Addresses::default() };
        Announcement {
            member: MemberSpec::active(id, addresses),
            generation,
            heartbeat,
            layout_version: 1,
        }
    }

    #[test]
    fn a_newer_heartbeat_replaces_the_older_and_counts_as_news() {
        let mut table = Table::default();
        table.merge("me", vec![ann("a", 1, 5)]);
        let merged = table.merge("me", vec![ann("a", 1, 6)]);
        assert_eq!(merged.heard, vec!["a".to_string()]);
        assert_eq!(table.get("a").unwrap().heartbeat, 6);
    }

    #[test]
    fn an_older_or_equal_announcement_changes_nothing() {
        let mut table = Table::default();
        table.merge("me", vec![ann("a", 1, 6)]);
        let merged = table.merge("me", vec![ann("a", 1, 6), ann("a", 1, 2)]);
        assert_eq!(merged, Merged::default());
        assert_eq!(table.get("a").unwrap().heartbeat, 6);
    }

    #[test]
    fn a_restarted_node_wins_with_a_lower_heartbeat() {
        let mut table = Table::default();
        table.merge("me", vec![ann("a", 1, 900)]);
        table.merge("me", vec![ann("a", 2, 0)]);
        assert_eq!(table.get("a").unwrap().generation, 2);
    }

    #[test]
    fn nobody_else_writes_this_nodes_announcement() {
        let mut table = Table::default();
        table.merge("me", vec![ann("me", 9, 9)]);
        assert!(table.is_empty());
    }

    #[test]
    fn tables_merged_in_any_order_end_the_same() {
        let updates = [ann("a", 1, 3), ann("b", 1, 1), ann("a", 2, 0), ann("b", 1, 4)];
        let mut forward = Table::default();
        for u in &updates {
            forward.merge("me", vec![u.clone()]);
        }
        let mut backward = Table::default();
        for u in updates.iter().rev() {
            backward.merge("me", vec![u.clone()]);
        }
        assert_eq!(forward, backward);
    }

    #[test]
    fn a_forgotten_node_is_not_brought_back_by_its_old_announcement_but_by_a_newer_one() {
        let mut table = Table::default();
        table.merge("me", vec![ann("gone", 1, 40)]);
        assert!(table.forget("gone"));
        let merged = table.merge("me", vec![ann("gone", 1, 40), ann("gone", 1, 12)]);
        assert_eq!(merged, Merged::default());
        assert!(table.get("gone").is_none());
        let merged = table.merge("me", vec![ann("gone", 2, 0)]);
        assert_eq!(merged.new, vec!["gone".to_string()]);
    }

    #[test]
    fn a_full_table_takes_no_new_nodes_but_still_hears_known_ones() {
        let mut table = Table::default();
        table.merge("me", (0..MAX_NODES).map(|i| ann(&format!("n{i}"), 1, 0)).collect());
        let merged = table.merge("me", vec![ann("extra", 1, 0), ann("n0", 1, 1)]);
        assert_eq!(table.len(), MAX_NODES);
        assert!(table.get("extra").is_none());
        assert_eq!(merged.heard, vec!["n0".to_string()]);
    }
}
