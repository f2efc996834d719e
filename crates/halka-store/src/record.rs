//! Versioned records: siblings, tombstones and the causal join.
//!
//! A [`Record`] is a *dotted version vector set*: a causal context (a version vector of
//! everything the record has seen) plus the versions that are still concurrent, each tagged
//! with the unique [`Dot`] of the write that made it. A version survives a merge unless the
//! other side has seen its dot without keeping it — that is, something causally newer
//! replaced it. Merge is therefore a join: commutative, associative and idempotent
//! (`tests/record_laws.rs` checks all three), which is what lets replicas, read repair and
//! hinted handoff apply records in any order and any number of times.
//!
//! Deletes are versions without a value (tombstones), so a delete replaces exactly the
//! versions its writer had seen and no more.

use crate::{Counter, Dot, NodeId, VersionVector};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::sync::Arc;

/// Siblings kept per key. Concurrent writers beyond this drop the oldest siblings by
/// last-writer-wins order, so a hot key under a write storm stays bounded in size. The
/// dropped versions stay covered by the record's context, so they count as superseded
/// everywhere and cannot reappear.
pub const MAX_SIBLINGS: usize = 64;

/// One version of a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// The write that created this version; unique per key.
    pub dot: Dot,
    /// Wall-clock microseconds at the coordinator (strictly increasing per coordinator
    /// thread). Used only to pick a winner among siblings for clients that want one value
    /// (last writer wins), never for causality. Records written before timestamps were in
    /// microseconds hold milliseconds: a thousand times smaller, so they lose to any newer
    /// write, as they should.
    pub timestamp_us: u64,
    /// The value, or `None` for a tombstone. For a counter, its value when this version
    /// was written, in decimal: the state itself is [`Version::counter`].
    pub value: Option<Bytes>,
    /// When the value expires, in wall-clock microseconds by the coordinator's clock; from
    /// then on the version reads as deleted. It travels with the version, so every replica
    /// and every coordinator agrees on it (up to their clocks' skew).
    pub expires_at_us: Option<u64>,
    /// The convergent counter this version holds, for keys written by `INCR` and friends.
    pub counter: Option<Box<Counter>>,
    /// The media type the value was stored with (HTTP `Content-Type`), if any.
    pub content_type: Option<Box<str>>,
    /// Set when the version is a collection's head (see `collection`); its value is
    /// then empty.
    pub collection: Option<Box<crate::Head>>,
}

impl Version {
    /// A version holding `value` (or a tombstone), without expiry or counter.
    #[must_use]
    pub fn new(dot: Dot, timestamp_us: u64, value: Option<Bytes>) -> Self {
        Self {
            dot,
            timestamp_us,
            value,
            expires_at_us: None,
            counter: None,
            content_type: None,
            collection: None,
        }
    }

    /// Last-writer-wins order: later timestamp, then higher node id, then higher counter.
    /// Total and deterministic, so every replica and client picks the same winner.
    pub(crate) fn lww_key(&self) -> (u64, &NodeId, u64) {
        (self.timestamp_us, &self.dot.node, self.dot.counter)
    }

    /// Whether the version holds a value at `now_us`: not a tombstone, not expired.
    #[must_use]
    pub fn is_live(&self, now_us: u64) -> bool {
        self.value.is_some() && self.expires_at_us.is_none_or(|at| now_us < at)
    }

    /// When the version stopped (or will stop) holding a value: a tombstone's timestamp,
    /// an expiring value's expiry; `None` for a value that never expires.
    #[must_use]
    pub fn dead_at(&self) -> Option<u64> {
        match (&self.value, self.expires_at_us) {
            (None, _) => Some(self.timestamp_us),
            (Some(_), at) => at,
        }
    }
}

/// All that a replica knows about one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub(crate) context: VersionVector,
    /// Concurrent versions, sorted by dot. Usually one, kept inline.
    pub(crate) versions: SmallVec<[Version; 1]>,
}

