//! Quorum semantics of the coordinator, through the embedded cluster API.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::{
    Cluster, ClusterError, FaultPlan, FaultyReplica, LocalReplica, ReadFanout, Replica,
};
use halka_store::VersionVector;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const SEED_NODES: [&str; 6] = ["foo", "bar", "bazz", "zapp", "zucc", "bars"];

/// A cluster whose replicas are all wrapped in `FaultyReplica`, with handles to change plans.
struct Harness {
    cluster: Cluster,
    faults: Arc<Mutex<BTreeMap<String, FaultyReplica>>>,
    locals: Arc<Mutex<BTreeMap<String, LocalReplica>>>,
}

impl Harness {
    async fn new(n: usize, nodes: &[&str], timeout: Duration) -> Self {
        Self::with_reads(n, nodes, timeout, ReadFanout::All).await
    }

    async fn with_reads(n: usize, nodes: &[&str], timeout: Duration, reads: ReadFanout) -> Self {
        Self::build(n, nodes, timeout, reads, None).await
    }

    async fn build(
        n: usize,
        nodes: &[&str],
        timeout: Duration,
        reads: ReadFanout,
        clock: Option<fn() -> u64>,
    ) -> Self {
        let faults: Arc<Mutex<BTreeMap<String, FaultyReplica>>> = Arc::default();
        let locals: Arc<Mutex<BTreeMap<String, LocalReplica>>> = Arc::default();
        let (f, l) = (faults.clone(), locals.clone());
        let cluster = Cluster::builder().replication(n).timeout(timeout).read_fanout(reads);
        let cluster = match clock {
            Some(clock) => cluster.clock(clock),
            None => cluster,
        };
        let cluster = cluster
            .wrap_replicas(move |local| {
                let id = local.id().to_string();
                let seed = halka_ring::key_hash(id.as_bytes());
                let faulty =
                    FaultyReplica::new(Arc::new(local.clone()), FaultPlan::default(), seed);
                f.lock().insert(id.clone(), faulty.clone());
                l.lock().insert(id, local);
                Arc::new(faulty)
            })
            .build()
            .unwrap();
        for node in nodes {
            cluster.add_node(node).await.unwrap();
        }
        Self { cluster, faults, locals }
    }

    fn set(&self, node: &str, plan: FaultPlan) {
        self.faults.lock()[node].set_plan(plan);
    }

    /// The preference list of `key`, by node id.
    fn preference(&self, key: &str) -> Vec<String> {
        let view = self.cluster.coordinator().view();
        view.preference(key.as_bytes())
            .iter()
            .map(|&i| view.members()[usize::from(i)].id.clone())
            .collect()
    }

    /// Reads served so far by each node.
    fn reads(&self) -> BTreeMap<String, u64> {
        self.cluster.node_stats().into_iter().map(|s| (s.id, s.reads)).collect()
    }

    fn stored(&self, node: &str, key: &str) -> Option<Arc<halka_store::Record>> {
        self.locals.lock()[node].engine().get(key.as_bytes()).unwrap()
    }
}

#[tokio::test]
async fn seed_example_returns_three_replicas_values() {
    let h = Harness::new(5, &SEED_NODES, Duration::from_secs(1)).await;
    h.cluster.put("Mahmut", "Ozer", 3).await.unwrap();
    let got = h.cluster.get("Mahmut", 3).await.unwrap();
    assert_eq!(got.replies.len(), 3);
    let preference = h.preference("Mahmut");
    for (node, record) in &got.replies {
        assert!(preference.contains(&node.to_string()));
        assert_eq!(record.as_ref().unwrap().lww_value().unwrap(), &Bytes::from_static(b"Ozer"));
    }
    assert_eq!(got.value(), Some(Bytes::from_static(b"Ozer")));
}

