//! A replica backed by an engine in this process.

use crate::Coordinated;
use crate::replica::{
    BATCH_BYTES, KeyPage, LIST_PAGE_BYTES, PageBuilder, answered, batch_weight, deferred,
    map_answer,
};
use crate::stripe;
use crate::syncer::Syncer;
use crate::{Durability, Replica, ReplicaError, ReplicaFuture};
use bytes::Bytes;
use halka_store::{
    Engine, HashRange, HintKind, HintStore, NodeId, Record, StoreError, Stored, SyncToken, Write,
    entry_digest,
};
use std::sync::Arc;

/// Operation counters, for hot-spot reports.
#[derive(Debug, Default)]
pub(crate) struct OpCounters {
    pub reads: stripe::Counter,
    pub writes: stripe::Counter,
    /// Single-key reads and writes: what clients' requests cause here, as opposed to the
    /// batches anti-entropy and hint delivery send.
    pub foreground: stripe::Counter,
}

#[derive(Debug, Clone)]
pub struct LocalReplica {
    id: NodeId,
    /// The actor id in the dots of writes this replica coordinates: `id` unless set by
    /// [`LocalReplica::with_actor`].
    actor: NodeId,
    engine: Arc<dyn Engine>,
    ops: Arc<OpCounters>,
    /// Started on the first durable write (it needs a runtime).
    syncer: Arc<std::sync::OnceLock<Syncer>>,
    /// Whether coordinating writes let other ready tasks write before flushing.
    share_flushes: bool,
    /// Where hints kept as a stand-in for another owner go; `None` refuses to stand in.
    hints: Option<Arc<dyn HintStore>>,
    /// The node's partition transfers, whose progress peers ask about.
    transfers: Option<Arc<crate::Transfers>>,
    /// The node's membership, which answers peers' membership requests. Weak: the
    /// membership holds the replicas of every member, this one included.
    membership: Arc<std::sync::OnceLock<std::sync::Weak<crate::Membership>>>,
}

impl LocalReplica {
    #[must_use]
    pub fn new(id: NodeId, engine: Arc<dyn Engine>) -> Self {
        Self {
            actor: id.clone(),
            id,
            engine,
            ops: Arc::default(),
            syncer: Arc::default(),
            share_flushes: false,
            hints: None,
            transfers: None,
            membership: Arc::default(),
        }
    }

    /// Answers peers' questions about this node's partition transfers from `transfers`.
    #[must_use]
    pub fn with_transfers(mut self, transfers: Arc<crate::Transfers>) -> Self {
        self.transfers = Some(transfers);
        self
    }

    /// Answers peers' membership requests from `membership` (set once).
    pub fn serve_membership(&self, membership: &Arc<crate::Membership>) {
        let _ = self.membership.set(Arc::downgrade(membership));
    }

    /// Lets this replica stand in for other owners, keeping what they miss in `hints`
    /// (the node's hint store, which its handoff delivers from).
    #[must_use]
    pub fn with_hints(mut self, hints: Arc<dyn HintStore>) -> Self {
        self.hints = Some(hints);
        self
    }

    /// Numbers the writes this replica coordinates as `actor` rather than as its node id.
    /// A node whose store may have lost dots it issued (a lost disk, a crash before the
    /// journal was synced) must take an actor it never used: see `halka::incarnation`.
    #[must_use]
    pub fn with_actor(mut self, actor: NodeId) -> Self {
        self.actor = actor;
        self
    }

    /// Lets the writes this replica coordinates share journal flushes: they wait for the
    /// syncer task, which flushes once the other tasks ready on its worker have run — on a
    /// node serving many clients, mostly other coordinating writes — so one flush covers
    /// them all. For a node whose coordinating writes are awaited alongside remote
    /// replicas (a network round trip), which hides the pause; in-process replicas answer
    /// sooner, and the coordinator would then hand the paused wait to the background.
    #[must_use]
    pub fn with_shared_flushes(mut self) -> Self {
        self.share_flushes = true;
        self
    }

    #[must_use]
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// (reads, writes) served so far.
    #[must_use]
    pub fn op_counts(&self) -> (u64, u64) {
        (self.ops.reads.total(), self.ops.writes.total())
    }

