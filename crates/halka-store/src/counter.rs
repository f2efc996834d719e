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
//!
//! `INCRBYFLOAT` adds to a [`FloatPart`] kept beside the integer totals, so `INCR`s stay
//! exact: per-node totals in binary floating point, joined the same way. The value is
//! then a float, summed in node order so every replica computes the same one.

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
    /// What `INCRBYFLOAT` added, if it ever did in this history.
    pub float: Option<Box<FloatPart>>,
}

/// The floating-point side of a counter. Totals are non-negative finite `f64`s kept as
/// their bits ([`CounterEntry::added`] and `subtracted` hold `f64::to_bits`): for those,
/// the bits order as the values do, so the larger bits are the larger total.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FloatPart {
    /// The bits of the non-integer number the history began at (`0.0` unless it began on
    /// a value such as `10.5`).
    pub base_bits: u64,
    /// Per-node totals as bits, sorted by node.
    pub entries: Vec<CounterEntry>,
}

/// An `f64` compared by its bits, so that it can sit in types that derive `Eq` (a
/// [`Change`](crate::Change) carries `INCRBYFLOAT`'s increment in one).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Float {}

/// A counter's value: an integer until `INCRBYFLOAT` touches its history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// The value as `INCR` needs it: an integer, or a float with no fractional part that
    /// fits one (as Redis parses `"11"` whichever command wrote it).
    ///
    /// # Errors
    /// [`CounterError::NotAnInteger`].
    pub fn as_integer(self) -> Result<i64, CounterError> {
        match self {
            Number::Int(i) => Ok(i),
            // 2^63 is exactly representable; below it every integral f64 fits an i64.
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 => {
                Ok(f as i64)
            }
            Number::Float(_) => Err(CounterError::NotAnInteger),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl std::fmt::Display for Number {
    /// Integers in decimal; floats as the shortest decimal that reads back as the same
    /// `f64`, never in exponent form (`5200`, `10.6`, `0.30000000000000004`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) if *x == 0.0 => f.write_str("0"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Why an increment cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum CounterError {
    #[error("value is not an integer or out of range")]
    NotAnInteger,
    #[error("increment or decrement would overflow")]
    Overflow,
    #[error("value is not a valid float")]
    NotAFloat,
    #[error("increment would produce NaN or Infinity")]
    NanOrInfinity,
}

impl Counter {
    /// A history that begins at `origin` with the value `base`.
    #[must_use]
    pub fn starting(origin: Option<Dot>, base: i64) -> Self {
        Self { origin, base, entries: Vec::new(), float: None }
    }

    /// A history that begins at `origin` with a value that is a number but not an
    /// integer (`INCRBYFLOAT` on `"10.5"`).
    #[must_use]
    pub fn starting_float(origin: Option<Dot>, base: f64) -> Self {
        let float = FloatPart { base_bits: base.to_bits(), entries: Vec::new() };
        Self { origin, base: 0, entries: Vec::new(), float: Some(Box::new(float)) }
    }

    fn float_base_bits(&self) -> u64 {
        self.float.as_ref().map_or(0, |f| f.base_bits)
    }

    /// Whether `other` belongs to the same history, so the two may join.
    #[must_use]
    pub fn same_history(&self, other: &Counter) -> bool {
        self.origin == other.origin
            && self.base == other.base
            && self.float_base_bits() == other.float_base_bits()
    }

    /// Joins another state of the same history: the larger of each node's totals.
    pub fn join(&mut self, other: &Counter) {
        debug_assert!(self.same_history(other));
        self.entries = join_entries(&self.entries, &other.entries);
        match (&mut self.float, &other.float) {
            (Some(mine), Some(theirs)) => {
                mine.entries = join_entries(&mine.entries, &theirs.entries);
            }
            (None, Some(theirs)) => self.float = Some(theirs.clone()),
            (_, None) => {}
        }
    }

    /// The counter's value.
    ///
    /// # Errors
    /// [`CounterError::Overflow`] if it does not fit (only a forged state gets there:
    /// every increment is checked).
    pub fn value(&self) -> Result<Number, CounterError> {
        let sum = self.entries.iter().fold(i128::from(self.base), |sum, e| {
            sum + i128::from(e.added) - i128::from(e.subtracted)
        });
        let Some(float) = &self.float else {
            return i64::try_from(sum).map(Number::Int).map_err(|_| CounterError::Overflow);
        };
        // Node order, so every replica adds the same numbers in the same order.
        let total =
            float.entries.iter().fold(sum as f64 + f64::from_bits(float.base_bits), |total, e| {
                total + f64::from_bits(e.added) - f64::from_bits(e.subtracted)
            });
        if total.is_finite() { Ok(Number::Float(total)) } else { Err(CounterError::Overflow) }
    }

    /// Adds `delta` on behalf of `node` and returns the new value (`INCRBY`).
    ///
    /// # Errors
    /// [`CounterError::Overflow`] when the value or the node's total would leave its range,
    /// [`CounterError::NotAnInteger`] when `INCRBYFLOAT` left a fraction; the state is then
    /// unchanged.
    pub fn add(&mut self, node: &NodeId, delta: i64) -> Result<i64, CounterError> {
        let value = self.value()?.as_integer()?;
        let new_value = value.checked_add(delta).ok_or(CounterError::Overflow)?;
        let entry = entry_of(&mut self.entries, node);
        let total = if delta >= 0 { &mut entry.added } else { &mut entry.subtracted };
        let raised = total
            .checked_add(delta.unsigned_abs())
            .filter(|t| *t <= MAX_COUNTER)
            .ok_or(CounterError::Overflow)?;
        *total = raised;
        Ok(new_value)
    }

    /// Adds `delta` to the floating-point side on behalf of `node` and returns the new
    /// value (`INCRBYFLOAT`).
    ///
    /// # Errors
    /// [`CounterError::NanOrInfinity`] when `delta` or the result is not finite; the state
    /// is then unchanged.
    pub fn add_float(&mut self, node: &NodeId, delta: f64) -> Result<Number, CounterError> {
        let before = self.value()?;
        if !delta.is_finite() || !(before.as_f64() + delta).is_finite() {
            return Err(CounterError::NanOrInfinity);
        }
        let previous = self.clone();
        let float = self
            .float
            .get_or_insert_with(|| Box::new(FloatPart { base_bits: 0, entries: Vec::new() }));
        let entry = entry_of(&mut float.entries, node);
        let total = if delta >= 0.0 { &mut entry.added } else { &mut entry.subtracted };
        let raised = f64::from_bits(*total) + delta.abs();
        if !raised.is_finite() {
            *self = previous;
            return Err(CounterError::NanOrInfinity);
        }
        *total = raised.to_bits();
        match self.value() {
            Ok(value) => Ok(value),
            Err(_) => {
                *self = previous;
                Err(CounterError::NanOrInfinity)
            }
        }
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
        if let Some(float) = &self.float {
            float.validate()?;
        }
        Ok(())
    }
}

impl FloatPart {
    fn validate(&self) -> Result<(), InvalidRecord> {
        if self.entries.len() > MAX_CONTEXT_ENTRIES {
            return Err(InvalidRecord::TooManyEntries { count: self.entries.len() });
        }
        if !f64::from_bits(self.base_bits).is_finite() {
            return Err(InvalidRecord::BadFloatTotal);
        }
        for e in &self.entries {
            if e.node.as_str().is_empty() || e.node.as_str().len() > MAX_NODE_ID_BYTES {
                return Err(InvalidRecord::BadNodeId);
            }
            for bits in [e.added, e.subtracted] {
                let total = f64::from_bits(bits);
                if !total.is_finite() || total.is_sign_negative() {
                    return Err(InvalidRecord::BadFloatTotal);
                }
            }
        }
        if self.entries.windows(2).any(|w| w[0].node >= w[1].node) {
            return Err(InvalidRecord::ContextUnsorted);
        }
        Ok(())
    }
}

/// `node`'s entry, inserted at zero (`0.0` has the bits 0 too) if it has none.
fn entry_of<'a>(entries: &'a mut Vec<CounterEntry>, node: &NodeId) -> &'a mut CounterEntry {
    let at = match entries.binary_search_by(|e| e.node.cmp(node)) {
        Ok(at) => at,
        Err(at) => {
            entries.insert(at, CounterEntry { node: node.clone(), added: 0, subtracted: 0 });
            at
        }
    };
    &mut entries[at]
}

