//! The engine tombstone collection works on, seen by the checker: every record the
//! collector removes is recorded in the history, so the checker knows which deletes took
//! effect even after their tombstones are gone.

use crate::history::{Collected, Event};
use crate::world::World;
use halka_store::engine::Updater;
use halka_store::{
    DigestTree, Engine, HashRange, Limits, Record, StoreError, SyncToken, TombstoneIndex,
};
use std::sync::{Arc, Weak};

/// Forwards everything to `inner`, and records successful removals.
#[derive(Debug)]
pub(crate) struct Collecting {
    pub inner: Arc<dyn Engine>,
    pub node: String,
    /// Weak: the world owns the nodes that own this engine.
    pub world: Weak<World>,
}

impl Engine for Collecting {
    fn get(&self, key: &[u8]) -> Result<Option<Arc<Record>>, StoreError> {
        self.inner.get(key)
    }

    fn update(&self, key: &[u8], f: &mut Updater<'_>) -> Result<(), StoreError> {
        self.inner.update(key, f)
    }

    fn remove_if(
        &self,
        key: &[u8],
        pred: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<bool, StoreError> {
        let mut removed = None;
        let done = self.inner.remove_if(key, &mut |record| {
            let remove = pred(record);
            if remove {
                removed = Some(record.context().iter().map(|(n, c)| (n.to_string(), c)).collect());
            }
            remove
        })?;
        if done && let (Some(seen), Some(world)) = (removed, self.world.upgrade()) {
            world.record(Event::Collected(Collected {
                node: self.node.clone(),
                key: crate::history::key_name(key),
                seen,
                at_us: world.now_us(),
            }));
        }
        Ok(done)
    }

    fn counter_floor(&self) -> u64 {
        self.inner.counter_floor()
    }

    fn poisoned(&self) -> Option<String> {
        self.inner.poisoned()
    }

    fn scan_range(
        &self,
        range: HashRange,
        f: &mut halka_store::Visit<'_>,
    ) -> Result<(), StoreError> {
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

    fn wait_durable(&self, token: SyncToken) -> Result<(), StoreError> {
        self.inner.wait_durable(token)
    }

    fn digests(&self) -> Option<&Arc<DigestTree>> {
        self.inner.digests()
    }

    fn tombstones(&self) -> Option<&Arc<TombstoneIndex>> {
        self.inner.tombstones()
    }
}