    /// Single-key reads and writes served so far: the load clients put on this replica
    /// (what repairs back off from, see `RepairBudget`).
    #[must_use]
    pub fn foreground_ops(&self) -> u64 {
        self.ops.foreground.total()
    }

    /// Runs `op` inline: reads and deferred writes do not wait for the disk.
    fn inline<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Engine) -> Result<T, StoreError>,
    ) -> Result<T, ReplicaError> {
        op(self.engine.as_ref()).map_err(store_error)
    }

    /// Resolves when the write behind `token` is durable. fsyncs run on the blocking pool,
    /// one at a time per engine, each covering every write waiting for it (see `syncer`).
    /// Otherwise the wait (a journal buffer flush) runs when the future is first polled,
    /// not now: a caller that applies several writes before polling any — the RPC server
    /// with a batch of frames — flushes once for all of them.
    fn durable(&self, token: Option<SyncToken>) -> ReplicaFuture<Durability> {
        self.durable_with(token, false)
    }

    /// How durable this replica's writes are once [`LocalReplica::durable`] resolves.
    fn durability(&self) -> Durability {
        if self.engine.syncs_each_write() { Durability::Synced } else { Durability::Buffered }
    }

    /// [`LocalReplica::durable`], through the syncer task even when waiting does not block
    /// when `shared` (see [`LocalReplica::with_shared_flushes`]).
    fn durable_with(&self, token: Option<SyncToken>, shared: bool) -> ReplicaFuture<Durability> {
        let durability = self.durability();
        let Some(token) = token else {
            return answered(Ok(durability));
        };
        if !self.engine.is_blocking() && !shared {
            let engine = Arc::clone(&self.engine);
            return deferred(async move {
                engine.wait_durable(token).map_err(store_error)?;
                Ok(durability)
            });
        }
        let syncers = Arc::clone(&self.syncer);
        let engine = Arc::clone(&self.engine);
        deferred(async move {
            let syncer = syncers.get_or_init(|| Syncer::start(engine));
            syncer.wait(token).await.map_err(ReplicaError::Storage)?;
            Ok(durability)
        })
    }
}

fn store_error(e: StoreError) -> ReplicaError {
    match e {
        StoreError::Limit(l) => ReplicaError::Rejected(l.to_string()),
        StoreError::Invalid(i) => ReplicaError::Rejected(i.to_string()),
        e @ (StoreError::DiskFull { .. } | StoreError::OutOfSpace(_)) => {
            ReplicaError::NoSpace(e.to_string())
        }
        other => ReplicaError::Storage(other.to_string()),
    }
}

impl Replica for LocalReplica {
    fn id(&self) -> &NodeId {
        &self.id
    }

    fn prefetch(&self, key: &[u8]) {
        self.engine.prefetch(key);
    }

    fn coordinate_write(&self, key: &Bytes, write: &Write) -> ReplicaFuture<Coordinated> {
        let applied = self.coordinate_write_deferred(key, write);
        deferred(async move {
            let (coordinated, durable) = applied.await?;
            durable.await?;
            Ok(coordinated)
        })
    }

    fn coordinate_write_deferred(
        &self,
        key: &Bytes,
        write: &Write,
    ) -> ReplicaFuture<(Coordinated, ReplicaFuture<Durability>)> {
        self.ops.writes.increment();
        self.ops.foreground.increment();
        let applied = self.inline(|e| e.apply_write_deferred(key, &self.actor, write));
        let result = applied.map(|(record, outcome, token)| {
            (Coordinated { record, outcome }, self.durable_with(token, self.share_flushes))
        });
        answered(result)
    }

    fn merge(&self, key: &Bytes, record: &Arc<Record>) -> ReplicaFuture<Durability> {
        self.ops.writes.increment();
        self.ops.foreground.increment();
        match self.inline(|e| e.merge_deferred(key, record)) {
            Ok(token) => self.durable(token),
            Err(e) => answered(Err(e)),
        }
    }

    fn get(&self, key: &Bytes) -> ReplicaFuture<Option<Arc<Record>>> {
        self.ops.reads.increment();
        self.ops.foreground.increment();
        answered(self.inline(|e| e.get(key)))
    }

