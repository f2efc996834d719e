//! Sloppy quorum: with owners of a key down, members beyond the owners stand in for them,
//! keep the write as a hint, count towards W, and hand the write over when the owners
//! answer again. `pw` counts the owners' own acknowledgements.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::gossip::{Judged, Liveness};
use halka_cluster::{
    ClusterError, Coordinator, CoordinatorConfig, FaultPlan, FaultyReplica, Handoff, HandoffConfig,
    LocalReplica, Replica, View, WriteQuorum,
};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member};
use halka_store::{HintStore, MemoryEngine, MemoryHints, NodeId};
use std::sync::Arc;
use std::time::Duration;

const IDS: [&str; 5] = ["a", "b", "c", "d", "e"];

struct Node {
    local: LocalReplica,
    faulty: FaultyReplica,
    coordinator: Coordinator,
    handoff: Arc<Handoff>,
}

/// Five nodes, N = 3; every node keeps hints and may stand in.
fn cluster() -> Vec<Node> {
    cluster_in_zones(&IDS.map(|id| (id, "")))
}

/// A node per (id, zone), N = 3.
fn cluster_in_zones(nodes: &[(&str, &str)]) -> Vec<Node> {
    let parts: Vec<(LocalReplica, FaultyReplica, Arc<dyn HintStore>)> = nodes
        .iter()
        .map(|&(id, _)| {
            let hints: Arc<dyn HintStore> = Arc::new(MemoryHints::new(1 << 20));
            let local = LocalReplica::new(NodeId::new(id), Arc::new(MemoryEngine::default()))
                .with_hints(Arc::clone(&hints));
            let faulty = FaultyReplica::new(Arc::new(local.clone()), FaultPlan::default(), 7);
            (local, faulty, hints)
        })
        .collect();
    let members: Vec<Member> = nodes
        .iter()
        .map(|&(id, zone)| Member { id: id.into(), zone: zone.into(), weight: 1 })
        .collect();
    parts
        .iter()
        .map(|(local, faulty, hints)| {
            let replicas: Vec<Arc<dyn Replica>> =
                parts.iter().map(|(_, f, _)| Arc::new(f.clone()) as Arc<dyn Replica>).collect();
            let view = View::new(
                Some(Layout::active(1, &members, 3, DEFAULT_PARTITIONS).unwrap()),
                replicas,
                3,
            );
            let handoff = Handoff::new(Arc::clone(hints), HandoffConfig::default());
            let coordinator = Coordinator::new(
                view,
                CoordinatorConfig {
                    local_node: Some(local.id().clone()),
                    timeout: Duration::from_millis(100),
                    ..CoordinatorConfig::default()
                },
            )
            .with_handoff(Arc::clone(&handoff));
            Node { local: local.clone(), faulty: faulty.clone(), coordinator, handoff }
        })
        .collect()
}

/// The indexes of `key`'s owners, best first, and of the other nodes.
fn owners_and_others(nodes: &[Node], key: &[u8]) -> (Vec<usize>, Vec<usize>) {
    let view = nodes[0].coordinator.view();
    let owners: Vec<usize> = view.preference(key).iter().map(|&i| usize::from(i)).collect();
    let others = (0..nodes.len()).filter(|i| !owners.contains(i)).collect();
    (owners, others)
}

fn value(node: &Node, key: &[u8]) -> Option<Bytes> {
    node.local.engine().get(key).unwrap().and_then(|r| r.lww_value().cloned())
}

#[tokio::test(start_paused = true)]
async fn with_two_owners_down_a_stand_in_completes_the_write_and_hands_it_over() {
    let nodes = cluster();
    let key = Bytes::from("k");
    let (owners, others) = owners_and_others(&nodes, &key);
    for &o in &owners[1..] {
        nodes[o].faulty.set_plan(FaultPlan::down());
    }
    let through = &nodes[owners[0]].coordinator;
    let put = through.write(key.clone(), Some(Bytes::from("v")), None, 2).await.unwrap();

    assert_eq!(put.stand_ins.len(), 1, "{put:?}");
    let (stand_in, for_owner) = &put.stand_ins[0];
    assert!(others.iter().any(|&i| nodes[i].local.id() == stand_in), "{put:?}");
    assert!(owners[1..].iter().any(|&o| nodes[o].local.id() == for_owner), "{put:?}");
    assert!(put.acked.contains(stand_in));
    let s = others.iter().copied().find(|&i| nodes[i].local.id() == stand_in).unwrap();
    assert_eq!(value(&nodes[s], &key), None, "a stand-in keeps a hint, not the key");
    assert_eq!(nodes[s].handoff.pending()[for_owner].hints, 1);

    for &o in &owners[1..] {
        nodes[o].faulty.set_plan(FaultPlan::default());
    }
    let view = nodes[s].coordinator.view();
    assert_eq!(nodes[s].handoff.deliver_round(&view, 100).await, 1);
    let o = owners.iter().copied().find(|&o| nodes[o].local.id() == for_owner).unwrap();
    assert_eq!(value(&nodes[o], &key), Some(Bytes::from("v")));
}

