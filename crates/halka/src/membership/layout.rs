//! How a server takes part in membership: the layout its static member list makes, where
//! it keeps its membership state, how it reaches a member a layout names, and which
//! peers its peer port admits.

use crate::config::NodeConfig;
use halka_cluster::MembershipSpec;
use halka_cluster::membership::{
    Addresses, FileStore, LayoutSpec, MemberSpec, MembershipConfig, MembershipStore, MemoryStore,
};
use halka_cluster::rpc::{PeerAuth, RemoteReplica, RpcClientConfig};
use halka_ring::DEFAULT_PARTITIONS;
use halka_store::NodeId;
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;

/// The file in `data_dir` a node keeps its membership state in.
pub const FILE: &str = "membership.json";

/// The layout a static member list makes (version 1); `None` for a node that waits to be
/// joined.
#[must_use]
pub fn static_layout(config: &NodeConfig) -> Option<LayoutSpec> {
    if config.join {
        return None;
    }
    let members = config
        .members
        .iter()
        .map(|m| {
            let me = m.id == config.node_id;
            let addresses = Addresses {
                peer: m.peer_addr.clone(),
                redis: if me { config.redis_addr.clone() } else { String::new() },
                http: if me { config.http_addr.clone() } else { String::new() },
            };
            MemberSpec {
                zone: m.zone.clone(),
                weight: m.weight,
                ..MemberSpec::active(&m.id, addresses)
            }
        })
        .collect();
    Some(LayoutSpec::new(1, config.replication, DEFAULT_PARTITIONS, members))
}

/// This node as it describes itself to a member joining it.
fn me(config: &NodeConfig) -> MemberSpec {
    let own = config.members.iter().find(|m| m.id == config.node_id);
    MemberSpec {
        zone: own.map_or_else(|| config.zone.clone(), |m| m.zone.clone()),
        weight: own.map_or(config.weight, |m| m.weight),
        ..MemberSpec::active(
            &config.node_id,
            Addresses {
                peer: config.peer_addr.clone(),
                redis: config.redis_addr.clone(),
                http: config.http_addr.clone(),
            },
        )
    }
}

/// The other members this node reaches, for liveness reports. Shared: membership adds
/// the members a new layout names.
#[derive(Debug, Clone, Default)]
pub struct Peers(Arc<RwLock<Vec<Peer>>>);

/// A member this node reaches.
#[derive(Debug, Clone)]
pub struct Peer {
    pub remote: RemoteReplica,
    /// Whether it was in the static member list: such members must compute placement
    /// from the same list (see `placement_memo`).
    pub from_static_list: bool,
}

impl Peers {
    #[must_use]
    pub fn snapshot(&self) -> Vec<Peer> {
        self.0.read().clone()
    }

    /// The replica reaching member `id`, if this node reaches it.
    #[must_use]
    pub fn replica(&self, id: &str) -> Option<std::sync::Arc<dyn halka_cluster::Replica>> {
        let peers = self.0.read();
        let peer = peers.iter().find(|p| halka_cluster::Replica::id(&p.remote).as_str() == id)?;
        Some(std::sync::Arc::new(peer.remote.clone()))
    }

    fn add(&self, peer: Peer) {
        let mut peers = self.0.write();
        peers.retain(|p| {
            halka_cluster::Replica::id(&p.remote) != halka_cluster::Replica::id(&peer.remote)
        });
        peers.push(peer);
    }
}

/// The node's membership: state kept in `data_dir/membership.json` (in memory with the
/// memory engine, which keeps nothing across restarts), members reached over RPC with
/// `rpc`, and the peer port admitting the members of the installed layouts.
#[must_use]
pub fn membership_spec(
    config: &NodeConfig,
    initial: Option<LayoutSpec>,
    rpc: &RpcClientConfig,
    auth: &PeerAuth,
    peers: &Peers,
) -> MembershipSpec {
    let store: Arc<dyn MembershipStore> = match config.storage.engine {
        crate::config::EngineChoice::Memory => Arc::new(MemoryStore::default()),
        crate::config::EngineChoice::Fjall => Arc::new(FileStore::new(&config.data_dir.join(FILE))),
    };
    let statics: Vec<String> = config.members.iter().map(|m| m.id.clone()).collect();
    let (rpc, peers) = (rpc.clone(), peers.clone());
    let connect = Arc::new(move |m: &MemberSpec| -> Arc<dyn halka_cluster::Replica> {
        let remote = RemoteReplica::new(NodeId::new(&m.id), m.addresses.peer.clone(), rpc.clone());
        let from_static_list = statics.contains(&m.id);
        peers.add(Peer { remote: remote.clone(), from_static_list });
        Arc::new(remote)
    });
    let auth = auth.clone();
    let timeout = Duration::from_millis(config.timeout_ms);
    MembershipSpec {
        me: me(config),
        config: MembershipConfig {
            // Votes are fsynced before they are answered; a commit is rare and may wait.
            deadline: timeout.saturating_mul(10),
            ..MembershipConfig::default()
        },
        store,
        connect,
        admit: Arc::new(move |ids| auth.restrict_to(ids)),
        initial,
    }
}