impl Record {
    /// Everything this record has seen; what a client passes back to replace these siblings.
    #[must_use]
    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// The concurrent versions (siblings), tombstones included, sorted by dot.
    #[must_use]
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// True for a record that has seen nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.context.is_empty()
    }

    /// Whether two records hold the same versions and context. Dots identify versions, so
    /// this compares no values: much cheaper than `==` on large values.
    #[must_use]
    pub fn same_as(&self, other: &Record) -> bool {
        // Replicas in one process often share one record: then this is a pointer compare.
        std::ptr::eq(self, other) || self.same_contents(other)
    }

    fn same_contents(&self, other: &Record) -> bool {
        self.context == other.context
            && self.versions.len() == other.versions.len()
            && self.versions.iter().zip(&other.versions).all(|(a, b)| a.dot == b.dot)
    }

    /// The bytes of every version's value: what [`Limits::max_record_bytes`] bounds.
    ///
    /// [`Limits::max_record_bytes`]: crate::Limits::max_record_bytes
    #[must_use]
    pub fn value_bytes(&self) -> usize {
        self.versions.iter().filter_map(|v| v.value.as_ref()).map(Bytes::len).sum()
    }

    /// Values of the live (non-tombstone) siblings, in dot order.
    pub fn values(&self) -> impl Iterator<Item = &Bytes> {
        self.versions.iter().filter_map(|v| v.value.as_ref())
    }

    /// The last-writer-wins version among the siblings (possibly a tombstone).
    #[must_use]
    pub fn lww(&self) -> Option<&Version> {
        self.versions.iter().max_by(|a, b| a.lww_key().cmp(&b.lww_key()))
    }

    /// The last-writer-wins value; `None` when the winner is a tombstone or there is none.
    #[must_use]
    pub fn lww_value(&self) -> Option<&Bytes> {
        self.lww().and_then(|v| v.value.as_ref())
    }

    /// When every version is a tombstone or expires (the key is deleted, or will be,
    /// everywhere this record has seen), the latest of those times; `None` while any value
    /// lives without expiry. Past times are what tombstone collection looks for.
    #[must_use]
    pub fn deleted_at(&self) -> Option<u64> {
        self.versions.iter().try_fold(0, |latest, v| v.dead_at().map(|at| latest.max(at)))
    }

    /// The last-writer-wins version if it holds a value at `now_us`: the key's value as a
    /// client that wants exactly one sees it. An expired or deleted winner hides older
    /// concurrent values, as the newest write decides.
    #[must_use]
    pub fn live_winner(&self, now_us: u64) -> Option<&Version> {
        self.lww().filter(|v| v.is_live(now_us))
    }

    /// The key's value at `now_us` for clients that want one: the last writer's value, or
    /// for a counter the join of every concurrent state of its history.
    #[must_use]
    pub fn value_at(&self, now_us: u64) -> Option<Bytes> {
        let winner = self.live_winner(now_us)?;
        match &winner.counter {
            None => winner.value.clone(),
            Some(_) => {
                let joined = self.joined_counter(winner)?;
                Some(Bytes::from(joined.value().ok()?.to_string()))
            }
        }
    }

    /// The record with every value emptied (live values stay live, tombstones stay
    /// tombstones, expiries and counters stay): what listing keys needs to tell live keys
    /// from deleted and expired ones, without carrying the values.
    #[must_use]
    pub fn without_values(&self) -> Record {
        let versions = self
            .versions
            .iter()
            .map(|v| Version { value: v.value.as_ref().map(|_| Bytes::new()), ..v.clone() })
            .collect();
        Record { context: self.context.clone(), versions }
    }

    /// The values of the siblings that are live at `now_us`, in dot order.
    pub fn values_at(&self, now_us: u64) -> impl Iterator<Item = &Bytes> {
        self.versions.iter().filter(move |v| v.is_live(now_us)).filter_map(|v| v.value.as_ref())
    }

    /// The winner's counter joined with every sibling of the same history: increments
    /// made concurrently through other nodes count too.
    pub(crate) fn joined_counter(&self, winner: &Version) -> Option<Counter> {
        let mut joined = (**winner.counter.as_ref()?).clone();
        for c in self.versions.iter().filter_map(|v| v.counter.as_deref()) {
            if joined.same_history(c) {
                joined.join(c);
            }
        }
        Some(joined)
    }

    /// The newest timestamp among the versions (0 for none): when the record was last
    /// written, by its coordinator's clock.
    #[must_use]
    pub fn written_at(&self) -> u64 {
        self.versions.iter().map(|v| v.timestamp_us).max().unwrap_or(0)
    }

    /// The highest counter in the record's context, over every node.
    #[must_use]
    pub fn max_counter(&self) -> u64 {
        self.context.iter().map(|(_, c)| c).max().unwrap_or(0)
    }

    /// The join of two records.
    #[must_use]
    pub fn merge(&self, other: &Record) -> Record {
        let (a, b) = (&self.versions, &other.versions);
        let mut versions = SmallVec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let order = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.dot.cmp(&y.dot),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Equal => {
                    // Dots are unique, so both sides hold the same version; `max` keeps the
                    // merge commutative even if they somehow differ.
                    versions.push(std::cmp::max(&a[i], &b[j]).clone());
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Less => {
                    if !other.context.covers(&a[i].dot) {
                        versions.push(a[i].clone());
                    }
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    if !self.context.covers(&b[j].dot) {
                        versions.push(b[j].clone());
                    }
                    j += 1;
                }
            }
        }
        let mut context = self.context.clone();
        context.join(&other.context);
        let mut merged = Record { context, versions };
        merged.prune();
        merged
    }

    pub(crate) fn prune(&mut self) {
        if self.versions.len() <= MAX_SIBLINGS {
            return;
        }
        self.versions.sort_by(|a, b| b.lww_key().cmp(&a.lww_key()));
        self.versions.truncate(MAX_SIBLINGS);
        self.versions.sort_by(|a, b| a.dot.cmp(&b.dot));
    }

    /// Folds `incoming` into `stored` for a replica, sharing rather than copying when it
    /// can: `None` when nothing changes, `incoming` itself when it already contains
    /// everything `stored` has (the common case: a newer write arriving), otherwise the
    /// merge.
    #[must_use]
    pub fn absorb(stored: &Arc<Record>, incoming: &Arc<Record>) -> Option<Arc<Record>> {
        if stored.same_as(incoming) {
            return None;
        }
        let has = |r: &Record, dot: &Dot| r.versions.iter().any(|v| v.dot == *dot);
        let supersedes = incoming.context.dominates(&stored.context)
            && incoming
                .versions
                .iter()
                .all(|v| has(stored, &v.dot) || !stored.context.covers(&v.dot));
        if supersedes {
            return Some(Arc::clone(incoming));
        }
        let merged = stored.merge(incoming);
        (!merged.same_as(stored)).then(|| Arc::new(merged))
    }

    /// Builds a record from parts (used by decoders and tests). Versions are sorted and
    /// their dots folded into the context, so the result satisfies the record invariants.
    #[must_use]
    pub fn from_parts(mut context: VersionVector, versions: Vec<Version>) -> Record {
        let mut versions: SmallVec<[Version; 1]> = SmallVec::from_vec(versions);
        versions.sort_by(|a, b| a.dot.cmp(&b.dot));
        versions.dedup_by(|a, b| a.dot == b.dot);
        for v in &versions {
            context.observe(&v.dot.node, v.dot.counter);
        }
        let mut r = Record { context, versions };
        r.prune();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Write;
    use crate::validate::{InvalidRecord, MAX_COUNTER, MAX_NUMBERED};

    fn apply(current: Option<&Record>, node: &NodeId, write: &Write) -> (Record, Dot) {
        Record::apply_write(current, node, write).unwrap().written.unwrap()
    }

    fn write(value: Option<&str>, context: &VersionVector, ts: u64) -> Write {
        Write::value(value.map(|v| Bytes::copy_from_slice(v.as_bytes())), Some(context.clone()), ts)
    }

    #[test]
    fn causal_write_replaces_what_it_saw() {
        let a = NodeId::new("a");
        let (r1, _) = apply(None, &a, &write(Some("v1"), &VersionVector::new(), 1));
        let (r2, _) = apply(Some(&r1), &a, &write(Some("v2"), r1.context(), 2));
        assert_eq!(r2.values().collect::<Vec<_>>(), [&Bytes::from_static(b"v2")]);
    }

    #[test]
    fn concurrent_writes_become_siblings_and_a_causal_write_resolves_them() {
        let (a, b) = (NodeId::new("a"), NodeId::new("b"));
        let empty = VersionVector::new();
        let (ra, _) = apply(None, &a, &write(Some("x"), &empty, 1));
        let (rb, _) = apply(None, &b, &write(Some("y"), &empty, 2));
        let both = ra.merge(&rb);
        assert_eq!(both.values().count(), 2);
        assert_eq!(both.lww_value(), Some(&Bytes::from_static(b"y")));
        let (resolved, _) = apply(Some(&both), &a, &write(Some("z"), both.context(), 3));
        assert_eq!(resolved.values().collect::<Vec<_>>(), [&Bytes::from_static(b"z")]);
        // The stale sibling arriving late does not come back.
        assert_eq!(resolved.merge(&rb), resolved);
    }

    #[test]
    fn blind_writes_through_one_node_are_siblings() {
        let a = NodeId::new("a");
        let empty = VersionVector::new();
        let (r1, _) = apply(None, &a, &write(Some("1"), &empty, 1));
        let (r2, _) = apply(Some(&r1), &a, &write(Some("2"), &empty, 1));
        assert_eq!(r2.values().count(), 2, "a blind write must not silently replace");
    }

    #[test]
    fn overwrite_replaces_everything_the_replica_holds() {
        let (a, b) = (NodeId::new("a"), NodeId::new("b"));
        let empty = VersionVector::new();
        let (ra, _) = apply(None, &a, &write(Some("x"), &empty, 1));
        let (rb, _) = apply(None, &b, &write(Some("y"), &empty, 2));
        let both = ra.merge(&rb);
        let (r, _) =
            apply(Some(&both), &a, &Write { overwrite: true, ..write(Some("z"), &empty, 3) });
        assert_eq!(r.values().collect::<Vec<_>>(), [&Bytes::from_static(b"z")]);
        assert!(r.merge(&both) == r, "replaced versions do not come back");
    }

    #[test]
    fn tombstone_hides_the_value_it_saw() {
        let a = NodeId::new("a");
        let (r1, _) = apply(None, &a, &write(Some("v"), &VersionVector::new(), 1));
        let (r2, _) = apply(Some(&r1), &a, &write(None, r1.context(), 2));
        assert_eq!(r2.values().count(), 0);
        assert_eq!(r2.lww_value(), None);
        assert_eq!(r2.versions().len(), 1);
    }

    #[test]
    fn siblings_are_bounded() {
        let empty = VersionVector::new();
        let mut r = Record::default();
        for i in 0..(MAX_SIBLINGS as u64 + 10) {
            let node = NodeId::new(&format!("n{i}"));
            let (next, _) = apply(Some(&r), &node, &write(Some("v"), &empty, i));
            r = next;
        }
        assert_eq!(r.versions().len(), MAX_SIBLINGS);
        // The newest survive.
        assert_eq!(r.lww().map(|v| v.timestamp_us), Some(MAX_SIBLINGS as u64 + 9));
        assert!(r.versions().iter().all(|v| v.timestamp_us >= 10));
    }

    #[test]
    fn a_counter_at_the_numbering_limit_is_refused_not_wrapped() {
        let a = NodeId::new("a");
        let context: VersionVector = [(a.clone(), MAX_NUMBERED)].into_iter().collect();
        let applied = Record::apply_write(None, &a, &write(Some("v"), &context, 1)).unwrap();
        assert!(applied.written.is_none());
        assert_eq!(applied.outcome.refused, Some(crate::Refusal::CounterExhausted));
    }

    #[test]
    fn a_context_at_the_accepted_limit_leaves_room_to_write() {
        let a = NodeId::new("a");
        let context: VersionVector = [(a.clone(), MAX_COUNTER)].into_iter().collect();
        assert_eq!(context.validate(), Ok(()));
        let record =
            Record::apply_write(None, &a, &write(Some("v"), &context, 1)).unwrap().into_record();
        assert_eq!(record.context().get(&a), MAX_COUNTER + 1);
        assert_eq!(record.validate(), Ok(()), "peers accept what a node numbered");
        let past: VersionVector = [(a, MAX_COUNTER + 1)].into_iter().collect();
        assert!(matches!(past.validate(), Err(InvalidRecord::CounterTooLarge { .. })));
    }
}
