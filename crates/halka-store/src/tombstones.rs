//! The index of deleted keys: which stored records are tombstones only, and since when.
//!
//! A tombstone can be collected once every owner of its key holds it and a grace period
//! has passed since the delete (see `halka_cluster::tombstones`). Finding candidates by
//! scanning the store would cost a pass over every key; this index is kept up to date by
//! [`TrackedEngine`](crate::TrackedEngine) on every update instead, and built by the same
//! scan that builds the digest tree when the store is opened.
//!
//! Each entry also remembers the *epoch* in which this replica came to hold the
//! tombstone. The collector advances the epoch every round, and removes only tombstones
//! held for enough rounds that nothing read from this replica before it held them can
//! still be in flight (a repair, say, carrying the value the delete replaced). An epoch
//! rather than a clock keeps the store free of time, and simulations deterministic.
//!
//! Memory is bounded: past `max_entries`, new tombstones are not indexed but counted as
//! untracked, and found again by the next scan ([`TombstoneIndex::needs_rescan`]).

use crate::Record;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

/// Tombstones indexed at most by default: about 100 MB with short keys.
pub const DEFAULT_MAX_ENTRIES: usize = 1 << 20;

/// Deleted keys and the time of their newest delete.
#[derive(Debug)]
pub struct TombstoneIndex {
    max_entries: usize,
    epoch: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<Bytes, Entry, foldhash::fast::RandomState>,
    /// The same entries ordered by age, so the collectable ones are a prefix. Keyed by
    /// (delete time, entry number): integers compare faster than keys.
    by_age: BTreeMap<(u64, u64), Bytes>,
    /// Numbers entries, so equal delete times stay distinct in `by_age`.
    next: u64,
    /// Tombstones not indexed because the index was full.
    untracked: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The newest delete's timestamp (coordinator microseconds).
    at: u64,
    /// Its number in `by_age`.
    number: u64,
    /// The epoch in which this replica stored the record.
    epoch: u64,
}

/// What the index holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TombstoneStats {
    /// Tombstones waiting to be collected.
    pub pending: u64,
    /// Timestamp of the oldest of them (microseconds), if any.
    pub oldest_us: Option<u64>,
    /// Tombstones stored but not indexed (the index was full).
    pub untracked: u64,
}

impl Default for TombstoneIndex {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES)
    }
}

impl TombstoneIndex {
    #[must_use]
    pub fn new(max_entries: usize) -> Self {
        Self { max_entries, epoch: AtomicU64::new(0), inner: Mutex::default() }
    }

    /// Notes that `key`'s record changed from `before` to `after` (`None`: no record).
    /// Cheap for the common case: neither side a tombstone, nothing is locked.
    pub fn note(&self, key: &[u8], before: Option<&Record>, after: Option<&Record>) {
        let was = before.and_then(Record::deleted_at);
        let now = after.and_then(Record::deleted_at);
        if was.is_none() && now.is_none() {
            return;
        }
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut inner = self.inner.lock();
        // A key deleted again reuses its indexed copy: one allocation per deleted key.
        let indexed = inner.by_key.remove_entry(key).map(|(k, e)| {
            inner.by_age.remove(&(e.at, e.number));
            k
        });
        if let Some(at) = now {
            if inner.by_key.len() >= self.max_entries {
                inner.untracked += 1;
                return;
            }
            let key = indexed.unwrap_or_else(|| Bytes::copy_from_slice(key));
            let number = inner.next;
            inner.next += 1;
            inner.by_key.insert(key.clone(), Entry { at, number, epoch });
            inner.by_age.insert((at, number), key);
        }
    }

