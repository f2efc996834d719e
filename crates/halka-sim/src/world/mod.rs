//! The simulated cluster: nodes with disks that survive or not, a network that delays,
//! loses and cuts messages (one way or both), and one random source for every choice.
//!
//! Nodes run the real coordinator, local replica, digest trees, hint store, handoff and
//! anti-entropy. Between nodes, every call is encoded as the RPC message a node would
//! send, carried by [`SimLink`] after a drawn delay, decoded and answered by the real
//! request handler — only the socket is simulated.

use crate::history::{Event, History, Version};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use halka_cluster::Coordinated;
use halka_cluster::membership::{MembershipStore, MemoryStore, Saved};
use halka_cluster::rpc::{self, Envelope, MessageReplica, Request, Response, Transport};
use halka_cluster::settings::{MemorySettings, Settings as ClusterSettings};
use halka_cluster::stream::MemoryCheckpoints;
use halka_cluster::{
    AntiEntropyConfig, AssembledNode, Clock, CollectorConfig, Coordinator, CoordinatorConfig,
    Durability, Handoff, HandoffConfig, LocalReplica, NodeSpec, ReadFanout, Replica, ReplicaError,
    ReplicaFuture, TransferConfig, TransferSpec,
};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member};
use halka_store::{
    Dot, Engine, HashRange, HintStore, MemoryEngine, MemoryHints, NodeId, Record, TrackedEngine,
    Tracking, Write,
};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod layouts;
mod recording;

use recording::Recording;

/// How the simulated machinery behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    pub nodes: usize,
    pub handoff: bool,
    pub anti_entropy: bool,
    /// Collect tombstones (after [`TOMBSTONE_GRACE`]).
    pub collect_tombstones: bool,
    /// Sloppy quorum: members beyond the owners stand in for owners that fail.
    pub stand_ins: bool,
    /// Test-only fault: tombstones are removed once past the grace, without asking the
    /// other owners (a timer alone). The checker must catch the resurrections.
    pub reckless_collection: bool,
    /// Test-only fault: a node keeps its actor across a crash, as halka did before
    /// incarnations (Riak's KV679). The checker must catch it.
    pub reuse_actor_after_crash: bool,
    /// Test-only fault: hash fields are written outside their head's lifetimes.
    pub stray_lifetimes: bool,
    /// Clients also increment the counter keys.
    pub counters: bool,
    /// Clients also write, remove and read hashes.
    pub collections: bool,
    /// Each node's bound on the hints it keeps for one owner, in bytes.
    pub hint_bytes_per_owner: u64,
    /// The nodes keep the cluster's shared settings (users), compared between them in
    /// rounds. Off in random runs: its extra messages at the same instants as others'
    /// meet tokio's `select!`, which picks among ready branches with a per-runtime
    /// random seed, and a run would no longer replay byte for byte.
    pub shared_settings: bool,
}

/// The hint bound of simulated nodes, unless a scenario shrinks it.
pub const HINT_BYTES_PER_OWNER: u64 = 64 << 20;

/// The test-only collector of [`Settings::reckless_collection`]: removes every tombstone
/// older than the grace, whoever else still holds what.
async fn collect_recklessly(
    engine: Arc<crate::collecting::Collecting>,
    clock: Clock,
    stop: CancellationToken,
) {
    let Some(index) = engine.tombstones().cloned() else { return };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let cutoff = clock.now_us().saturating_sub(TOMBSTONE_GRACE.as_micros() as u64);
        for key in index.due(cutoff, u64::MAX, 1024) {
            let _ = engine.remove_if(&key, &mut |r| r.deleted_at().is_some());
        }
    }
}

/// The tombstone grace in simulations: short enough that keys deleted early in the
/// chaos are collected while faults still come and go.
pub const TOMBSTONE_GRACE: Duration = Duration::from_secs(2);

/// What a node keeps across a crash when its disk survives.
#[derive(Debug)]
struct Disk {
    engine: Arc<MemoryEngine>,
    hints: Arc<MemoryHints>,
    /// The node's membership state: its installed layouts and its votes.
    membership: Arc<MemoryStore>,
    /// The cluster's shared settings as the node kept them.
    settings: Arc<MemorySettings>,
}

