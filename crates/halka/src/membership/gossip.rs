//! How a server gossips: over its peer port, under the cluster secret, at the pace its
//! `[gossip]` settings give, announcing itself to its seeds.

use crate::config::NodeConfig;
use halka_cluster::gossip::{GossipSpec, Reach};
use halka_cluster::rpc::{RemoteReplica, RpcClientConfig};
use halka_store::NodeId;
use std::sync::Arc;

/// The node's gossip: peers reached with `rpc` (a node known only by a seed address
/// under an empty id: whichever node answers there and proves the secret).
#[must_use]
pub fn gossip_spec(config: &NodeConfig, rpc: &RpcClientConfig) -> GossipSpec {
    let rpc = rpc.clone();
    let reach: Reach = Arc::new(move |id: Option<&NodeId>, addr: &str| {
        let id = id.cloned().unwrap_or_else(|| NodeId::new(""));
        Arc::new(RemoteReplica::new(id, addr.to_string(), rpc.clone()))
    });
    GossipSpec {
        config: config.gossip.apply(),
        seeds: config.seeds.clone(),
        reach,
        // Which peers each round picks needs no secrecy, only to differ between nodes.
        rng_seed: rand::random(),
    }
}
