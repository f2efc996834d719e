//! The wiring of a halka node: `build` assembles its state (`state::NodeState`: storage,
//! replicas, coordinator, background workers) from the configuration, and `run` serves it
//! on three listeners (Redis protocol, HTTP, internal RPC) with its background tasks.
//! `run` takes its listeners and a shutdown token, so the binary and the tests start
//! nodes the same way (tests bind port 0).

use crate::config::{EngineChoice, NodeConfig};
use crate::context_token::TokenKey;
use crate::incarnation::Incarnation;
use crate::state::{ClientCounters, NodeState};
use crate::telemetry;
use anyhow::Context;
use halka_cluster::rpc::{PeerAuth, RpcClientConfig, RpcServerConfig};
use halka_cluster::stream::{Checkpoints, FileCheckpoints, MemoryCheckpoints};
use halka_cluster::{
    AntiEntropyConfig, CollectorConfig, CoordinatorConfig, HandoffConfig, NodeSpec, TransferConfig,
    TransferSpec,
};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member};
use halka_store::{
    Engine, FjallEngine, FjallOptions, HintStore, MemoryEngine, MemoryHints, NodeId, TrackedEngine,
    Tracking,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The node's listeners, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// Plain Redis clients; `None` when `redis_addr` is empty (TLS only).
    pub redis: Option<TcpListener>,
    pub http: TcpListener,
    pub peer: TcpListener,
    /// Redis clients over TLS (`tls.redis_addr`), when configured.
    pub redis_tls: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses in `config`.
    ///
    /// # Errors
    /// An address is in use or not allowed.
    pub async fn bind(config: &NodeConfig) -> anyhow::Result<Self> {
        let bind = |addr: String, what: &'static str| async move {
            TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen for {what} on {addr}"))
        };
        Ok(Self {
            redis: match config.redis_addr.as_str() {
                "" => None,
                addr => Some(bind(addr.to_string(), "Redis clients").await?),
            },
            http: bind(config.http_addr.clone(), "HTTP").await?,
            peer: bind(config.peer_addr.clone(), "peers").await?,
            redis_tls: match &config.tls.redis_addr {
                Some(addr) => Some(bind(addr.clone(), "Redis clients over TLS").await?),
                None => None,
            },
        })
    }
}

/// The engine and the hint store beside it.
fn open_engine(config: &NodeConfig) -> anyhow::Result<(Arc<dyn Engine>, Arc<dyn HintStore>)> {
    let hint_bytes = config.handoff.max_mb_per_owner << 20;
    Ok(match config.storage.engine {
        EngineChoice::Memory => {
            (Arc::new(MemoryEngine::new(config.limits)), Arc::new(MemoryHints::new(hint_bytes)))
        }
        EngineChoice::Fjall => {
            let opening = || format!("opening data directory {}", config.data_dir.display());
            let engine = FjallEngine::open(FjallOptions {
                sync: config.storage.sync_policy(),
                limits: config.limits,
                cache_bytes: config.storage.cache_mb << 20,
                background_threads: (config.storage.background_threads > 0)
                    .then_some(config.storage.background_threads),
                min_free_bytes: config.storage.min_free_mb << 20,
                ..FjallOptions::new(&config.data_dir)
            })
            .with_context(opening)?;
            let hints = engine.hints(hint_bytes).with_context(opening)?;
            (Arc::new(engine), hints)
        }
    })
}

/// `engine` with the indexes kept over it that anti-entropy (a digest tree) and
/// tombstone collection (an index of deleted keys) need, when they are on.
fn with_indexes(config: &NodeConfig, engine: Arc<dyn Engine>) -> anyhow::Result<Arc<dyn Engine>> {
    let tracking =
        Tracking { digests: config.anti_entropy.enabled, tombstones: config.tombstones.enabled };
    if !tracking.digests && !tracking.tombstones {
        return Ok(engine);
    }
    let started = Instant::now();
    let tracked = TrackedEngine::build(engine, tracking).context("indexing the store")?;
    tracing::info!(
        keys = tracked.key_count(),
        tombstones = tracked.tombstones().map_or(0, |t| t.stats().pending),
        ms = started.elapsed().as_millis() as u64,
        "store indexed"
    );
    Ok(Arc::new(tracked))
}

