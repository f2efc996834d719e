//! Hinted handoff through the coordinator: writes and deletes a replica missed while it was
//! down reach it when it answers again, without any client reading those keys.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::{
    Coordinator, CoordinatorConfig, FaultPlan, FaultyReplica, Handoff, HandoffConfig, LocalReplica,
    Replica, View,
};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member};
use halka_store::{MemoryEngine, MemoryHints, NodeId};
use std::sync::Arc;
use std::time::Duration;

struct Node {
    local: LocalReplica,
    faulty: FaultyReplica,
}

fn node(id: &str) -> Node {
    // Node c takes no value over 10 bytes: it refuses some writes for good.
    let limits = if id == "c" {
        halka_store::Limits { max_value_bytes: 10, ..halka_store::Limits::default() }
    } else {
        halka_store::Limits::default()
    };
    let local = LocalReplica::new(NodeId::new(id), Arc::new(MemoryEngine::new(limits)));
    let faulty = FaultyReplica::new(Arc::new(local.clone()), FaultPlan::default(), 7);
    Node { local, faulty }
}

/// Three nodes, N = 3, the coordinator on `a` keeping hints.
fn cluster() -> (Coordinator, Arc<Handoff>, Vec<Node>) {
    let nodes: Vec<Node> = ["a", "b", "c"].into_iter().map(node).collect();
    let members: Vec<Member> = ["a", "b", "c"]
        .into_iter()
        .map(|id| Member { id: id.into(), zone: String::new(), weight: 1 })
        .collect();
    let layout = Layout::active(1, &members, 3, DEFAULT_PARTITIONS).unwrap();
    let replicas: Vec<Arc<dyn Replica>> =
        nodes.iter().map(|n| Arc::new(n.faulty.clone()) as Arc<dyn Replica>).collect();
    let view = View::new(Some(layout), replicas, 3);
    let handoff = Handoff::new(Arc::new(MemoryHints::new(1 << 20)), HandoffConfig::default());
    let coordinator = Coordinator::new(
        view,
        CoordinatorConfig {
            local_node: Some(NodeId::new("a")),
            timeout: Duration::from_millis(100),
            ..CoordinatorConfig::default()
        },
    )
    .with_handoff(Arc::clone(&handoff));
    (coordinator, handoff, nodes)
}

fn value(node: &Node, key: &str) -> Option<Bytes> {
    node.local.engine().get(key.as_bytes()).unwrap().and_then(|r| r.lww_value().cloned())
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_was_down_receives_every_write_and_delete_it_missed() {
    let (coordinator, handoff, nodes) = cluster();
    let key = |i: usize| Bytes::from(format!("k{i}"));
    for i in 0..50 {
        coordinator.write(key(i), Some(Bytes::from("old")), None, 3).await.unwrap();
    }
    nodes[2].faulty.set_plan(FaultPlan::down());
    for i in 0..50 {
        let value = if i % 5 == 0 { None } else { Some(Bytes::from("new")) };
        coordinator.write(key(i), value, None, 2).await.unwrap();
    }
    coordinator.background().drain().await;
    assert_eq!(handoff.pending()[&NodeId::new("c")].hints, 50);
    // While it is down, delivery keeps the hints.
    assert_eq!(handoff.deliver_round(&coordinator.view(), 1000).await, 0);
    nodes[2].faulty.set_plan(FaultPlan::default());
    // The first round after a failure sends one hint as a probe, the next the rest.
    assert_eq!(handoff.deliver_round(&coordinator.view(), 1000).await, 1);
    assert_eq!(handoff.deliver_round(&coordinator.view(), 1000).await, 49);
    assert!(handoff.pending().is_empty());
    for i in 0..50 {
        let want = (i % 5 != 0).then(|| Bytes::from("new"));
        assert_eq!(value(&nodes[2], &format!("k{i}")), want, "k{i}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_replica_gets_hints_for_writes_answered_without_it() {
    let (coordinator, handoff, nodes) = cluster();
    nodes[1].faulty.set_plan(FaultPlan::silent());
    coordinator.write(Bytes::from("k"), Some(Bytes::from("v")), None, 2).await.unwrap();
    // The client was answered by a and c; b's deadline passes in the background.
    coordinator.background().drain().await;
    assert_eq!(handoff.pending()[&NodeId::new("b")].hints, 1);
    nodes[1].faulty.set_plan(FaultPlan::default());
    assert_eq!(handoff.deliver_round(&coordinator.view(), 1000).await, 1);
    assert_eq!(value(&nodes[1], "k"), Some(Bytes::from("v")));
}

#[tokio::test(start_paused = true)]
async fn delivery_is_bounded_by_its_budget() {
    let (coordinator, handoff, nodes) = cluster();
    nodes[2].faulty.set_plan(FaultPlan::down());
    for i in 0..30 {
        coordinator
            .write(Bytes::from(format!("k{i}")), Some(Bytes::from("v")), None, 2)
            .await
            .unwrap();
    }
    coordinator.background().drain().await;
    nodes[2].faulty.set_plan(FaultPlan::default());
    assert_eq!(handoff.deliver_round(&coordinator.view(), 10).await, 10);
    assert_eq!(handoff.pending()[&NodeId::new("c")].hints, 20);
}

#[tokio::test(start_paused = true)]
async fn a_hint_its_owner_refuses_is_dropped_and_does_not_block_the_others() {
    let (coordinator, handoff, nodes) = cluster();
    coordinator
        .write(Bytes::from("big"), Some(Bytes::from("x".repeat(100))), None, 2)
        .await
        .unwrap();
    nodes[2].faulty.set_plan(FaultPlan::down());
    coordinator.write(Bytes::from("small"), Some(Bytes::from("v")), None, 2).await.unwrap();
    coordinator.background().drain().await;
    assert_eq!(handoff.pending()[&NodeId::new("c")].hints, 2);
    nodes[2].faulty.set_plan(FaultPlan::default());
    let delivered = handoff.deliver_round(&coordinator.view(), 1000).await;
    assert_eq!(delivered, 1);
    assert!(handoff.pending().is_empty(), "the refused hint is gone");
    assert_eq!(value(&nodes[2], "small"), Some(Bytes::from("v")));
}
