//! Hints: records kept for a replica that missed them, until it can take them.
//!
//! When a write cannot reach one of a key's owners (down, hung, cut off), the node that
//! coordinated it keeps the record as a hint for that owner and hands it over when the
//! owner answers again (Dynamo's hinted handoff, §4.6). Hints for one (owner, key) merge,
//! so a key written many times while its owner was away costs one hint, and a hint is
//! removed only if it is still the record that was delivered: one merged in meanwhile
//! stays for the next round.
//!
//! Each owner's hints are bounded in bytes. A hint kept beyond a write's W copies (by its
//! coordinator: [`HintKind::Extra`]) is what anti-entropy would repair anyway, so when
//! the bound is reached the oldest of those are evicted, and counted, to make room. A
//! stand-in's hint ([`HintKind::Counted`]) was one of the W copies the client was
//! promised: it is never evicted, and one that finds no room is refused, so the
//! coordinator asks the next stand-in.

use crate::{NodeId, Record, StoreError};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// Why a hint is kept, which decides whether it may make room for others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintKind {
    /// A stand-in's, whose acknowledgement counted towards W: never evicted.
    Counted,
    /// Kept beyond the W copies: the oldest make room for newer hints.
    Extra,
}

impl HintKind {
    /// The kind of a hint that merges one of each: counted if either was.
    #[must_use]
    pub fn with(self, other: HintKind) -> HintKind {
        if self == HintKind::Counted || other == HintKind::Counted {
            HintKind::Counted
        } else {
            HintKind::Extra
        }
    }
}

/// What became of a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Kept, after evicting this many older extra hints of the same owner.
    Kept { evicted: u64 },
    /// Not kept: the owner's hints are at their bound and no extra hint is left to evict.
    Dropped,
}

/// Durable (or, for tests, in-memory) storage of hints.
pub trait HintStore: Send + Sync + fmt::Debug + 'static {
    /// Merges `record` into the hint for (`owner`, `key`), kept as `kind` (or as
    /// [`HintKind::Counted`] if the hint already was).
    ///
    /// # Errors
    /// I/O failure or an invalid record.
    fn put(
        &self,
        owner: &NodeId,
        key: &[u8],
        record: &Arc<Record>,
        kind: HintKind,
    ) -> Result<Stored, StoreError>;

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

/// One owner's hints as the bound sees them: counts, bytes, and the extra hints in
/// eviction order. Both stores keep one per owner, under their lock, and decide through
/// it ([`Ledger::plan`]); a durable store rebuilds it from its hints on open.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    hints: u64,
    bytes: u64,
    /// Extra hints, oldest first: when each was last written (its newest version's
    /// timestamp, so the order survives a restart), then its key.
    extras: BTreeSet<(u64, Bytes)>,
    /// Each extra hint's place in `extras` and its bytes.
    extra_at: HashMap<Bytes, (u64, u64)>,
}

/// What a put does: store `merged` as `kind` after evicting `evict`.
pub(crate) struct Plan {
    pub merged: Arc<Record>,
    pub kind: HintKind,
    pub evict: Vec<Bytes>,
}

