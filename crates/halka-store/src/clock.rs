//! Node ids, dots and version vectors: the vocabulary of causality.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use smol_str::SmolStr;
use std::fmt;

/// A node's stable name. Cheap to clone: clocks and every replica call copy it. Names up
/// to 23 bytes are stored inline, so a clone is a copy rather than a reference-count
/// update — which matters because all cores clone the same few ids all the time, and a
/// shared count would bounce its cache line between them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(SmolStr);

impl NodeId {
    #[must_use]
    pub fn new(id: &str) -> Self {
        Self(SmolStr::new(id))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One write event: the `counter`-th write to a key coordinated by `node`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dot {
    pub node: NodeId,
    pub counter: u64,
}

/// For each node, how many of its writes to a key have been seen. Dots from one node are
/// contiguous (a node numbers its writes to a key 1, 2, 3…), so one counter per node
/// summarises them all.
///
/// Kept as a small vector sorted by node: a key is usually written through one or two
/// coordinators, so the common vector lives inline in its record, one cache miss away.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector(SmallVec<[(NodeId, u64); 2]>);

impl VersionVector {
    #[must_use]
    pub fn new() -> Self {
        Self(SmallVec::new())
    }

    /// The counter for `node` (0 when absent).
    #[must_use]
    pub fn get(&self, node: &NodeId) -> u64 {
        self.0.binary_search_by(|(n, _)| n.cmp(node)).map_or(0, |i| self.0[i].1)
    }

    /// Whether this vector has seen `dot`.
    #[must_use]
    pub fn covers(&self, dot: &Dot) -> bool {
        self.get(&dot.node) >= dot.counter
    }

    /// Raises `node`'s counter to at least `counter`.
    pub fn observe(&mut self, node: &NodeId, counter: u64) {
        match self.0.binary_search_by(|(n, _)| n.cmp(node)) {
            Ok(i) => self.0[i].1 = self.0[i].1.max(counter),
            Err(i) => self.0.insert(i, (node.clone(), counter)),
        }
    }

    /// Pointwise maximum, in place.
    pub fn join(&mut self, other: &VersionVector) {
        if other.0.is_empty() {
            return;
        }
        if self.0.is_empty() {
            self.0.clone_from(&other.0);
            return;
        }
        for (node, counter) in &other.0 {
            self.observe(node, *counter);
        }
    }

    /// Whether every entry of `other` is covered by `self`.
    #[must_use]
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(n, c)| self.get(n) >= *c)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, u64)> {
        self.0.iter().map(|(n, c)| (n, *c))
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(NodeId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (NodeId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (n, c) in iter {
            vv.observe(&n, c);
        }
        vv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_keeps_entries_sorted_and_maximal() {
        let (a, b) = (NodeId::new("a"), NodeId::new("b"));
        let mut vv = VersionVector::new();
        vv.observe(&b, 2);
        vv.observe(&a, 5);
        vv.observe(&b, 1);
        assert_eq!(vv.get(&a), 5);
        assert_eq!(vv.get(&b), 2);
        assert!(vv.covers(&Dot { node: b.clone(), counter: 2 }));
        assert!(!vv.covers(&Dot { node: b, counter: 3 }));
        let names: Vec<_> = vv.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