#[tokio::test]
async fn impossible_quorums_are_rejected_before_any_io() {
    let h = Harness::new(3, &["a", "b", "c"], Duration::from_secs(1)).await;
    for (w, msg) in [(4, "w=4 exceeds replication factor n=3"), (0, "w=0 is invalid")] {
        let err = h.cluster.put("k", "v", w).await.unwrap_err();
        assert!(matches!(err, ClusterError::BadQuorum { .. }), "{err}");
        assert!(err.to_string().contains(msg), "{err}");
    }
    let err = h.cluster.get("k", 9).await.unwrap_err();
    assert!(err.to_string().contains("r=9 exceeds replication factor n=3"), "{err}");
    let ops: u64 = h.cluster.node_stats().iter().map(|s| s.reads + s.writes).sum();
    assert_eq!(ops, 0, "no replica was contacted");
}

#[tokio::test]
async fn oversized_keys_and_values_are_rejected_and_nothing_is_stored() {
    let h = Harness::new(3, &["a", "b", "c"], Duration::from_secs(1)).await;
    let err = h.cluster.put(vec![b'k'; 2000], "v", 2).await.unwrap_err();
    assert!(err.to_string().contains("key is 2000 bytes; the maximum is 1024 bytes"), "{err}");
    let err = h.cluster.put("k", vec![0_u8; 2 << 20], 2).await.unwrap_err();
    assert!(err.to_string().contains("maximum is 1048576 bytes"), "{err}");
    assert!(h.cluster.node_stats().iter().all(|s| s.keys == 0 && s.writes == 0));
}

#[tokio::test(start_paused = true)]
async fn slow_replica_is_not_waited_for() {
    let h = Harness::new(5, &SEED_NODES, Duration::from_secs(1)).await;
    // Slow a replica that is not the coordinating one (the first in preference order):
    // the coordinating replica's answer is needed before the others can be written.
    let slow = h.preference("Mahmut")[2].clone();
    h.set(&slow, FaultPlan::slow(Duration::from_millis(200)));
    let start = Instant::now();
    let put = h.cluster.put("Mahmut", "Ozer", 3).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(200), "put waited {:?}", start.elapsed());
    assert!(!put.acked.iter().any(|n| n.as_str() == slow));
    let start = Instant::now();
    let got = h.cluster.get("Mahmut", 3).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(200), "get waited {:?}", start.elapsed());
    assert!(!got.replies.iter().any(|(n, _)| n.as_str() == slow));
}

#[tokio::test(start_paused = true)]
async fn failed_quorum_returns_at_once_naming_the_failed_replicas() {
    let h = Harness::new(3, &["a", "b", "c"], Duration::from_secs(1)).await;
    let pref = h.preference("k");
    h.set(&pref[1], FaultPlan::down());
    h.set(&pref[2], FaultPlan::down());
    let start = Instant::now();
    let err = h.cluster.put("k", "v", 2).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "no waiting once failure is certain");
    let ClusterError::Quorum(q) = &err else { panic!("{err}") };
    assert_eq!((q.required, q.succeeded, q.failures.len()), (2, 1, 2));
    let text = err.to_string();
    assert!(
        text.contains(&pref[1]) && text.contains(&pref[2]) && text.contains("injected fault"),
        "{text}"
    );
    // w=1 still succeeds.
    h.cluster.put("k", "v", 1).await.unwrap();
    // A silent replica fails by deadline, and the error says so.
    h.set(&pref[1], FaultPlan::silent());
    h.set(&pref[2], FaultPlan::default());
    let start = Instant::now();
    let err = h.cluster.get("k", 3).await.unwrap_err();
    assert!(err.to_string().contains("timed out after 1000 ms"), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(1), "a silent replica costs one deadline");
}

