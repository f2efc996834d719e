//! Gossip between nodes in one process, on tokio's paused clock: how a node that knows
//! only a seed becomes known, and how the failure detector convicts a node that falls
//! silent and acquits it when it is back.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::gossip::{Gossip, GossipConfig, GossipSpec, Reach};
use halka_cluster::membership::{Addresses, MemberSpec, MembershipRequest, MembershipResponse};
use halka_cluster::{
    Clock, Coordinated, Durability, Members, Replica, ReplicaError, ReplicaFuture, answered,
};
use halka_store::{NodeId, Record, Write};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

/// A link to a node's gossip; calls fail while the node is down.
#[derive(Debug)]
struct Link {
    id: NodeId,
    net: Arc<Net>,
}

/// Every node's gossip by id, and which are down.
#[derive(Debug)]
struct Net {
    nodes: Mutex<HashMap<NodeId, Arc<Gossip>>>,
    down: Mutex<HashMap<NodeId, Arc<AtomicBool>>>,
    /// Where the nodes' wall clocks start (a restart must start a later generation).
    origin: tokio::time::Instant,
}

impl Default for Net {
    fn default() -> Self {
        Self {
            nodes: Mutex::default(),
            down: Mutex::default(),
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Replica for Link {
    fn id(&self) -> &NodeId {
        &self.id
    }
    fn coordinate_write(&self, _: &Bytes, _: &Write) -> ReplicaFuture<Coordinated> {
        answered(Err(ReplicaError::Rejected("gossip only".into())))
    }
    fn merge(&self, _: &Bytes, _: &Arc<Record>) -> ReplicaFuture<Durability> {
        answered(Err(ReplicaError::Rejected("gossip only".into())))
    }
    fn get(&self, _: &Bytes) -> ReplicaFuture<Option<Arc<Record>>> {
        answered(Err(ReplicaError::Rejected("gossip only".into())))
    }
    fn membership(&self, request: MembershipRequest) -> ReplicaFuture<MembershipResponse> {
        let down = self.net.down.lock().get(&self.id).is_some_and(|d| d.load(Ordering::Acquire));
        let node = self.net.nodes.lock().get(&self.id).cloned();
        match (request, node) {
            (MembershipRequest::Gossip(theirs), Some(node)) if !down => {
                answered(Ok(MembershipResponse::Gossip(node.answer(theirs))))
            }
            _ => answered(Err(ReplicaError::Unavailable(format!("{} is down", self.id)))),
        }
    }
}

struct Node {
    gossip: Arc<Gossip>,
    stop: CancellationToken,
}

fn spec(id: &str) -> MemberSpec {
    MemberSpec::active(id, Addresses { peer: format!("{id}:7380"), ..Addresses::default() })
}

/// Starts node `id`, registered with `members` (ids) and announcing itself to `seeds`.
fn start(net: &Arc<Net>, id: &str, members: &[&str], seeds: &[&str]) -> Node {
    start_with(net, id, members, seeds, GossipConfig::default())
}

fn start_with(
    net: &Arc<Net>,
    id: &str,
    members: &[&str],
    seeds: &[&str],
    config: GossipConfig,
) -> Node {
    let registry = Members::default();
    for m in members {
        registry.add(Arc::new(Link { id: NodeId::new(m), net: Arc::clone(net) }));
    }
    let link_net = Arc::clone(net);
    let reach: Reach = Arc::new(move |_: Option<&NodeId>, addr: &str| -> Arc<dyn Replica> {
        let id = addr.trim_end_matches(":7380");
        Arc::new(Link { id: NodeId::new(id), net: Arc::clone(&link_net) })
    });
    let spec_ = GossipSpec {
        config,
        seeds: seeds.iter().map(|s| format!("{s}:7380")).collect(),
        reach,
        rng_seed: 7,
    };
    let origin = net.origin;
    let clock = Clock::new(move || origin.elapsed().as_micros() as u64);
    let gossip = Arc::new(Gossip::new(spec(id), spec_, registry, &clock, Arc::new(|| 1)));
    net.nodes.lock().insert(NodeId::new(id), Arc::clone(&gossip));
    net.down.lock().entry(NodeId::new(id)).or_default().store(false, Ordering::Release);
    let stop = CancellationToken::new();
    tokio::spawn(Arc::clone(&gossip).run(stop.clone()));
    Node { gossip, stop }
}

fn knows(node: &Node, id: &str) -> bool {
    node.gossip.known().iter().any(|k| k.announcement.id() == id)
}

async fn rounds(n: u32) {
    tokio::time::sleep(GossipConfig::default().interval * n).await;
}

/// Waits, round by round (of simulated time), until `done`, for at most `limit` rounds.
async fn until(limit: u32, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..limit {
        if done() {
            return true;
        }
        rounds(1).await;
    }
    done()
}

fn three(net: &Arc<Net>) -> Vec<Node> {
    let ids = ["a", "b", "c"];
    ids.iter().map(|id| start(net, id, &ids, &[])).collect()
}

#[tokio::test(start_paused = true)]
async fn members_learn_each_others_announcements() {
    let net = Arc::new(Net::default());
    let nodes = three(&net);
    assert!(until(10, || nodes.iter().all(|n| n.gossip.known().len() == 2)).await);
    let b = nodes[0].gossip.announced("b").unwrap();
    assert_eq!(b.member.addresses.peer, "b:7380");
    assert!(b.heartbeat > 0);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_knows_only_a_seed_becomes_known_to_every_member() {
    let net = Arc::new(Net::default());
    let members = three(&net);
    let newcomer = start(&net, "d", &[], &["a"]);
    assert!(until(20, || members.iter().all(|m| knows(m, "d"))).await, "members never heard of d");
    assert!(until(20, || ["a", "b", "c"].iter().all(|id| knows(&newcomer, id))).await);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_falls_silent_is_convicted_and_acquitted_when_it_is_back() {
    let net = Arc::new(Net::default());
    let nodes = three(&net);
    let c = NodeId::new("c");
    rounds(20).await;
    assert!(!nodes[0].gossip.liveness().convicted(&c), "c is alive");

    nodes[2].stop.cancel();
    net.down.lock()[&c].store(true, Ordering::Release);
    assert!(until(200, || nodes[0].gossip.liveness().convicted(&c)).await, "never convicted");
    let judged = nodes[0].gossip.liveness().judged(&c).unwrap();
    assert!(judged.phi > 8.0, "{judged:?}");
    assert!(!nodes[0].gossip.liveness().convicted(&NodeId::new("b")), "b still answers");

    let _back = start(&net, "c", &["a", "b", "c"], &[]);
    assert!(until(10, || !nodes[0].gossip.liveness().convicted(&c)).await, "never acquitted");
}

#[tokio::test(start_paused = true)]
async fn a_silent_member_is_convicted_after_about_eighteen_usual_gaps_not_sooner() {
    let net = Arc::new(Net::default());
    let nodes = three(&net);
    rounds(40).await;
    nodes[2].stop.cancel();
    net.down.lock()[&NodeId::new("c")].store(true, Ordering::Release);
    let silent = tokio::time::Instant::now();
    assert!(until(200, || nodes[0].gossip.liveness().convicted(&NodeId::new("c"))).await);
    // Heartbeats of c reached a about once a round, directly or relayed.
    let waited = silent.elapsed();
    let interval = GossipConfig::default().interval;
    assert!(waited >= interval * 9 && waited <= interval * 40, "convicted after {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_member_never_heard_from_is_convicted() {
    let net = Arc::new(Net::default());
    let a = start(&net, "a", &["a", "b"], &[]);
    // b never starts: calls to it fail.
    net.down.lock().entry(NodeId::new("b")).or_default().store(true, Ordering::Release);
    assert!(until(100, || a.gossip.liveness().convicted(&NodeId::new("b"))).await);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_is_no_member_is_forgotten_once_silent_and_known_again_when_it_returns() {
    let net = Arc::new(Net::default());
    let forget_after = std::time::Duration::from_secs(60);
    let config = GossipConfig { forget_after, ..GossipConfig::default() };
    let ids = ["a", "b", "c"];
    let members: Vec<Node> =
        ids.iter().map(|id| start_with(&net, id, &ids, &[], config.clone())).collect();
    let visitor = start(&net, "d", &[], &["a"]);
    assert!(until(20, || members.iter().all(|m| knows(m, "d"))).await);

    visitor.stop.cancel();
    net.down.lock()[&NodeId::new("d")].store(true, Ordering::Release);
    let rounds_to_forget = 2 * (forget_after.as_millis() / 500) as u32;
    assert!(until(rounds_to_forget, || members.iter().all(|m| !knows(m, "d"))).await);
    assert!(members.iter().all(|m| m.gossip.liveness().judged(&NodeId::new("d")).is_none()));
    // The members' tables and swaps go on; none brings d back.
    rounds(40).await;
    assert!(members.iter().all(|m| !knows(m, "d")), "an old announcement brought d back");
    // A member is never forgotten, however long it is silent.
    members[2].stop.cancel();
    net.down.lock()[&NodeId::new("c")].store(true, Ordering::Release);
    rounds(rounds_to_forget).await;
    assert!(knows(&members[0], "c") && members[0].gossip.liveness().convicted(&NodeId::new("c")));

    let _back = start(&net, "d", &[], &["a"]);
    assert!(until(20, || knows(&members[0], "d") && knows(&members[1], "d")).await);
}