/// Builds the node's state: engine, replicas for every member, placement and coordinator.
/// `config` must hold a secret (see `secret_file::with_secret`).
///
/// # Errors
/// The engine cannot be opened, the member list does not make a placement, or there is
/// no secret.
pub fn build(config: NodeConfig, redis_port: u16) -> anyhow::Result<Arc<NodeState>> {
    let tls = crate::tls::Tls::load(&config.tls)?;
    build_generation(config, redis_port, Lifetime::new(tls))
}

/// What outlives one generation of a node's state.
#[derive(Debug, Clone)]
struct Lifetime {
    started: Instant,
    storage_reopens: u64,
    /// The node's TLS, reloaded in place (see `Tls::watch`).
    tls: Option<Arc<crate::tls::Tls>>,
}

impl Lifetime {
    fn new(tls: Option<Arc<crate::tls::Tls>>) -> Self {
        Self { started: Instant::now(), storage_reopens: 0, tls }
    }
}

fn build_generation(
    config: NodeConfig,
    redis_port: u16,
    lifetime: Lifetime,
) -> anyhow::Result<Arc<NodeState>> {
    let (engine, hint_store) = open_engine(&config)?;
    let engine = with_indexes(&config, engine)?;
    let incarnation = Incarnation::begin(&config).context("starting this node's incarnation")?;
    let initial = crate::membership::layout::static_layout(&config);
    let layout = match &initial {
        Some(spec) => spec.layout()?,
        // Unused: a node waiting to be joined starts from its membership's empty view.
        None => Layout::active(0, &[Member::new(&config.node_id)], 1, DEFAULT_PARTITIONS)?,
    };
    let secret = config.secret().context("no cluster secret (see `secret_file::with_secret`)")?;
    // A node waiting to be joined lets in whoever holds the secret (the member joining
    // it); its membership restricts this to the layout's members once it has one.
    let auth = PeerAuth::new(
        NodeId::new(&config.node_id),
        &secret,
        initial.as_ref().map(|s| s.members.iter().map(|m| NodeId::new(&m.id)).collect()),
    );
    let rpc = RpcClientConfig {
        max_frame_bytes: frame_limit(&config),
        connect_timeout: Duration::from_millis(config.timeout_ms.min(500)),
        tls: lifetime.tls.as_ref().and_then(|t| t.peers.clone()),
        ..RpcClientConfig::new(auth.clone())
    };
    let mut spec =
        node_spec(&config, incarnation.actor.clone(), Arc::clone(&engine), hint_store, layout);
    spec.transfers = Some(transfer_spec(&config, incarnation.resumed)?);
    let peers = crate::membership::layout::Peers::default();
    spec.membership =
        Some(crate::membership::layout::membership_spec(&config, initial, &rpc, &auth, &peers));
    spec.gossip = Some(crate::membership::gossip::gossip_spec(&config, &rpc));
    spec.settings = Some(crate::membership::settings::settings_spec(&config));
    let node = spec.assemble(|_| unreachable!("a node with membership connects through it"))?;
    let membership = node.services.membership.clone().context("the node's membership")?;
    let acl = crate::acl::seed::for_node(&config, &node.services)?;
    let placement = crate::membership::placement_memo::fingerprint(&config);
    let slowlog = crate::resp::slowlog::SlowLog::new(
        config.slowlog_log_slower_than_us,
        config.slowlog_max_len,
    );
    let config_limits_buffered = config.limits.max_buffered_bytes;
    Ok(Arc::new(NodeState {
        config,
        coordinator: node.coordinator,
        engine,
        peers,
        membership,
        rpc,
        local: node.replica,
        started: lifetime.started,
        storage_reopens: lifetime.storage_reopens,
        redis_port,
        counters: ClientCounters::default(),
        placement,
        tokens: TokenKey::new(&secret),
        auth,
        incarnation,
        services: node.services,
        repair_budget: node.repair_budget,
        transfer_budget: node.transfer_budget,
        client_list: crate::resp::clients::Clients::default(),
        slowlog,
        command_stats: crate::resp::command_stats::CommandStats::default(),
        input_budget: crate::resp::input_budget::InputBudget::new(config_limits_buffered),
        acl,
        tls: lifetime.tls,
        acl_log: crate::acl::log::AclLog::default(),
        auth_throttle: crate::acl::throttle::Throttle::default(),
    }))
}

