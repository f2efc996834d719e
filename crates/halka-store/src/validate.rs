//! Checks for causal metadata that comes from outside this node: records sent by peers
//! and contexts passed back by clients.
//!
//! A record is trusted only after these checks. Without them a single message could wrap a
//! counter (every later write to the key would count as already seen and vanish), grow a
//! key past the sibling cap, or break the sorted layout that lookups rely on. The checks
//! are linear in the record's size, so every merge and every write runs them.

use crate::record::MAX_SIBLINGS;
use crate::{Record, VersionVector};
use thiserror::Error;

/// Largest counter accepted in a causal context a client passes back (an HTTP context
/// token). A node would need 2^62 writes to one key to reach it, so honest contexts never
/// do. Numbering goes on past it, to [`MAX_NUMBERED`]: a key whose context a client
/// pushed to this cap still takes 2^62 writes per node, so no client input can leave a
/// key unwritable.
pub const MAX_COUNTER: u64 = 1 << 62;

/// Largest counter a node numbers a write with, and the largest accepted in a record
/// from a peer (which may hold counters a node numbered past [`MAX_COUNTER`]). `+ 1` on
/// an accepted counter cannot overflow.
pub const MAX_NUMBERED: u64 = 1 << 63;

/// Most entries accepted in one causal context: one per node that ever coordinated a
/// write to the key (a node gets a new entry after each incarnation, see DESIGN.md).
pub const MAX_CONTEXT_ENTRIES: usize = 1024;

/// Longest node id (in bytes) accepted inside causal metadata.
pub const MAX_NODE_ID_BYTES: usize = 255;

/// Longest media type a version may carry (HTTP `Content-Type`).
pub const MAX_CONTENT_TYPE_BYTES: usize = 256;

/// Why a record or causal context was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidRecord {
    #[error("causal context has {count} entries; at most {MAX_CONTEXT_ENTRIES} are allowed")]
    TooManyEntries { count: usize },
    #[error("a node id in the causal metadata is empty or longer than {MAX_NODE_ID_BYTES} bytes")]
    BadNodeId,
    #[error("causal context is not sorted by node or names a node twice")]
    ContextUnsorted,
    #[error("counter {counter} for node {node:?} is above the largest allowed ({max})")]
    CounterTooLarge { node: String, counter: u64, max: u64 },
    #[error("record holds {count} versions; at most {MAX_SIBLINGS} are allowed")]
    TooManyVersions { count: usize },
    #[error("versions are not sorted by dot, repeat a dot, or have a zero counter")]
    VersionsUnsorted,
    #[error("version ({node:?}, {counter}) is not covered by the record's own context")]
    DotOutsideContext { node: String, counter: u64 },
    #[error("a tombstone carries a counter")]
    CounterWithoutValue,
    #[error("a floating-point counter entry is infinite, not a number, or too long")]
    BadFloatTotal,
    #[error("counter entry for node {node:?} is above the largest allowed net")]
    CounterNetTooLarge { node: String },
    #[error("a content type is longer than {MAX_CONTENT_TYPE_BYTES} bytes or not printable ASCII")]
    BadContentType,
}

/// Whether `t` may be stored as a version's content type: short printable ASCII.
#[must_use]
pub fn valid_content_type(t: &str) -> bool {
    t.len() <= MAX_CONTENT_TYPE_BYTES && t.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl VersionVector {
    /// Checks a context a client passed back: bounded size, sorted unique node ids of sane
    /// length, counters at most [`MAX_COUNTER`] (so they leave room to number writes).
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        self.validate_up_to(MAX_COUNTER)
    }

    /// [`VersionVector::validate`] with counters up to `max`.
    fn validate_up_to(&self, max: u64) -> Result<(), InvalidRecord> {
        let entries: Vec<_> = self.iter().collect();
        if entries.len() > MAX_CONTEXT_ENTRIES {
            return Err(InvalidRecord::TooManyEntries { count: entries.len() });
        }
        for (node, counter) in &entries {
            if node.as_str().is_empty() || node.as_str().len() > MAX_NODE_ID_BYTES {
                return Err(InvalidRecord::BadNodeId);
            }
            if *counter > max {
                return Err(InvalidRecord::CounterTooLarge {
                    node: node.to_string(),
                    counter: *counter,
                    max,
                });
            }
        }
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(InvalidRecord::ContextUnsorted);
        }
        Ok(())
    }
}

