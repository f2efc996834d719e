//! Convergent counters: what `INCR` stores, so that increments through any nodes, during
//! partitions or with replicas down, all count.
//!
//! A [`Counter`] is a PN-counter: for every node that coordinated an increment, the total
//! it added and the total it subtracted. Only that node ever raises its own totals, so two
//! states join by taking the larger of each total, and the value is the sum. Riak's
//! counters and Redis Enterprise's Active-Active counters work the same way.
//!
//! A counter also remembers where its history began (its *origin*): the version it
//! replaced when it was first incremented — an integer value written by `SET` (which
//! becomes its base), a tombstone, an expired version — or nothing at all for a key that
//! never existed. Only states with the same origin join. A `SET` or `DEL` that replaces a
//! counter therefore starts a new history, and a node's totals in the new history start
//! again from zero without being mistaken for the old ones.

use crate::validate::{InvalidRecord, MAX_CONTEXT_ENTRIES, MAX_COUNTER, MAX_NODE_ID_BYTES};
use crate::{Dot, NodeId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One node's totals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CounterEntry {
    pub node: NodeId,
    /// Everything this node added.
    pub added: u64,
    /// Everything this node subtracted.
    pub subtracted: u64,
}

/// A PN-counter state with its origin and base.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Counter {
    /// The version this counter's history replaced first; `None` when it began on a key
    /// that held nothing.
    pub origin: Option<Dot>,
    /// The integer the key held when the history began (0 unless it began on a value).
    pub base: i64,
    /// Per-node totals, sorted by node.
    pub entries: Vec<CounterEntry>,
}

/// Why an increment cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum CounterError {
    #[error("value is not an integer or out of range")]
    NotAnInteger,
    #[error("increment or decrement would overflow")]
    Overflow,
}

impl Counter {
    /// A history that begins at `origin` with the value `base`.
    #[must_use]
    pub fn starting(origin: Option<Dot>, base: i64) -> Self {
        Self { origin, base, entries: Vec::new() }
    }

    /// Whether `other` belongs to the same history, so the two may join.
    #[must_use]
    pub fn same_history(&self, other: &Counter) -> bool {
        self.origin == other.origin && self.base == other.base
    }

    /// Joins another state of the same history: the larger of each node's totals.
    pub fn join(&mut self, other: &Counter) {
        debug_assert!(self.same_history(other));
        let (a, b) = (&self.entries, &other.entries);
        let mut merged = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        loop {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.node == y.node => {
                    merged.push(CounterEntry {
                        node: x.node.clone(),
                        added: x.added.max(y.added),
                        subtracted: x.subtracted.max(y.subtracted),
                    });
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.node < y.node => {
                    merged.push(x.clone());
                    i += 1;
                }
                (Some(x), None) => {
                    merged.push(x.clone());
                    i += 1;
                }
                (_, Some(y)) => {
                    merged.push(y.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        self.entries = merged;
    }

    /// The counter's value, or `None` if it does not fit an `i64` (only a forged state can
    /// get there: every increment is checked).
    #[must_use]
    pub fn value(&self) -> Option<i64> {
        let sum = self.entries.iter().fold(i128::from(self.base), |sum, e| {
            sum + i128::from(e.added) - i128::from(e.subtracted)
        });
        i64::try_from(sum).ok()
    }

    /// Adds `delta` on behalf of `node` and returns the new value.
    ///
    /// # Errors
    /// [`CounterError::Overflow`] when the value or the node's total would leave its range;
    /// the state is then unchanged.
    pub fn add(&mut self, node: &NodeId, delta: i64) -> Result<i64, CounterError> {
        let value = self.value().ok_or(CounterError::Overflow)?;
        let new_value = value.checked_add(delta).ok_or(CounterError::Overflow)?;
        let at = match self.entries.binary_search_by(|e| e.node.cmp(node)) {
            Ok(at) => at,
            Err(at) => {
                self.entries
                    .insert(at, CounterEntry { node: node.clone(), added: 0, subtracted: 0 });
                at
            }
        };
        let entry = &mut self.entries[at];
        let total = if delta >= 0 { &mut entry.added } else { &mut entry.subtracted };
        let raised = total
            .checked_add(delta.unsigned_abs())
            .filter(|t| *t <= MAX_COUNTER)
            .ok_or(CounterError::Overflow)?;
        *total = raised;
        Ok(new_value)
    }

    /// Checks a state from outside: bounded, sorted, unique node ids of sane length,
    /// totals in range.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        if self.entries.len() > MAX_CONTEXT_ENTRIES {
            return Err(InvalidRecord::TooManyEntries { count: self.entries.len() });
        }
        for e in &self.entries {
            if e.node.as_str().is_empty() || e.node.as_str().len() > MAX_NODE_ID_BYTES {
                return Err(InvalidRecord::BadNodeId);
            }
            if e.added.max(e.subtracted) > MAX_COUNTER {
                return Err(InvalidRecord::CounterTooLarge {
                    node: e.node.to_string(),
                    counter: e.added.max(e.subtracted),
                });
            }
        }
        if self.entries.windows(2).any(|w| w[0].node >= w[1].node) {
            return Err(InvalidRecord::ContextUnsorted);
        }
        Ok(())
    }
}

/// Parses a stored value as `INCR` does: a base-10 `i64`, no spaces, no leading `+`.
///
/// # Errors
/// [`CounterError::NotAnInteger`].
pub fn parse_integer(value: &[u8]) -> Result<i64, CounterError> {
    let text = std::str::from_utf8(value).map_err(|_| CounterError::NotAnInteger)?;
    if text.is_empty() || text.starts_with('+') || text.len() > 20 {
        return Err(CounterError::NotAnInteger);
    }
    text.parse().map_err(|_| CounterError::NotAnInteger)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s)
    }

    #[test]
    fn increments_through_different_nodes_all_count_after_a_join() {
        let mut a = Counter::starting(None, 0);
        let mut b = a.clone();
        a.add(&n("a"), 3).unwrap();
        b.add(&n("b"), 4).unwrap();
        b.add(&n("b"), -1).unwrap();
        let mut joined = a.clone();
        joined.join(&b);
        assert_eq!(joined.value(), Some(6));
        // Idempotent and commutative.
        joined.join(&b);
        let mut other = b.clone();
        other.join(&a);
        assert_eq!(joined, other);
    }

    #[test]
    fn a_counter_starts_from_its_base() {
        let mut c = Counter::starting(Some(Dot { node: n("a"), counter: 1 }), 10);
        assert_eq!(c.add(&n("x"), 5), Ok(15));
    }

    #[test]
    fn overflow_is_refused_and_leaves_the_state_alone() {
        let mut c = Counter::starting(None, i64::MAX - 1);
        assert_eq!(c.add(&n("a"), 1), Ok(i64::MAX));
        let before = c.clone();
        assert_eq!(c.add(&n("a"), 1), Err(CounterError::Overflow));
        assert_eq!(c, before);
        let mut low = Counter::starting(None, i64::MIN);
        assert_eq!(low.add(&n("a"), -1), Err(CounterError::Overflow));
    }

    #[test]
    fn integers_parse_as_redis_parses_them() {
        assert_eq!(parse_integer(b"-42"), Ok(-42));
        assert_eq!(parse_integer(b"9223372036854775807"), Ok(i64::MAX));
        for bad in [&b""[..], b" 1", b"+1", b"1.5", b"abc", b"9223372036854775808"] {
            assert_eq!(parse_integer(bad), Err(CounterError::NotAnInteger), "{bad:?}");
        }
    }
}