    fn scan_range(&self, range: HashRange) -> ReplicaFuture<Vec<(Bytes, Arc<Record>)>> {
        self.scan_with(range, |k, r| (Bytes::copy_from_slice(k), r))
    }

    fn read_range(&self, range: HashRange) -> ReplicaFuture<KeyPage> {
        self.on_blocking_pool(move |engine| {
            let mut page = PageBuilder::new(BATCH_BYTES);
            engine.scan_range(range, &mut |k, r| page.offer(k, r))?;
            Ok(page.finish())
        })
    }

    fn drop_ranges(&self, ranges: Vec<HashRange>) -> ReplicaFuture<u64> {
        self.on_blocking_pool(move |engine| {
            let mut dropped = 0;
            for range in ranges {
                let mut keys = Vec::new();
                engine.scan_range(range, &mut |key, _| {
                    keys.push(key.to_vec());
                    std::ops::ControlFlow::Continue(())
                })?;
                for key in keys {
                    // The removal raises the engine's counter floor past the record's
                    // dots, as for a collected tombstone.
                    dropped += u64::from(engine.remove_if(&key, &mut |_| true)?);
                }
            }
            Ok(dropped)
        })
    }

    fn transfer_status(&self, version: u64) -> ReplicaFuture<crate::ChangePhase> {
        match &self.transfers {
            Some(t) => answered(Ok(t.phase(version))),
            None => answered(Err(ReplicaError::Rejected("this node runs no transfers".into()))),
        }
    }

    fn transfer_progress(&self) -> ReplicaFuture<crate::Progress> {
        match &self.transfers {
            Some(t) => answered(Ok(t.progress())),
            None => answered(Err(ReplicaError::Rejected("this node runs no transfers".into()))),
        }
    }

    fn membership(
        &self,
        request: crate::membership::MembershipRequest,
    ) -> ReplicaFuture<crate::membership::MembershipResponse> {
        let Some(membership) = self.membership.get().and_then(std::sync::Weak::upgrade) else {
            return answered(Err(ReplicaError::Rejected(
                "this node takes no part in membership".into(),
            )));
        };
        if !membership.store_blocks() {
            return answered(
                membership.handle(request).map_err(|e| ReplicaError::Rejected(e.to_string())),
            );
        }
        // Votes and installs are kept with an fsync before they are answered.
        let blocking = tokio::task::spawn_blocking(move || membership.handle(request));
        deferred(async move {
            match blocking.await {
                Ok(answer) => answer.map_err(|e| ReplicaError::Rejected(e.to_string())),
                Err(e) => Err(ReplicaError::Storage(e.to_string())),
            }
        })
    }

    fn list_keys(&self, range: HashRange) -> ReplicaFuture<KeyPage> {
        self.on_blocking_pool(move |engine| {
            let mut page = PageBuilder::new(LIST_PAGE_BYTES);
            engine.scan_range(range, &mut |k, r| page.offer(k, Arc::new(r.without_values())))?;
            Ok(page.finish())
        })
    }

    fn digests(&self, range: HashRange, bits: u32) -> ReplicaFuture<Vec<u64>> {
        let Some(tree) = self.engine.digests() else {
            return answered(Err(ReplicaError::Rejected("this node keeps no digests".into())));
        };
        answered(tree.digests(range, bits).map_err(|e| ReplicaError::Rejected(e.to_string())))
    }

    fn key_digests(&self, range: HashRange) -> ReplicaFuture<Vec<(Bytes, u64)>> {
        if self.engine.digests().is_none() {
            return answered(Err(ReplicaError::Rejected("this node keeps no digests".into())));
        }
        self.scan_with(range, |k, r| (Bytes::copy_from_slice(k), entry_digest(k, &r)))
    }

    fn get_many(&self, keys: Vec<Bytes>) -> ReplicaFuture<Vec<Option<Arc<Record>>>> {
        self.ops.reads.increment();
        let mut out = Vec::with_capacity(keys.len());
        let mut bytes = 0;
        for key in &keys {
            if bytes >= BATCH_BYTES {
                break;
            }
            match self.inline(|e| e.get(key)) {
                Ok(record) => {
                    bytes += record.as_ref().map_or(0, |r| batch_weight(key, r));
                    out.push(record);
                }
                Err(e) => return answered(Err(e)),
            }
        }
        answered(Ok(out))
    }