/// Two sorted entry lists joined: the larger of each node's totals.
fn join_entries(a: &[CounterEntry], b: &[CounterEntry]) -> Vec<CounterEntry> {
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
    merged
}

/// Parses a stored value or an increment as `INCRBYFLOAT` does: a finite decimal number
/// (`10.5`, `5.0e3`, `-3`), no spaces.
///
/// # Errors
/// [`CounterError::NotAFloat`].
pub fn parse_float(value: &[u8]) -> Result<f64, CounterError> {
    let text = std::str::from_utf8(value).map_err(|_| CounterError::NotAFloat)?;
    if text.is_empty() || text.len() > 5120 || text.starts_with(|c: char| c.is_whitespace()) {
        return Err(CounterError::NotAFloat);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        _ => Err(CounterError::NotAFloat),
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
        assert_eq!(joined.value(), Ok(Number::Int(6)));
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
    fn float_increments_through_different_nodes_all_count_after_a_join() {
        let mut a = Counter::starting(None, 0);
        a.add(&n("a"), 2).unwrap();
        let mut b = a.clone();
        a.add_float(&n("a"), 0.5).unwrap();
        b.add_float(&n("b"), 0.25).unwrap();
        b.add_float(&n("b"), -1.0).unwrap();
        let mut joined = a.clone();
        joined.join(&b);
        assert_eq!(joined.value(), Ok(Number::Float(1.75)));
        let mut other = b.clone();
        other.join(&a);
        assert_eq!(joined, other, "commutative");
        other.join(&b);
        assert_eq!(joined, other, "idempotent");
    }

    #[test]
    fn a_float_history_starts_from_its_base_and_prints_as_redis_does() {
        let mut c = Counter::starting_float(Some(Dot { node: n("a"), counter: 1 }), 10.5);
        assert_eq!(c.add_float(&n("x"), 0.1).unwrap().to_string(), "10.6");
        let mut e = Counter::starting(None, 5000);
        assert_eq!(e.add_float(&n("x"), 200.0).unwrap().to_string(), "5200");
        assert_eq!(Number::Float(-0.0).to_string(), "0");
    }

    #[test]
    fn incr_needs_an_integral_value_after_incrbyfloat() {
        let mut c = Counter::starting(None, 10);
        c.add_float(&n("a"), 0.5).unwrap();
        let before = c.clone();
        assert_eq!(c.add(&n("a"), 1), Err(CounterError::NotAnInteger));
        assert_eq!(c, before);
        c.add_float(&n("a"), 0.5).unwrap();
        assert_eq!(c.add(&n("a"), 1), Ok(12));
    }

    #[test]
    fn a_float_increment_to_infinity_is_refused_and_leaves_the_state_alone() {
        let mut c = Counter::starting_float(None, f64::MAX);
        let before = c.clone();
        assert_eq!(c.add_float(&n("a"), f64::MAX), Err(CounterError::NanOrInfinity));
        assert_eq!(c.add_float(&n("a"), f64::NAN), Err(CounterError::NanOrInfinity));
        assert_eq!(c, before);
    }

    #[test]
    fn forged_float_totals_are_refused() {
        for bad in [(-1.0f64).to_bits(), f64::NAN.to_bits(), f64::INFINITY.to_bits()] {
            let mut c = Counter::starting(None, 0);
            c.add_float(&n("a"), 1.0).unwrap();
            c.float.as_mut().unwrap().entries[0].added = bad;
            assert_eq!(c.validate(), Err(InvalidRecord::BadFloatTotal));
        }
    }

    #[test]
    fn floats_parse_as_redis_parses_them() {
        assert_eq!(parse_float(b"10.50"), Ok(10.5));
        assert_eq!(parse_float(b"5.0e3"), Ok(5000.0));
        assert_eq!(parse_float(b"-3"), Ok(-3.0));
        for bad in [&b""[..], b" 1", b"abc", b"nan", b"inf", b"1e400"] {
            assert_eq!(parse_float(bad), Err(CounterError::NotAFloat), "{bad:?}");
        }
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