impl Disk {
    /// The disk a node of the static member list starts the run with: it has its
    /// configuration's layout (version 1), as a cluster installed before the run began.
    fn configured(hint_bytes_per_owner: u64, members: &[Member]) -> Self {
        let disk = Self::new(hint_bytes_per_owner);
        let saved = Saved { layouts: vec![layouts::static_spec(members)], ..Saved::default() };
        disk.membership.save(&saved).expect("a store in memory keeps anything");
        disk
    }

    fn new(hint_bytes_per_owner: u64) -> Self {
        Self {
            engine: Arc::default(),
            hints: Arc::new(MemoryHints::new(hint_bytes_per_owner)),
            membership: Arc::default(),
            settings: Arc::default(),
        }
    }
}

/// A node's process while it runs.
struct Running {
    coordinator: Arc<Coordinator>,
    replica: Arc<dyn Replica>,
    handoff: Option<Arc<Handoff>>,
    membership: Option<Arc<halka_cluster::Membership>>,
    settings: Option<Arc<ClusterSettings>>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

struct Node {
    id: NodeId,
    disk: Mutex<Disk>,
    running: Mutex<Option<Running>>,
    /// Bumped on every start: messages sent by an earlier incarnation are dropped.
    incarnation: Mutex<u64>,
    /// Starts so far, for actor ids.
    starts: Mutex<u64>,
    /// How far this node's wall clock is off (microseconds, either way).
    skew_us: i64,
    /// While the disk is slow: the longest an acknowledgement waits for it.
    slow_disk: Mutex<Option<Duration>>,
    /// While the disk is full: the chance that a write fails only once applied (see
    /// `Recording::full_disk`).
    full_disk: Mutex<Option<f64>>,
}

pub struct World {
    pub settings: Settings,
    rng: Mutex<SmallRng>,
    nodes: Vec<Node>,
    members: Vec<Member>,
    /// The active layouts, oldest first: one, or two while a change is under way (see
    /// `membership`). Nodes started meanwhile start with them.
    layouts: Mutex<Vec<Layout>>,
    /// Directed links that drop every message: (from, to).
    cuts: Mutex<BTreeSet<(usize, usize)>>,
    /// Chance that one message is lost.
    loss: Mutex<f64>,
    history: Mutex<History>,
    started: Instant,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").field("nodes", &self.nodes.len()).finish_non_exhaustive()
    }
}

/// Replication factor of the simulated cluster.
pub const N: usize = 3;

/// Node clocks are off by up to this much either way: well within half the tombstone
/// grace, which is what collection assumes (see DESIGN.md).
const MAX_SKEW_US: i64 = 300_000;

impl World {
    pub fn new(seed: u64, settings: Settings) -> Arc<Self> {
        let members: Vec<Member> = (1..=settings.nodes)
            .map(|i| Member { id: format!("n{i}"), zone: String::new(), weight: 1 })
            .collect();
        let mut rng = SmallRng::seed_from_u64(seed);
        let first = Layout::active(1, &members, N, DEFAULT_PARTITIONS).expect("a layout");
        let nodes = members
            .iter()
            .map(|m| Node {
                id: NodeId::new(&m.id),
                disk: Mutex::new(Disk::configured(settings.hint_bytes_per_owner, &members)),
                running: Mutex::new(None),
                incarnation: Mutex::new(0),
                starts: Mutex::new(0),
                skew_us: rng.random_range(-MAX_SKEW_US..=MAX_SKEW_US),
                slow_disk: Mutex::new(None),
                full_disk: Mutex::new(None),
            })
            .collect();
        Arc::new(Self {
            settings,
            rng: Mutex::new(rng),
            nodes,
            members,
            layouts: Mutex::new(vec![first]),
            cuts: Mutex::default(),
            loss: Mutex::new(0.01),
            history: Mutex::default(),
            started: Instant::now(),
        })
    }

    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn node_id(&self, i: usize) -> &NodeId {
        &self.nodes[i].id
    }

    /// Simulated microseconds since the start.
    pub fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub fn record(&self, event: Event) {
        self.history.lock().push(event);
    }

    pub fn history(&self) -> History {
        self.history.lock().clone()
    }

    /// A number in `range`, from the seed.
    pub fn draw(&self, range: std::ops::Range<u64>) -> u64 {
        self.rng.lock().random_range(range)
    }

