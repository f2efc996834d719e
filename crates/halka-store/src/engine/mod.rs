//! Storage engines: where a node's records live.
//!
//! An engine stores one [`Record`] per key and offers a single atomic primitive,
//! [`Engine::update`] (read-modify-write of one key). Everything the replica protocol needs —
//! applying a client write, merging a record from a peer — is built on it here, once, so
//! both engines behave identically; `tests/engine_suite.rs` runs one suite against both.

mod fjall;
mod journal;
mod memory;
pub mod space;
mod tracked;

pub use self::fjall::{FjallEngine, FjallOptions, SyncPolicy};
pub use memory::MemoryEngine;
pub use tracked::{TrackedEngine, Tracking};

use crate::layout::HashRange;
use crate::{Applied, Limits, NodeId, Outcome, Record, StoreError, Write};
use std::fmt;
use std::ops::ControlFlow;

/// What [`Engine::scan_range`] calls with each key and record: `Break` stops the scan.
pub type Visit<'a> = dyn FnMut(&[u8], Arc<Record>) -> ControlFlow<()> + 'a;
use std::sync::Arc;

/// The read-modify-write step of [`Engine::update`]: given the stored record, the record
/// to store instead, or `None` to leave it.
pub type Updater<'a> = dyn FnMut(Option<&Arc<Record>>) -> Option<Arc<Record>> + 'a;

/// Identifies a write whose durability can be awaited separately from applying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncToken(pub u64);

