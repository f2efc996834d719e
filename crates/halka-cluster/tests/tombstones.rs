//! Tombstone collection between in-process replicas: a tombstone goes only once every
//! owner holds it, no hint for the key is pending and the grace has passed — and nothing
//! deleted comes back, nothing written later is lost.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::anti_entropy::STRETCH_BITS;
use halka_cluster::tombstones::Round;
use halka_cluster::{
    AntiEntropy, AntiEntropyConfig, Clock, Collector, CollectorConfig, Coordinator,
    CoordinatorConfig, FaultPlan, FaultyReplica, Handoff, HandoffConfig, LocalReplica, Replica,
    View,
};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member};
use halka_store::{
    HashRange, HintStore, MemoryEngine, MemoryHints, NodeId, TrackedEngine, Tracking,
};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

const IDS: [&str; 3] = ["a", "b", "c"];
const GRACE: Duration = Duration::from_secs(60);
const SECOND_US: u64 = 1_000_000;
/// Three rounds at the default one-second interval.
const SETTLE: Duration = Duration::from_secs(3);

thread_local! {
    /// The test's wall clock in microseconds. Tests run on current-thread runtimes, so
    /// each test has its own.
    static NOW: Cell<u64> = const { Cell::new(1_000 * SECOND_US) };
}

fn now() -> u64 {
    NOW.with(Cell::get)
}

fn advance(by: Duration) {
    NOW.with(|n| n.set(n.get() + by.as_micros() as u64));
}

struct Node {
    local: LocalReplica,
    faulty: FaultyReplica,
    coordinator: Arc<Coordinator>,
    handoff: Arc<Handoff>,
    collector: Arc<Collector>,
}

/// Three nodes, N = 3; each coordinates for itself and keeps its own hints.
fn cluster() -> Vec<Node> {
    let hint_stores: Vec<Arc<dyn HintStore>> =
        IDS.iter().map(|_| Arc::new(MemoryHints::new(1 << 20)) as Arc<dyn HintStore>).collect();
    let locals: Vec<LocalReplica> = IDS
        .into_iter()
        .zip(&hint_stores)
        .map(|(id, hints)| {
            let engine =
                TrackedEngine::build(Arc::new(MemoryEngine::default()), Tracking::ALL).unwrap();
            LocalReplica::new(NodeId::new(id), Arc::new(engine)).with_hints(Arc::clone(hints))
        })
        .collect();
    let faulty: Vec<FaultyReplica> = locals
        .iter()
        .map(|l| FaultyReplica::new(Arc::new(l.clone()), FaultPlan::default(), 7))
        .collect();
    let members: Vec<Member> = IDS
        .into_iter()
        .map(|id| Member { id: id.into(), zone: String::new(), weight: 1 })
        .collect();
    locals
        .into_iter()
        .zip(faulty.iter().cloned())
        .zip(hint_stores)
        .map(|((local, own), hints)| {
            let replicas: Vec<Arc<dyn Replica>> =
                faulty.iter().map(|f| Arc::new(f.clone()) as Arc<dyn Replica>).collect();
            let layout = Layout::active(1, &members, 3, DEFAULT_PARTITIONS).unwrap();
            let view = View::new(Some(layout), replicas, 3);
            let handoff = Handoff::new(hints, HandoffConfig::default());
            let coordinator = Coordinator::new(
                view,
                CoordinatorConfig {
                    local_node: Some(local.id().clone()),
                    timeout: Duration::from_millis(100),
                    tombstone_grace: Some(GRACE),
                    ..CoordinatorConfig::default()
                },
            )
            .with_clock(Clock::new(now))
            .with_handoff(Arc::clone(&handoff));
            let collector = Collector::new(
                local.id().clone(),
                Arc::clone(local.engine()),
                CollectorConfig { grace: GRACE, settle: SETTLE, ..CollectorConfig::default() },
            )
            .unwrap();
            Node { local, faulty: own, coordinator: Arc::new(coordinator), handoff, collector }
        })
        .collect()
}

fn key(i: usize) -> Bytes {
    Bytes::from(format!("k{i}"))
}

/// Keys `node` stores a record for, among `0..count`.
fn stored(node: &Node, count: usize) -> usize {
    (0..count).filter(|&i| node.local.engine().get(&key(i)).unwrap().is_some()).count()
}

