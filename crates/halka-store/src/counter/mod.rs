//! Convergent counters: what `INCR` stores, so that increments through any nodes, during
//! partitions or with replicas down, all count.
//!
//! A [`Counter`] holds, for every node that coordinated an increment, that node's *net*:
//! everything it added minus everything it subtracted. Only that node ever changes its own
//! entry (writes to a counter are coordinated by the node whose actor numbers them, which
//! holds its own latest entry), and it numbers each change with the entry's *epoch*. Two
//! states join by taking, for each node, the entry with the higher epoch; the value is
//! the sum of the nets. Riak's and Redis Enterprise's Active-Active counters are built
//! the same way from per-node parts.
//!
//! Why a net per node, not ever-growing totals of what was added and what was subtracted
//! (a PN-counter, which this replaced): totals only grow, so `INCRBY 2^62` then
//! `DECRBY 2^62` would leave a counter reading 0 that can never count again, and a
//! floating-point total of `1e308` swallows every later `+1`. A net goes back down.
//!
//! A counter also remembers where its history began (its *origin*): the version it
//! replaced when it was first incremented — an integer value written by `SET` (which
//! becomes its base), a tombstone, an expired version — or nothing at all for a key that
//! never existed. Only states with the same origin join. A `SET` or `DEL` that replaces a
//! counter therefore starts a new history, and a node's nets in the new history start
//! again from zero without being mistaken for the old ones.
//!
//! `INCRBYFLOAT` adds to a [`FloatPart`] kept beside the integer nets, so `INCR`s stay
//! exact: per-node nets held exactly (see [`exact`]), so the value is the exact sum of
//! every increment rounded once, whatever order the increments arrived in.

pub mod exact;

use crate::validate::{InvalidRecord, MAX_CONTEXT_ENTRIES, MAX_NODE_ID_BYTES};
use crate::{Dot, NodeId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest net (in either direction) one node's entry may hold. A node's net can drift
/// past the value's range when nodes take turns adding and subtracting huge amounts; this
/// bound is 2^36 such rounds away, and leaves the sum of every entry far inside `i128`.
pub const MAX_NET: u128 = 1 << 100;

/// One node's integer entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CounterEntry {
    pub node: NodeId,
    /// How many times the node changed this entry: the higher epoch is the newer entry.
    pub epoch: u64,
    /// Everything this node added minus everything it subtracted.
    pub net: i128,
}

/// One node's floating-point entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FloatEntry {
    pub node: NodeId,
    /// How many times the node changed this entry: the higher epoch is the newer entry.
    pub epoch: u64,
    /// The node's net as non-overlapping `f64`s (as `f64::to_bits`), whose exact sum it is
    /// (see [`exact`]).
    pub partials: Vec<u64>,
}

/// A counter state with its origin and base.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Counter {
    /// The version this counter's history replaced first; `None` when it began on a key
    /// that held nothing.
    pub origin: Option<Dot>,
    /// The integer the key held when the history began (0 unless it began on a value).
    pub base: i64,
    /// Per-node integer entries, sorted by node.
    pub entries: Vec<CounterEntry>,
    /// What `INCRBYFLOAT` added, if it ever did in this history.
    pub float: Option<Box<FloatPart>>,
}