/// What the node is assembled from (see `NodeSpec`): its configuration's settings for the
/// coordinator and the services beside it.
fn node_spec(
    config: &NodeConfig,
    actor: NodeId,
    engine: Arc<dyn Engine>,
    hints: Arc<dyn HintStore>,
    layout: Layout,
) -> NodeSpec {
    let timeout = Duration::from_millis(config.timeout_ms);
    NodeSpec {
        id: NodeId::new(&config.node_id),
        actor,
        engine,
        hints,
        layout,
        coordinator: CoordinatorConfig {
            replication: config.replication,
            timeout,
            limits: config.limits,
            max_background: 16 * 1024,
            local_node: None,
            reads: config.read_fanout(),
            stand_ins: config.handoff.enabled,
            tombstone_grace: config.tombstone_grace(),
            first_owner_wait: Duration::from_millis(config.read_hedge_ms),
        },
        handoff: config.handoff.enabled.then(|| HandoffConfig {
            max_per_second: config.handoff.max_per_second,
            timeout,
            ..HandoffConfig::default()
        }),
        anti_entropy: config.anti_entropy.enabled.then(|| AntiEntropyConfig {
            interval: Duration::from_millis(config.anti_entropy.interval_ms),
            max_keys_per_second: config.anti_entropy.max_keys_per_second,
            busy_keys_per_second: config.anti_entropy.busy_keys_per_second,
            timeout: timeout.saturating_mul(5),
            tombstone_grace: config.tombstone_grace(),
        }),
        collector: config.tombstones.enabled.then(|| CollectorConfig {
            grace: Duration::from_secs(config.tombstones.grace_secs),
            interval: Duration::from_millis(config.tombstones.interval_ms),
            timeout: timeout.saturating_mul(5),
            // Twice the longest deadline anything sent between nodes has (an anti-entropy
            // call: five request timeouts).
            settle: timeout.saturating_mul(10),
            ..CollectorConfig::default()
        }),
        clock: halka_cluster::Clock::system(),
        shared_flushes: true,
        serve_local: None,
        collector_engine: None,
        transfers: None,
        membership: None,
        gossip: None,
        settings: None,
    }
}

/// How the node streams partitions it gains in a layout change: checkpoints beside the
/// data (`data_dir/transfers`), so a restart resumes a stream; in memory with the memory
/// engine, which keeps nothing across restarts anyway.
///
/// After an unclean end (`clean` false) the checkpoints are cleared: writes the node
/// stored just before it may be gone while a checkpoint covering them survived, so each
/// stream starts again from the beginning of its range.
fn transfer_spec(config: &NodeConfig, clean: bool) -> anyhow::Result<TransferSpec> {
    let checkpoints: Arc<dyn Checkpoints> = match config.storage.engine {
        EngineChoice::Memory => Arc::new(MemoryCheckpoints::default()),
        EngineChoice::Fjall => {
            let dir = config.data_dir.join("transfers");
            let opening = || format!("opening transfer checkpoints in {}", dir.display());
            let files = FileCheckpoints::open(&dir).with_context(opening)?;
            if !clean {
                files.clear().with_context(opening)?;
            }
            Arc::new(files)
        }
    };
    let timeout = Duration::from_millis(config.timeout_ms);
    let transfer = config.transfers.apply(TransferConfig {
        deadline: timeout.saturating_mul(10),
        ..TransferConfig::default()
    });
    // The node's membership keeps the views a change moves it to.
    Ok(TransferSpec { config: transfer, checkpoints, keep: None })
}

/// The largest message between nodes: room for twice the largest record a write may
/// make (merges of concurrent writes through different nodes can pass the limit a single
/// write is held to), its key and its causal metadata. A larger answer fails its request
/// alone.
fn frame_limit(config: &NodeConfig) -> usize {
    let limits = &config.limits;
    limits.max_record_bytes.saturating_mul(2).saturating_add(limits.max_key_bytes) + 256 * 1024
}

/// Why one generation of a node's state ends.
enum Ended {
    /// The node was asked to stop.
    Shutdown,
    /// The engine refuses writes (a journal write or fsync failed) and the disk has room
    /// again: the storage is reopened, as after a crash.
    Poisoned(String),
}

