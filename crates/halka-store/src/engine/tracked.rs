//! An engine wrapper that keeps indexes derived from the records up to date on every
//! update: the digest tree anti-entropy compares, the index of deleted keys that
//! tombstone collection walks, and a count of the keys that never expire (with the index,
//! the live keys `DBSIZE` reports).
//!
//! Both are built by one scan when the store is opened and then follow every change
//! through this wrapper, so no write path (client writes, merges, repairs, removals) can
//! bypass them. Nothing may write to the inner engine except through the wrapper.

use super::{Engine, SyncToken, Updater, Visit};
use crate::digests::{DigestTree, entry_digest};
use crate::layout::{HashRange, key_hash};
use crate::tombstones::TombstoneIndex;
use crate::{Limits, Record, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Which indexes a [`TrackedEngine`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracking {
    /// The digest tree, for anti-entropy.
    pub digests: bool,
    /// The tombstone index, for tombstone collection.
    pub tombstones: bool,
}

impl Tracking {
    pub const ALL: Tracking = Tracking { digests: true, tombstones: true };
}

/// An engine whose every update also updates its indexes.
#[derive(Debug)]
pub struct TrackedEngine {
    inner: Arc<dyn Engine>,
    tree: Option<Arc<DigestTree>>,
    tombstones: Option<Arc<TombstoneIndex>>,
    /// Records with a value that never expires (`Record::deleted_at` is `None`).
    lasting: AtomicI64,
}

/// 1 for a key's record whose value never expires, else 0. A collection's members are
/// not keys: the collection's head counts for it.
fn lasting(key: &[u8], record: Option<&Record>) -> i64 {
    let member = crate::collection::is_member_key(key);
    i64::from(!member && record.is_some_and(|r| r.deleted_at().is_none()))
}

impl TrackedEngine {
    /// Wraps `inner`, building the chosen indexes from one full scan first (a second or
    /// so per million keys).
    ///
    /// # Errors
    /// The scan failed.
    pub fn build(inner: Arc<dyn Engine>, tracking: Tracking) -> Result<Self, StoreError> {
        let tree = tracking.digests.then(|| Arc::new(DigestTree::default()));
        let tombstones = tracking.tombstones.then(|| Arc::new(TombstoneIndex::default()));
        let mut count = 0;
        if tree.is_some() || tombstones.is_some() {
            inner.scan(&mut |key, record| {
                if let Some(tree) = &tree {
                    tree.insert(key, &record);
                }
                if let Some(index) = &tombstones {
                    index.note(key, None, Some(&record));
                }
                count += lasting(key, Some(&record));
            })?;
        }
        Ok(Self { inner, tree, tombstones, lasting: AtomicI64::new(count) })
    }

    #[must_use]
    pub fn inner(&self) -> &Arc<dyn Engine> {
        &self.inner
    }

    /// Runs `f` through the inner engine's update, noting what the committed call changed.
    fn tracked<T>(
        &self,
        key: &[u8],
        f: &mut Updater<'_>,
        update: impl FnOnce(&dyn Engine, &mut Updater<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // `f` may run more than once; only the last call's change is committed. The
        // tree takes XOR deltas, which commute, so they are applied after the update; the
        // tombstone index is not, so it is told inside, under the key's lock, where
        // updates of one key are in order (each call's note overrides the one before).
        let (mut delta, mut counted) = (0, 0);
        let result = update(self.inner.as_ref(), &mut |current| {
            let next = f(current);
            (delta, counted) = (0, 0);
            if let Some(next) = &next {
                if self.tree.is_some() {
                    delta = current.map_or(0, |c| entry_digest(key, c)) ^ entry_digest(key, next);
                }
                if let Some(index) = &self.tombstones {
                    index.note(key, current.map(|c| &**c), Some(next));
                }
                counted = lasting(key, Some(next)) - lasting(key, current.map(|c| &**c));
            }
            next
        })?;
        if let Some(tree) = &self.tree {
            tree.apply(key_hash(key), delta);
        }
        self.lasting.fetch_add(counted, Ordering::Relaxed);
        Ok(result)
    }
}

impl Engine for TrackedEngine {
    fn prefetch(&self, key: &[u8]) {
        self.inner.prefetch(key);
    }

    fn get(&self, key: &[u8]) -> Result<Option<Arc<Record>>, StoreError> {
        self.inner.get(key)
    }

    fn update(&self, key: &[u8], f: &mut Updater<'_>) -> Result<(), StoreError> {
        self.tracked(key, f, |e, f| e.update(key, f))
    }

    fn update_deferred(
        &self,
        key: &[u8],
        f: &mut Updater<'_>,
    ) -> Result<Option<SyncToken>, StoreError> {
        self.tracked(key, f, |e, f| e.update_deferred(key, f))
    }

    fn wait_durable(&self, token: SyncToken) -> Result<(), StoreError> {
        self.inner.wait_durable(token)
    }

    fn poisoned(&self) -> Option<String> {
        self.inner.poisoned()
    }

    fn remove_if(
        &self,
        key: &[u8],
        pred: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<bool, StoreError> {
        let (mut delta, mut counted) = (0, 0);
        let removed = self.inner.remove_if(key, &mut |record| {
            let remove = pred(record);
            if remove {
                delta = entry_digest(key, record);
                counted = lasting(key, Some(record));
                if let Some(index) = &self.tombstones {
                    index.note(key, Some(record), None);
                }
            }
            remove
        })?;
        if removed {
            if let Some(tree) = &self.tree {
                tree.apply(key_hash(key), delta);
            }
            self.lasting.fetch_sub(counted, Ordering::Relaxed);
        }
        Ok(removed)
    }

    fn counter_floor(&self) -> u64 {
        self.inner.counter_floor()
    }

    fn scan_range(&self, range: HashRange, f: &mut Visit<'_>) -> Result<(), StoreError> {
        self.inner.scan_range(range, f)
    }

    fn key_count(&self) -> u64 {
        self.inner.key_count()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }

    fn limits(&self) -> &Limits {
        self.inner.limits()
    }

    fn is_blocking(&self) -> bool {
        self.inner.is_blocking()
    }

    fn syncs_each_write(&self) -> bool {
        self.inner.syncs_each_write()
    }

    fn digests(&self) -> Option<&Arc<DigestTree>> {
        self.tree.as_ref()
    }

    fn tombstones(&self) -> Option<&Arc<TombstoneIndex>> {
        self.tombstones.as_ref()
    }

    /// The values that never expire, and those the tombstone index holds expiring later
    /// than `now_us`. Approximate only while the index is full (see `TombstoneIndex`).
    fn live_keys(&self, now_us: u64) -> Option<u64> {
        let index = self.tombstones.as_ref()?;
        let lasting = u64::try_from(self.lasting.load(Ordering::Relaxed)).unwrap_or(0);
        Some(lasting + index.expiring_after(now_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryEngine, NodeId, VersionVector, Write};
    use bytes::Bytes;

    fn write(value: Option<&str>) -> Write {
        Write {
            overwrite: true,
            ..Write::value(value.map(|v| Bytes::from(v.to_owned())), Some(VersionVector::new()), 7)
        }
    }

    #[test]
    fn removals_and_deletes_keep_both_indexes_equal_to_a_rebuild() {
        let e = TrackedEngine::build(Arc::new(MemoryEngine::default()), Tracking::ALL).unwrap();
        let node = NodeId::new("a");
        for i in 0..200 {
            e.apply_write(format!("k{i}").as_bytes(), &node, &write(Some("v"))).unwrap();
        }
        for i in 0..100 {
            e.apply_write(format!("k{i}").as_bytes(), &node, &write(None)).unwrap();
        }
        for i in 0..50 {
            assert!(e.remove_if(format!("k{i}").as_bytes(), &mut |_| true).unwrap());
        }
        let rebuilt = TrackedEngine::build(Arc::clone(e.inner()), Tracking::ALL).unwrap();
        let digests = |e: &TrackedEngine| e.digests().unwrap().digests(HashRange::ALL, 12).unwrap();
        assert_eq!(digests(&e), digests(&rebuilt));
        let due = |e: &TrackedEngine| {
            let mut keys = e.tombstones().unwrap().due(u64::MAX, u64::MAX, usize::MAX);
            keys.sort();
            keys
        };
        assert_eq!(due(&e).len(), 50, "deleted and not yet removed");
        assert_eq!(due(&e), due(&rebuilt));
    }

    #[test]
    fn live_keys_leave_out_deleted_and_expired_ones_and_match_a_rebuild() {
        let e = TrackedEngine::build(Arc::new(MemoryEngine::default()), Tracking::ALL).unwrap();
        let node = NodeId::new("a");
        for i in 0..100 {
            e.apply_write(format!("k{i}").as_bytes(), &node, &write(Some("v"))).unwrap();
        }
        for i in 0..30 {
            e.apply_write(format!("k{i}").as_bytes(), &node, &write(None)).unwrap();
        }
        for i in 30..40 {
            let change =
                crate::Change::Put { value: Bytes::from("v"), expiry: crate::Expiry::At(1_000) };
            let expiring =
                Write { overwrite: true, ..Write::new(change, Some(VersionVector::new()), 7) };
            e.apply_write(format!("k{i}").as_bytes(), &node, &expiring).unwrap();
        }
        for i in 40..45 {
            assert!(e.remove_if(format!("k{i}").as_bytes(), &mut |_| true).unwrap());
        }
        assert_eq!(e.key_count(), 95, "tombstones are stored records");
        assert_eq!(e.live_keys(999), Some(65), "55 lasting, 10 not expired yet");
        assert_eq!(e.live_keys(1_000), Some(55), "expired at 1000");
        let rebuilt = TrackedEngine::build(Arc::clone(e.inner()), Tracking::ALL).unwrap();
        assert_eq!(rebuilt.live_keys(999), Some(65));
    }
}