/// The floating-point side of a counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FloatPart {
    /// The bits of the non-integer number the history began at (`0.0` unless it began on
    /// a value such as `10.5`).
    pub base_bits: u64,
    /// Per-node entries, sorted by node.
    pub entries: Vec<FloatEntry>,
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

    /// Joins another state of the same history: each node's newer entry.
    pub fn join(&mut self, other: &Counter) {
        debug_assert!(self.same_history(other));
        self.entries = join_entries(&self.entries, &other.entries, |e| (&e.node, e.epoch));
        match (&mut self.float, &other.float) {
            (Some(mine), Some(theirs)) => {
                mine.entries = join_entries(&mine.entries, &theirs.entries, |e| (&e.node, e.epoch));
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
        let sum = self.entries.iter().fold(i128::from(self.base), |sum, e| sum + e.net);
        let Some(float) = &self.float else {
            return i64::try_from(sum).map(Number::Int).map_err(|_| CounterError::Overflow);
        };
        let partials =
            float.entries.iter().flat_map(|e| e.partials.iter().map(|&b| f64::from_bits(b)));
        let parts = exact::split_integer(sum).into_iter().chain([f64::from_bits(float.base_bits)]);
        let total = exact::rounded_sum(parts.chain(partials));
        if total.is_finite() { Ok(Number::Float(total)) } else { Err(CounterError::Overflow) }
    }

    /// Adds `delta` on behalf of `node` and returns the new value (`INCRBY`).
    ///
    /// # Errors
    /// [`CounterError::Overflow`] when the value or the node's net would leave its range,
    /// [`CounterError::NotAnInteger`] when `INCRBYFLOAT` left a fraction; the state is then
    /// unchanged.
    pub fn add(&mut self, node: &NodeId, delta: i64) -> Result<i64, CounterError> {
        let value = self.value()?.as_integer()?;
        let new_value = value.checked_add(delta).ok_or(CounterError::Overflow)?;
        let at = self.entries.binary_search_by(|e| e.node.cmp(node));
        let (epoch, net) = at.map_or((0, 0), |i| (self.entries[i].epoch, self.entries[i].net));
        let net = net
            .checked_add(i128::from(delta))
            .filter(|n| n.unsigned_abs() <= MAX_NET)
            .ok_or(CounterError::Overflow)?;
        let epoch = epoch.checked_add(1).ok_or(CounterError::Overflow)?;
        let entry = CounterEntry { node: node.clone(), epoch, net };
        match at {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
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
        let mut next = self.clone();
        let float = next
            .float
            .get_or_insert_with(|| Box::new(FloatPart { base_bits: 0, entries: Vec::new() }));
        let at = float.entries.binary_search_by(|e| e.node.cmp(node));
        let (epoch, mut partials) = match at {
            Ok(i) => {
                let e = &float.entries[i];
                (e.epoch, e.partials.iter().map(|&b| f64::from_bits(b)).collect())
            }
            Err(_) => (0, Vec::new()),
        };
        exact::grow(&mut partials, delta).map_err(|_| CounterError::NanOrInfinity)?;
        let epoch = epoch.checked_add(1).ok_or(CounterError::Overflow)?;
        let partials = partials.into_iter().map(f64::to_bits).collect();
        let entry = FloatEntry { node: node.clone(), epoch, partials };
        match at {
            Ok(i) => float.entries[i] = entry,
            Err(i) => float.entries.insert(i, entry),
        }
        let value = next.value().map_err(|_| CounterError::NanOrInfinity)?;
        *self = next;
        Ok(value)
    }

    /// Checks a state from outside: bounded, sorted, unique node ids of sane length,
    /// nets in range.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        check_nodes(self.entries.iter().map(|e| &e.node))?;
        if let Some(e) = self.entries.iter().find(|e| e.net.unsigned_abs() > MAX_NET) {
            return Err(InvalidRecord::CounterNetTooLarge { node: e.node.to_string() });
        }
        if let Some(float) = &self.float {
            float.validate()?;
        }
        Ok(())
    }
}

impl FloatPart {
    fn validate(&self) -> Result<(), InvalidRecord> {
        if !f64::from_bits(self.base_bits).is_finite() {
            return Err(InvalidRecord::BadFloatTotal);
        }
        check_nodes(self.entries.iter().map(|e| &e.node))?;
        for e in &self.entries {
            if e.partials.len() > exact::MAX_PARTIALS
                || e.partials.iter().any(|&b| !f64::from_bits(b).is_finite())
            {
                return Err(InvalidRecord::BadFloatTotal);
            }
        }
        Ok(())
    }
}

/// Checks the node ids of a list of entries: at most [`MAX_CONTEXT_ENTRIES`], of sane
/// length, sorted and unique.
fn check_nodes<'a>(
    nodes: impl ExactSizeIterator<Item = &'a NodeId> + Clone,
) -> Result<(), InvalidRecord> {
    if nodes.len() > MAX_CONTEXT_ENTRIES {
        return Err(InvalidRecord::TooManyEntries { count: nodes.len() });
    }
    if nodes.clone().any(|n| n.as_str().is_empty() || n.as_str().len() > MAX_NODE_ID_BYTES) {
        return Err(InvalidRecord::BadNodeId);
    }
    if nodes.clone().zip(nodes.skip(1)).any(|(a, b)| a >= b) {
        return Err(InvalidRecord::ContextUnsorted);
    }
    Ok(())
}

