//! Fan-out/fan-in of replica calls: the seed's "N goroutines and a buffered channel",
//! without a task per call.
//!
//! Every call is started before any answer is awaited. A call that is complete the moment
//! it starts (a replica in this process) is kept as a plain value; only calls that are
//! still pending are boxed into a `FuturesUnordered`, each under the per-call deadline, so
//! the common embedded case allocates and arms no timers at all.

use crate::{ReplicaError, ReplicaFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use halka_store::NodeId;
use smallvec::SmallVec;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub(crate) type Answer<T> = (NodeId, Result<T, ReplicaError>);
pub(crate) type Call<T> = Pin<Box<dyn Future<Output = Answer<T>> + Send>>;

pub(crate) struct Fanout<T> {
    /// Answers that arrived when their calls started, in start order.
    ready: SmallVec<[Answer<T>; 5]>,
    next_ready: usize,
    pending: Option<FuturesUnordered<Call<T>>>,
    timeout: Duration,
}

fn count_error<T>(id: &NodeId, result: &Result<T, ReplicaError>) {
    if let Err(e) = result {
        crate::telemetry::count_replica_error(id, e);
    }
}

/// Awaits one call under `timeout`.
pub(crate) async fn call_one<T>(
    id: NodeId,
    mut fut: ReplicaFuture<T>,
    timeout: Duration,
) -> Answer<T> {
    let result = match (&mut fut).now_or_never() {
        Some(r) => r,
        None => tokio::time::timeout(timeout, fut)
            .await
            .unwrap_or(Err(ReplicaError::Timeout(timeout.as_millis() as u64))),
    };
    count_error(&id, &result);
    (id, result)
}

impl<T: Send + 'static> Fanout<T> {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { ready: SmallVec::new(), next_ready: 0, pending: None, timeout }
    }

    /// Starts a call.
    pub(crate) fn start(&mut self, id: NodeId, mut fut: ReplicaFuture<T>) {
        if let Some(result) = (&mut fut).now_or_never() {
            count_error(&id, &result);
            self.ready.push((id, result));
            return;
        }
        let timeout = self.timeout;
        self.pending
            .get_or_insert_with(FuturesUnordered::new)
            .push(Box::pin(call_one(id, fut, timeout)));
    }

    /// Calls not yet consumed.
    pub(crate) fn len(&self) -> usize {
        self.ready.len() - self.next_ready + self.pending.as_ref().map_or(0, FuturesUnordered::len)
    }

    /// The next answer: already-arrived ones first, then the first pending one to finish.
    pub(crate) async fn next(&mut self) -> Option<Answer<T>> {
        if let Some(answer) = self.take_ready() {
            return Some(answer);
        }
        self.pending.as_mut()?.next().await
    }

    fn take_ready(&mut self) -> Option<Answer<T>> {
        if self.next_ready < self.ready.len() {
            // Replace rather than shift, so consuming is O(1); the slot is not read again.
            let slot = &mut self.ready[self.next_ready];
            let answer =
                (slot.0.clone(), std::mem::replace(&mut slot.1, Err(ReplicaError::Timeout(0))));
            self.next_ready += 1;
            return Some(answer);
        }
        None
    }

    /// Every answer available without waiting.
    pub(crate) fn drain_now(&mut self, mut on_answer: impl FnMut(NodeId, Result<T, ReplicaError>)) {
        while let Some((id, r)) = self.take_ready() {
            on_answer(id, r);
        }
        if let Some(pending) = self.pending.as_mut() {
            while let Some(Some((id, r))) = pending.next().now_or_never() {
                on_answer(id, r);
            }
        }
    }

    /// The calls still in flight (after `drain_now`, or unconsumed ready answers are lost).
    pub(crate) fn into_pending(self) -> Option<FuturesUnordered<Call<T>>> {
        self.pending.filter(|p| !p.is_empty())
    }
}