/// Rounds until a tombstone stored now is considered: one per second of the settle
/// time, and one more, since it may have arrived just before the next round.
const SETTLE_ROUNDS: usize = 4;

/// `SETTLE_ROUNDS` collection rounds on `node`, added up: enough for any tombstone it
/// held before to be considered once.
async fn settled_rounds(node: &Node) -> Round {
    let mut total = Round::default();
    for _ in 0..SETTLE_ROUNDS {
        let round = node.collector.round(&node.coordinator.view(), now()).await;
        total.due += round.due;
        total.collected += round.collected;
    }
    total
}

/// [`settled_rounds`] on every node; returns the tombstones removed.
async fn collect_everywhere(nodes: &[Node]) -> usize {
    let mut collected = 0;
    for n in nodes {
        collected += settled_rounds(n).await.collected;
    }
    collected
}

/// Writes `count` keys at W=3, then deletes them through node a at `w_delete`.
async fn write_then_delete(nodes: &[Node], count: usize, w_delete: usize) {
    let a = &nodes[0].coordinator;
    for i in 0..count {
        a.write(key(i), Some(Bytes::from("doomed")), None, 3).await.unwrap();
    }
    for i in 0..count {
        a.write(key(i), None, None, w_delete).await.unwrap();
    }
    a.background().drain().await;
}

