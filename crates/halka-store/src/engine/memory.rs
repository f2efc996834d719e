//! The in-memory engine: sharded hash maps behind reader-writer locks. Fast and volatile —
//! for tests, simulations and the embedded demo. Maps use foldhash: keys here never decide
//! placement, so a fast per-process-seeded hash is the right choice.

use super::{Engine, Updater};
use crate::{Limits, Record, StoreError};
use foldhash::fast::RandomState;
use parking_lot::RwLock;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shards spread lock contention; a power of two so the shard is a mask.
const SHARDS: usize = 64;

/// Keys up to 24 bytes live inside the map entry, saving a cache miss per lookup.
type Key = SmallVec<[u8; 24]>;
type Map = HashMap<Key, Arc<Record>, RandomState>;

#[derive(Debug)]
pub struct MemoryEngine {
    shards: Box<[RwLock<Map>]>,
    hasher: RandomState,
    keys: AtomicU64,
    limits: Limits,
}

impl MemoryEngine {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(RandomState::default())))
                .collect(),
            hasher: RandomState::default(),
            keys: AtomicU64::new(0),
            limits,
        }
    }

    fn shard(&self, key: &[u8]) -> &RwLock<Map> {
        &self.shards[(self.hasher.hash_one(key) as usize) & (SHARDS - 1)]
    }
}

impl Default for MemoryEngine {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Engine for MemoryEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Arc<Record>>, StoreError> {
        Ok(self.shard(key).read().get(key).cloned())
    }

    fn update(&self, key: &[u8], f: &mut Updater<'_>) -> Result<(), StoreError> {
        let mut shard = self.shard(key).write();
        match shard.get_mut(key) {
            Some(slot) => {
                if let Some(next) = f(Some(slot)) {
                    *slot = next;
                }
            }
            None => {
                if let Some(next) = f(None) {
                    shard.insert(Key::from_slice(key), next);
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
                shard.read().iter().map(|(k, r)| (k.clone(), Arc::clone(r))).collect();
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
