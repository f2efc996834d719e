//! The memory engine's per-shard table: open addressing with linear probing.
//!
//! Why not `HashMap`: a key's *home slot* here is a function of its hash and the table's
//! base address alone, so [`Table::home`] can name the cache line a lookup will touch
//! without reading the table. A coordinator asks all N replicas of a key at once; touching
//! every replica's home slot first lets their cache misses overlap instead of queueing one
//! behind another (see `MemoryEngine::prefetch`). hashbrown keeps its probe position
//! private, so it cannot offer that.
//!
//! Removal shifts later entries of the probe run back into the hole (backward-shift
//! deletion), so probing needs no deletion markers and a table that removes many keys
//! does not fill up with them.

use crate::Record;
use smallvec::SmallVec;
use std::sync::Arc;

/// Keys up to 24 bytes live inside the slot, saving a cache miss per lookup.
pub(super) type Key = SmallVec<[u8; 24]>;
type Slot = Option<(Key, Arc<Record>)>;

const MIN_SLOTS: usize = 16;

#[derive(Debug)]
pub(super) struct Table {
    slots: Box<[Slot]>,
    len: usize,
}

impl Default for Table {
    fn default() -> Self {
        Self { slots: empty_slots(MIN_SLOTS), len: 0 }
    }
}

fn empty_slots(n: usize) -> Box<[Slot]> {
    std::iter::repeat_with(|| None).take(n).collect()
}

impl Table {
    /// Bytes per slot, for callers prefetching from [`home`](Self::home).
    pub(super) const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Address of the first slot and the slot count's log2, packed into one word for
    /// [`home`](Self::home): the address fits in the low 56 bits on every supported target.
    pub(super) fn layout(&self) -> u64 {
        (self.slots.as_ptr() as u64) | (u64::from(self.slots.len().trailing_zeros()) << 56)
    }

    /// Address of the slot where a lookup of `hash` starts, from a [`layout`](Self::layout)
    /// word.
    pub(super) fn home(layout: u64, hash: u64) -> usize {
        let base = (layout & ((1 << 56) - 1)) as usize;
        let mask = (1_usize << (layout >> 56)) - 1;
        base + (hash as usize & mask) * Self::SLOT_BYTES
    }

    fn position(&self, hash: u64, key: &[u8]) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            match &self.slots[i] {
                None => return Err(i),
                Some((k, _)) if k.as_slice() == key => return Ok(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    pub(super) fn get(&self, hash: u64, key: &[u8]) -> Option<&Arc<Record>> {
        let i = self.position(hash, key).ok()?;
        self.slots[i].as_ref().map(|(_, r)| r)
    }

    pub(super) fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Arc<Record>> {
        let i = self.position(hash, key).ok()?;
        self.slots[i].as_mut().map(|(_, r)| r)
    }

    /// Inserts a key that is not in the table. `rehash` recomputes a stored key's hash when
    /// the table grows. Returns whether the table moved (its [`layout`](Self::layout)
    /// changed).
    pub(super) fn insert_new(
        &mut self,
        hash: u64,
        key: &[u8],
        record: Arc<Record>,
        rehash: impl Fn(&[u8]) -> u64,
    ) -> bool {
        // Grow at three quarters full: linear probing degrades quickly beyond that.
        let grow = (self.len + 1) * 4 > self.slots.len() * 3;
        if grow {
            let doubled = empty_slots(self.slots.len() * 2);
            let old = std::mem::replace(&mut self.slots, doubled);
            for (k, r) in old.into_vec().into_iter().flatten() {
                let i = self.free_slot(rehash(&k));
                self.slots[i] = Some((k, r));
            }
        }
        let i = self.free_slot(hash);
        self.slots[i] = Some((Key::from_slice(key), record));
        self.len += 1;
        grow
    }

    /// Removes `key` if `pred` holds for its record, returning the record removed.
    /// `rehash` recomputes a stored key's hash, as for [`insert_new`](Self::insert_new).
    pub(super) fn remove_if(
        &mut self,
        hash: u64,
        key: &[u8],
        pred: impl FnOnce(&Arc<Record>) -> bool,
        rehash: impl Fn(&[u8]) -> u64,
    ) -> Option<Arc<Record>> {
        let i = self.position(hash, key).ok()?;
        if !self.slots[i].as_ref().is_some_and(|(_, r)| pred(r)) {
            return None;
        }
        let (_, removed) = self.slots[i].take()?;
        self.len -= 1;
        // Every entry of the run after the hole that may live there (its home is not
        // between the hole and where it sits) moves into it, leaving a new hole behind.
        let mask = self.mask();
        let (mut hole, mut j) = (i, (i + 1) & mask);
        while let Some((k, _)) = &self.slots[j] {
            let home = rehash(k) as usize & mask;
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
            j = (j + 1) & mask;
        }
        Some(removed)
    }

    fn free_slot(&self, hash: u64) -> usize {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        i
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, &Arc<Record>)> {
        self.slots.iter().flatten().map(|(k, r)| (k, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(key: &[u8]) -> u64 {
        // Deliberately poor, so probing and wrap-around get exercised.
        u64::from(key.first().copied().unwrap_or(0) % 8)
    }

    #[test]
    fn grows_and_finds_everything() {
        let mut t = Table::default();
        let record = Arc::new(Record::default());
        let keys: Vec<Vec<u8>> = (0..1000_u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for k in &keys {
            assert!(t.get(hash(k), k).is_none());
            t.insert_new(hash(k), k, Arc::clone(&record), hash);
        }
        for k in &keys {
            assert!(t.get(hash(k), k).is_some(), "{k:?} lost");
        }
        assert_eq!(t.iter().count(), keys.len());
        assert!(t.get(hash(b"absent"), b"absent").is_none());
    }

    #[test]
    fn removed_keys_are_gone_and_the_rest_still_found() {
        let mut t = Table::default();
        let record = Arc::new(Record::default());
        let keys: Vec<Vec<u8>> = (0..600_u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for k in &keys {
            t.insert_new(hash(k), k, Arc::clone(&record), hash);
        }
        // Every third key, so removals land in the middle of long probe runs.
        for k in keys.iter().step_by(3) {
            assert!(t.remove_if(hash(k), k, |_| true, hash).is_some());
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.get(hash(k), k).is_some(), i % 3 != 0, "key {i}");
        }
        assert_eq!(t.iter().count(), keys.len() - keys.len().div_ceil(3));
    }

    #[test]
    fn a_failed_predicate_removes_nothing() {
        let mut t = Table::default();
        t.insert_new(hash(b"k"), b"k", Arc::new(Record::default()), hash);
        assert!(t.remove_if(hash(b"k"), b"k", |_| false, hash).is_none());
        assert!(t.get(hash(b"k"), b"k").is_some());
    }

    #[test]
    fn home_is_the_first_probe() {
        let mut t = Table::default();
        t.insert_new(5, b"k", Arc::new(Record::default()), |_| 5);
        let home = Table::home(t.layout(), 5);
        let slot = std::ptr::from_ref(&t.slots[5]) as usize;
        assert_eq!(home, slot);
    }
}
