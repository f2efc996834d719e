//! The in-memory engine: sharded tables behind reader-writer locks. Fast and volatile —
//! for tests, simulations and the embedded demo. Keys are hashed with foldhash: they never
//! decide placement here, so a fast per-process-seeded hash is the right choice.

mod table;

use super::{Engine, Updater, Visit};
use crate::layout::{HashRange, key_hash};
use crate::{Limits, Record, StoreError};
use crossbeam_utils::CachePadded;
use foldhash::fast::RandomState;
use parking_lot::RwLock;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use table::{Key, Table};

/// Shards spread lock contention; a power of two so the shard is a shift.
const SHARD_BITS: u32 = 6;

#[derive(Debug)]
pub struct MemoryEngine {
    /// One cache line per shard: taking a lock writes its line, and neighbours would
    /// otherwise contend for lines they do not use.
    shards: Box<[CachePadded<RwLock<Table>>]>,
    /// Each shard's [`Table::layout`], readable without the lock: [`Engine::prefetch`]
    /// must not take it, because a lock is an atomic read-modify-write, which on x86 waits
    /// for every earlier load — including the prefetches of the other replicas. Kept apart
    /// from the locks, so this read-mostly array stays cached on every core.
    layouts: Box<[AtomicU64]>,
    hasher: RandomState,
    keys: AtomicU64,
    /// See [`Engine::counter_floor`]. Raised only under the removed key's shard lock.
    floor: AtomicU64,
    limits: Limits,
}

impl MemoryEngine {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        let shards: Box<[_]> =
            (0..1 << SHARD_BITS).map(|_| CachePadded::new(RwLock::new(Table::default()))).collect();
        let layouts = shards.iter().map(|s| AtomicU64::new(s.read().layout())).collect();
        Self {
            shards,
            layouts,
            hasher: RandomState::default(),
            keys: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            limits,
        }
    }

    /// The key's hash and shard: the top bits pick the shard, the low bits the slot, so
    /// the two are independent.
    fn locate(&self, key: &[u8]) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        (hash, (hash >> (64 - SHARD_BITS)) as usize)
    }
}

impl Default for MemoryEngine {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Engine for MemoryEngine {
    fn prefetch(&self, key: &[u8]) {
        let (hash, shard) = self.locate(key);
        let home = Table::home(self.layouts[shard].load(Ordering::Relaxed), hash);
        // Cover the home slot and the next one: slots straddle cache lines, and at the
        // load factors the table runs at, a lookup often probes one slot further.
        let end = home + 2 * Table::SLOT_BYTES - 1;
        for line in (home & !63..=end).step_by(64) {
            prefetch::read(line);
        }
        // The lock is about to be written whether this is a read or a write.
        prefetch::write(std::ptr::from_ref(&self.shards[shard]) as usize);
    }

    fn get(&self, key: &[u8]) -> Result<Option<Arc<Record>>, StoreError> {
        let (hash, shard) = self.locate(key);
        Ok(self.shards[shard].read().get(hash, key).cloned())
    }

    fn update(&self, key: &[u8], f: &mut Updater<'_>) -> Result<(), StoreError> {
        let (hash, shard) = self.locate(key);
        let mut table = self.shards[shard].write();
        match table.get_mut(hash, key) {
            Some(slot) => {
                if let Some(next) = f(Some(slot)) {
                    *slot = next;
                }
            }
            None => {
                if let Some(next) = f(None) {
                    if table.insert_new(hash, key, next, |k| self.hasher.hash_one(k)) {
                        self.layouts[shard].store(table.layout(), Ordering::Relaxed);
                    }
                    self.keys.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    fn scan_range(&self, range: HashRange, f: &mut Visit<'_>) -> Result<(), StoreError> {
        // Not kept in hash order: a range visits every key, keeps those in it and sorts
        // them. This engine is for tests and the embedded cluster, whose stores are small.
        let mut entries: Vec<(u64, Key, Arc<Record>)> = Vec::new();
        for shard in &*self.shards {
            // Copied out so `f` never runs under the lock.
            entries.extend(
                shard
                    .read()
                    .iter()
                    .map(|(k, r)| (key_hash(k), k, r))
                    .filter(|(hash, _, _)| range.contains(*hash))
                    .map(|(hash, k, r)| (hash, k.clone(), Arc::clone(r))),
            );
        }
        entries.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (_, k, r) in entries {
            if f(&k, r).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn remove_if(
        &self,
        key: &[u8],
        pred: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<bool, StoreError> {
        let (hash, shard) = self.locate(key);
        let mut table = self.shards[shard].write();
        let removed = table.remove_if(
            hash,
            key,
            |r| {
                let remove = pred(r);
                if remove {
                    self.floor.fetch_max(r.max_counter(), Ordering::SeqCst);
                }
                remove
            },
            |k| self.hasher.hash_one(k),
        );
        if removed.is_some() {
            self.keys.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed.is_some())
    }

    fn counter_floor(&self) -> u64 {
        self.floor.load(Ordering::SeqCst)
    }

    fn key_count(&self) -> u64 {
        self.keys.load(Ordering::Relaxed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// The one unsafe operation in the store, kept apart.
#[allow(unsafe_code, reason = "a prefetch hint needs an intrinsic; see SAFETY")]
mod prefetch {
    /// Hints the CPU to start loading the cache line at `addr`.
    #[inline]
    pub(super) fn read(addr: usize) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is only a hint: it never faults, not even on an unmapped or
        // stale address, and it changes nothing any load later observes. The intrinsic is
        // unsafe only because it takes a raw pointer, which it does not dereference.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                addr as *const i8,
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }

    /// Like [`read`], but asks for the line in a writable state, so a later atomic update
    /// does not have to fetch it again from the core that wrote it last.
    #[inline]
    pub(super) fn write(addr: usize) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as for `read`; PREFETCHW reads no memory and writes none.
        unsafe {
            std::arch::asm!("prefetchw [{}]", in(reg) addr, options(nostack, preserves_flags, readonly));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = addr;
    }
}
