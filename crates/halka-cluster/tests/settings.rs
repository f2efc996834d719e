//! The cluster's shared settings between nodes in one process, on tokio's paused clock:
//! a change made on one node reaches every node, a node that was down catches up, a
//! removal is not undone by a node that missed it, and a node keeps its settings across a
//! restart.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::membership::{MembershipRequest, MembershipResponse};
use halka_cluster::settings::{
    FileSettings, MemorySettings, Settings, SettingsSpec, SettingsStore,
};
use halka_cluster::{
    Clock, Coordinated, Durability, Members, Replica, ReplicaError, ReplicaFuture, answered,
};
use halka_store::{NodeId, Record, Write};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_millis(500);

/// A link to a node's settings; calls fail while the node is down.
#[derive(Debug)]
struct Link {
    id: NodeId,
    net: Arc<Net>,
}

#[derive(Debug, Default)]
struct Net {
    nodes: Mutex<HashMap<NodeId, Arc<Settings>>>,
    down: Mutex<HashSet<NodeId>>,
}

impl Replica for Link {
    fn id(&self) -> &NodeId {
        &self.id
    }
    fn coordinate_write(&self, _: &Bytes, _: &Write) -> ReplicaFuture<Coordinated> {
        answered(Err(ReplicaError::Rejected("settings only".into())))
    }
    fn merge(&self, _: &Bytes, _: &Arc<Record>) -> ReplicaFuture<Durability> {
        answered(Err(ReplicaError::Rejected("settings only".into())))
    }
    fn get(&self, _: &Bytes) -> ReplicaFuture<Option<Arc<Record>>> {
        answered(Err(ReplicaError::Rejected("settings only".into())))
    }
    fn membership(&self, request: MembershipRequest) -> ReplicaFuture<MembershipResponse> {
        let down = self.net.down.lock().contains(&self.id);
        let node = self.net.nodes.lock().get(&self.id).cloned();
        match (request, node) {
            (MembershipRequest::Settings { digest, entries }, Some(node)) if !down => {
                let answer = node.answer(digest, entries).map_err(|e| e.to_string());
                answered(answer.map(MembershipResponse::Settings).map_err(ReplicaError::Rejected))
            }
            _ => answered(Err(ReplicaError::Unavailable(format!("{} is down", self.id)))),
        }
    }
}

const IDS: [&str; 3] = ["n1", "n2", "n3"];

/// Node `id` as the cluster's only member.
fn alone(net: &Arc<Net>, id: &str, store: Arc<dyn SettingsStore>) -> Arc<Settings> {
    let members = Members::default();
    members.add(Arc::new(Link { id: NodeId::new(id), net: Arc::clone(net) }));
    open(net, id, members, store, 1, 0)
}

/// Starts node `id` with `store`, comparing with the other nodes of `IDS`, its clock
/// `skew_us` ahead (or behind, negative).
fn start_skewed(
    net: &Arc<Net>,
    id: &str,
    store: Arc<dyn SettingsStore>,
    seed: u64,
    skew_us: i64,
) -> Arc<Settings> {
    let members = Members::default();
    for m in IDS {
        members.add(Arc::new(Link { id: NodeId::new(m), net: Arc::clone(net) }));
    }
    open(net, id, members, store, seed, skew_us)
}

fn open(
    net: &Arc<Net>,
    id: &str,
    members: Members,
    store: Arc<dyn SettingsStore>,
    seed: u64,
    skew_us: i64,
) -> Arc<Settings> {
    let origin = tokio::time::Instant::now();
    let clock = Clock::new(move || {
        (100_000_000 + origin.elapsed().as_micros() as i64 + skew_us).max(1) as u64
    });
    let spec = SettingsSpec { store, interval: INTERVAL, deadline: INTERVAL, rng_seed: seed };
    let settings = Arc::new(Settings::open(NodeId::new(id), clock, members, spec).unwrap());
    net.nodes.lock().insert(NodeId::new(id), Arc::clone(&settings));
    settings
}

/// Every node's settings, each comparing in rounds until its own token (a child of
/// `stop`) is cancelled.
struct Cluster {
    net: Arc<Net>,
    nodes: Vec<Arc<Settings>>,
    runs: Vec<CancellationToken>,
    stop: CancellationToken,
}

impl Cluster {
    fn start() -> Self {
        Self::start_skewed(&[0, 0, 0])
    }

    /// The nodes with their clocks `skews_us` off.
    fn start_skewed(skews_us: &[i64; 3]) -> Self {
        let net = Arc::new(Net::default());
        let stop = CancellationToken::new();
        let nodes: Vec<_> = IDS
            .iter()
            .zip(1..)
            .zip(skews_us)
            .map(|((id, seed), skew)| {
                start_skewed(&net, id, Arc::new(MemorySettings::default()), seed, *skew)
            })
            .collect();
        let runs = nodes.iter().map(|_| stop.child_token()).collect::<Vec<_>>();
        for (n, run) in nodes.iter().zip(&runs) {
            tokio::spawn(Arc::clone(n).run(run.clone()));
        }
        Self { net, nodes, runs, stop }
    }

