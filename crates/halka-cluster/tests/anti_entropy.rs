//! Anti-entropy between in-process replicas: replicas that missed writes, deletes or
//! their whole store converge by comparing digest trees, without any client reading.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::anti_entropy::STRETCH_BITS;
use halka_cluster::{
    AntiEntropy, AntiEntropyConfig, Coordinator, CoordinatorConfig, FaultPlan, FaultyReplica,
    LocalReplica, Replica, View,
};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member};
use halka_store::{HashRange, MemoryEngine, NodeId, TrackedEngine, Tracking};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const IDS: [&str; 3] = ["a", "b", "c"];

struct Node {
    local: LocalReplica,
    faulty: FaultyReplica,
}

fn node(id: &str) -> Node {
    let engine = TrackedEngine::build(Arc::new(MemoryEngine::default()), Tracking::ALL).unwrap();
    let local = LocalReplica::new(NodeId::new(id), Arc::new(engine));
    let faulty = FaultyReplica::new(Arc::new(local.clone()), FaultPlan::default(), 7);
    Node { local, faulty }
}

/// Three nodes, N = 3, coordinated from `a`, without hinted handoff.
fn cluster() -> (Arc<Coordinator>, Vec<Node>) {
    let nodes: Vec<Node> = IDS.into_iter().map(node).collect();
    let members: Vec<Member> = IDS
        .into_iter()
        .map(|id| Member { id: id.into(), zone: String::new(), weight: 1 })
        .collect();
    let layout = Layout::active(1, &members, 3, DEFAULT_PARTITIONS).unwrap();
    let replicas: Vec<Arc<dyn Replica>> =
        nodes.iter().map(|n| Arc::new(n.faulty.clone()) as Arc<dyn Replica>).collect();
    let view = View::new(Some(layout), replicas, 3);
    let coordinator = Coordinator::new(
        view,
        CoordinatorConfig {
            local_node: Some(NodeId::new("a")),
            timeout: Duration::from_millis(100),
            ..CoordinatorConfig::default()
        },
    );
    (Arc::new(coordinator), nodes)
}

fn key(i: usize) -> Bytes {
    Bytes::from(format!("k{i}"))
}

/// Every key either node holds, with whether the two hold the same record.
fn differing_keys(a: &Node, b: &Node) -> Vec<Bytes> {
    let mut out = Vec::new();
    for (x, y) in [(a, b), (b, a)] {
        x.local
            .engine()
            .scan(&mut |k, r| {
                let same = y.local.engine().get(k).unwrap().is_some_and(|o| o.same_as(&r));
                if !same && !out.iter().any(|o: &Bytes| o == k) {
                    out.push(Bytes::copy_from_slice(k));
                }
            })
            .unwrap();
    }
    out
}

/// Writes `value(i)` to keys `range` at W=2 while `down` is down; it stays down after.
async fn write_while_down(
    coordinator: &Coordinator,
    down: &Node,
    range: std::ops::Range<usize>,
    value: impl Fn(usize) -> Option<Bytes>,
) {
    down.faulty.set_plan(FaultPlan::down());
    for i in range {
        coordinator.write(key(i), value(i), None, 2).await.unwrap();
    }
    coordinator.background().drain().await;
}

fn config() -> AntiEntropyConfig {
    AntiEntropyConfig { interval: Duration::from_millis(10), ..AntiEntropyConfig::default() }
}