/// Two entry lists sorted by node joined: for each node, the entry with the higher epoch
/// (the larger entry on a tie, which only a forged state has, so the join stays
/// commutative).
fn join_entries<E: Clone + Ord>(a: &[E], b: &[E], key: impl Fn(&E) -> (&NodeId, u64)) -> Vec<E> {
    let mut merged = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if key(x).0 == key(y).0 => {
                let newer = if (key(x).1, x) >= (key(y).1, y) { x } else { y };
                merged.push(newer.clone());
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if key(x).0 < key(y).0 => {
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

/// Parses a stored value as `INCR` does (Redis's `string2ll`): a base-10 `i64`, no
/// spaces, no leading `+`, and no leading zero but in `0` itself (`00` and `-0` are not
/// integers).
///
/// # Errors
/// [`CounterError::NotAnInteger`].
pub fn parse_integer(value: &[u8]) -> Result<i64, CounterError> {
    let text = std::str::from_utf8(value).map_err(|_| CounterError::NotAnInteger)?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let leading_zero = digits.starts_with('0') && text != "0";
    if digits.is_empty() || text.starts_with('+') || text.len() > 20 || leading_zero {
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
    fn integers_are_parsed_as_redis_parses_them() {
        for good in ["0", "7", "-7", "9223372036854775807", "-9223372036854775808"] {
            assert!(parse_integer(good.as_bytes()).is_ok(), "{good}");
        }
        for bad in ["", "00", "01", "-0", "-01", "+1", " 1", "1 ", "-", "9223372036854775808"] {
            assert_eq!(parse_integer(bad.as_bytes()), Err(CounterError::NotAnInteger), "{bad}");
        }
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
    fn forged_float_entries_are_refused() {
        for bad in [f64::NAN.to_bits(), f64::INFINITY.to_bits()] {
            let mut c = Counter::starting(None, 0);
            c.add_float(&n("a"), 1.0).unwrap();
            c.float.as_mut().unwrap().entries[0].partials[0] = bad;
            assert_eq!(c.validate(), Err(InvalidRecord::BadFloatTotal));
        }
        let mut long = Counter::starting(None, 0);
        long.add_float(&n("a"), 1.0).unwrap();
        long.float.as_mut().unwrap().entries[0].partials = vec![1; exact::MAX_PARTIALS + 1];
        assert_eq!(long.validate(), Err(InvalidRecord::BadFloatTotal));
    }

    #[test]
    fn a_forged_net_past_the_bound_is_refused() {
        let mut c = Counter::starting(None, 0);
        c.add(&n("a"), 1).unwrap();
        c.entries[0].net = -(MAX_NET as i128) - 1;
        assert!(matches!(c.validate(), Err(InvalidRecord::CounterNetTooLarge { .. })));
    }

    #[test]
    fn a_counter_back_at_zero_after_huge_increments_keeps_counting() {
        let mut c = Counter::starting(None, 0);
        c.add(&n("a"), 1 << 62).unwrap();
        c.add(&n("a"), -(1 << 62)).unwrap();
        assert_eq!(c.add(&n("a"), 1), Ok(1));
        c.add(&n("a"), i64::MAX - 1).unwrap();
        c.add(&n("a"), i64::MIN + 1).unwrap();
        c.add(&n("a"), i64::MAX).unwrap();
        c.add(&n("a"), -i64::MAX).unwrap();
        assert_eq!(c.add(&n("a"), 2), Ok(2));
    }

    #[test]
    fn a_float_counter_back_at_zero_after_huge_increments_keeps_counting() {
        let mut c = Counter::starting(None, 0);
        c.add_float(&n("a"), 1e308).unwrap();
        c.add_float(&n("a"), -1e308).unwrap();
        assert_eq!(c.add_float(&n("a"), 1.0), Ok(Number::Float(1.0)));
        assert_eq!(c.add_float(&n("a"), 1.0), Ok(Number::Float(2.0)));
    }

    #[test]
    fn huge_float_increments_through_different_nodes_cancel_exactly() {
        let mut a = Counter::starting(None, 0);
        let mut b = a.clone();
        a.add_float(&n("a"), 1e308).unwrap();
        b.add_float(&n("b"), -1e308).unwrap();
        a.join(&b);
        assert_eq!(a.add_float(&n("a"), 1.0), Ok(Number::Float(1.0)));
        let mut other = b.clone();
        other.join(&a);
        assert_eq!(other.value(), Ok(Number::Float(1.0)));
    }

    #[test]
    fn a_newer_entry_wins_the_join_even_when_its_net_is_smaller() {
        let mut old = Counter::starting(None, 0);
        old.add(&n("a"), 10).unwrap();
        let mut new = old.clone();
        new.add(&n("a"), -7).unwrap();
        let mut joined = old.clone();
        joined.join(&new);
        assert_eq!(joined.value(), Ok(Number::Int(3)));
        let mut other = new.clone();
        other.join(&old);
        assert_eq!(joined, other, "commutative");
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