impl Record {
    /// Checks a record from a peer: its context (as [`VersionVector::validate`], with
    /// counters up to [`MAX_NUMBERED`]), at most
    /// [`MAX_SIBLINGS`] versions sorted by unique dots, each dot covered by the context.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        self.context().validate_up_to(MAX_NUMBERED)?;
        let versions = self.versions();
        if versions.len() > MAX_SIBLINGS {
            return Err(InvalidRecord::TooManyVersions { count: versions.len() });
        }
        if versions.iter().any(|v| v.dot.counter == 0)
            || versions.windows(2).any(|w| w[0].dot >= w[1].dot)
        {
            return Err(InvalidRecord::VersionsUnsorted);
        }
        for v in versions {
            if let Some(t) = &v.content_type
                && !valid_content_type(t)
            {
                return Err(InvalidRecord::BadContentType);
            }
            if let Some(counter) = &v.counter {
                if v.value.is_none() {
                    return Err(InvalidRecord::CounterWithoutValue);
                }
                counter.validate()?;
            }
        }
        if let Some(v) = versions.iter().find(|v| !self.context().covers(&v.dot)) {
            return Err(InvalidRecord::DotOutsideContext {
                node: v.dot.node.to_string(),
                counter: v.dot.counter,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dot, NodeId, Version};

    fn hostile(context: Vec<(&str, u64)>, dots: Vec<(&str, u64)>) -> Record {
        // Built through serde, as a peer's message would be: no invariant is enforced.
        #[derive(serde::Serialize)]
        struct Raw {
            context: Vec<(NodeId, u64)>,
            versions: Vec<Version>,
        }
        let raw = Raw {
            context: context.into_iter().map(|(n, c)| (NodeId::new(n), c)).collect(),
            versions: dots
                .into_iter()
                .map(|(n, c)| Version::new(Dot { node: NodeId::new(n), counter: c }, 1, None))
                .collect(),
        };
        postcard::from_bytes(&postcard::to_allocvec(&raw).unwrap()).unwrap()
    }

    #[test]
    fn honest_records_pass() {
        assert_eq!(hostile(vec![("a", 2), ("b", 1)], vec![("a", 2), ("b", 1)]).validate(), Ok(()));
        assert_eq!(Record::default().validate(), Ok(()));
    }

    #[test]
    fn counters_near_the_top_are_refused() {
        let r = hostile(vec![("a", u64::MAX)], vec![]);
        assert!(matches!(r.validate(), Err(InvalidRecord::CounterTooLarge { .. })));
    }

    #[test]
    fn unsorted_or_repeated_context_entries_are_refused() {
        let r = hostile(vec![("b", 1), ("a", 1)], vec![]);
        assert_eq!(r.validate(), Err(InvalidRecord::ContextUnsorted));
        let r = hostile(vec![("a", 1), ("a", 2)], vec![]);
        assert_eq!(r.validate(), Err(InvalidRecord::ContextUnsorted));
    }

    #[test]
    fn more_versions_than_the_sibling_cap_are_refused() {
        let n = MAX_SIBLINGS as u64 + 1;
        let r = hostile(vec![("a", n)], (1..=n).map(|c| ("a", c)).collect());
        assert_eq!(r.validate(), Err(InvalidRecord::TooManyVersions { count: n as usize }));
    }

    #[test]
    fn versions_out_of_order_or_outside_the_context_are_refused() {
        let r = hostile(vec![("a", 2)], vec![("a", 2), ("a", 1)]);
        assert_eq!(r.validate(), Err(InvalidRecord::VersionsUnsorted));
        let r = hostile(vec![("a", 1)], vec![("a", 0)]);
        assert_eq!(r.validate(), Err(InvalidRecord::VersionsUnsorted));
        let r = hostile(vec![("a", 1)], vec![("a", 3)]);
        assert!(matches!(r.validate(), Err(InvalidRecord::DotOutsideContext { .. })));
    }

    #[test]
    fn oversized_node_ids_are_refused() {
        let long = "x".repeat(MAX_NODE_ID_BYTES + 1);
        assert_eq!(hostile(vec![(&long, 1)], vec![]).validate(), Err(InvalidRecord::BadNodeId));
    }
}
