//! The replica interface: what a coordinator can ask of one node's storage.

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Either, Ready};
use halka_store::{HashRange, NodeId, Outcome, Record, Write};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use thiserror::Error;

/// What a replica call returns: the answer itself when the replica had it at once (an
/// engine in this process), otherwise a boxed future — so inline answers cost no
/// allocation. Futures are `'static` so that a request that returned early can hand its
/// stragglers to the background.
pub type ReplicaFuture<T> =
    Either<Ready<Result<T, ReplicaError>>, BoxFuture<'static, Result<T, ReplicaError>>>;

/// A replica call answered on the spot.
pub fn answered<T>(result: Result<T, ReplicaError>) -> ReplicaFuture<T> {
    Either::Left(futures::future::ready(result))
}

/// A replica call that completes later.
pub fn deferred<T>(
    fut: impl Future<Output = Result<T, ReplicaError>> + Send + 'static,
) -> ReplicaFuture<T> {
    Either::Right(fut.boxed())
}

/// `fut`'s answer passed through `f`, still inline when `fut` was.
pub(crate) fn map_answer<T: Send + 'static, U: Send + 'static>(
    fut: ReplicaFuture<T>,
    f: fn(T) -> U,
) -> ReplicaFuture<U> {
    match fut {
        Either::Left(ready) => answered(ready.into_inner().map(f)),
        Either::Right(fut) => Either::Right(fut.map(move |r| r.map(f)).boxed()),
    }
}

/// Why one replica did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplicaError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("unreachable: {0}")]
    Unavailable(String),
    /// The request was sent and the connection closed before the answer: it may or may
    /// not have been applied.
    #[error("connection lost with the request in flight: {0}")]
    Lost(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("rejected: {0}")]
    Rejected(String),
    /// The replica's disk is (nearly) full; its message says how to recover.
    #[error("{0}")]
    NoSpace(String),
}

/// What the coordinating replica answers to a write: the record it now holds (what the
/// other replicas then receive) and what became of the write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordinated {
    pub record: Arc<Record>,
    pub outcome: Outcome,
}

impl Coordinated {
    /// Whether the write was applied (a refused one left the record as it was).
    #[must_use]
    pub fn applied(&self) -> bool {
        self.outcome.refused.is_none()
    }
}

/// How a replica held a write when it acknowledged it: what a write receipt reports for
/// each acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Durability {
    /// fsynced before the acknowledgement (sync policy `always`): it survives the
    /// machine losing power.
    Synced,
    /// Not yet fsynced: in the journal's buffer or the OS page cache (sync policy
    /// `periodic`), or in memory only (the memory engine). It survives what that node's
    /// sync policy survives.
    Buffered,
}