/// One node's record store.
pub trait Engine: Send + Sync + fmt::Debug + 'static {
    /// Hints that `key` is about to be read or written. A coordinator calls it on every
    /// replica of a key before asking any of them, so engines that can start fetching the
    /// key's memory without blocking let those fetches overlap.
    fn prefetch(&self, _key: &[u8]) {}

    /// The stored record for `key`, if any.
    ///
    /// # Errors
    /// I/O failure or a corrupt stored record.
    fn get(&self, key: &[u8]) -> Result<Option<Arc<Record>>, StoreError>;

    /// Atomically replaces the record for `key` with `f(current)`; `None` from `f` leaves the
    /// key untouched. When this returns `Ok`, the new record is durable to the engine's sync
    /// policy. `f` may be called more than once and must not have side effects beyond its
    /// return value.
    ///
    /// # Errors
    /// I/O failure, a corrupt stored record, or an engine poisoned by a failed fsync.
    fn update(&self, key: &[u8], f: &mut Updater<'_>) -> Result<(), StoreError>;

    /// Like [`Engine::update`], but returns as soon as the new record is visible, with a
    /// token to wait for its durability ([`Engine::wait_durable`]); `None` when there is
    /// nothing to wait for (`f` left the key alone, and what the key holds is as durable as
    /// the policy makes writes). Lets a coordinator overlap its own fsync with the
    /// replicas' writes.
    ///
    /// # Errors
    /// As [`Engine::update`].
    fn update_deferred(
        &self,
        key: &[u8],
        f: &mut Updater<'_>,
    ) -> Result<Option<SyncToken>, StoreError> {
        self.update(key, f).map(|()| None)
    }

    /// Waits until the write behind `token` is durable under the sync policy.
    ///
    /// # Errors
    /// The fsync failed (and the engine is now poisoned).
    fn wait_durable(&self, _token: SyncToken) -> Result<(), StoreError> {
        Ok(())
    }

    /// Calls `f` with every stored key and record, in no particular order. Used to move data
    /// when membership changes. `f` runs while engine resources are held: keep it short.
    ///
    /// # Errors
    /// I/O failure or a corrupt stored record.
    fn scan(&self, f: &mut dyn FnMut(&[u8], Arc<Record>)) -> Result<(), StoreError> {
        self.scan_range(HashRange::ALL, &mut |k, r| {
            f(k, r);
            ControlFlow::Continue(())
        })
    }

    /// Calls `f` for every key whose placement hash lies in `range` (a partition, see
    /// `layout`), in placement-hash order and then key order, until `f` breaks: a listing
    /// stops where its page is full and the next one resumes after the last hash it saw.
    ///
    /// # Errors
    /// I/O failure or a corrupt stored record.
    fn scan_range(&self, range: HashRange, f: &mut Visit<'_>) -> Result<(), StoreError>;

    /// Removes the record for `key` if there is one and `pred` holds for it, atomically
    /// with respect to every other update of the key. Returns whether it was removed.
    ///
    /// Before removing, raises the [counter floor](Engine::counter_floor) to the
    /// record's highest counter, durably whenever the removal itself is.
    ///
    /// # Errors
    /// I/O failure, a corrupt stored record, or a poisoned engine.
    fn remove_if(
        &self,
        key: &[u8],
        pred: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<bool, StoreError>;

    /// The highest counter of any record this engine has removed: a write it numbers
    /// later goes past it (see [`Record::apply_write_above`]).
    fn counter_floor(&self) -> u64;

    /// Number of keys stored (approximate for LSM engines).
    fn key_count(&self) -> u64;

    /// Makes every acknowledged write durable now.
    ///
    /// # Errors
    /// The fsync failed (and the engine is now poisoned).
    fn flush(&self) -> Result<(), StoreError>;

    /// The size limits this engine enforces.
    fn limits(&self) -> &Limits;

    /// Whether waiting for durability ([`Engine::wait_durable`], [`Engine::flush`]) or a
    /// full [`Engine::scan`] blocks on the disk, so async callers should move those calls to
    /// a blocking thread. Reads and deferred writes stay inline: they touch the memtable,
    /// the block cache and the OS page cache.
    fn is_blocking(&self) -> bool {
        false
    }

    /// Whether a write this engine has made durable ([`Engine::wait_durable`]) is fsynced,
    /// so it survives the machine losing power (sync policy `always`): what a write
    /// receipt reports for this node's acknowledgements.
    fn syncs_each_write(&self) -> bool {
        false
    }

    /// Why this engine refuses writes until it is reopened, if it does: a journal write
    /// or fsync failed, so what is on disk is unknown (see the `fjall` module).
    fn poisoned(&self) -> Option<String> {
        None
    }

    /// The digest tree kept over this engine's records, if it keeps one (see
    /// [`TrackedEngine`](crate::TrackedEngine)).
    fn digests(&self) -> Option<&Arc<crate::DigestTree>> {
        None
    }

    /// The index of deleted keys kept over this engine's records, if it keeps one (see
    /// [`TrackedEngine`](crate::TrackedEngine)).
    fn tombstones(&self) -> Option<&Arc<crate::TombstoneIndex>> {
        None
    }

    /// Keys holding a value at `now_us` (not deleted, not expired), if this engine keeps
    /// count (see [`TrackedEngine`](crate::TrackedEngine)); `key_count` counts every
    /// stored record, tombstones too.
    fn live_keys(&self, _now_us: u64) -> Option<u64> {
        None
    }

    /// Applies a client write as the coordinating replica `node` and returns the record
    /// the key now holds (unchanged when the write was refused) with the write's outcome.
    ///
    /// # Errors
    /// Limits (nothing is stored), or as [`Engine::update`].
    fn apply_write(
        &self,
        key: &[u8],
        node: &NodeId,
        write: &Write,
    ) -> Result<(Arc<Record>, Outcome), StoreError> {
        let (record, outcome, token) = self.apply_write_deferred(key, node, write)?;
        if let Some(token) = token {
            self.wait_durable(token)?;
        }
        Ok((record, outcome))
    }

    /// [`Engine::apply_write`] without waiting for durability: the caller awaits the token
    /// (`None` when nothing was written).
    ///
    /// # Errors
    /// Limits (nothing is stored), or as [`Engine::update`].
    fn apply_write_deferred(
        &self,
        key: &[u8],
        node: &NodeId,
        write: &Write,
    ) -> Result<(Arc<Record>, Outcome, Option<SyncToken>), StoreError> {
        self.limits().check_key(key)?;
        if let Some(v) = write.payload() {
            self.limits().check_value(v)?;
        }
        write.context.validate()?;
        let max_value = self.limits().max_value_bytes;
        let mut result = None;
        // The floor is read under the key's lock, so a removal of this key either
        // happened before (and raised it) or happens after this write.
        let token = self.update_deferred(key, &mut |current| {
            let applied = Record::apply_write_above(
                current.map(|r| &**r),
                node,
                write,
                self.counter_floor(),
                max_value,
            );
            let before = current.map_or(0, |r| r.value_bytes());
            match applied {
                Ok(Applied { written: Some((record, _)), outcome })
                    if let Some(refusal) = self.limits().record_refusal(before, &record) =>
                {
                    let refused = Outcome { refused: Some(refusal), ..outcome };
                    result = Some(Ok((current.cloned().unwrap_or_default(), refused)));
                    None
                }
                Ok(Applied { written: Some((record, _)), outcome }) => {
                    let record = Arc::new(record);
                    result = Some(Ok((Arc::clone(&record), outcome)));
                    Some(record)
                }
                Ok(Applied { written: None, outcome }) => {
                    let held = current.cloned().unwrap_or_default();
                    result = Some(Ok((held, outcome)));
                    None
                }
                Err(e) => {
                    result = Some(Err(StoreError::Invalid(e)));
                    None
                }
            }
        })?;
        let (record, outcome) =
            result.ok_or_else(|| StoreError::Io("write was not applied".into()))??;
        Ok((record, outcome, token))
    }

    /// Merges `incoming` into the stored record for `key`.
    ///
    /// # Errors
    /// Limits (nothing is stored), or as [`Engine::update`].
    fn merge(&self, key: &[u8], incoming: &Arc<Record>) -> Result<(), StoreError> {
        match self.merge_deferred(key, incoming)? {
            Some(token) => self.wait_durable(token),
            None => Ok(()),
        }
    }

    /// [`Engine::merge`] without waiting for durability: the caller awaits the token.
    ///
    /// # Errors
    /// Limits (nothing is stored), or as [`Engine::update`].
    fn merge_deferred(
        &self,
        key: &[u8],
        incoming: &Arc<Record>,
    ) -> Result<Option<SyncToken>, StoreError> {
        self.limits().check_key(key)?;
        for v in incoming.values() {
            self.limits().check_value(v)?;
        }
        incoming.validate()?;
        // `absorb` returns None when the peer told us nothing new: no write, no fsync.
        self.update_deferred(key, &mut |current| match current {
            None => Some(Arc::clone(incoming)),
            Some(stored) => Record::absorb(stored, incoming),
        })
    }
}
