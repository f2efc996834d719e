//! Hints: records kept for a replica that missed them, until it can take them.
//!
//! When a write cannot reach one of a key's owners (down, hung, cut off), the node that
//! coordinated it keeps the record as a hint for that owner and hands it over when the
//! owner answers again (Dynamo's hinted handoff, §4.6). Hints for one (owner, key) merge,
//! so a key written many times while its owner was away costs one hint, and a hint is
//! removed only if it is still the record that was delivered: one merged in meanwhile
//! stays for the next round.
//!
//! Each owner's hints are bounded in bytes. A hint that would pass the bound is dropped
//! and counted; anti-entropy repairs what hints miss.

use crate::{NodeId, Record, StoreError};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One hint: the record `owner` should hold for `key`.
#[derive(Debug, Clone)]
pub struct Hint {
    pub key: Bytes,
    pub record: Arc<Record>,
}

/// What is pending for one owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HintStats {
    pub hints: u64,
    pub bytes: u64,
}

/// Whether a hint was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Kept,
    /// The owner's hints are at their byte bound.
    Dropped,
}

/// Durable (or, for tests, in-memory) storage of hints.
pub trait HintStore: Send + Sync + fmt::Debug + 'static {
    /// Merges `record` into the hint for (`owner`, `key`).
    ///
    /// # Errors
    /// I/O failure or an invalid record.
    fn put(&self, owner: &NodeId, key: &[u8], record: &Arc<Record>) -> Result<Stored, StoreError>;

    /// Up to `limit` of `owner`'s hints, in key order from just after `after` (`None`:
    /// from the start), so a caller can walk them all in bounded steps.
    ///
    /// # Errors
    /// I/O failure or a corrupt stored hint.
    fn batch(
        &self,
        owner: &NodeId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Hint>, StoreError>;

    /// Removes the hint for (`owner`, `key`) if it is still `delivered`.
    ///
    /// # Errors
    /// I/O failure.
    fn remove_delivered(
        &self,
        owner: &NodeId,
        key: &[u8],
        delivered: &Record,
    ) -> Result<(), StoreError>;

    /// Whether a hint for (`owner`, `key`) is pending.
    ///
    /// # Errors
    /// I/O failure.
    fn holds(&self, owner: &NodeId, key: &[u8]) -> Result<bool, StoreError>;

    /// Pending hints by owner (owners with none are left out).
    fn stats(&self) -> BTreeMap<NodeId, HintStats>;

    /// Whether a hint for `key` is pending for any owner.
    ///
    /// # Errors
    /// I/O failure.
    fn holds_any(&self, key: &[u8]) -> Result<bool, StoreError> {
        for owner in self.stats().keys() {
            if self.holds(owner, key)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The bytes a hint is charged: its key and its values.
pub(crate) fn hint_bytes(key: &[u8], record: &Record) -> u64 {
    (key.len() + 64 + record.values().map(Bytes::len).sum::<usize>()) as u64
}

/// `record` merged into the `current` hint for `key`, and what the owner's hints then
/// weigh, given they weigh `used` now; `None` when that would pass `max`. Both stores
/// apply the bound through this.
pub(crate) fn merge_within_bound(
    key: &[u8],
    current: Option<&Record>,
    record: &Arc<Record>,
    used: u64,
    max: u64,
) -> Option<(Arc<Record>, u64)> {
    let (before, merged) = match current {
        Some(stored) => (hint_bytes(key, stored), Arc::new(stored.merge(record))),
        None => (0, Arc::clone(record)),
    };
    let now = used - before + hint_bytes(key, &merged);
    (now <= max).then_some((merged, now))
}

/// Hints in memory, for tests and the embedded cluster: lost with the process.
#[derive(Debug)]
pub struct MemoryHints {
    max_bytes_per_owner: u64,
    owners: parking_lot::Mutex<BTreeMap<NodeId, OwnerHints>>,
}

#[derive(Debug, Default)]
struct OwnerHints {
    hints: BTreeMap<Bytes, Arc<Record>>,
    bytes: u64,
}

impl MemoryHints {
    #[must_use]
    pub fn new(max_bytes_per_owner: u64) -> Self {
        Self { max_bytes_per_owner, owners: parking_lot::Mutex::default() }
    }
}

impl HintStore for MemoryHints {
    fn put(&self, owner: &NodeId, key: &[u8], record: &Arc<Record>) -> Result<Stored, StoreError> {
        record.validate()?;
        let mut owners = self.owners.lock();
        let of_owner = owners.entry(owner.clone()).or_default();
        let current = of_owner.hints.get(key).map(|r| &**r);
        let Some((merged, used)) =
            merge_within_bound(key, current, record, of_owner.bytes, self.max_bytes_per_owner)
        else {
            return Ok(Stored::Dropped);
        };
        of_owner.bytes = used;
        of_owner.hints.insert(Bytes::copy_from_slice(key), merged);
        Ok(Stored::Kept)
    }

    fn batch(
        &self,
        owner: &NodeId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Hint>, StoreError> {
        use std::ops::Bound;
        let owners = self.owners.lock();
        let Some(of_owner) = owners.get(owner) else {
            return Ok(Vec::new());
        };
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(Bytes::copy_from_slice(a)));
        Ok(of_owner
            .hints
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(k, r)| Hint { key: k.clone(), record: Arc::clone(r) })
            .collect())
    }

    fn remove_delivered(
        &self,
        owner: &NodeId,
        key: &[u8],
        delivered: &Record,
    ) -> Result<(), StoreError> {
        let mut owners = self.owners.lock();
        if let Some(of_owner) = owners.get_mut(owner) {
            if let Some(stored) = of_owner.hints.get(key)
                && stored.same_as(delivered)
            {
                of_owner.bytes -= hint_bytes(key, stored);
                of_owner.hints.remove(key);
            }
            if of_owner.hints.is_empty() {
                owners.remove(owner);
            }
        }
        Ok(())
    }

    fn holds(&self, owner: &NodeId, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.owners.lock().get(owner).is_some_and(|o| o.hints.contains_key(key)))
    }

    fn stats(&self) -> BTreeMap<NodeId, HintStats> {
        self.owners
            .lock()
            .iter()
            .map(|(owner, o)| {
                (owner.clone(), HintStats { hints: o.hints.len() as u64, bytes: o.bytes })
            })
            .collect()
    }
}
