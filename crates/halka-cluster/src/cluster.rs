//! The embedded cluster: every replica in this process, behind the same coordinator the
//! networked server uses. This is the seed project's "Toy DynamoDB", API and all.

use crate::view::View;
use crate::{
    ClusterError, Coordinator, CoordinatorConfig, GetResult, LocalReplica, PutResult, ReadFanout,
    Replica,
};
use bytes::Bytes;
use halka_ring::{Layout, Member};
use halka_store::{
    Engine, FjallEngine, FjallOptions, HashRange, Limits, MemoryEngine, NodeId, SyncPolicy,
    VersionVector,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which engine each embedded node gets.
#[derive(Debug, Clone, Default)]
pub enum EngineKind {
    #[default]
    Memory,
    /// One fjall database per node under `dir/<node id>`.
    Fjall { dir: PathBuf, sync: SyncPolicy },
}

/// Wraps each node's local replica, e.g. in a [`crate::FaultyReplica`] for tests.
pub type ReplicaWrapper = Arc<dyn Fn(LocalReplica) -> Arc<dyn Replica> + Send + Sync>;

/// Builds a [`Cluster`]. Defaults: N=3, 4,096 partitions, memory engine, 1 s replica
/// deadline, default size limits.
#[derive(Clone)]
pub struct ClusterBuilder {
    config: CoordinatorConfig,
    partitions: u32,
    engine: EngineKind,
    wrapper: Option<ReplicaWrapper>,
    clock: Option<fn() -> u64>,
}

impl std::fmt::Debug for ClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBuilder")
            .field("config", &self.config)
            .field("partitions", &self.partitions)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl ClusterBuilder {
    /// Replication factor N (default 3).
    #[must_use]
    pub fn replication(mut self, n: usize) -> Self {
        self.config.replication = n;
        self
    }

    /// Partitions in the layout (default [`halka_ring::DEFAULT_PARTITIONS`]; a power of
    /// two).
    #[must_use]
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    #[must_use]
    pub fn engine(mut self, engine: EngineKind) -> Self {
        self.engine = engine;
        self
    }

    /// Deadline for each replica call (default 1 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// Which replicas a read asks (default: all N, the seed's design).
    #[must_use]
    pub fn read_fanout(mut self, reads: ReadFanout) -> Self {
        self.config.reads = reads;
        self
    }

    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Cap on background work (stragglers and read repair) in flight.
    #[must_use]
    pub fn max_background(mut self, tasks: usize) -> Self {
        self.config.max_background = tasks;
        self
    }

    #[must_use]
    pub fn wrap_replicas(
        mut self,
        wrapper: impl Fn(LocalReplica) -> Arc<dyn Replica> + Send + Sync + 'static,
    ) -> Self {
        self.wrapper = Some(Arc::new(wrapper));
        self
    }

    /// Timestamp source for last-writer-wins (microseconds).
    #[must_use]
    pub fn clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = Some(clock);
        self
    }

    /// An empty cluster; add nodes with [`Cluster::add_node`].
    ///
    /// # Errors
    /// A replication factor out of range.
    pub fn build(self) -> Result<Cluster, ClusterError> {
        let max = halka_ring::MAX_REPLICAS;
        if !(1..=max).contains(&self.config.replication) {
            return Err(ClusterError::Config(format!(
                "replication factor {} is outside the allowed range 1..={max}",
                self.config.replication
            )));
        }
        let view = View::new(None, Vec::new(), self.config.replication);
        let mut coordinator = Coordinator::new(view, self.config);
        if let Some(clock) = self.clock {
            coordinator = coordinator.with_clock(crate::Clock::new(clock));
        }
        Ok(Cluster {
            coordinator: Arc::new(coordinator),
            partitions: self.partitions,
            engine: self.engine,
            wrapper: self.wrapper,
            nodes: tokio::sync::Mutex::new(BTreeMap::new()),
            locals: parking_lot::RwLock::new(BTreeMap::new()),
        })
    }
}

/// Per-node figures, for spotting hot spots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    pub id: String,
    pub keys: u64,
    pub reads: u64,
    pub writes: u64,
}

struct Node {
    member: Member,
    replica: Arc<dyn Replica>,
}