/// One anti-entropy exchange of every stretch between `from` and every other node.
async fn anti_entropy_pass(nodes: &[Node], from: usize) {
    let config = AntiEntropyConfig { tombstone_grace: Some(GRACE), ..AntiEntropyConfig::default() };
    let aae = AntiEntropy::with_clock(nodes[from].local.id().clone(), config, Clock::new(now));
    let view = nodes[from].coordinator.view();
    for peer in view.replicas().iter().filter(|r| r.id() != nodes[from].local.id()) {
        for stretch in HashRange::chunks(STRETCH_BITS) {
            aae.exchange(&view, stretch, peer).await.unwrap();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn tombstones_every_owner_holds_are_collected_once_the_grace_has_passed() {
    let nodes = cluster();
    write_then_delete(&nodes, 100, 3).await;
    assert_eq!(collect_everywhere(&nodes).await, 0, "within the grace nothing goes");
    assert_eq!(nodes[0].collector.stats(now()).pending, 100);

    advance(GRACE + Duration::from_secs(1));
    assert_eq!(collect_everywhere(&nodes).await, 300);

    for n in &nodes {
        assert_eq!(stored(n, 100), 0, "{} still stores deleted keys", n.local.id());
        assert_eq!(n.collector.stats(now()).pending, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn an_owner_that_missed_the_delete_keeps_the_others_from_collecting() {
    let nodes = cluster();
    let a = &nodes[0].coordinator;
    for i in 0..50 {
        a.write(key(i), Some(Bytes::from("doomed")), None, 3).await.unwrap();
    }
    nodes[2].faulty.set_plan(FaultPlan::down());
    for i in 0..50 {
        a.write(key(i), None, None, 2).await.unwrap();
    }
    a.background().drain().await;
    nodes[2].faulty.set_plan(FaultPlan::default());
    advance(GRACE + Duration::from_secs(1));

    assert_eq!(collect_everywhere(&nodes).await, 0, "c still holds the values");

    // Anti-entropy tells c about the deletes; a's hints for c still hold them up.
    anti_entropy_pass(&nodes, 0).await;
    assert_eq!(collect_everywhere(&nodes).await, 0, "a keeps hints for the keys");
    assert_eq!(nodes[0].handoff.deliver_round(&a.view(), 1000).await, 50);
    assert_eq!(collect_everywhere(&nodes).await, 150);
    for i in 0..50 {
        let read = a.get(key(i), 3).await.unwrap();
        assert!(read.values().next().is_none(), "k{i} came back: {read:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_tombstone_is_collected_only_after_this_replica_held_it_for_the_settle_time() {
    let nodes = cluster();
    write_then_delete(&nodes, 10, 3).await;
    advance(GRACE + Duration::from_secs(1));
    let a = &nodes[0];
    let mut rounds = 0;
    loop {
        rounds += 1;
        let round = a.collector.round(&a.coordinator.view(), now()).await;
        if round.collected > 0 {
            assert_eq!(round.collected, 10);
            break;
        }
        assert_eq!(round.due, 0, "round {rounds} found tombstones due but kept them");
        assert!(rounds < 10, "never collected");
    }
    assert_eq!(rounds, SETTLE_ROUNDS);
}

#[tokio::test(start_paused = true)]
async fn an_owner_that_does_not_answer_keeps_the_others_from_collecting() {
    let nodes = cluster();
    write_then_delete(&nodes, 20, 3).await;
    advance(GRACE + Duration::from_secs(1));
    nodes[2].faulty.set_plan(FaultPlan::down());
    let round = settled_rounds(&nodes[0]).await;
    assert_eq!((round.due, round.collected), (20, 0));
}

#[tokio::test(start_paused = true)]
async fn a_hint_kept_on_another_node_keeps_the_tombstone() {
    let nodes = cluster();
    let a = &nodes[0].coordinator;
    a.write(key(0), Some(Bytes::from("doomed")), None, 3).await.unwrap();
    nodes[2].faulty.set_plan(FaultPlan::down());
    a.write(key(0), None, None, 2).await.unwrap();
    a.background().drain().await;
    nodes[2].faulty.set_plan(FaultPlan::default());
    // c gets the tombstone some other way (a read repair, say); a's hint for c stays.
    let tombstone = nodes[0].local.engine().get(&key(0)).unwrap().unwrap();
    nodes[2].local.engine().merge(&key(0), &tombstone).unwrap();
    advance(GRACE + Duration::from_secs(1));
    // b, which keeps no hint itself, asks every member.
    let round = settled_rounds(&nodes[1]).await;
    assert_eq!((round.due, round.collected), (1, 0), "a's hint for c keeps the tombstone");
    assert_eq!(nodes[0].handoff.deliver_round(&a.view(), 1000).await, 1);
    assert_eq!(settled_rounds(&nodes[1]).await.collected, 1);
}

/// Owner c as a's collector sees it: it answers a read of its records, and just after,
/// a's hint for it arrives (a's handoff delivers it). That is the moment between the
/// collector's two questions — which members hold hints, which records the owners hold —
/// when a delivery could slip past both.
struct HintArrivesAfterTheRead {
    c: FaultyReplica,
    handoff: Arc<Handoff>,
    view: Arc<View>,
}

impl std::fmt::Debug for HintArrivesAfterTheRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HintArrivesAfterTheRead").field("c", self.c.id()).finish_non_exhaustive()
    }
}

impl Replica for HintArrivesAfterTheRead {
    fn id(&self) -> &NodeId {
        self.c.id()
    }
    fn coordinate_write(
        &self,
        key: &Bytes,
        write: &halka_store::Write,
    ) -> halka_cluster::ReplicaFuture<halka_cluster::Coordinated> {
        self.c.coordinate_write(key, write)
    }
    fn merge(
        &self,
        key: &Bytes,
        record: &Arc<halka_store::Record>,
    ) -> halka_cluster::ReplicaFuture<halka_cluster::Durability> {
        self.c.merge(key, record)
    }
    fn get(&self, key: &Bytes) -> halka_cluster::ReplicaFuture<Option<Arc<halka_store::Record>>> {
        self.c.get(key)
    }
    fn hinted(&self, keys: Vec<Bytes>) -> halka_cluster::ReplicaFuture<Vec<bool>> {
        self.c.hinted(keys)
    }
    fn get_many(
        &self,
        keys: Vec<Bytes>,
    ) -> halka_cluster::ReplicaFuture<Vec<Option<Arc<halka_store::Record>>>> {
        let answer = self.c.get_many(keys);
        let (handoff, view) = (Arc::clone(&self.handoff), Arc::clone(&self.view));
        halka_cluster::deferred(async move {
            let answer = answer.await;
            assert_eq!(handoff.deliver_round(&view, 1000).await, 1, "a delivers its hint");
            answer
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_hint_delivered_while_the_collector_asks_the_owners_keeps_the_tombstone() {
    let nodes = cluster();
    let a = &nodes[0].coordinator;
    // a keeps a hint with the value for c, which was down when it was written.
    nodes[2].faulty.set_plan(FaultPlan::down());
    a.write(key(0), Some(Bytes::from("doomed")), None, 2).await.unwrap();
    nodes[2].faulty.set_plan(FaultPlan::default());
    a.write(key(0), None, None, 3).await.unwrap();
    a.background().drain().await;
    // b and c no longer hold the key (collected, or their disks were replaced).
    for owner in &nodes[1..] {
        owner.local.engine().remove_if(&key(0), &mut |_| true).unwrap();
    }
    advance(GRACE + Duration::from_secs(1));
    let view = a.view();
    let late = HintArrivesAfterTheRead {
        c: nodes[2].faulty.clone(),
        handoff: Arc::clone(&nodes[0].handoff),
        view: Arc::clone(&view),
    };
    let replicas: Vec<Arc<dyn Replica>> =
        vec![Arc::clone(&view.replicas()[0]), Arc::clone(&view.replicas()[1]), Arc::new(late)];
    let seen_by_collector = View::new(view.layout().cloned(), replicas, 3);
    let mut collected = 0;
    for _ in 0..SETTLE_ROUNDS {
        collected += nodes[0].collector.round(&seen_by_collector, now()).await.collected;
    }
    assert_eq!(collected, 0, "a's hint was pending when the collector began");
    // What c got from the hint is hidden by a's tombstone once the replicas compare.
    anti_entropy_pass(&nodes, 0).await;
    let read = a.get(key(0), 3).await.unwrap();
    assert!(read.values().next().is_none(), "the deleted value came back: {read:?}");
}

#[tokio::test(start_paused = true)]
async fn a_member_that_does_not_answer_keeps_every_tombstone() {
    let nodes = cluster();
    write_then_delete(&nodes, 5, 3).await;
    advance(GRACE + Duration::from_secs(1));
    // c holds the tombstones too, but cannot say whether it keeps hints for the keys.
    nodes[2].faulty.set_plan(FaultPlan::down());
    assert_eq!(settled_rounds(&nodes[0]).await.collected, 0);
}

#[tokio::test(start_paused = true)]
async fn a_write_after_a_collection_is_kept_by_owners_that_still_hold_the_tombstone() {
    let nodes = cluster();
    write_then_delete(&nodes, 30, 3).await;
    advance(GRACE + Duration::from_secs(1));
    // Only a collects; b and c still hold every tombstone.
    let a = &nodes[0];
    assert_eq!(settled_rounds(a).await.collected, 30);

    for i in 0..30 {
        a.coordinator.write(key(i), Some(Bytes::from("reborn")), None, 3).await.unwrap();
    }
    a.coordinator.background().drain().await;
    for i in 0..30 {
        for n in &nodes {
            let record = n.local.engine().get(&key(i)).unwrap().unwrap();
            let values: Vec<_> = record.values().collect();
            assert_eq!(values, [&Bytes::from("reborn")], "k{i} at {}", n.local.id());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn repairs_do_not_hand_a_collected_tombstone_back() {
    let nodes = cluster();
    write_then_delete(&nodes, 40, 3).await;
    advance(GRACE + Duration::from_secs(1));
    assert_eq!(settled_rounds(&nodes[0]).await.collected, 40);
    // b and c still hold the tombstones a removed; neither anti-entropy nor a read
    // gives them back to a.
    anti_entropy_pass(&nodes, 1).await;
    for i in 0..40 {
        let read = nodes[1].coordinator.get(key(i), 3).await.unwrap();
        assert!(read.values().next().is_none());
    }
    nodes[1].coordinator.background().drain().await;
    assert_eq!(stored(&nodes[0], 40), 0, "a was handed tombstones it had collected");
    assert_eq!(collect_everywhere(&nodes[1..]).await, 80);
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_holds_nothing_still_gets_a_recent_tombstone() {
    let nodes = cluster();
    write_then_delete(&nodes, 10, 3).await;
    // c loses everything (say, its disk) before the grace has passed: the tombstones
    // are still young, so repair gives them to it.
    for i in 0..10 {
        assert!(nodes[2].local.engine().remove_if(&key(i), &mut |_| true).unwrap());
    }
    anti_entropy_pass(&nodes, 0).await;
    assert_eq!(stored(&nodes[2], 10), 10);
}