    /// Starts a new epoch and returns its number.
    pub fn advance_epoch(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Up to `limit` indexed keys deleted before `cutoff_us` and stored in epoch
    /// `held_since` or earlier, oldest delete first.
    #[must_use]
    pub fn due(&self, cutoff_us: u64, held_since: u64, limit: usize) -> Vec<Bytes> {
        let inner = self.inner.lock();
        inner
            .by_age
            .iter()
            .take_while(|((at, _), _)| *at < cutoff_us)
            .filter(|(_, k)| inner.by_key.get(*k).is_some_and(|e| e.epoch <= held_since))
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Whether tombstones went unindexed and the index has room for them again: the
    /// caller should scan the store and [`note`](Self::note) what it finds.
    #[must_use]
    pub fn needs_rescan(&self) -> bool {
        let inner = self.inner.lock();
        inner.untracked > 0 && inner.by_key.len() < self.max_entries / 2
    }

    /// Starts a rescan: the untracked count is forgotten, since the scan finds them all.
    pub fn begin_rescan(&self) {
        self.inner.lock().untracked = 0;
    }

    /// Indexed keys whose values still live at `now_us`: they expire later.
    #[must_use]
    pub fn expiring_after(&self, now_us: u64) -> u64 {
        let inner = self.inner.lock();
        inner.by_age.range((now_us.saturating_add(1), 0)..).count() as u64
    }

    #[must_use]
    pub fn stats(&self) -> TombstoneStats {
        let inner = self.inner.lock();
        TombstoneStats {
            pending: inner.by_key.len() as u64,
            oldest_us: inner.by_age.first_key_value().map(|((at, _), _)| *at),
            untracked: inner.untracked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeId, Write};

    fn record(value: Option<&str>, timestamp_us: u64) -> Record {
        let write = Write {
            overwrite: true,
            ..Write::value(
                value.map(|v| Bytes::from(v.to_owned())),
                Some(crate::VersionVector::new()),
                timestamp_us,
            )
        };
        Record::apply_write(None, &NodeId::new("a"), &write).unwrap().into_record()
    }

    #[test]
    fn a_delete_is_indexed_and_a_later_write_unindexes_it() {
        let index = TombstoneIndex::default();
        let (live, dead) = (record(Some("v"), 10), record(None, 20));
        index.note(b"k", Some(&live), Some(&dead));
        assert_eq!(index.due(21, 0, 10), vec![Bytes::from_static(b"k")]);
        assert!(index.due(20, 0, 10).is_empty(), "not due before its delete");
        index.note(b"k", Some(&dead), Some(&live));
        assert_eq!(index.stats(), TombstoneStats::default());
    }

    #[test]
    fn oldest_deletes_come_first() {
        let index = TombstoneIndex::default();
        for (key, at) in [("b", 30), ("a", 10), ("c", 20)] {
            index.note(key.as_bytes(), None, Some(&record(None, at)));
        }
        assert_eq!(
            index.due(u64::MAX, 0, 2),
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"c")]
        );
        assert_eq!(index.stats().oldest_us, Some(10));
    }

    #[test]
    fn a_tombstone_stored_in_a_later_epoch_is_not_due_yet() {
        let index = TombstoneIndex::default();
        index.note(b"old", None, Some(&record(None, 1)));
        let epoch = index.advance_epoch();
        index.note(b"new", None, Some(&record(None, 1)));
        assert_eq!(index.due(u64::MAX, epoch - 1, 10), vec![Bytes::from_static(b"old")]);
        assert_eq!(index.due(u64::MAX, epoch, 10).len(), 2);
    }

    #[test]
    fn past_its_bound_the_index_counts_instead_of_growing() {
        let index = TombstoneIndex::new(2);
        for key in ["a", "b", "c"] {
            index.note(key.as_bytes(), None, Some(&record(None, 1)));
        }
        assert_eq!(index.stats().pending, 2);
        assert_eq!(index.stats().untracked, 1);
        assert!(!index.needs_rescan(), "still full");
        index.note(b"a", Some(&record(None, 1)), None);
        index.note(b"b", Some(&record(None, 1)), None);
        assert!(index.needs_rescan());
    }
}