/// One node's storage as the coordinator sees it.
pub trait Replica: Send + Sync + fmt::Debug + 'static {
    /// The node this replica lives on.
    fn id(&self) -> &NodeId;

    /// Hints that `key` is about to be read or written here; see [`Engine::prefetch`].
    /// Must not block.
    ///
    /// [`Engine::prefetch`]: halka_store::Engine::prefetch
    fn prefetch(&self, _key: &[u8]) {}

    /// Applies a client write as the coordinating replica: the replica numbers the new
    /// version and returns the resulting record, which the coordinator sends to the others,
    /// with the write's outcome (a conditional write may be refused).
    fn coordinate_write(&self, key: &Bytes, write: &Write) -> ReplicaFuture<Coordinated>;

    /// Like [`Replica::coordinate_write`], but answers with the record as soon as it is
    /// applied, together with a future that completes when it is durable, saying how. The
    /// coordinator starts the other replicas' writes while this replica's fsync runs. By
    /// default the record is as durable as it will be when it arrives, and not synced.
    fn coordinate_write_deferred(
        &self,
        key: &Bytes,
        write: &Write,
    ) -> ReplicaFuture<(Coordinated, ReplicaFuture<Durability>)> {
        let call = self.coordinate_write(key, write);
        deferred(async move {
            let coordinated = call.await?;
            Ok((coordinated, answered(Ok(Durability::Buffered))))
        })
    }

    /// Merges a record into the replica's copy; answers once it is as durable as this
    /// node's sync policy makes writes, and says how durable that is.
    fn merge(&self, key: &Bytes, record: &Arc<Record>) -> ReplicaFuture<Durability>;

    /// The replica's record for `key`.
    fn get(&self, key: &Bytes) -> ReplicaFuture<Option<Arc<Record>>>;

    /// The records whose keys hash into `range` (a partition, or a chunk of the hash
    /// space), for moving data when membership changes. Callers walk the store a range
    /// at a time, so no answer holds more than one range.
    fn scan_range(&self, _range: HashRange) -> ReplicaFuture<Vec<(Bytes, Arc<Record>)>> {
        answered(Err(ReplicaError::Rejected("this replica cannot be scanned".into())))
    }

    /// The records this replica holds in `range`, values included, in hash order: one
    /// page of about [`BATCH_BYTES`], [`KeyPage::through`] saying where it stopped (ask
    /// again from just past it). What a new owner streams a range with (`stream`).
    fn read_range(&self, _range: HashRange) -> ReplicaFuture<KeyPage> {
        answered(Err(ReplicaError::Rejected("this replica cannot read a range".into())))
    }

    /// Removes every record held in `ranges` (partitions this node no longer owns once a
    /// layout change is over); returns how many. Only a node's own replica does this.
    fn drop_ranges(&self, _ranges: Vec<HashRange>) -> ReplicaFuture<u64> {
        answered(Err(ReplicaError::Rejected("this replica cannot drop ranges".into())))
    }

    /// How far the node has come in the layout change to `version` (see `Transfers`).
    fn transfer_status(&self, _version: u64) -> ReplicaFuture<crate::ChangePhase> {
        answered(Err(ReplicaError::Rejected("this replica takes no part in transfers".into())))
    }

    /// How far this node's transfers have come in the change under way (see `Transfers`).
    fn transfer_progress(&self) -> ReplicaFuture<crate::Progress> {
        answered(Err(ReplicaError::Rejected("this replica takes no part in transfers".into())))
    }

    /// Answers a peer's membership request (see `membership`).
    fn membership(
        &self,
        _request: crate::membership::MembershipRequest,
    ) -> ReplicaFuture<crate::membership::MembershipResponse> {
        answered(Err(ReplicaError::Rejected("this replica takes no part in membership".into())))
    }

    /// The keys this replica holds in `range`, in hash order, with their records emptied
    /// of values ([`Record::without_values`]): what listing the cluster's keys walks. One
    /// answer holds about [`LIST_PAGE_BYTES`]; [`KeyPage::through`] says where it stopped.
    fn list_keys(&self, _range: HashRange) -> ReplicaFuture<KeyPage> {
        answered(Err(ReplicaError::Rejected("this replica cannot list its keys".into())))
    }

    /// The digests of this replica's records over `range`, one per `2^-bits` slice of the
    /// hash space (see `halka_store::digests`): what anti-entropy compares.
    fn digests(&self, _range: HashRange, _bits: u32) -> ReplicaFuture<Vec<u64>> {
        answered(Err(ReplicaError::Rejected("this replica keeps no digests".into())))
    }

    /// Every key in `range` with its entry digest, in no particular order: what
    /// anti-entropy lists once a slice's digests differ.
    fn key_digests(&self, _range: HashRange) -> ReplicaFuture<Vec<(Bytes, u64)>> {
        answered(Err(ReplicaError::Rejected("this replica keeps no digests".into())))
    }

    /// The records for `keys`, in order. May answer for a prefix of `keys` only, to keep
    /// one answer to about [`BATCH_BYTES`]; callers ask again for the rest.
    fn get_many(&self, keys: Vec<Bytes>) -> ReplicaFuture<Vec<Option<Arc<Record>>>> {
        let calls: Vec<_> = keys.iter().map(|k| self.get(k)).collect();
        deferred(futures::future::try_join_all(calls))
    }

    /// Keeps `record` as a hint for `owner`, an owner of `key` that did not answer, until
    /// it can be handed over: this replica stands in for it (sloppy quorum). Succeeds
    /// once the hint is as durable as a write under this node's sync policy.
    fn keep_hint(
        &self,
        _owner: &NodeId,
        _key: &Bytes,
        _record: &Arc<Record>,
    ) -> ReplicaFuture<Durability> {
        answered(Err(ReplicaError::Rejected("this replica keeps no hints".into())))
    }

    /// For each of `keys`, whether this node keeps a hint for it (for any owner): while
    /// one does, the key's tombstones must stay (see `tombstones`).
    fn hinted(&self, _keys: Vec<Bytes>) -> ReplicaFuture<Vec<bool>> {
        answered(Err(ReplicaError::Rejected("this replica cannot tell its hints".into())))
    }

    /// Merges every record in `entries`; succeeds only if all were merged.
    fn merge_many(&self, entries: Vec<(Bytes, Arc<Record>)>) -> ReplicaFuture<()> {
        let calls: Vec<_> = entries.iter().map(|(k, r)| self.merge(k, r)).collect();
        deferred(async move { futures::future::try_join_all(calls).await.map(|_| ()) })
    }
}