#[tokio::test(start_paused = true)]
async fn a_write_gives_an_owner_the_detector_convicts_to_a_stand_in_without_waiting_for_it() {
    let nodes = cluster();
    let key = Bytes::from("k");
    let (owners, others) = owners_and_others(&nodes, &key);
    // The owner hangs: without the detector the write would wait out its timeout.
    nodes[owners[2]].faulty.set_plan(FaultPlan::silent());
    let hung = nodes[owners[2]].local.id().clone();
    let liveness = Liveness::default();
    liveness.publish([(hung.clone(), Judged { phi: 20.0, convicted: true })].into());
    let Node { coordinator, handoff, .. } = nodes.into_iter().nth(owners[0]).unwrap();
    let coordinator = coordinator.with_liveness(liveness);

    let started = tokio::time::Instant::now();
    let put = coordinator.write(key, Some(Bytes::from("v")), None, 3).await.unwrap();

    assert!(started.elapsed() < Duration::from_millis(100), "waited {:?}", started.elapsed());
    assert_eq!(put.stand_ins.len(), 1, "{put:?}");
    assert_eq!(put.stand_ins[0].1, hung);
    assert!(others.len() == 2 && !put.acked.contains(&hung));
    assert_eq!(handoff.pending()[&hung].hints, 1, "the coordinator keeps a hint for it");
}

#[tokio::test(start_paused = true)]
async fn pw_counts_only_the_owners_own_acknowledgements() {
    let nodes = cluster();
    let key = Bytes::from("k");
    let (owners, _) = owners_and_others(&nodes, &key);
    for &o in &owners[1..] {
        nodes[o].faulty.set_plan(FaultPlan::down());
    }
    let through = &nodes[owners[0]].coordinator;
    let err = through
        .write_with(key.clone(), Some(Bytes::from("v")), None, WriteQuorum { w: 2, pw: 2 })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pw=2"), "{err}");
    let ok = through
        .write_with(key, Some(Bytes::from("v")), None, WriteQuorum { w: 2, pw: 1 })
        .await
        .unwrap();
    assert_eq!(ok.stand_ins.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn pw_above_w_is_refused_before_anything_is_written() {
    let nodes = cluster();
    let err = nodes[0]
        .coordinator
        .write_with(Bytes::from("k"), Some(Bytes::from("v")), None, WriteQuorum { w: 1, pw: 2 })
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::OwnerQuorum { pw: 2, w: 1 }), "{err}");
    assert!(err.to_string().contains("allowed range is 0..=1"), "{err}");
    assert!(nodes.iter().all(|n| value(n, b"k").is_none()));
}

#[tokio::test(start_paused = true)]
async fn stand_ins_never_coordinate_so_a_key_with_every_owner_down_is_not_writable() {
    let nodes = cluster();
    let key = Bytes::from("k");
    let (owners, others) = owners_and_others(&nodes, &key);
    for &o in &owners {
        nodes[o].faulty.set_plan(FaultPlan::down());
    }
    let err = nodes[others[0]]
        .coordinator
        .write(key.clone(), Some(Bytes::from("v")), None, 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("write quorum not reached"), "{err}");
    assert!(nodes.iter().all(|n| n.handoff.pending().values().all(|h| h.hints == 0)));
}

#[tokio::test(start_paused = true)]
async fn a_stand_in_comes_from_the_failed_owners_zone_when_one_is_left() {
    let zones = [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b"), ("c1", "c"), ("c2", "c")];
    let nodes = cluster_in_zones(&zones);
    let zone_of = |id: &NodeId| zones.iter().find(|(n, _)| *n == id.as_str()).unwrap().1;
    for k in 0..20 {
        let key = Bytes::from(format!("k{k}"));
        let (owners, _) = owners_and_others(&nodes, &key);
        let failed = owners[1];
        nodes[failed].faulty.set_plan(FaultPlan::down());
        let put = nodes[owners[0]].coordinator.write(key, Some(Bytes::from("v")), None, 3).await;
        nodes[failed].faulty.set_plan(FaultPlan::default());
        let put = put.unwrap();
        let (by, for_owner) = &put.stand_ins[0];
        assert_eq!(for_owner, nodes[failed].local.id());
        assert_eq!(zone_of(by), zone_of(for_owner), "k{k}: {put:?}");
    }
}