    pub fn chance(&self, p: f64) -> bool {
        self.rng.lock().random_bool(p.clamp(0.0, 1.0))
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].running.lock().is_some()
    }

    /// Node `i`'s copy of the cluster's settings, while it runs.
    pub fn cluster_settings(&self, i: usize) -> Option<Arc<ClusterSettings>> {
        self.nodes[i].running.lock().as_ref().and_then(|r| r.settings.clone())
    }

    pub fn coordinator(&self, i: usize) -> Option<Arc<Coordinator>> {
        self.nodes[i].running.lock().as_ref().map(|r| Arc::clone(&r.coordinator))
    }

    /// Starts node `i` on its disk: a fresh actor (unless the test-only switch says
    /// otherwise), digests rebuilt from the store, hints and anti-entropy running.
    pub fn start(self: &Arc<Self>, i: usize) {
        let node = &self.nodes[i];
        let incarnation = {
            let mut inc = node.incarnation.lock();
            *inc += 1;
            *inc
        };
        let starts = {
            let mut s = node.starts.lock();
            *s += 1;
            *s
        };
        let (engine, hints): (Arc<dyn Engine>, Arc<MemoryHints>) = {
            let disk = node.disk.lock();
            let engine: Arc<dyn Engine> = Arc::clone(&disk.engine) as Arc<dyn Engine>;
            (engine, Arc::clone(&disk.hints))
        };
        let tracking = Tracking {
            digests: self.settings.anti_entropy,
            tombstones: self.settings.collect_tombstones,
        };
        let engine: Arc<dyn Engine> =
            Arc::new(TrackedEngine::build(engine, tracking).expect("a memory engine scans"));
        let generation = if self.settings.reuse_actor_after_crash { 1 } else { starts };
        let actor = NodeId::new(&format!("{}#{generation}", node.id));
        let collecting = Arc::new(crate::collecting::Collecting {
            inner: Arc::clone(&engine),
            node: node.id.to_string(),
            world: Arc::downgrade(self),
        });
        let spec = self.spec(i, actor, engine, hints, Arc::clone(&collecting) as Arc<dyn Engine>);
        let assembled = spec
            .assemble(|m| {
                let j = self.nodes.iter().position(|n| n.id.as_str() == m.id).expect("a member");
                Arc::new(MessageReplica::with_transport(SimLink {
                    from: i,
                    to: j,
                    incarnation,
                    peer: self.nodes[j].id.clone(),
                    world: Arc::clone(self),
                }))
            })
            .expect("every member is reachable");
        let stop = CancellationToken::new();
        let mut tasks = assembled.services.spawn(&assembled.coordinator.view_handle(), &stop);
        if self.settings.reckless_collection {
            tasks.push(tokio::spawn(collect_recklessly(collecting, self.clock(i), stop.clone())));
        }
        // A node that lost its disk asks the others for the cluster's layout first.
        if let Some(m) = assembled.services.membership.clone() {
            tasks.push(tokio::spawn(async move { m.catch_up_at_start().await }));
        }
        let AssembledNode { coordinator, replica, services, .. } = assembled;
        let (handoff, membership, settings) =
            (services.handoff, services.membership, services.settings);
        *node.running.lock() =
            Some(Running { coordinator, replica, handoff, membership, settings, stop, tasks });
    }

    /// What node `i` is assembled from: the server's wiring with the simulator's timings,
    /// its recorded local replica, and its engine as tombstone collection sees it.
    fn spec(
        self: &Arc<Self>,
        i: usize,
        actor: NodeId,
        engine: Arc<dyn Engine>,
        hints: Arc<MemoryHints>,
        collector_engine: Arc<dyn Engine>,
    ) -> NodeSpec {
        let timeout = Duration::from_millis(100);
        let grace = self.settings.collect_tombstones.then_some(TOMBSTONE_GRACE);
        let world = Arc::clone(self);
        let recording_actor = actor.clone();
        NodeSpec {
            id: self.nodes[i].id.clone(),
            actor,
            engine,
            hints: Arc::clone(&hints) as Arc<dyn HintStore>,
            layout: self.layout(),
            coordinator: CoordinatorConfig {
                replication: N,
                timeout,
                max_background: 4096,
                reads: ReadFanout::Quorum { hedge: Duration::from_millis(5) },
                tombstone_grace: grace,
                stand_ins: self.settings.stand_ins,
                ..CoordinatorConfig::default()
            },
            handoff: self.settings.handoff.then(|| HandoffConfig {
                interval: Duration::from_millis(100),
                timeout,
                ..Default::default()
            }),
            anti_entropy: self.settings.anti_entropy.then(|| AntiEntropyConfig {
                interval: Duration::from_millis(20),
                timeout: Duration::from_millis(500),
                tombstone_grace: grace,
                ..AntiEntropyConfig::default()
            }),
            // The reckless collector of a test-only fault replaces the real one.
            collector: (!self.settings.reckless_collection).then(|| CollectorConfig {
                grace: TOMBSTONE_GRACE,
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(500),
                // Twice the longest deadline of a message between nodes.
                settle: Duration::from_secs(1),
                ..CollectorConfig::default()
            }),
            clock: self.clock(i),
            shared_flushes: false,
            serve_local: Some(Box::new(move |local| -> Arc<dyn Replica> {
                Arc::new(Recording { inner: local, actor: recording_actor, node: i, world })
            })),
            collector_engine: Some(collector_engine),
            transfers: Some(TransferSpec {
                config: TransferConfig {
                    deadline: Duration::from_millis(500),
                    retry: Duration::from_millis(100),
                    ..TransferConfig::default()
                },
                checkpoints: Arc::new(MemoryCheckpoints::default()),
                // The membership keeps the views a change moves the node to.
                keep: None,
            }),
            membership: Some(self.membership_spec(i)),
            gossip: Some(self.gossip_spec(i)),
            settings: self.settings.shared_settings.then(|| self.settings_spec(i)),
        }
    }

    /// Kills node `i`: its tasks stop, its messages in flight are lost, and its disk is
    /// kept or replaced by an empty one.
    pub fn crash(&self, i: usize, lose_disk: bool) {
        let node = &self.nodes[i];
        if let Some(running) = node.running.lock().take() {
            running.stop.cancel();
            for task in running.tasks {
                task.abort();
            }
        }
        // Messages from the old incarnation die with it.
        *node.incarnation.lock() += 1;
        if lose_disk {
            *node.disk.lock() = Disk::new(self.settings.hint_bytes_per_owner);
        }
    }

    pub fn cut(&self, from: usize, to: usize) {
        self.cuts.lock().insert((from, to));
    }

    /// Node `i`'s wall clock: simulated time, off by the node's skew.
    pub fn clock(&self, i: usize) -> Clock {
        let skew = self.nodes[i].skew_us;
        Clock::new(move || (crate::sim_clock_us() as i64 + skew).max(1) as u64)
    }

    /// How far each node's clock is off, in microseconds.
    pub fn skews(&self) -> Vec<i64> {
        self.nodes.iter().map(|n| n.skew_us).collect()
    }

    /// Makes node `i`'s disk slow (acknowledgements wait up to `max`), or fast again.
    pub fn set_slow_disk(&self, i: usize, max: Option<Duration>) {
        *self.nodes[i].slow_disk.lock() = max;
    }

    pub fn is_disk_slow(&self, i: usize) -> bool {
        self.nodes[i].slow_disk.lock().is_some()
    }

    /// How long node `i`'s next acknowledgement waits for its disk.
    fn disk_delay(&self, i: usize) -> Option<Duration> {
        let max = (*self.nodes[i].slow_disk.lock())?;
        let us = self.draw(0..max.as_micros() as u64 + 1);
        Some(Duration::from_micros(us))
    }

    /// Fills node `i`'s disk, or frees room on it again. Most writes are refused before
    /// they are applied; some fail only once applied (`Recording::full_disk`).
    pub fn set_disk_full(&self, i: usize, full: bool) {
        *self.nodes[i].full_disk.lock() = full.then_some(0.3);
    }

    /// Fills node `i`'s disk so that every write fails only once applied: what a journal
    /// write or fsync failing after the write reached memory does.
    pub fn set_disk_failing_after_apply(&self, i: usize) {
        *self.nodes[i].full_disk.lock() = Some(1.0);
    }

    pub fn is_disk_full(&self, i: usize) -> bool {
        self.nodes[i].full_disk.lock().is_some()
    }

    pub fn heal_disks(&self) {
        for node in &self.nodes {
            *node.slow_disk.lock() = None;
            *node.full_disk.lock() = None;
        }
    }

    pub fn heal_links(&self) {
        self.cuts.lock().clear();
    }

    pub fn set_loss(&self, p: f64) {
        *self.loss.lock() = p;
    }

    /// The record node `i` stores for `key`, read from its disk.
    pub fn stored(&self, i: usize, key: &[u8]) -> Option<Arc<Record>> {
        self.nodes[i].disk.lock().engine.get(key).expect("a memory engine reads")
    }

    /// Hints node `i` keeps, over all owners.
    pub fn hints_pending(&self, i: usize) -> u64 {
        let running = self.nodes[i].running.lock();
        running
            .as_ref()
            .and_then(|r| r.handoff.as_ref())
            .map_or(0, |h| h.pending().values().map(|s| s.hints).sum())
    }

    /// Stops every node (at the end of a run). Nodes' views hold links that hold the
    /// world: dropping the running nodes breaks that cycle, so a run frees its memory.
    pub fn stop_all(&self) {
        for node in &self.nodes {
            if let Some(running) = node.running.lock().take() {
                running.stop.cancel();
                for task in running.tasks {
                    task.abort();
                }
            }
        }
    }

    /// One leg of a message from `from` (incarnation `incarnation`) to `to`: waits the
    /// drawn delay; `None` when the message is lost (cut link, loss, or a sender that has
    /// crashed since).
    async fn leg(&self, from: usize, to: usize, incarnation: Option<u64>) -> Option<()> {
        let delay = self.draw(200..3_000);
        let lost = self.chance(*self.loss.lock());
        tokio::time::sleep(Duration::from_micros(delay)).await;
        let sender_alive =
            incarnation.is_none_or(|inc| *self.nodes[from].incarnation.lock() == inc);
        (!lost && sender_alive && !self.cuts.lock().contains(&(from, to))).then_some(())
    }

    /// Node `to`'s replica as reached over the simulated network from node `from`, as
    /// it is now (its messages stop if `from` crashes): for scenarios that drive a
    /// mechanism of their own between two nodes.
    pub fn link(self: &Arc<Self>, from: usize, to: usize) -> Arc<dyn Replica> {
        Arc::new(MessageReplica::with_transport(SimLink {
            from,
            to,
            incarnation: *self.nodes[from].incarnation.lock(),
            peer: self.nodes[to].id.clone(),
            world: Arc::clone(self),
        }))
    }

    fn live_replica(&self, i: usize) -> Option<(Arc<dyn Replica>, u64)> {
        let running = self.nodes[i].running.lock();
        let replica = Arc::clone(&running.as_ref()?.replica);
        Some((replica, *self.nodes[i].incarnation.lock()))
    }
}