/// An embedded cluster.
pub struct Cluster {
    coordinator: Arc<Coordinator>,
    partitions: u32,
    engine: EngineKind,
    wrapper: Option<ReplicaWrapper>,
    /// Membership. An async mutex because a change waits for in-flight requests and moves
    /// data; it serialises changes and is never touched by reads or writes.
    nodes: tokio::sync::Mutex<BTreeMap<String, Node>>,
    /// Local replicas by id, for statistics.
    locals: parking_lot::RwLock<BTreeMap<String, LocalReplica>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("view_epoch", &self.coordinator.view().epoch()).finish()
    }
}

impl Cluster {
    #[must_use]
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            config: CoordinatorConfig::default(),
            partitions: halka_ring::DEFAULT_PARTITIONS,
            engine: EngineKind::Memory,
            wrapper: None,
            clock: None,
        }
    }

    #[must_use]
    pub fn coordinator(&self) -> &Arc<Coordinator> {
        &self.coordinator
    }

    /// Adds a node with weight 1 in the default zone.
    ///
    /// # Errors
    /// The name is taken ([`ClusterError::DuplicateNode`]) or invalid.
    pub async fn add_node(&self, name: &str) -> Result<(), ClusterError> {
        self.add_member(Member::new(name)).await
    }

    /// Adds a node, moves to it the data it now replicates, and returns once it serves.
    /// Safe to call concurrently: each name ends up in the cluster exactly once.
    ///
    /// # Errors
    /// The name is taken ([`ClusterError::DuplicateNode`]) or invalid, or the engine cannot
    /// be opened.
    pub async fn add_member(&self, member: Member) -> Result<(), ClusterError> {
        // Cheap check against the current view first (the seed's double-checked locking):
        // most duplicates never touch the membership lock.
        if self.coordinator.view().members().iter().any(|m| m.id == member.id) {
            return Err(ClusterError::DuplicateNode(member.id));
        }
        let mut nodes = self.nodes.lock().await;
        if nodes.contains_key(&member.id) {
            return Err(ClusterError::DuplicateNode(member.id));
        }
        if member.id.is_empty() {
            return Err(ClusterError::Config("node name must not be empty".into()));
        }
        let local = LocalReplica::new(NodeId::new(&member.id), self.open_engine(&member.id)?);
        let replica = match &self.wrapper {
            Some(wrap) => wrap(local.clone()),
            None => Arc::new(local.clone()),
        };
        let mut next: BTreeMap<String, Node> =
            nodes.iter().map(|(k, n)| (k.clone(), n.clone_node())).collect();
        next.insert(member.id.clone(), Node { member: member.clone(), replica });
        self.install(&next).await?;
        *nodes = next;
        self.locals.write().insert(member.id, local);
        Ok(())
    }

    /// Removes a node, first handing its data to the nodes that take over its keys.
    ///
    /// # Errors
    /// [`ClusterError::UnknownNode`] if it is not a member.
    pub async fn remove_node(&self, name: &str) -> Result<(), ClusterError> {
        let mut nodes = self.nodes.lock().await;
        if !nodes.contains_key(name) {
            return Err(ClusterError::UnknownNode(name.to_string()));
        }
        let next: BTreeMap<String, Node> = nodes
            .iter()
            .filter(|(k, _)| k.as_str() != name)
            .map(|(k, n)| (k.clone(), n.clone_node()))
            .collect();
        self.install(&next).await?;
        *nodes = next;
        self.locals.write().remove(name);
        Ok(())
    }

    /// Swaps in a view over `nodes`, waits for requests on the old view to drain, then
    /// copies every record to the replicas that newly hold it.
    async fn install(&self, nodes: &BTreeMap<String, Node>) -> Result<(), ClusterError> {
        let old = self.coordinator.view();
        let members: Vec<Member> = nodes.values().map(|n| n.member.clone()).collect();
        let replication = self.coordinator.config().replication;
        let layout = if members.is_empty() {
            None
        } else {
            Some(Layout::active(old.epoch() + 1, &members, replication, self.partitions)?)
        };
        // BTreeMap order is id order, which is the layout's member order.
        let replicas: Vec<Arc<dyn Replica>> = nodes.values().map(|n| n.replica.clone()).collect();
        let new = View::new(layout, replicas, replication);
        let old = self.coordinator.swap_view(new);
        old.retire().await;
        let new = self.coordinator.view();
        transfer(&old, &new, self.coordinator.config().timeout).await
    }

    fn open_engine(&self, id: &str) -> Result<Arc<dyn Engine>, ClusterError> {
        let limits = self.coordinator.config().limits;
        Ok(match &self.engine {
            EngineKind::Memory => Arc::new(MemoryEngine::new(limits)),
            EngineKind::Fjall { dir, sync } => Arc::new(
                FjallEngine::open(FjallOptions {
                    sync: *sync,
                    limits,
                    ..FjallOptions::new(dir.join(id))
                })
                .map_err(|e| ClusterError::Storage(e.to_string()))?,
            ),
        })
    }

    /// Writes `value` under `key`, replacing what the coordinating replica holds, and waits
    /// for `w` acknowledgements.
    ///
    /// # Errors
    /// See [`Coordinator::write`].
    pub async fn put(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        w: usize,
    ) -> Result<PutResult, ClusterError> {
        self.coordinator.write(key.into(), Some(value.into()), None, w).await
    }

    /// Writes `value` replacing exactly the versions `context` covers (from an earlier
    /// read); versions it has not seen survive as siblings.
    ///
    /// # Errors
    /// See [`Coordinator::write`].
    pub async fn put_with_context(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        context: VersionVector,
        w: usize,
    ) -> Result<PutResult, ClusterError> {
        self.coordinator.write(key.into(), Some(value.into()), Some(context), w).await
    }

    /// Deletes `key` (writes a tombstone) and waits for `w` acknowledgements.
    ///
    /// # Errors
    /// See [`Coordinator::write`].
    pub async fn delete(&self, key: impl Into<Bytes>, w: usize) -> Result<PutResult, ClusterError> {
        self.coordinator.write(key.into(), None, None, w).await
    }

    /// Reads `key` from `r` replicas.
    ///
    /// # Errors
    /// See [`Coordinator::get`].
    pub async fn get(&self, key: impl Into<Bytes>, r: usize) -> Result<GetResult, ClusterError> {
        self.coordinator.get(key.into(), r).await
    }

    /// Member ids, sorted.
    #[must_use]
    pub fn members(&self) -> Vec<String> {
        self.coordinator.view().members().iter().map(|m| m.id.clone()).collect()
    }

    /// Keys and operations per node, sorted by id.
    #[must_use]
    pub fn node_stats(&self) -> Vec<NodeStats> {
        self.locals
            .read()
            .iter()
            .map(|(id, local)| {
                let (reads, writes) = local.op_counts();
                NodeStats { id: id.clone(), keys: local.engine().key_count(), reads, writes }
            })
            .collect()
    }
}

