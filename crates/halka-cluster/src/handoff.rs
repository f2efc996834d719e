//! Hinted handoff: writes a replica missed are kept for it and handed over when it
//! answers again (Dynamo §4.6).
//!
//! The coordinator keeps a hint whenever an owner of a key does not acknowledge a write —
//! it failed, timed out, or was skipped as coordinating replica — including failures that
//! arrive after the client was answered. Hints never count towards W: they are kept by the
//! node that coordinated, which in the smallest clusters (three nodes, N = 3) is itself
//! another owner, as Cassandra's coordinators keep theirs.
//!
//! A background task walks the pending hints every `interval`: for each owner it sends a
//! batch of merges and removes each hint the owner acknowledged (if it was not merged
//! with a newer write meanwhile); an owner that fails a merge is left for the next round.
//! Delivery is throttled to `max_per_second`. Records are joins, so a hint delivered twice
//! or after a newer write cannot undo anything.
//!
//! Across a layout change a hint follows the key: while a change is under way it goes to
//! its owner and to the key's owners in the newest layout (the new owners may have
//! streamed the partition from its old owners before the hint reached one of them), and
//! once its owner no longer owns the key, to the newest owners alone (see [`targets`]).

use crate::gossip::Liveness;
use crate::telemetry;
use crate::view::ViewHandle;
use crate::{Replica, ReplicaError, View};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use halka_store::{HintKind, HintStats, HintStore, NodeId, Record, Stored};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How hints are delivered.
#[derive(Debug, Clone)]
pub struct HandoffConfig {
    /// Pause between delivery rounds while nothing can be delivered.
    pub interval: Duration,
    /// Hints delivered per second at most, over all owners.
    pub max_per_second: u32,
    /// Merges in flight to one owner at once.
    pub concurrency: usize,
    /// Deadline for one merge.
    pub timeout: Duration,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            max_per_second: 10_000,
            concurrency: 256,
            timeout: Duration::from_secs(1),
        }
    }
}

/// The hints this node keeps, and their delivery.
#[derive(Debug)]
pub struct Handoff {
    store: Arc<dyn HintStore>,
    config: HandoffConfig,
    /// Per owner, the last key delivered: the next round goes on from there instead of
    /// scanning again past every hint already removed (an LSM keeps their tombstones
    /// until compaction, so rescanning from the start grows quadratic).
    cursors: parking_lot::Mutex<BTreeMap<NodeId, Bytes>>,
    /// Owners whose last delivery failed: the next round sends them one hint as a probe
    /// instead of reading a whole batch for an owner that is probably still away.
    failing: parking_lot::Mutex<std::collections::BTreeSet<NodeId>>,
}