/// One exchange of every stretch between `from` and each other node.
async fn one_pass(coordinator: &Coordinator, from: &str) -> u64 {
    let aae = AntiEntropy::new(NodeId::new(from), config());
    let view = coordinator.view();
    let mut repaired = 0;
    for peer in view.replicas().iter().filter(|r| r.id().as_str() != from) {
        for stretch in HashRange::chunks(STRETCH_BITS) {
            repaired += aae.exchange(&view, stretch, peer).await.unwrap().repaired;
        }
    }
    repaired
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_missed_writes_and_deletes_holds_them_after_one_pass() {
    let (coordinator, nodes) = cluster();
    for i in 0..300 {
        coordinator.write(key(i), Some(Bytes::from("old")), None, 3).await.unwrap();
    }
    write_while_down(&coordinator, &nodes[2], 0..300, |i| (i % 3 != 0).then(|| Bytes::from("new")))
        .await;
    nodes[2].faulty.set_plan(FaultPlan::default());
    assert_eq!(differing_keys(&nodes[0], &nodes[2]).len(), 300, "c missed every write");

    let repaired = one_pass(&coordinator, "c").await;

    assert_eq!(repaired, 300, "one record taken per key");
    assert!(differing_keys(&nodes[0], &nodes[2]).is_empty());
    assert!(differing_keys(&nodes[1], &nodes[2]).is_empty());
    let deleted = nodes[2].local.engine().get(&key(0)).unwrap().unwrap();
    assert!(deleted.lww_value().is_none(), "the delete reached c as a tombstone");
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_lost_its_store_is_refilled_by_the_others() {
    let (coordinator, nodes) = cluster();
    for i in 0..200 {
        coordinator.write(key(i), Some(Bytes::from("v")), None, 3).await.unwrap();
    }
    // c comes back empty: a new engine behind the same id.
    let wiped = node("c");
    let view = coordinator.view();
    let replicas: Vec<Arc<dyn Replica>> = vec![
        Arc::clone(view.replica(0)),
        Arc::clone(view.replica(1)),
        Arc::new(wiped.faulty.clone()),
    ];
    let members: Vec<Member> = IDS
        .into_iter()
        .map(|id| Member { id: id.into(), zone: String::new(), weight: 1 })
        .collect();
    let layout = Layout::active(2, &members, 3, DEFAULT_PARTITIONS).unwrap();
    coordinator.swap_view(View::new(Some(layout), replicas, 3));
    let nodes = [&nodes[0], &nodes[1], &wiped];

    // Pushed by a, not pulled by c: either side of an exchange repairs both.
    one_pass(&coordinator, "a").await;

    assert!(differing_keys(nodes[0], nodes[2]).is_empty());
    assert_eq!(nodes[2].local.engine().key_count(), 200);
}

#[tokio::test(start_paused = true)]
async fn repair_keeps_the_newer_write_whichever_side_holds_it() {
    let (coordinator, nodes) = cluster();
    for i in 0..100 {
        coordinator.write(key(i), Some(Bytes::from("old")), None, 3).await.unwrap();
    }
    // Half the keys are newer on a (c was down), the other half newer on c (a was down).
    write_while_down(&coordinator, &nodes[2], 0..50, |_| Some(Bytes::from("new"))).await;
    nodes[2].faulty.set_plan(FaultPlan::default());
    for i in 50..100 {
        let record = nodes[2]
            .local
            .coordinate_write(
                &key(i),
                &halka_store::Write::value(Some(Bytes::from("new")), None, u64::MAX / 2),
            )
            .await
            .unwrap()
            .record;
        assert_eq!(record.lww_value(), Some(&Bytes::from("new")));
    }

    one_pass(&coordinator, "a").await;

    for i in 0..100 {
        for n in [&nodes[0], &nodes[2]] {
            let r = n.local.engine().get(&key(i)).unwrap().unwrap();
            assert_eq!(
                r.values().collect::<Vec<_>>(),
                vec!["new"],
                "key {i} on {:?}",
                n.local.id()
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_exchange_with_a_peer_that_is_down_fails_and_changes_nothing() {
    let (coordinator, nodes) = cluster();
    write_while_down(&coordinator, &nodes[2], 0..20, |_| Some(Bytes::from("v"))).await;
    let aae = AntiEntropy::new(NodeId::new("a"), config());
    let view = coordinator.view();
    let result = aae.exchange(&view, HashRange::partition(0, STRETCH_BITS), view.replica(2)).await;
    assert!(result.is_err());
    assert_eq!(aae.stats().failed_exchanges, 1);
    assert_eq!(aae.stats().keys_repaired, 0);
    assert_eq!(nodes[2].local.engine().key_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn repairs_are_paced_to_the_configured_rate() {
    let (coordinator, nodes) = cluster();
    write_while_down(&coordinator, &nodes[2], 0..500, |_| Some(Bytes::from("v"))).await;
    nodes[2].faulty.set_plan(FaultPlan::default());
    let aae = AntiEntropy::new(
        NodeId::new("c"),
        AntiEntropyConfig { max_keys_per_second: 100, ..config() },
    );
    let view = coordinator.view();
    let started = tokio::time::Instant::now();
    for stretch in HashRange::chunks(STRETCH_BITS) {
        aae.exchange(&view, stretch, view.replica(0)).await.unwrap();
    }
    assert_eq!(aae.stats().keys_repaired, 500);
    // 500 keys at 100 a second: the last batch may start at 4.9 s, minus one burst.
    assert!(started.elapsed() >= Duration::from_millis(4_700), "took {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn the_background_tasks_converge_every_replica_and_report_their_progress() {
    let (coordinator, nodes) = cluster();
    write_while_down(&coordinator, &nodes[1], 0..100, |_| Some(Bytes::from("v"))).await;
    nodes[1].faulty.set_plan(FaultPlan::default());
    let shutdown = CancellationToken::new();
    let tasks: Vec<_> = IDS
        .into_iter()
        .map(|id| {
            let aae = AntiEntropy::new(NodeId::new(id), config());
            let task =
                tokio::spawn(Arc::clone(&aae).run(coordinator.view_handle(), shutdown.clone()));
            (aae, task)
        })
        .collect();
    while tasks.iter().any(|(aae, _)| aae.stats().passes == 0) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let mut stats = Vec::new();
    for (aae, task) in tasks {
        task.await.unwrap();
        stats.push(aae.stats());
    }

    assert!(differing_keys(&nodes[0], &nodes[1]).is_empty());
    assert!(differing_keys(&nodes[2], &nodes[1]).is_empty());
    // Each pair is compared by its lower id: a with b and c, b with c, c with nobody.
    let exchanges: Vec<u64> = stats.iter().map(|s| s.exchanges).collect();
    assert!(exchanges[0] >= 2 << STRETCH_BITS && exchanges[1] >= 1 << STRETCH_BITS, "{stats:?}");
    assert_eq!(exchanges[2], 0, "{stats:?}");
    let divergent: u64 = stats.iter().map(|s| s.keys_divergent).sum();
    assert!((100..=200).contains(&divergent), "each missed key found once or twice: {stats:?}");
    assert!(stats.iter().all(|s| s.failed_exchanges == 0 && s.oldest_uncompared_secs <= 2));
}

#[tokio::test(start_paused = true)]
async fn the_background_task_of_a_cluster_of_one_idles_and_stops_on_shutdown() {
    let alone = node("a");
    let members = vec![Member { id: "a".into(), zone: String::new(), weight: 1 }];
    let layout = Layout::active(1, &members, 1, DEFAULT_PARTITIONS).unwrap();
    let view = View::new(Some(layout), vec![Arc::new(alone.faulty.clone())], 1);
    let coordinator = Arc::new(Coordinator::new(view, CoordinatorConfig::default()));
    let shutdown = CancellationToken::new();
    let aae = AntiEntropy::new(NodeId::new("a"), config());
    let task = tokio::spawn(Arc::clone(&aae).run(coordinator.view_handle(), shutdown.clone()));
    // A whole pass of 64 stretches at 10 ms each, nothing to exchange.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(aae.stats().passes, 1);
    assert_eq!(aae.stats().exchanges, 0);
    shutdown.cancel();
    task.await.unwrap();
}