impl Node {
    fn clone_node(&self) -> Node {
        Node { member: self.member.clone(), replica: Arc::clone(&self.replica) }
    }
}

/// Transfers walk each store in 2^8 ranges of the hash space.
const TRANSFER_CHUNK_BITS: u32 = 8;

/// Copies every record held under `old` to the replicas that hold its key under `new` but
/// did not under `old`. Merges are joins, so copying to a replica that already has newer
/// data loses nothing.
async fn transfer(old: &View, new: &View, timeout: Duration) -> Result<(), ClusterError> {
    if old.replicas().is_empty() || new.replicas().is_empty() {
        return Ok(());
    }
    // A range of the hash space at a time, so no step holds more than 1/256 of a store.
    for (source, range) in old
        .replicas()
        .iter()
        .flat_map(|s| HashRange::chunks(TRANSFER_CHUNK_BITS).map(move |r| (s, r)))
    {
        let records = match tokio::time::timeout(timeout * 30, source.scan_range(range)).await {
            Ok(Ok(records)) => records,
            // A source that cannot be read leaves its keys to read repair.
            Ok(Err(e)) => {
                tracing::warn!(node = %source.id(), error = %e, "cannot scan replica for transfer");
                continue;
            }
            Err(_) => continue,
        };
        for (key, record) in records {
            let before: Vec<&NodeId> =
                old.preference(&key).iter().map(|&i| old.replica(i).id()).collect();
            for &idx in new.preference(&key).iter() {
                let target = new.replica(idx);
                if before.contains(&target.id()) {
                    continue;
                }
                if let Ok(Err(e)) = tokio::time::timeout(timeout, target.merge(&key, &record)).await
                {
                    tracing::warn!(node = %target.id(), error = %e, "transfer merge failed");
                }
            }
        }
    }
    Ok(())
}