    /// Stops node `i`: it neither answers nor asks.
    fn down(&mut self, i: usize) {
        self.net.down.lock().insert(NodeId::new(IDS[i]));
        self.runs[i].cancel();
    }

    /// Starts a stopped node again.
    fn up(&mut self, i: usize) {
        self.net.down.lock().remove(&NodeId::new(IDS[i]));
        self.runs[i] = self.stop.child_token();
        tokio::spawn(Arc::clone(&self.nodes[i]).run(self.runs[i].clone()));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn value(node: &Settings, name: &str) -> Option<String> {
    node.read(|t| t.value(name).map(str::to_string))
}

/// Waits, round by round (of simulated time), until `done`, for at most `limit` rounds.
async fn until(limit: u32, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..limit {
        if done() {
            return true;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    done()
}

#[tokio::test(start_paused = true)]
async fn a_setting_written_on_one_node_reaches_every_node() {
    let c = Cluster::start();
    c.nodes[0].write("acl/alice", Some("on".into())).await.unwrap();
    let everywhere = || c.nodes.iter().all(|n| value(n, "acl/alice").as_deref() == Some("on"));
    assert!(until(20, everywhere).await, "not every node took the setting in 20 rounds");
}

#[tokio::test(start_paused = true)]
async fn a_node_down_during_a_change_takes_it_when_back() {
    let mut c = Cluster::start();
    c.down(2);
    c.nodes[0].write("acl/alice", Some("on".into())).await.unwrap();
    assert!(until(20, || value(&c.nodes[1], "acl/alice").is_some()).await);
    assert_eq!(value(&c.nodes[2], "acl/alice"), None, "a node that is down took a change");
    c.up(2);
    assert!(until(20, || value(&c.nodes[2], "acl/alice").is_some()).await);
}

#[tokio::test(start_paused = true)]
async fn a_removal_is_not_undone_by_a_node_that_missed_it() {
    let mut c = Cluster::start();
    c.nodes[0].write("acl/alice", Some("on".into())).await.unwrap();
    assert!(until(20, || c.nodes.iter().all(|n| value(n, "acl/alice").is_some())).await);
    c.down(2);
    c.nodes[0].write("acl/alice", None).await.unwrap();
    assert!(until(20, || value(&c.nodes[1], "acl/alice").is_none()).await);
    c.up(2);
    assert!(until(20, || value(&c.nodes[2], "acl/alice").is_none()).await);
    until(10, || false).await;
    let back = c.nodes.iter().filter(|n| value(n, "acl/alice").is_some()).count();
    assert_eq!(back, 0, "a removed setting came back");
}

#[tokio::test(start_paused = true)]
async fn a_node_keeps_its_settings_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.json");
    let net = Arc::new(Net::default());
    let node = alone(&net, "n1", Arc::new(FileSettings::new(&path)));
    node.write("acl/alice", Some("on".into())).await.unwrap();
    drop(node);
    net.nodes.lock().clear();
    let again = alone(&net, "n1", Arc::new(FileSettings::new(&path)));
    assert_eq!(value(&again, "acl/alice").as_deref(), Some("on"));
}

#[tokio::test(start_paused = true)]
async fn seeding_leaves_a_setting_the_cluster_already_wrote() {
    let net = Arc::new(Net::default());
    let node = alone(&net, "n1", Arc::new(MemorySettings::default()));
    assert!(node.seed("acl/default", "first".into()).unwrap());
    node.write("acl/default", None).await.unwrap();
    assert!(!node.seed("acl/default", "second".into()).unwrap());
    assert_eq!(value(&node, "acl/default"), None);
}

#[tokio::test(start_paused = true)]
async fn a_later_write_through_a_node_whose_clock_is_behind_still_wins() {
    // n1's clock is ten seconds ahead of n2's: by the clocks alone, n1's earlier write
    // would look newer than n2's later one.
    let c = Cluster::start_skewed(&[10_000_000, 0, 0]);
    c.nodes[0].write("acl/alice", Some("first".into())).await.unwrap();
    c.nodes[1].write("acl/alice", Some("second".into())).await.unwrap();
    let everywhere = || c.nodes.iter().all(|n| value(n, "acl/alice").as_deref() == Some("second"));
    assert!(until(20, everywhere).await, "the later write lost to the earlier one");
}

#[tokio::test(start_paused = true)]
async fn a_write_that_reaches_no_majority_is_refused_and_changes_nothing() {
    let mut c = Cluster::start();
    c.down(1);
    c.down(2);
    let e = c.nodes[0].write("acl/alice", Some("on".into())).await.unwrap_err();
    assert!(e.to_string().contains("nothing was changed"), "{e}");
    assert_eq!(value(&c.nodes[0], "acl/alice"), None);
}
