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

use crate::validate::{InvalidRecord, MAX_COUNTER};
use crate::{Dot, NodeId, VersionVector};
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
    /// The value, or `None` for a tombstone.
    pub value: Option<Bytes>,
}

impl Version {
    /// Last-writer-wins order: later timestamp, then higher node id, then higher counter.
    /// Total and deterministic, so every replica and client picks the same winner.
    fn lww_key(&self) -> (u64, &NodeId, u64) {
        (self.timestamp_us, &self.dot.node, self.dot.counter)
    }
}

/// A write as the coordinating replica applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    /// New value, or `None` to delete.
    pub value: Option<Bytes>,
    /// The causal context the client read (empty for a blind write). Versions it covers
    /// are replaced; others remain as siblings.
    pub context: VersionVector,
    /// See [`Version::timestamp_us`].
    pub timestamp_us: u64,
    /// Replace every version the coordinating replica holds, as if the client had read
    /// them: the semantics of a plain `SET`/`DEL` from a client that keeps no context.
    /// Versions the coordinating replica has not seen still survive as siblings.
    #[serde(default)]
    pub overwrite: bool,
}

/// All that a replica knows about one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    context: VersionVector,
    /// Concurrent versions, sorted by dot. Usually one, kept inline.
    versions: SmallVec<[Version; 1]>,
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

    /// When every version is a tombstone (the key is deleted everywhere this record has
    /// seen), the newest of their timestamps; `None` while any value is live.
    #[must_use]
    pub fn deleted_at(&self) -> Option<u64> {
        self.versions
            .iter()
            .try_fold(0, |newest, v| v.value.is_none().then_some(newest.max(v.timestamp_us)))
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

    /// Applies a client write at the coordinating replica `node`, returning the new record
    /// and the dot of the new version. `current` is the replica's stored record.
    ///
    /// The dot's counter is one past every write of `node` to this key that the replica or
    /// the client has seen, so a node numbers its writes to a key contiguously — which is
    /// what lets a version vector summarise them.
    ///
    /// # Errors
    /// The counter would pass [`MAX_COUNTER`]: only a forged context gets there, and a
    /// wrapped counter would make every later write to the key count as already seen.
    pub fn apply_write(
        current: Option<&Record>,
        node: &NodeId,
        write: &Write,
    ) -> Result<(Record, Dot), InvalidRecord> {
        Self::apply_write_above(current, node, write, 0)
    }

    /// [`Record::apply_write`] with the new dot's counter above `floor` as well: the
    /// highest counter in any record the replica has removed (see `Engine::remove_if`).
    /// A collected tombstone takes its dots out of the replica's record, but other
    /// replicas may still hold it; numbering past the floor keeps the next write from
    /// reusing one of those dots, which they would drop as already seen.
    ///
    /// # Errors
    /// As [`Record::apply_write`].
    pub fn apply_write_above(
        current: Option<&Record>,
        node: &NodeId,
        write: &Write,
        floor: u64,
    ) -> Result<(Record, Dot), InvalidRecord> {
        let base = current.cloned().unwrap_or_default();
        let counter = base
            .context
            .get(node)
            .max(write.context.get(node))
            .max(floor)
            .checked_add(1)
            .filter(|c| *c <= MAX_COUNTER)
            .ok_or_else(|| InvalidRecord::CounterExhausted { node: node.to_string() })?;
        let dot = Dot { node: node.clone(), counter };
        let mut versions: SmallVec<[Version; 1]> = if write.overwrite {
            SmallVec::new()
        } else {
            base.versions.into_iter().filter(|v| !write.context.covers(&v.dot)).collect()
        };
        let at = versions.partition_point(|v| v.dot < dot);
        versions.insert(
            at,
            Version {
                dot: dot.clone(),
                timestamp_us: write.timestamp_us,
                value: write.value.clone(),
            },
        );
        let mut context = base.context;
        context.join(&write.context);
        context.observe(node, counter);
        let mut record = Record { context, versions };
        record.prune();
        Ok((record, dot))
    }

    fn prune(&mut self) {
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

    fn apply(current: Option<&Record>, node: &NodeId, write: &Write) -> (Record, Dot) {
        Record::apply_write(current, node, write).unwrap()
    }

    fn write(value: Option<&str>, context: &VersionVector, ts: u64) -> Write {
        Write {
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            context: context.clone(),
            timestamp_us: ts,
            overwrite: false,
        }
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
    fn a_counter_at_the_limit_is_refused_not_wrapped() {
        let a = NodeId::new("a");
        let context: VersionVector = [(a.clone(), MAX_COUNTER)].into_iter().collect();
        let err = Record::apply_write(None, &a, &write(Some("v"), &context, 1)).unwrap_err();
        assert_eq!(err, InvalidRecord::CounterExhausted { node: "a".into() });
    }
}