    fn keep_hint(
        &self,
        owner: &NodeId,
        key: &Bytes,
        record: &Arc<Record>,
    ) -> ReplicaFuture<Durability> {
        let Some(hints) = &self.hints else {
            return answered(Err(ReplicaError::Rejected("this node keeps no hints".into())));
        };
        if owner == &self.id {
            return answered(Err(ReplicaError::Rejected(
                "a node cannot stand in for itself".into(),
            )));
        }
        if let Err(e) = self.engine.limits().check_key(key) {
            return answered(Err(store_error(StoreError::Limit(e))));
        }
        // A stand-in's hint is one of the write's W copies: never evicted, so refused when
        // there is no room (the coordinator then asks the next stand-in).
        match hints.put(owner, key, record, HintKind::Counted) {
            Ok(Stored::Kept { evicted }) => {
                metrics::counter!(crate::telemetry::HINTS_DROPPED).increment(evicted);
            }
            Ok(Stored::Dropped) => {
                return answered(Err(ReplicaError::Rejected(format!(
                    "hints for {owner} are at their bound"
                ))));
            }
            Err(e) => return answered(Err(store_error(e))),
        }
        metrics::counter!(crate::telemetry::HINTS_STORED).increment(1);
        let durability = self.durability();
        if !self.engine.is_blocking() {
            return answered(Ok(durability));
        }
        // Under `always` the acknowledgement counts towards W, so the hint must be on disk:
        // it shares the engine's journal.
        let engine = Arc::clone(&self.engine);
        deferred(async move {
            tokio::task::spawn_blocking(move || engine.flush())
                .await
                .map_err(|e| ReplicaError::Storage(format!("storage task failed: {e}")))?
                .map_err(store_error)?;
            Ok(durability)
        })
    }

    fn hinted(&self, keys: Vec<Bytes>) -> ReplicaFuture<Vec<bool>> {
        let Some(hints) = &self.hints else {
            // A replica that keeps no hints holds none.
            return answered(Ok(vec![false; keys.len()]));
        };
        let flags: Result<Vec<bool>, StoreError> =
            keys.iter().map(|k| hints.holds_any(k)).collect();
        answered(flags.map_err(store_error))
    }

    fn merge_many(&self, entries: Vec<(Bytes, Arc<Record>)>) -> ReplicaFuture<()> {
        self.ops.writes.increment();
        // Every merge is applied before any durability wait, so one flush covers them all.
        let mut last = None;
        for (key, record) in &entries {
            match self.inline(|e| e.merge_deferred(key, record)) {
                Ok(token) => last = token.or(last),
                Err(e) => return answered(Err(e)),
            }
        }
        map_answer(self.durable(last), |_| ())
    }
}

impl LocalReplica {
    /// Scans `range`, mapping each entry, on the blocking pool when the engine blocks.
    fn scan_with<T: Send + 'static>(
        &self,
        range: HashRange,
        map: impl Fn(&[u8], Arc<Record>) -> T + Send + 'static,
    ) -> ReplicaFuture<Vec<T>> {
        self.on_blocking_pool(move |engine| {
            let mut out = Vec::new();
            engine.scan_range(range, &mut |k, r| {
                out.push(map(k, r));
                std::ops::ControlFlow::Continue(())
            })?;
            Ok(out)
        })
    }

    /// Runs `op` on the blocking pool when the engine blocks (a disk), inline otherwise.
    fn on_blocking_pool<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn Engine) -> Result<T, StoreError> + Send + 'static,
    ) -> ReplicaFuture<T> {
        let engine = Arc::clone(&self.engine);
        let run = move || op(engine.as_ref()).map_err(store_error);
        if !self.engine.is_blocking() {
            return answered(run());
        }
        deferred(async move {
            tokio::task::spawn_blocking(run)
                .await
                .map_err(|e| ReplicaError::Storage(format!("storage task failed: {e}")))?
        })
    }
}