/// Runs a node until `shutdown` is cancelled, then stops accepting, lets requests in flight
/// finish (up to `shutdown_grace_ms`), and flushes the engine.
///
/// A storage engine that refuses writes after a failed journal write or fsync (a full
/// disk, say) cannot learn what reached the disk without being reopened. The node keeps
/// serving reads meanwhile; once the data directory's filesystem has room again it ends
/// this generation of its state, closing client and peer connections as a restart would,
/// reopens the engine from its journal under a new incarnation (an unclean end: the
/// journal's unsynced tail may be gone) and serves again on the same listeners, which
/// hold new connections in their backlog meanwhile. No operator has to restart it.
///
/// # Errors
/// Startup failures, or a failed final flush.
pub async fn run(
    config: NodeConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let upkeep = telemetry::metrics_handle()
        .map(|handle| tokio::spawn(telemetry::metrics_upkeep(handle, shutdown.clone())));
    let redis = listeners.redis.as_ref().or(listeners.redis_tls.as_ref());
    let redis_port = redis.context("a Redis listener")?.local_addr()?.port();
    let config = crate::secret_file::with_secret(config)?;
    crate::startup_checks::warn_about(&config);
    let tls = crate::tls::Tls::load(&config.tls)?;
    let reloads = tls.clone().map(|tls| tokio::spawn(tls.watch(shutdown.clone())));
    let mut lifetime = Lifetime::new(tls);
    let mut state = build_generation(config.clone(), redis_port, lifetime.clone())?;
    telemetry::describe_metrics(&state.config);
    crate::membership::placement_memo::warn_on_change(&state.config);
    let mut listeners = listeners;
    while let Some((back, why)) = serve(state, listeners, &shutdown).await? {
        listeners = back;
        lifetime.storage_reopens += 1;
        metrics::counter!("halka_storage_reopens_total").increment(1);
        tracing::warn!(error = %why, "reopening the storage engine");
        match reopen(&config, redis_port, lifetime.clone(), &shutdown).await {
            Some(next) => state = next,
            None => break,
        }
    }
    if let Some(upkeep) = upkeep {
        let _ = upkeep.await;
    }
    if let Some(reloads) = reloads {
        let _ = reloads.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Builds the next generation of the node's state, retrying (with backoff) until the
/// engine opens or the node is stopped. The old engine may take a moment to close: the
/// data directory's lock refuses a second opener until it has.
async fn reopen(
    config: &NodeConfig,
    redis_port: u16,
    lifetime: Lifetime,
    shutdown: &CancellationToken,
) -> Option<Arc<NodeState>> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match build_generation(config.clone(), redis_port, lifetime.clone()) {
            Ok(state) => {
                tracing::info!(actor = %state.incarnation.actor, "storage engine reopened");
                return Some(state);
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "storage engine not reopened yet"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Serves one generation of the node's state until `shutdown`, or until its engine
/// refuses writes and the disk has room again.
///
/// Returns `None` after a shutdown, or the listeners and the engine's error when the
/// engine must be reopened.
async fn serve(
    state: Arc<NodeState>,
    listeners: Listeners,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<(Listeners, String)>> {
    let grace = Duration::from_millis(state.config.shutdown_grace_ms);
    let local = Arc::clone(&state.local);
    let rpc_config = RpcServerConfig {
        max_frame_bytes: frame_limit(&state.config),
        placement: state.placement,
        repair_budget: Some(Arc::clone(&state.repair_budget)),
        transfer_budget: Some(Arc::clone(&state.transfer_budget)),
        tls: state.tls.as_ref().and_then(|t| t.peers.clone()),
        ..RpcServerConfig::new(state.auth.clone())
    };
    // Every task of this generation stops with it; a shutdown stops the generation.
    let stop = shutdown.child_token();
    let watcher = tokio::spawn(crate::membership::peers::watch(
        state.peers.clone(),
        state.placement,
        stop.clone(),
    ));
    let services = state.services.spawn(&state.coordinator.view_handle(), &stop);
    let rpc_stop = stop.clone();
    let Listeners { redis, http, peer, redis_tls } = listeners;
    let peer_addr = peer.local_addr()?;
    let rpc = tokio::spawn(halka_cluster::rpc::serve(peer, local, rpc_config, async move {
        rpc_stop.cancelled().await;
    }));
    // The peer port answers first: a node that kept no layout settles one with the other
    // static members, which may be waiting for this one's answer to do the same.
    tokio::select! {
        () = state.membership.catch_up_at_start() => {}
        () = stop.cancelled() => {}
    }
    tracing::info!(
        node = %state.config.node_id,
        redis = %redis_addr(redis.as_ref(), redis_tls.as_ref()),
        http = %http.local_addr()?,
        peer = %peer_addr,
        members = state.config.members.len(),
        actor = %state.incarnation.actor,
        resumed = state.incarnation.resumed,
        "halka node serving"
    );
    let serving = Serving {
        redis: redis
            .map(|l| tokio::spawn(crate::resp::serve(l, Arc::clone(&state), stop.clone(), None))),
        redis_tls: redis_tls.map(|listener| {
            let tls = state.tls.clone();
            tokio::spawn(crate::resp::serve(listener, Arc::clone(&state), stop.clone(), tls))
        }),
        http: tokio::spawn(crate::http::serve(http, Arc::clone(&state), stop.clone())),
        peer: rpc,
    };
    let ended = tokio::select! {
        () = shutdown.cancelled() => Ended::Shutdown,
        why = crate::storage_watch::until_reopen_is_due(&state) => Ended::Poisoned(why),
    };
    stop.cancel();
    match &ended {
        Ended::Shutdown => tracing::info!("shutting down: waiting for requests in flight"),
        Ended::Poisoned(_) => tracing::warn!("closing connections to reopen the storage engine"),
    }
    let _ = watcher.await;
    for task in services {
        let _ = task.await;
    }
    let in_flight = async {
        let back = serving.listeners().await;
        state.coordinator.background().drain().await;
        back
    };
    tokio::pin!(in_flight);
    let back = match tokio::time::timeout(grace, &mut in_flight).await {
        Ok(back) => Some(back),
        Err(_) => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "requests still in flight after the grace period"
            );
            // A reopen needs the listeners back; every request has a deadline.
            match ended {
                Ended::Shutdown => None,
                Ended::Poisoned(_) => Some(in_flight.await),
            }
        }
    };
    conclude(&state, ended, back)
}

/// The listeners' tasks of one generation; each gives its listener back as it ends.
struct Serving {
    redis: Option<JoinHandle<TcpListener>>,
    redis_tls: Option<JoinHandle<TcpListener>>,
    http: JoinHandle<TcpListener>,
    peer: JoinHandle<TcpListener>,
}

impl Serving {
    /// Every listener, once its task ended.
    async fn listeners(self) -> Result<Listeners, tokio::task::JoinError> {
        let (redis, http, peer, redis_tls) =
            tokio::join!(back(self.redis), self.http, self.peer, back(self.redis_tls));
        Ok(Listeners { redis: redis?, http: http?, peer: peer?, redis_tls: redis_tls? })
    }
}

/// The listener a task gives back, if there was one.
async fn back(
    task: Option<JoinHandle<TcpListener>>,
) -> Result<Option<TcpListener>, tokio::task::JoinError> {
    match task {
        Some(task) => task.await.map(Some),
        None => Ok(None),
    }
}

/// Where Redis clients reach the node, for the log: the plain port, else the TLS one.
fn redis_addr(plain: Option<&TcpListener>, tls: Option<&TcpListener>) -> String {
    plain.or(tls).and_then(|l| l.local_addr().ok()).map_or_else(String::new, |a| a.to_string())
}

/// After a shutdown, the final flush and the record of a clean end (when every request
/// finished: `back` is some); after the engine was poisoned, the listeners to serve the
/// next generation on.
fn conclude(
    state: &NodeState,
    ended: Ended,
    back: Option<Result<Listeners, tokio::task::JoinError>>,
) -> anyhow::Result<Option<(Listeners, String)>> {
    match ended {
        Ended::Shutdown => {
            state.engine.flush().context("final flush of the storage engine")?;
            if back.is_some() {
                // Only now is every dot this actor issued durable here, and no write can
                // follow.
                state.incarnation.end_cleanly().context("recording the clean shutdown")?;
            }
            Ok(None)
        }
        Ended::Poisoned(why) => match back {
            Some(Ok(listeners)) => Ok(Some((listeners, why))),
            _ => anyhow::bail!("a listener task failed while the storage engine was reopened"),
        },
    }
}