#[tokio::test(start_paused = true)]
async fn no_task_outlives_its_deadline() {
    let h = Harness::new(3, &["a", "b", "c", "d", "e"], Duration::from_millis(100)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    h.set("a", FaultPlan::slow(Duration::from_millis(50)));
    h.set("b", FaultPlan::silent());
    h.set(
        "c",
        FaultPlan {
            jitter: Duration::from_millis(30),
            error_rate: 0.2,
            silence_rate: 0.2,
            ..FaultPlan::default()
        },
    );
    let mut ok = 0;
    for i in 0..10_000 {
        let key = format!("key-{i}");
        let result = if i % 2 == 0 {
            h.cluster.put(key, "v", 1).await.map(|_| ())
        } else {
            h.cluster.get(key, 1).await.map(|_| ())
        };
        ok += usize::from(result.is_ok());
    }
    assert!(ok > 9_000, "most operations succeed with w=r=1: {ok}");
    assert!(metrics.num_alive_tasks() > baseline, "stragglers were handed to the background");
    // Every straggler is bounded by the 100 ms deadline: waiting just past it drains all.
    tokio::time::timeout(Duration::from_millis(101), h.cluster.coordinator().background().drain())
        .await
        .expect("background work outlived its deadline");
    assert_eq!(metrics.num_alive_tasks(), baseline);
}

#[tokio::test(start_paused = true)]
async fn read_repair_fixes_a_stale_replica() {
    let h = Harness::new(3, &["a", "b", "c"], Duration::from_millis(100)).await;
    let pref = h.preference("k");
    h.set(&pref[2], FaultPlan::down());
    h.cluster.put("k", "v", 2).await.unwrap();
    h.cluster.coordinator().background().drain().await;
    assert!(h.stored(&pref[2], "k").is_none());
    h.set(&pref[2], FaultPlan::default());
    let got = h.cluster.get("k", 3).await.unwrap();
    assert_eq!(got.value(), Some(Bytes::from_static(b"v")));
    h.cluster.coordinator().background().drain().await;
    let repaired = h.stored(&pref[2], "k").expect("read repair wrote the record back");
    assert_eq!(repaired.lww_value(), Some(&Bytes::from_static(b"v")));
}

#[tokio::test(start_paused = true)]
async fn quorum_reads_ask_r_replicas_and_one_more_when_one_fails_or_is_slow() {
    let hedge = Duration::from_millis(10);
    let reads = ReadFanout::Quorum { hedge };
    let h = Harness::with_reads(3, &["a", "b", "c"], Duration::from_secs(1), reads).await;
    let pref = h.preference("k");
    h.cluster.put("k", "v", 3).await.unwrap();

    // All healthy: the first two in preference order, and nobody else, are asked.
    let before = h.reads();
    let got = h.cluster.get("k", 2).await.unwrap();
    assert_eq!(got.value(), Some(Bytes::from_static(b"v")));
    let after = h.reads();
    let asked: Vec<&String> = pref.iter().filter(|n| after[*n] > before[*n]).collect();
    assert_eq!(asked, [&pref[0], &pref[1]]);

    // A failed replica is replaced at once by the next one.
    h.set(&pref[1], FaultPlan::down());
    let start = Instant::now();
    let got = h.cluster.get("k", 2).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let mut answered: Vec<&str> = got.replies.iter().map(|(n, _)| n.as_str()).collect();
    answered.sort_unstable();
    let mut expected = [pref[0].as_str(), pref[2].as_str()];
    expected.sort_unstable();
    assert_eq!(answered, expected);

    // A slow replica gets `hedge` before the next one is asked as well. (The failed one
    // above is now suspected and asked last, so make the first one slow instead.)
    h.set(&pref[1], FaultPlan::default());
    h.set(&pref[0], FaultPlan::slow(Duration::from_millis(300)));
    let start = Instant::now();
    let got = h.cluster.get("k", 2).await.unwrap();
    assert_eq!(start.elapsed(), hedge, "the read waited one hedge, not the slow replica");
    assert!(!got.replies.iter().any(|(n, _)| n.as_str() == pref[0]));

    // Once too few are left to answer, the read fails at once (without asking the last
    // one) and names the failed replicas, as every read does.
    h.set(&pref[0], FaultPlan::down());
    h.set(&pref[1], FaultPlan::down());
    let start = Instant::now();
    let err = h.cluster.get("k", 2).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let ClusterError::Quorum(q) = &err else { panic!("{err}") };
    assert_eq!((q.required, q.succeeded, q.failures.len()), (2, 0, 2), "{err}");
    assert!(err.to_string().contains(&pref[0]) && err.to_string().contains(&pref[1]), "{err}");
}

/// A hung replica (SIGSTOP) costs reads one hedge, not one per read: once its straggling
/// call times out in the background it is passed over until it answers again, and then
/// it is asked again.
#[tokio::test(start_paused = true)]
async fn a_hung_replica_is_passed_over_by_reads_until_it_answers_again() {
    let hedge = Duration::from_millis(5);
    let timeout = Duration::from_millis(500);
    let reads = ReadFanout::Quorum { hedge };
    let h = Harness::with_reads(3, &["a", "b", "c"], timeout, reads).await;
    let pref = h.preference("k");
    h.cluster.put("k", "v", 3).await.unwrap();
    h.set(&pref[0], FaultPlan::silent());
    let start = Instant::now();
    h.cluster.get("k", 2).await.unwrap();
    assert_eq!(start.elapsed(), hedge, "the first read waits one hedge");
    // Its straggling call times out in the background...
    tokio::time::sleep(timeout).await;
    // ...and from then on reads do not wait for it: over 6 s only the probes (one per
    // 2 s suspicion span) ask it and wait a hedge.
    let mut waited = 0;
    for _ in 0..20 {
        let start = Instant::now();
        h.cluster.get("k", 2).await.unwrap();
        match start.elapsed() {
            d if d == Duration::ZERO => {}
            d if d == hedge => waited += 1,
            d => panic!("a read took {d:?}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(waited <= 3, "{waited} of 20 reads waited for the hung replica");
    // It answers again: a probe finds it and it is asked first once more.
    h.set(&pref[0], FaultPlan::default());
    tokio::time::sleep(Duration::from_secs(3)).await;
    for _ in 0..3 {
        h.cluster.get("k", 2).await.unwrap();
    }
    let before = h.reads();
    h.cluster.get("k", 2).await.unwrap();
    assert!(h.reads()[&pref[0]] > before[&pref[0]], "the recovered replica is asked again");
}

#[tokio::test]
async fn concurrent_writes_become_siblings_and_a_causal_put_resolves_them() {
    let h = Harness::new(3, &["a", "b", "c"], Duration::from_secs(1)).await;
    // Two clients both write without having seen each other's write.
    h.cluster.put_with_context("cart", "milk", VersionVector::new(), 2).await.unwrap();
    h.cluster.put_with_context("cart", "eggs", VersionVector::new(), 2).await.unwrap();
    let got = h.cluster.get("cart", 2).await.unwrap();
    let mut values: Vec<_> = got.values().cloned().collect();
    values.sort();
    assert_eq!(values, [Bytes::from_static(b"eggs"), Bytes::from_static(b"milk")]);
    h.cluster.put_with_context("cart", "eggs,milk", got.context().clone(), 2).await.unwrap();
    let got = h.cluster.get("cart", 3).await.unwrap();
    assert_eq!(got.values().collect::<Vec<_>>(), [&Bytes::from_static(b"eggs,milk")]);
}

#[tokio::test]
async fn delete_hides_the_value() {
    let h = Harness::new(3, &["a", "b", "c"], Duration::from_secs(1)).await;
    h.cluster.put("k", "v", 2).await.unwrap();
    h.cluster.delete("k", 2).await.unwrap();
    let got = h.cluster.get("k", 2).await.unwrap();
    assert_eq!(got.value(), None);
    assert_eq!(got.values().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_add_node_admits_each_name_once() {
    let cluster = Arc::new(Cluster::builder().partitions(256).build().unwrap());
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let cluster = cluster.clone();
            tokio::spawn(async move { cluster.add_node(&format!("node-{}", i % 25)).await })
        })
        .collect();
    let mut duplicates = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => {}
            Err(ClusterError::DuplicateNode(_)) => duplicates += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(duplicates, 75);
    let mut expected: Vec<String> = (0..25).map(|i| format!("node-{i}")).collect();
    expected.sort();
    assert_eq!(cluster.members(), expected);
}

#[tokio::test]
async fn adding_and_removing_nodes_keeps_data_readable() {
    let cluster = Cluster::builder().build().unwrap();
    for n in ["a", "b", "c"] {
        cluster.add_node(n).await.unwrap();
    }
    for i in 0..300 {
        cluster.put(format!("k{i}"), format!("v{i}"), 2).await.unwrap();
    }
    cluster.add_node("d").await.unwrap();
    cluster.remove_node("a").await.unwrap();
    cluster.remove_node("b").await.unwrap();
    for i in 0..300 {
        let got = cluster.get(format!("k{i}"), 2).await.unwrap();
        assert_eq!(got.value(), Some(Bytes::from(format!("v{i}"))), "k{i}");
    }
    assert!(matches!(cluster.remove_node("zz").await, Err(ClusterError::UnknownNode(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fsync_fails_the_write_and_every_later_one() {
    use halka_store::{FjallEngine, FjallOptions, SyncPolicy, Write};
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        FjallEngine::open(FjallOptions {
            sync: SyncPolicy::Always,
            ..FjallOptions::new(dir.path())
        })
        .unwrap(),
    );
    let replica = LocalReplica::new(halka_store::NodeId::new("a"), engine.clone());
    let write = || Write {
        overwrite: true,
        ..Write::value(Some(Bytes::from_static(b"v")), Some(VersionVector::new()), 1)
    };
    // Many concurrent durable writes share fsyncs and all succeed.
    let writes: Vec<_> = (0..64)
        .map(|i| replica.coordinate_write(&Bytes::from(format!("k{i}")), &write()))
        .collect();
    for w in futures::future::join_all(writes).await {
        w.unwrap();
    }
    engine.inject_sync_failure();
    let err = replica.coordinate_write(&Bytes::from_static(b"x"), &write()).await.unwrap_err();
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    let err = replica.coordinate_write(&Bytes::from_static(b"y"), &write()).await.unwrap_err();
    assert!(err.to_string().contains("reopens its storage"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_hung_coordinating_replica_costs_one_deadline_not_every_write() {
    let h = Harness::new(3, &["a", "b", "c", "d", "e"], Duration::from_secs(1)).await;
    let first = h.preference("k")[0].clone();
    h.set(&first, FaultPlan::silent());
    let start = Instant::now();
    h.cluster.put("k", "v1", 2).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1), "the first write finds out by deadline");
    let start = Instant::now();
    h.cluster.put("k", "v2", 2).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "later writes skip the suspect");
    // The suspicion lapses and the replica, healthy again, coordinates once more.
    h.set(&first, FaultPlan::default());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let put = h.cluster.put("k", "v3", 3).await.unwrap();
    assert_eq!(put.acked[0].as_str(), first, "{put:?}");
}

/// Timestamps follow the clock: a burst of writes within one millisecond must not push
/// them ahead of it (last-writer-wins across coordinators compares them).
#[tokio::test]
async fn sequential_writes_are_ordered_without_running_ahead_of_the_clock() {
    // A clock stuck at one microsecond: the timestamps still order the writes, moving on
    // by exactly one per write (a per-write millisecond bump used to run ahead by a
    // second per thousand writes).
    let cluster = Cluster::builder().replication(3).clock(|| 1_000).build().unwrap();
    for n in ["a", "b", "c"] {
        cluster.add_node(n).await.unwrap();
    }
    let first = cluster.put("k", "v0", 3).await.unwrap();
    let first_ts = cluster.get("k", 3).await.unwrap().record.versions()[0].timestamp_us;
    assert!(first_ts >= 1_000, "{first:?}");
    for i in 1..100 {
        cluster.put("k", format!("v{i}"), 3).await.unwrap();
    }
    let got = cluster.get("k", 3).await.unwrap();
    let versions = got.record.versions();
    assert_eq!(versions.len(), 1, "sequential overwrites leave one version");
    assert_eq!(versions[0].timestamp_us, first_ts + 99);
    assert_eq!(got.value().unwrap(), "v99");
}

#[tokio::test]
async fn same_tick_overwrites_that_meet_as_siblings_resolve_to_the_later_one() {
    // Two contextless writes in one clock tick (the clock is stopped), the second
    // coordinated by a replica that never saw the first (it was down): they become
    // siblings, and last-writer-wins must still pick the second. With equal timestamps the
    // node id decided, so the first write's coordinator is the highest id.
    let h = Harness::build(
        3,
        &["a", "b", "c"],
        Duration::from_secs(1),
        ReadFanout::All,
        Some(|| 1_000),
    )
    .await;
    let highest = h.preference("k").into_iter().max().unwrap();
    let others: Vec<String> = h.preference("k").into_iter().filter(|n| *n != highest).collect();
    for n in &others {
        h.set(n, FaultPlan::down());
    }
    h.cluster.put("k", "first", 1).await.unwrap();
    h.set(&highest, FaultPlan::down());
    for n in &others {
        h.set(n, FaultPlan::default());
    }
    h.cluster.put("k", "second", 1).await.unwrap();
    h.set(&highest, FaultPlan::default());
    let got = h.cluster.get("k", 3).await.unwrap();
    assert_eq!(got.values().count(), 2, "the writes are concurrent: {:?}", got.record);
    assert_eq!(got.value().unwrap(), "second");
}

/// A record claiming that each of `exhausted` numbered the most writes a node can to `key`,
/// as only a forging peer could send, merged into every replica.
async fn forge_exhausted(h: &Harness, key: &str, exhausted: &[&str]) {
    use halka_store::{Dot, MAX_NUMBERED, NodeId, Record, Version};
    let context: VersionVector = exhausted.iter().map(|n| (NodeId::new(n), MAX_NUMBERED)).collect();
    let dot = Dot { node: NodeId::new(exhausted[0]), counter: MAX_NUMBERED };
    let old = Version::new(dot, 1, Some(Bytes::from_static(b"old")));
    let record = Arc::new(Record::from_parts(context, vec![old]));
    let locals: Vec<LocalReplica> = h.locals.lock().values().cloned().collect();
    for local in locals {
        local.merge(&Bytes::copy_from_slice(key.as_bytes()), &record).await.unwrap();
    }
}

#[tokio::test]
async fn a_write_an_owner_can_no_longer_number_is_coordinated_by_another_owner() {
    let h = Harness::new(3, &["a", "b", "c"], Duration::from_secs(1)).await;
    let first = h.preference("k")[0].clone();
    forge_exhausted(&h, "k", &[&first]).await;
    h.cluster.put("k", "new", 3).await.unwrap();
    let got = h.cluster.get("k", 3).await.unwrap();
    assert_eq!(got.value(), Some(Bytes::from_static(b"new")));
}

#[tokio::test]
async fn a_write_no_owner_can_number_is_refused_as_exhausted_not_as_a_quorum_failure() {
    let h = Harness::new(3, &["a", "b", "c"], Duration::from_secs(1)).await;
    forge_exhausted(&h, "k", &["a", "b", "c"]).await;
    let err = h.cluster.put("k", "new", 2).await.unwrap_err();
    assert!(matches!(err, ClusterError::Limit(halka_store::LimitError::CounterExhausted)), "{err}");
    assert!(err.to_string().contains("fresh actor"), "{err}");
    // Nothing changed, and other keys are untouched.
    assert_eq!(h.cluster.get("k", 3).await.unwrap().value(), Some(Bytes::from_static(b"old")));
    h.cluster.put("other", "v", 3).await.unwrap();
}