impl Ledger {
    pub(crate) fn stats(&self) -> HintStats {
        HintStats { hints: self.hints, bytes: self.bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.hints == 0
    }

    /// Counts a hint now stored.
    pub(crate) fn add(&mut self, key: &[u8], record: &Record, kind: HintKind) {
        let bytes = hint_bytes(key, record);
        self.hints += 1;
        self.bytes += bytes;
        if kind == HintKind::Extra {
            let key = Bytes::copy_from_slice(key);
            let at = record.written_at();
            self.extras.insert((at, key.clone()));
            self.extra_at.insert(key, (at, bytes));
        }
    }

    /// Forgets a hint no longer stored.
    pub(crate) fn remove(&mut self, key: &[u8], record: &Record) {
        self.hints = self.hints.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(hint_bytes(key, record));
        if let Some((at, _)) = self.extra_at.remove(key) {
            self.extras.remove(&(at, Bytes::copy_from_slice(key)));
        }
    }

    /// `record` merged into the `current` hint for `key`, and the oldest extra hints
    /// (other than this one) to evict so the owner's hints stay within `max`; `None`
    /// when evicting every one of them would not be enough.
    pub(crate) fn plan(
        &self,
        key: &[u8],
        current: Option<(&Record, HintKind)>,
        record: &Arc<Record>,
        kind: HintKind,
        max: u64,
    ) -> Option<Plan> {
        let (before, merged, kind) = match current {
            Some((stored, was)) => {
                (hint_bytes(key, stored), Arc::new(stored.merge(record)), was.with(kind))
            }
            None => (0, Arc::clone(record), kind),
        };
        let after = self.bytes.saturating_sub(before) + hint_bytes(key, &merged);
        let mut over = after.saturating_sub(max);
        let mut evict = Vec::new();
        for (_, old) in &self.extras {
            if over == 0 {
                break;
            }
            if old[..] != *key {
                over = over.saturating_sub(self.extra_at[old].1);
                evict.push(old.clone());
            }
        }
        (over == 0).then_some(Plan { merged, kind, evict })
    }
}

/// Hints in memory, for tests and the embedded cluster: lost with the process.
#[derive(Debug)]
pub struct MemoryHints {
    max_bytes_per_owner: u64,
    owners: parking_lot::Mutex<BTreeMap<NodeId, OwnerHints>>,
}

#[derive(Debug, Default)]
struct OwnerHints {
    hints: BTreeMap<Bytes, (Arc<Record>, HintKind)>,
    ledger: Ledger,
}

impl MemoryHints {
    #[must_use]
    pub fn new(max_bytes_per_owner: u64) -> Self {
        Self { max_bytes_per_owner, owners: parking_lot::Mutex::default() }
    }
}

impl HintStore for MemoryHints {
    fn put(
        &self,
        owner: &NodeId,
        key: &[u8],
        record: &Arc<Record>,
        kind: HintKind,
    ) -> Result<Stored, StoreError> {
        record.validate()?;
        let mut owners = self.owners.lock();
        let of_owner = owners.entry(owner.clone()).or_default();
        let current = of_owner.hints.get(key).map(|(r, k)| (&**r, *k));
        let Some(plan) = of_owner.ledger.plan(key, current, record, kind, self.max_bytes_per_owner)
        else {
            return Ok(Stored::Dropped);
        };
        for old in &plan.evict {
            if let Some((evicted, _)) = of_owner.hints.remove(old) {
                of_owner.ledger.remove(old, &evicted);
            }
        }
        if let Some((replaced, _)) = of_owner.hints.remove(key) {
            of_owner.ledger.remove(key, &replaced);
        }
        of_owner.ledger.add(key, &plan.merged, plan.kind);
        of_owner.hints.insert(Bytes::copy_from_slice(key), (plan.merged, plan.kind));
        Ok(Stored::Kept { evicted: plan.evict.len() as u64 })
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
            .map(|(k, (r, _))| Hint { key: k.clone(), record: Arc::clone(r) })
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
            if of_owner.hints.get(key).is_some_and(|(stored, _)| stored.same_as(delivered))
                && let Some((stored, _)) = of_owner.hints.remove(key)
            {
                of_owner.ledger.remove(key, &stored);
            }
            if of_owner.ledger.is_empty() {
                owners.remove(owner);
            }
        }
        Ok(())
    }

    fn holds(&self, owner: &NodeId, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.owners.lock().get(owner).is_some_and(|o| o.hints.contains_key(key)))
    }

    fn stats(&self) -> BTreeMap<NodeId, HintStats> {
        self.owners.lock().iter().map(|(owner, o)| (owner.clone(), o.ledger.stats())).collect()
    }
}
