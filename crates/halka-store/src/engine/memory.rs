//! The in-memory engine: sharded hash maps behind reader-writer locks. Fast and volatile —
//! for tests, simulations and the embedded demo.

use super::Engine;
use crate::{Limits, Record, StoreError};
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// Shards spread lock contention; a power of two so the shard is a mask.
const SHARDS: usize = 64;

#[derive(Debug)]
pub struct MemoryEngine {
    shards: Box<[RwLock<HashMap<Bytes, Record>>]>,
    hasher: RandomState,
    keys: AtomicU64,
    limits: Limits,
}

impl MemoryEngine {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            keys: AtomicU64::new(0),
            limits,
        }
    }

    fn shard(&self, key: &[u8]) -> &RwLock<HashMap<Bytes, Record>> {
        &self.shards[(self.hasher.hash_one(key) as usize) & (SHARDS - 1)]
    }
}

impl Default for MemoryEngine {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Engine for MemoryEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        Ok(self.shard(key).read().get(key).cloned())
    }

    fn update(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(Option<&Record>) -> Option<Record>,
    ) -> Result<(), StoreError> {
        let mut shard = self.shard(key).write();
        match shard.get_mut(key) {
            Some(slot) => {
                if let Some(next) = f(Some(slot)) {
                    *slot = next;
                }
            }
            None => {
                if let Some(next) = f(None) {
                    shard.insert(Bytes::copy_from_slice(key), next);
                    self.keys.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    fn scan(&self, f: &mut dyn FnMut(&[u8], Record)) -> Result<(), StoreError> {
        for shard in &*self.shards {
            // Copy the shard out so `f` never runs under the lock.
            let entries: Vec<(Bytes, Record)> = shard
                .read()
                .iter()
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
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
