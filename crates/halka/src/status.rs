//! One node's status, gathered once and shown three ways: the JSON of `/v1/cluster` and
//! `HALKA.STATUS`, the `# Halka` section of `INFO`, and the text of `halka status` (which
//! reads it through `HALKA.STATUS`). A figure added here shows on every surface.

use crate::membership::peers::PeerState;
use crate::state::NodeState;
use halka_cluster::{AntiEntropyStats, CollectorStats};
use halka_store::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    pub version: String,
    /// The actor id in the dots of writes this node coordinates.
    pub actor: String,
    pub uptime_seconds: u64,
    pub replication: usize,
    pub r: usize,
    pub w: usize,
    pub sync: String,
    pub reads: Reads,
    pub placement: Placement,
    pub members: Vec<MemberStatus>,
    /// Keys with a live value here (deleted and expired ones left out).
    pub keys_on_this_node: u64,
    pub connected_clients: i64,
    /// Hints kept for other members, by owner.
    pub hints_pending: BTreeMap<String, Hints>,
    /// `None` when anti-entropy is off.
    pub anti_entropy: Option<AntiEntropyStats>,
    /// XOR of every entry digest, hex: equal on two replicas holding the same records.
    pub store_digest: Option<String>,
    /// `None` when tombstone collection is off.
    pub tombstones: Option<CollectorStats>,
    pub storage: Storage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// Why the engine refuses writes until it is reopened (a failed journal write or
    /// fsync), if it does; the node reopens it once the disk has room.
    pub refusing_writes: Option<String>,
    /// Times this process has reopened its engine after such a failure.
    pub reopens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reads {
    pub fanout: String,
    pub hedge_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub strategy: String,
    pub partitions: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: String,
    pub peer_addr: String,
    pub zone: String,
    pub weight: u32,
    #[serde(rename = "self")]
    pub is_self: bool,
    /// It answers this node now and the failure detector does not hold it down.
    pub alive: bool,
    /// `self`, or how the member answers this node (see `PeerState`).
    pub state: String,
    /// The failure detector's phi for it (how unlikely its silence is, as -log10 of a
    /// probability; above `[gossip] phi_threshold` it counts as down). `None`: this node,
    /// or not heard of by gossip yet.
    pub phi: Option<f64>,
    /// Whether the failure detector holds it down.
    pub detector_down: bool,
    /// Partitions whose first owner is this member.
    pub primary_partitions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hints {
    pub hints: u64,
    pub bytes: u64,
}

impl NodeStatus {
    /// Gathers the status now (asks every peer whether it answers).
    pub async fn gather(state: &NodeState) -> Self {
        let peers = state.peer_states().await;
        let view = state.coordinator.view();
        let primaries = view.layout().map(halka_ring::Layout::primaries).unwrap_or_default();
        let c = &state.config;
        // The newest installed layout's members (it starts as the static list).
        let newest = state.membership.newest();
        let liveness = state.coordinator.view_handle().liveness().clone();
        let members = newest
            .iter()
            .flat_map(|l| l.members.iter())
            .map(|m| {
                let me = m.id == c.node_id;
                let idx = view.members().iter().position(|v| v.id == m.id);
                let peer = peers.get(&m.id).copied();
                let judged = (!me).then(|| liveness.judged(&NodeId::new(&m.id))).flatten();
                let detector_down = judged.is_some_and(|j| j.convicted);
                MemberStatus {
                    id: m.id.clone(),
                    peer_addr: m.addresses.peer.clone(),
                    zone: m.zone.clone(),
                    weight: m.weight,
                    is_self: me,
                    alive: me || (peer.is_some_and(|p| p != PeerState::Down) && !detector_down),
                    state: if me { "self" } else { peer.map_or("down", PeerState::as_str) }.into(),
                    phi: judged.map(|j| (j.phi * 100.0).round() / 100.0),
                    detector_down,
                    primary_partitions: idx.and_then(|i| primaries.get(i)).copied().unwrap_or(0),
                }
            })
            .collect();
        Self {
            node: c.node_id.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            actor: state.incarnation.actor.to_string(),
            uptime_seconds: state.started.elapsed().as_secs(),
            replication: c.replication,
            r: c.r,
            w: c.w,
            sync: match c.storage.sync {
                crate::config::SyncChoice::Always => "always",
                crate::config::SyncChoice::Periodic => "periodic",
            }
            .into(),
            reads: Reads { fanout: c.read_fanout.as_str().into(), hedge_ms: c.read_hedge_ms },
            placement: Placement {
                strategy: "partitioned".into(),
                partitions: view.layout().map_or(0, halka_ring::Layout::partitions),
            },
            members,
            keys_on_this_node: state.local_keys(),
            connected_clients: state.connected_clients(),
            hints_pending: state
                .hints_pending()
                .into_iter()
                .map(|(id, s)| (id, Hints { hints: s.hints, bytes: s.bytes }))
                .collect(),
            anti_entropy: state.services.anti_entropy.as_ref().map(|a| a.stats()),
            store_digest: state.store_digest().map(|d| format!("{d:016x}")),
            tombstones: state
                .services
                .collector
                .as_ref()
                .map(|t| t.stats(state.coordinator.now_us())),
            storage: Storage {
                refusing_writes: state.engine.poisoned(),
                reopens: state.storage_reopens,
            },
        }
    }

    /// The `# Halka` section of `INFO`: `field:value` lines, lists as `a=1,b=2`.
    #[must_use]
    pub fn info_section(&self) -> String {
        let mut out = String::from("# Halka\r\n");
        let mut line = |k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(out, "{k}:{v}\r\n");
        };
        line("node", &self.node);
        line("actor", &self.actor);
        let ids: Vec<&str> = self.members.iter().map(|m| m.id.as_str()).collect();
        line("members", &ids.join(","));
        let peers: Vec<String> = self
            .members
            .iter()
            .filter(|m| !m.is_self)
            .map(|m| format!("{}={}", m.id, m.state))
            .collect();
        line("peers", &peers.join(","));
        let hints: Vec<String> =
            self.hints_pending.iter().map(|(id, h)| format!("{id}={}", h.hints)).collect();
        line("hints_pending", &hints.join(","));
        match &self.anti_entropy {
            Some(a) => {
                line("anti_entropy", &"on");
                line("aae_exchanges", &a.exchanges);
                line("aae_failed_exchanges", &a.failed_exchanges);
                line("aae_keys_divergent", &a.keys_divergent);
                line("aae_keys_repaired", &a.keys_repaired);
                line("aae_passes", &a.passes);
                line("aae_oldest_uncompared_secs", &a.oldest_uncompared_secs);
                line("aae_store_digest", &self.store_digest.as_deref().unwrap_or("0"));
            }
            None => line("anti_entropy", &"off"),
        }
        match &self.tombstones {
            Some(t) => {
                line("tombstone_collection", &"on");
                line("tombstones_pending", &t.pending);
                line("tombstones_oldest_secs", &t.oldest_secs);
                line("tombstones_collected", &t.collected);
            }
            None => line("tombstone_collection", &"off"),
        }
        line("storage_refusing_writes", &u8::from(self.storage.refusing_writes.is_some()));
        line("storage_reopens", &self.storage.reopens);
        line("replication", &self.replication);
        line("r", &self.r);
        line("w", &self.w);
        line("placement", &self.placement.strategy);
        line("sync", &self.sync);
        line("read_fanout", &self.reads.fanout);
        line("read_hedge_ms", &self.reads.hedge_ms);
        out
    }

    /// What `halka status` prints.
    #[must_use]
    pub fn to_text(&self) -> String {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| {
                let detector = match (m.phi, m.detector_down) {
                    (Some(phi), true) => format!(" (failure detector: down, phi {phi:.1})"),
                    (Some(phi), false) => format!(" (phi {phi:.1})"),
                    (None, _) => String::new(),
                };
                match m.state.as_str() {
                    "self" => format!("{} (this node)", m.id),
                    "other-placement" => {
                        format!("{} answers but has another member list or N{detector}", m.id)
                    }
                    state => format!("{} {state}{detector}", m.id),
                }
            })
            .collect();
        let hints = if self.hints_pending.is_empty() {
            "none".to_string()
        } else {
            let each: Vec<String> =
                self.hints_pending.iter().map(|(id, h)| format!("{id} {}", h.hints)).collect();
            each.join(", ")
        };
        let anti_entropy = match &self.anti_entropy {
            Some(a) => {
                let compared = if a.passes == 0 {
                    "first pass over the keys still running".to_string()
                } else {
                    format!("every range compared within the last {}s", a.oldest_uncompared_secs)
                };
                format!(
                    "{} keys repaired in {} exchanges ({} failed); {compared}",
                    a.keys_repaired, a.exchanges, a.failed_exchanges
                )
            }
            None => "off".to_string(),
        };
        let tombstones = match &self.tombstones {
            Some(t) if t.pending == 0 => format!("none waiting; {} collected", t.collected),
            // Keys with an expiry wait here too: they are collected once expired.
            Some(t) => format!(
                "{} waiting, deleted or expiring (oldest {}s); {} collected",
                t.pending, t.oldest_secs, t.collected
            ),
            None => "kept for ever (collection off)".to_string(),
        };
        let storage = match &self.storage.refusing_writes {
            Some(why) => format!("refusing writes until the disk has room ({why})"),
            None => "ok".to_string(),
        };
        format!(
            "node {} (halka {})\nmembers: {}\nhints pending: {}\nanti-entropy: {}\ntombstones: {}\nstorage: {} (reopened {} times)\nreplication N={} R={} W={}  sync={}  reads={} (hedge {} ms)\nkeys on this node: {}\nclients: {}  uptime: {}s",
            self.node,
            self.version,
            members.join(", "),
            hints,
            anti_entropy,
            tombstones,
            storage,
            self.storage.reopens,
            self.replication,
            self.r,
            self.w,
            self.sync,
            self.reads.fanout,
            self.reads.hedge_ms,
            self.keys_on_this_node,
            self.connected_clients,
            self.uptime_seconds,
        )
    }
}