/// The simulated network between two nodes, as one direction's sender sees it.
#[derive(Debug)]
struct SimLink {
    from: usize,
    to: usize,
    /// The sender's incarnation: when it crashes, its messages stop.
    incarnation: u64,
    peer: NodeId,
    world: Arc<World>,
}

impl Transport for SimLink {
    fn id(&self) -> &NodeId {
        &self.peer
    }

    fn call(&self, request: Request) -> BoxFuture<'static, Result<Response, ReplicaError>> {
        let (world, from, to, incarnation) =
            (Arc::clone(&self.world), self.from, self.to, self.incarnation);
        async move {
            let frame = rpc::encode(&Envelope { id: 0, body: request })
                .map_err(|e| ReplicaError::Rejected(e.to_string()))?;
            if world.leg(from, to, Some(incarnation)).await.is_none() {
                return futures::future::pending().await;
            }
            let Some((replica, serving)) = world.live_replica(to) else {
                // Nothing listens: refused at once, as a closed port is.
                return Err(ReplicaError::Unavailable("connection refused".into()));
            };
            let request = rpc::decode::<Request>(&frame).map_err(ReplicaError::Rejected)?;
            let response = rpc::handle(replica.as_ref(), 0, request.body).await;
            let frame = rpc::encode(&Envelope { id: 0, body: response })
                .map_err(|e| ReplicaError::Rejected(e.to_string()))?;
            if world.leg(to, from, Some(serving)).await.is_none() {
                return futures::future::pending().await;
            }
            if world.live_replica(from).is_none_or(|(_, inc)| inc != incarnation) {
                return futures::future::pending().await;
            }
            Ok(rpc::decode::<Response>(&frame).map_err(ReplicaError::Rejected)?.body)
        }
        .boxed()
    }
}