impl Handoff {
    #[must_use]
    pub fn new(store: Arc<dyn HintStore>, config: HandoffConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            config,
            cursors: parking_lot::Mutex::default(),
            failing: parking_lot::Mutex::default(),
        })
    }

    /// Keeps `record` for `owner`, which did not acknowledge it.
    pub(crate) fn keep(&self, owner: &NodeId, key: &Bytes, record: &Arc<Record>) {
        // The coordinator's own hints are beyond the write's W copies: the oldest of them
        // make room when the owner's hints are at their bound.
        match self.store.put(owner, key, record, HintKind::Extra) {
            Ok(Stored::Kept { evicted }) => {
                metrics::counter!(telemetry::HINTS_STORED).increment(1);
                metrics::counter!(telemetry::HINTS_DROPPED).increment(evicted);
            }
            Ok(Stored::Dropped) => metrics::counter!(telemetry::HINTS_DROPPED).increment(1),
            Err(e) => {
                metrics::counter!(telemetry::HINTS_DROPPED).increment(1);
                tracing::warn!(%owner, error = %e, "cannot keep a hint");
            }
        }
    }

    /// Pending hints by owner.
    #[must_use]
    pub fn pending(&self) -> BTreeMap<NodeId, HintStats> {
        self.store.stats()
    }

    /// Delivers hints until `shutdown`, reading the current view from `views`.
    /// Rounds follow each other as fast as `max_per_second` allows while hints are being
    /// delivered, and every `interval` while none can be.
    pub async fn run(self: Arc<Self>, views: ViewHandle, shutdown: CancellationToken) {
        let rate = f64::from(self.config.max_per_second.max(1));
        // A tenth of a second's worth per round keeps rounds short and the pace smooth.
        let budget = (self.config.max_per_second / 10).max(1) as usize;
        let mut wait = self.config.interval;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let started = tokio::time::Instant::now();
            let view = views.view();
            let delivered = tokio::select! {
                () = shutdown.cancelled() => return,
                delivered = self.deliver_to_live(&view, budget, views.liveness()) => delivered,
            };
            wait = if delivered == 0 {
                self.config.interval
            } else {
                Duration::from_secs_f64(delivered as f64 / rate).saturating_sub(started.elapsed())
            };
        }
    }

    /// One round: up to `budget` hints over all owners. Returns how many were delivered.
    ///
    /// A hint is removed only once its own owner took it: one kept by a stand-in may be
    /// one of the copies its write was acknowledged with, and handing it to another owner
    /// instead could leave fewer copies than W (the simulator found exactly that: the
    /// other owner was the coordinating one, and then lost its disk).
    pub async fn deliver_round(&self, view: &View, budget: usize) -> usize {
        self.deliver_to_live(view, budget, &Liveness::default()).await
    }

    /// A round that leaves the owners `liveness` convicts for later: their hints wait
    /// until the detector hears from them again, instead of a call timing out each round.
    async fn deliver_to_live(&self, view: &View, mut budget: usize, liveness: &Liveness) -> usize {
        let pending = self.store.stats();
        let total: u64 = pending.values().map(|s| s.hints).sum();
        metrics::gauge!(telemetry::HINTS_PENDING).set(total as f64);
        let mut delivered = 0;
        for owner in pending.keys() {
            if budget == 0 {
                break;
            }
            if liveness.convicted(owner) {
                continue;
            }
            let after = self.cursors.lock().remove(owner);
            let probe = self.failing.lock().contains(owner);
            let limit = if probe { 1 } else { budget };
            let hints = match self.store.batch(owner, after.as_deref(), limit) {
                Ok(hints) => hints,
                Err(e) => {
                    tracing::warn!(%owner, error = %e, "cannot read hints");
                    continue;
                }
            };
            // A full batch: go on after it next time; a short one reached the end, so the
            // next round starts over (for hints kept meanwhile, or left by a failure).
            if hints.len() == limit
                && !probe
                && let Some(last) = hints.last()
            {
                self.cursors.lock().insert(owner.clone(), last.key.clone());
            }
            let mut calls = FuturesUnordered::new();
            let mut hints = hints.into_iter();
            let mut failed = false;
            loop {
                while !failed && calls.len() < self.config.concurrency {
                    let Some(hint) = hints.next() else { break };
                    let to = targets(view, owner, &hint.key);
                    let call = deliver(&to, &hint.key, &hint.record, self.config.timeout);
                    calls.push(async move { (hint, call.await) });
                }
                let Some((hint, result)) = calls.next().await else { break };
                budget = budget.saturating_sub(1);
                match result {
                    Ok(_) => {
                        if let Err(e) = self.store.remove_delivered(owner, &hint.key, &hint.record)
                        {
                            tracing::warn!(%owner, error = %e, "cannot remove a delivered hint");
                        }
                        delivered += 1;
                        metrics::counter!(telemetry::HINTS_DELIVERED).increment(1);
                    }
                    // The owner refuses this record (a limit, say): it never will take
                    // it, so it must not block the owner's other hints.
                    Err(ReplicaError::Rejected(why)) => {
                        tracing::warn!(%owner, key = ?hint.key, %why, "dropping a hint the owner refuses");
                        let _ = self.store.remove_delivered(owner, &hint.key, &hint.record);
                        metrics::counter!(telemetry::HINTS_DROPPED).increment(1);
                    }
                    // The owner is not answering yet: leave the rest for a later round.
                    Err(_) => failed = true,
                }
            }
            if failed {
                self.failing.lock().insert(owner.clone());
            } else {
                self.failing.lock().remove(owner);
            }
        }
        delivered
    }
}

/// Where a hint kept for `owner` goes: to `owner` while it is a member; during a layout
/// change, also to the key's owners in the newest layout; and once `owner` no longer owns
/// the key, to those alone.
fn targets(view: &View, owner: &NodeId, key: &[u8]) -> Vec<Arc<dyn Replica>> {
    let newest = view.owners(halka_ring::key_hash(key));
    let owns = newest.iter().any(|&i| view.replica(i).id() == owner);
    let mut out: Vec<Arc<dyn Replica>> = Vec::new();
    if let Some(r) = view.replicas().iter().find(|r| r.id() == owner)
        && (owns || view.is_changing())
    {
        out.push(Arc::clone(r));
    }
    if view.is_changing() || !owns {
        for &i in newest.iter() {
            if view.replica(i).id() != owner {
                out.push(Arc::clone(view.replica(i)));
            }
        }
    }
    out
}

/// Merges `record` into every one of `targets`, each within `timeout`: done once all
/// took it; refused if one refuses it (it never will take it).
fn deliver(
    targets: &[Arc<dyn Replica>],
    key: &Bytes,
    record: &Arc<Record>,
    timeout: Duration,
) -> impl Future<Output = Result<(), ReplicaError>> + Send + 'static {
    let calls: Vec<_> = targets
        .iter()
        .map(|r| {
            let call = r.merge(key, record);
            async move {
                tokio::time::timeout(timeout, call)
                    .await
                    .unwrap_or(Err(ReplicaError::Timeout(timeout.as_millis() as u64)))
            }
        })
        .collect();
    async move {
        if calls.is_empty() {
            return Err(ReplicaError::Unavailable("no owner to hand the hint to".into()));
        }
        let results = futures::future::join_all(calls).await;
        if let Some(Err(refused)) =
            results.iter().find(|r| matches!(r, Err(ReplicaError::Rejected(_))))
        {
            return Err(refused.clone());
        }
        results.into_iter().find_map(Result::err).map_or(Ok(()), Err)
    }
}
