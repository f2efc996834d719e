//! What the front ends (Redis protocol, HTTP) and the background tasks of one node share:
//! its configuration, coordinator, engine, peers and counters. `node` builds it and runs
//! the tasks; everything else only reads it.

use crate::config::NodeConfig;
use crate::context_token::TokenKey;
use crate::incarnation::Incarnation;
use crate::membership::peers::PeerState;
use halka_cluster::rpc::PeerAuth;
use halka_cluster::{Coordinator, RepairBudget, Services};
use halka_store::Engine;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

/// Everything the front ends share.
#[derive(Debug)]
pub struct NodeState {
    pub config: NodeConfig,
    pub coordinator: Arc<Coordinator>,
    pub engine: Arc<dyn Engine>,
    /// The other members, for liveness reports.
    pub peers: crate::membership::layout::Peers,
    /// The layouts this node installed, and the changes staged on it.
    pub membership: Arc<halka_cluster::Membership>,
    /// This node's own replica, as peers reach it.
    pub local: Arc<dyn halka_cluster::Replica>,
    /// How this node reaches a peer (a node being joined, say).
    pub rpc: halka_cluster::rpc::RpcClientConfig,
    /// When the process started serving (not this generation: see `run`).
    pub started: Instant,
    /// How often this process has reopened its storage engine (see `run`).
    pub storage_reopens: u64,
    pub redis_port: u16,
    /// Fingerprint of this node's placement inputs (`placement_memo::fingerprint`); every
    /// member of a cluster must have the same one.
    pub placement: u64,
    /// Signs and checks the causal-context tokens handed to clients.
    pub tokens: TokenKey,
    /// This node's identity towards peers.
    pub auth: PeerAuth,
    /// The actor id in the dots of writes this node coordinates.
    pub incarnation: Incarnation,
    /// Hinted handoff, anti-entropy and tombstone collection, each when it is on.
    pub services: Services,
    /// What every repair this node takes part in spends, its own and its peers'.
    pub repair_budget: Arc<RepairBudget>,
    /// What serving new owners' streams spends, in bytes.
    pub transfer_budget: Arc<RepairBudget>,
    /// The Redis clients connected now.
    pub client_list: crate::resp::clients::Clients,
    /// Recent slow Redis commands (`SLOWLOG`).
    pub slowlog: crate::resp::slowlog::SlowLog,
    /// Calls and time per Redis command (`INFO commandstats`).
    pub command_stats: crate::resp::command_stats::CommandStats,
    /// Request bytes all Redis connections may hold at once (`limits.max_buffered_bytes`).
    pub input_budget: crate::resp::input_budget::InputBudget,
    /// TLS on the listeners and towards peers, when configured.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// The cluster's users, as this node follows them.
    pub acl: Arc<crate::acl::Acl>,
    /// Recent refusals (`ACL LOG`).
    pub acl_log: crate::acl::log::AclLog,
    /// Slows down addresses that keep failing to authenticate.
    pub auth_throttle: crate::acl::throttle::Throttle,
    pub(crate) counters: ClientCounters,
}

/// Redis-protocol clients and commands counted since this generation of the state began.
#[derive(Debug, Default)]
pub(crate) struct ClientCounters {
    clients: AtomicI64,
    connections_received: AtomicU64,
    connections_rejected: AtomicU64,
    commands: AtomicU64,
}

impl NodeState {
    /// Where clients log in (see `acl::login`).
    #[must_use]
    pub fn door(&self) -> crate::acl::login::Door<'_> {
        crate::acl::login::Door {
            acl: &self.acl,
            throttle: &self.auth_throttle,
            log: &self.acl_log,
        }
    }

    pub(crate) fn client_connected(&self, delta: i64) {
        let now = self.counters.clients.fetch_add(delta, Ordering::Relaxed) + delta;
        metrics::gauge!("halka_connected_clients").set(now as f64);
        if delta > 0 {
            self.counters.connections_received.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A Redis client refused at `max_connections`.
    pub(crate) fn client_rejected(&self) {
        self.counters.connections_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A Redis-protocol command answered.
    pub(crate) fn command_served(&self) {
        self.counters.commands.fetch_add(1, Ordering::Relaxed);
    }

    /// (connections accepted, connections refused, commands answered) since the start.
    #[must_use]
    pub fn client_totals(&self) -> (u64, u64, u64) {
        (
            self.counters.connections_received.load(Ordering::Relaxed),
            self.counters.connections_rejected.load(Ordering::Relaxed),
            self.counters.commands.load(Ordering::Relaxed),
        )
    }

    #[must_use]
    pub fn connected_clients(&self) -> i64 {
        self.counters.clients.load(Ordering::Relaxed)
    }

    /// How each other member answers now, by id.
    pub async fn peer_states(&self) -> BTreeMap<String, PeerState> {
        crate::membership::peers::states(&self.peers.snapshot(), self.placement).await
    }

    /// Hints this node keeps for other members, by owner.
    #[must_use]
    pub fn hints_pending(&self) -> BTreeMap<String, halka_store::HintStats> {
        self.coordinator
            .handoff()
            .map(|h| h.pending().into_iter().map(|(id, s)| (id.to_string(), s)).collect())
            .unwrap_or_default()
    }

    /// The digest of everything this node stores (XOR of every entry digest), when
    /// anti-entropy keeps digests: two replicas holding the same keys hold the same
    /// records exactly when these are equal.
    #[must_use]
    pub fn store_digest(&self) -> Option<u64> {
        let tree = self.engine.digests()?;
        tree.digests(halka_store::HashRange::ALL, 0).ok()?.first().copied()
    }

    /// Keys this node holds a live value for: not deleted, not expired (every stored
    /// record, approximately, when the store keeps no tombstone index).
    #[must_use]
    pub fn local_keys(&self) -> u64 {
        let now = self.coordinator.now_us();
        self.engine.live_keys(now).unwrap_or_else(|| self.engine.key_count())
    }
}
