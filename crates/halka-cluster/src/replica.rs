//! The replica interface: what a coordinator can ask of one node's storage.

use bytes::Bytes;
use futures::future::BoxFuture;
use halka_store::{NodeId, Record, Write};
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// Futures returned by replicas are `'static` so that a request that returned early can
/// hand its stragglers to the background.
pub type ReplicaFuture<T> = BoxFuture<'static, Result<T, ReplicaError>>;

/// Why one replica did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplicaError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("unreachable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("rejected: {0}")]
    Rejected(String),
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
    /// version and returns the resulting record, which the coordinator sends to the others.
    fn coordinate_write(&self, key: Bytes, write: Write) -> ReplicaFuture<Arc<Record>>;

    /// Like [`Replica::coordinate_write`], but answers with the record as soon as it is
    /// applied, together with a future that completes when it is durable. The coordinator
    /// starts the other replicas' writes while this replica's fsync runs. By default the
    /// record is durable when it arrives.
    fn coordinate_write_deferred(
        &self,
        key: Bytes,
        write: Write,
    ) -> ReplicaFuture<(Arc<Record>, ReplicaFuture<()>)> {
        let call = self.coordinate_write(key, write);
        Box::pin(async move {
            let record = call.await?;
            let durable: ReplicaFuture<()> = Box::pin(async { Ok(()) });
            Ok((record, durable))
        })
    }

    /// Merges a record into the replica's copy.
    fn merge(&self, key: Bytes, record: Arc<Record>) -> ReplicaFuture<()>;

    /// The replica's record for `key`.
    fn get(&self, key: Bytes) -> ReplicaFuture<Option<Arc<Record>>>;

    /// Every record the replica holds, for moving data when membership changes.
    fn scan(&self) -> ReplicaFuture<Vec<(Bytes, Arc<Record>)>> {
        Box::pin(async { Err(ReplicaError::Rejected("this replica cannot be scanned".into())) })
    }
}
