//! A replica backed by an engine in this process.

use crate::{Replica, ReplicaError, ReplicaFuture};
use bytes::Bytes;
use futures::FutureExt;
use halka_store::{Engine, NodeId, Record, StoreError, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Operation counters, for hot-spot reports.
#[derive(Debug, Default)]
pub(crate) struct OpCounters {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct LocalReplica {
    id: NodeId,
    engine: Arc<dyn Engine>,
    ops: Arc<OpCounters>,
}

impl LocalReplica {
    #[must_use]
    pub fn new(id: NodeId, engine: Arc<dyn Engine>) -> Self {
        Self { id, engine, ops: Arc::default() }
    }

    #[must_use]
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// (reads, writes) served so far.
    #[must_use]
    pub fn op_counts(&self) -> (u64, u64) {
        (self.ops.reads.load(Ordering::Relaxed), self.ops.writes.load(Ordering::Relaxed))
    }

    /// Runs `op` against the engine: inline for memory engines (it cannot block), on the
    /// blocking pool for disk engines so fsyncs never stall the async runtime.
    fn run<T, F>(&self, op: F) -> ReplicaFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Engine) -> Result<T, StoreError> + Send + 'static,
    {
        if self.engine.is_blocking() {
            let engine = Arc::clone(&self.engine);
            async move {
                tokio::task::spawn_blocking(move || op(engine.as_ref()))
                    .await
                    .map_err(|e| ReplicaError::Storage(format!("storage task failed: {e}")))?
                    .map_err(store_error)
            }
            .boxed()
        } else {
            futures::future::ready(op(self.engine.as_ref()).map_err(store_error)).boxed()
        }
    }
}

fn store_error(e: StoreError) -> ReplicaError {
    match e {
        StoreError::Limit(l) => ReplicaError::Rejected(l.to_string()),
        other => ReplicaError::Storage(other.to_string()),
    }
}

impl Replica for LocalReplica {
    fn id(&self) -> &NodeId {
        &self.id
    }

    fn coordinate_write(&self, key: Bytes, write: Write) -> ReplicaFuture<Arc<Record>> {
        self.ops.writes.fetch_add(1, Ordering::Relaxed);
        let node = self.id.clone();
        self.run(move |e| e.apply_write(&key, &node, &write).map(|(record, _)| record))
    }

    fn coordinate_write_deferred(
        &self,
        key: Bytes,
        write: Write,
    ) -> ReplicaFuture<(Arc<Record>, ReplicaFuture<()>)> {
        self.ops.writes.fetch_add(1, Ordering::Relaxed);
        let node = self.id.clone();
        let engine = Arc::clone(&self.engine);
        let applied = self.run(move |e| e.apply_write_deferred(&key, &node, &write));
        Box::pin(async move {
            let (record, _, token) = applied.await?;
            let durable: ReplicaFuture<()> = match token {
                Some(token) if engine.is_blocking() => Box::pin(async move {
                    tokio::task::spawn_blocking(move || engine.wait_durable(token))
                        .await
                        .map_err(|e| ReplicaError::Storage(format!("storage task failed: {e}")))?
                        .map_err(store_error)
                }),
                Some(token) => {
                    futures::future::ready(engine.wait_durable(token).map_err(store_error)).boxed()
                }
                None => futures::future::ready(Ok(())).boxed(),
            };
            Ok((record, durable))
        })
    }

    fn merge(&self, key: Bytes, record: Arc<Record>) -> ReplicaFuture<()> {
        self.ops.writes.fetch_add(1, Ordering::Relaxed);
        self.run(move |e| e.merge(&key, &record))
    }

    fn get(&self, key: Bytes) -> ReplicaFuture<Option<Arc<Record>>> {
        self.ops.reads.fetch_add(1, Ordering::Relaxed);
        self.run(move |e| e.get(&key))
    }

    fn scan(&self) -> ReplicaFuture<Vec<(Bytes, Arc<Record>)>> {
        self.run(|e| {
            let mut out = Vec::new();
            e.scan(&mut |k, r| out.push((Bytes::copy_from_slice(k), r)))?;
            Ok(out)
        })
    }
}
