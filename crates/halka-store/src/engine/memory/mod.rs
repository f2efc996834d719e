//! The in-memory engine: sharded tables behind reader-writer locks. Fast and volatile —
//! for tests, simulations and the embedded demo. Keys are hashed with foldhash: they never
//! decide placement here, so a fast per-process-seeded hash is the right choice.

mod table;

use super::{Engine, Updater};
use crate::{Limits, Record, StoreError};
use foldhash::fast::RandomState;
use parking_lot::RwLock;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use table::{Key, Table};

/// Shards spread lock contention; a power of two so the shard is a shift.
const SHARD_BITS: u32 = 6;

#[derive(Debug, Default)]
struct Shard {
    table: RwLock<Table>,
    /// The table's [`Table::layout`], readable without the lock: [`Engine::prefetch`] must
    /// not take it, because a lock is an atomic read-modify-write, which on x86 waits for
    /// every earlier load — including the prefetches of the other replicas.
    layout: AtomicU64,
}

#[derive(Debug)]
pub struct MemoryEngine {
    shards: Box<[Shard]>,
    hasher: RandomState,
    keys: AtomicU64,
    limits: Limits,
}

impl MemoryEngine {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        let shards: Box<[Shard]> = (0..1 << SHARD_BITS).map(|_| Shard::default()).collect();
        for s in &*shards {
            s.layout.store(s.table.read().layout(), Ordering::Relaxed);
        }
        Self { shards, hasher: RandomState::default(), keys: AtomicU64::new(0), limits }
    }

    fn locate(&self, key: &[u8]) -> (&Shard, u64) {
        let hash = self.hasher.hash_one(key);
        // The top bits pick the shard, the low bits the slot: independent of each other.
        (&self.shards[(hash >> (64 - SHARD_BITS)) as usize], hash)
    }
}

impl Default for MemoryEngine {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Engine for MemoryEngine {
    fn prefetch(&self, key: &[u8]) {
        let (shard, hash) = self.locate(key);
        let home = Table::home(shard.layout.load(Ordering::Relaxed), hash);
        // A slot may straddle two cache lines; ask for both ends.
        prefetch::read(home);
        prefetch::read(home + std::mem::size_of::<Option<(Key, Arc<Record>)>>() - 1);
    }

    fn get(&self, key: &[u8]) -> Result<Option<Arc<Record>>, StoreError> {
        let (shard, hash) = self.locate(key);
        Ok(shard.table.read().get(hash, key).cloned())
    }

    fn update(&self, key: &[u8], f: &mut Updater<'_>) -> Result<(), StoreError> {
        let (shard, hash) = self.locate(key);
        let mut table = shard.table.write();
        match table.get_mut(hash, key) {
            Some(slot) => {
                if let Some(next) = f(Some(slot)) {
                    *slot = next;
                }
            }
            None => {
                if let Some(next) = f(None) {
                    if table.insert_new(hash, key, next, |k| self.hasher.hash_one(k)) {
                        shard.layout.store(table.layout(), Ordering::Relaxed);
                    }
                    self.keys.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    fn scan(&self, f: &mut dyn FnMut(&[u8], Arc<Record>)) -> Result<(), StoreError> {
        for shard in &*self.shards {
            // Copy the shard out so `f` never runs under the lock.
            let entries: Vec<(Key, Arc<Record>)> =
                shard.table.read().iter().map(|(k, r)| (k.clone(), Arc::clone(r))).collect();
            for (k, r) in entries {
                f(&k, r);
            }
        }
        Ok(())
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
}