/// About how many bytes of records one batch call carries (see [`Replica::get_many`]).
pub const BATCH_BYTES: usize = 1 << 20;

/// About how many bytes one answer to [`Replica::list_keys`] carries: well under the
/// smallest message between nodes, so a listing of any range never fails for its size.
pub const LIST_PAGE_BYTES: usize = 128 << 10;

/// Keys of a hash range, from its start up to where the page filled.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyPage {
    /// The keys, in hash order, with their records.
    pub keys: Vec<(Bytes, Arc<Record>)>,
    /// `None` when the page holds the whole range; otherwise the last hash it covers:
    /// every key of the range hashed up to it is in the page, none beyond.
    pub through: Option<u64>,
}

impl KeyPage {
    /// The page's size, roughly (see [`batch_weight`]).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.keys.iter().map(|(k, r)| batch_weight(k, r)).sum()
    }
}

/// Builds a [`KeyPage`] from keys offered in hash order, closing it at the first hash
/// boundary once it holds `budget` bytes (keys sharing a hash stay on one page, so a
/// page's end is a hash the next page can start after).
#[derive(Debug)]
pub struct PageBuilder {
    budget: usize,
    bytes: usize,
    last: Option<u64>,
    page: KeyPage,
}

impl PageBuilder {
    #[must_use]
    pub fn new(budget: usize) -> Self {
        Self { budget, bytes: 0, last: None, page: KeyPage::default() }
    }

    /// Adds `key` unless the page is full; `Break` once it is.
    pub fn offer(&mut self, key: &[u8], record: Arc<Record>) -> std::ops::ControlFlow<()> {
        let hash = halka_store::layout::key_hash(key);
        if self.bytes >= self.budget && self.last.is_some_and(|last| last != hash) {
            self.page.through = self.last;
            return std::ops::ControlFlow::Break(());
        }
        self.bytes += batch_weight(key, &record);
        self.last = Some(hash);
        self.page.keys.push((Bytes::copy_from_slice(key), record));
        std::ops::ControlFlow::Continue(())
    }

    #[must_use]
    pub fn finish(self) -> KeyPage {
        self.page
    }
}

/// The size a record adds to a batch, roughly.
#[must_use]
pub fn batch_weight(key: &[u8], record: &Record) -> usize {
    key.len()
        + 64
        + record
            .versions()
            .iter()
            .map(|v| 32 + v.value.as_ref().map_or(0, Bytes::len))
            .sum::<usize>()
}
