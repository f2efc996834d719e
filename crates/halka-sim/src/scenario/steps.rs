//! The scenarios' steps with code of their own, and the helpers they share.

use super::*;

pub(super) fn hung_node_does_not_stall_quorums(world: &Arc<World>) -> BoxFuture<'_, Vec<String>> {
    Box::pin(async move {
        let mut problems = Vec::new();
        let healthy = timed_writes(world, N1, "before", 2).await;
        // Hung: up, its sockets open, nothing answers.
        hang(world, N3);
        let hung = timed_writes(world, N1, "during", 2).await;
        if hung.failed > 0 {
            problems.push(format!("{} W=2 writes failed with one node hung", hung.failed));
        }
        if hung.p99 > healthy.p99 * 2 + Duration::from_millis(1) {
            problems.push(format!(
                "write p99 {:?} with a node hung, {:?} healthy (allowed: twice)",
                hung.p99, healthy.p99
            ));
        }
        world.heal_links();
        problems
    })
}

/// n3 hangs (up, nothing answers): once n1's failure detector convicts it, W=3 writes
/// through n1 give its slot to a stand-in at once instead of waiting out its timeout;
/// once it answers again it is acquitted (and the scenario expects it to hold every key
/// it owns: the hints reached it).
pub(super) fn a_hung_node_is_convicted_and_skipped_until_it_answers(
    world: &Arc<World>,
) -> BoxFuture<'_, Vec<String>> {
    Box::pin(async move {
        let mut problems = Vec::new();
        // Without stand-ins a W=3 write needs n3 itself.
        let w = if world.settings.stand_ins { 3 } else { 2 };
        let healthy = timed_writes(world, N1, "before", w).await;
        hang(world, N3);
        let n3 = world.node_id(N3).clone();
        let convicted = |world: &Arc<World>| {
            world.coordinator(N1).is_some_and(|c| c.view_handle().liveness().convicted(&n3))
        };
        if !within(Duration::from_secs(10), || convicted(world)).await {
            problems.push("n1's failure detector did not convict the hung n3 in 10 s".into());
        }
        let skipped = timed_writes(world, N1, "during", w).await;
        if skipped.failed > 0 {
            problems.push(format!("{} W={w} writes failed with n3 convicted", skipped.failed));
        }
        if skipped.p99 > healthy.p99 * 2 + Duration::from_millis(1) {
            problems.push(format!(
                "W={w} write p99 {:?} with n3 convicted, {:?} healthy: they waited for it",
                skipped.p99, healthy.p99
            ));
        }
        world.heal_links();
        if !within(Duration::from_secs(10), || !convicted(world)).await {
            problems.push("n3 answers again but n1 still holds it down after 10 s".into());
        }
        problems
    })
}

/// Node `i` hangs: up, its sockets open, nothing it sends or is sent arrives.
pub(super) fn hang(world: &Arc<World>, i: usize) {
    for other in (0..world.nodes()).filter(|&o| o != i) {
        world.cut(other, i);
        world.cut(i, other);
    }
}

/// Whether `done` holds within `limit` of simulated time, looking every 10 ms.
pub(super) async fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + limit;
    while !done() {
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

pub(super) fn overflow_the_hint_stores(world: &Arc<World>) -> BoxFuture<'_, Vec<String>> {
    Box::pin(async move {
        // Values of a hundred bytes: five hints fill a bound, stand-ins' too.
        write_all(world, N1, &format!("v2{}", "x".repeat(100)), 2).await;
        let missed = (0..KEYS)
            .filter(|&k| world.owners(workload::key(k).as_bytes()).contains(&N3))
            .count() as u64;
        let kept = world.hints_pending(N1);
        if kept >= missed {
            return vec![format!(
                "n1 keeps {kept} hints for the {missed} writes n3 missed: nothing was evicted"
            )];
        }
        Vec::new()
    })
}

pub(super) fn write_values_that_expire_in_a_second(
    world: &Arc<World>,
) -> BoxFuture<'_, Vec<String>> {
    Box::pin(async move {
        let at = crate::sim_clock_us() + 1_000_000;
        for k in 0..KEYS {
            let (key, value) = (workload::key(k), format!("brief-{k}"));
            workload::put_expiring(world, N1, key, value, at, 2).await;
        }
        Vec::new()
    })
}

pub(super) fn full_disk_refuses_writes_and_the_others_take_them(
    world: &Arc<World>,
) -> BoxFuture<'_, Vec<String>> {
    Box::pin(async move {
        let mut problems = Vec::new();
        // n3's disk fills: it refuses every write, some after applying them. Writes
        // and increments through n1 and through n3 itself must still be acknowledged
        // by the others (stand-ins, hints), each increment counted once, and n3 must
        // catch up once it has room again.
        write_all(world, N1, "v1", 3).await;
        set_disk_full(world, N3, true);
        let before = world.history().len();
        write_all(world, N1, "v2", 2).await;
        write_all(world, N3, "v3", 2).await;
        // Increments whose coordinating replica (a counter's first owner, reached over
        // the network) applies them and then fails to make them durable must count
        // once: not be retried on the next owner.
        let key = workload::counter_key(0);
        let first = world.owners(key.as_bytes())[0];
        world.set_disk_failing_after_apply(first);
        world.record(Event::Fault {
            at_us: world.now_us(),
            what: format!("disk of n{} full, failing writes once applied", first + 1),
            erased: None,
        });
        let via = (first + 1) % world.nodes();
        for _ in 0..20 {
            workload::increment(world, 0, via, key.clone(), 1, 2).await;
        }
        let failed = world.history()[before..]
            .iter()
            .filter(|e| matches!(e, Event::Op(op) if op.outcome != Outcome::Acked))
            .count();
        if failed > 0 {
            problems.push(format!("{failed} W=2 writes failed with one disk full"));
        }
        set_disk_full(world, first, false);
        set_disk_full(world, N3, false);
        problems
    })
}

pub(super) fn stand_in_outlives_the_coordinators_disk(
    world: &Arc<World>,
) -> BoxFuture<'_, Vec<String>> {
    Box::pin(async move {
        let mut problems = Vec::new();
        // The keys that share key 0's owners: two of them down, W=2 writes through
        // the third, so a stand-in holds the only other copy of each. Then the
        // coordinating owner loses its disk and everything restarts. The stand-ins'
        // hints must survive until an owner takes them.
        let owners_of = |k: u64| world.owners(workload::key(k).as_bytes());
        let owners = (0..KEYS)
            .map(owners_of)
            .max_by_key(|o| (0..KEYS).filter(|&k| owners_of(k) == *o).count())
            .unwrap_or_default();
        let keys: Vec<u64> = (0..KEYS).filter(|&k| owners_of(k) == owners).collect();
        for &o in &owners[1..] {
            crash(world, o, false);
        }
        for &k in &keys {
            let write = Some(Some(format!("v-{k}")));
            workload::run_op(world, 0, owners[0], workload::key(k), write, 2, 0).await;
        }
        // Long enough for a hint to age past anything a timer might do to it.
        tokio::time::sleep(crate::world::TOMBSTONE_GRACE * 2).await;
        crash(world, owners[0], true);
        for &o in &owners {
            world.start(o);
        }
        let acked = world
            .history()
            .iter()
            .filter(|e| matches!(e, Event::Op(op) if op.outcome == Outcome::Acked))
            .count();
        if acked < keys.len() {
            problems.push(format!("{acked} of {} writes were acknowledged", keys.len()));
        }
        problems
    })
}

pub(super) fn increments_survive_crashes_a_lost_disk_and_a_partition(
    world: &Arc<World>,
) -> BoxFuture<'_, Vec<String>> {
    Box::pin(async move {
        let mut problems = Vec::new();
        // Increments through every live node at W=2 while owners crash (one losing
        // its disk) and a partition splits the cluster: each acknowledged one must
        // count exactly once. One whose coordinating replica timed out is not
        // retried elsewhere (it may have been applied) and fails instead.
        let mut through = 0;
        let mut bump = async |world: &Arc<World>, rounds: u64| {
            for _ in 0..rounds {
                for k in 0..workload::COUNTER_KEYS {
                    let up: Vec<usize> = (0..world.nodes()).filter(|&i| world.is_up(i)).collect();
                    let node = up[through % up.len()];
                    through += 1;
                    workload::increment(world, 0, node, workload::counter_key(k), 1, 2).await;
                }
            }
        };
        bump(world, 10).await;
        crash(world, N3, false);
        bump(world, 10).await;
        world.start(N3);
        bump(world, 10).await;
        crash(world, N1, true);
        world.start(N1);
        bump(world, 10).await;
        world.cut(N1, N3);
        world.cut(N3, N1);
        bump(world, 10).await;
        world.heal_links();
        let ops = world.history().iter().filter(|e| matches!(e, Event::Op(_))).count();
        let acked = world
            .history()
            .iter()
            .filter(|e| matches!(e, Event::Op(op) if op.outcome == Outcome::Acked))
            .count();
        if acked * 10 < ops * 9 {
            problems.push(format!("only {acked} of {ops} increments were acknowledged"));
        }
        problems
    })
}

/// Crashes node `i`, recording it so the checker knows which disks were lost.
pub(super) fn crash(world: &World, i: usize, lose_disk: bool) {
    world.crash(i, lose_disk);
    world.record(Event::Fault {
        at_us: world.now_us(),
        what: format!("crash n{} ({})", i + 1, if lose_disk { "disk lost" } else { "disk kept" }),
        erased: lose_disk.then(|| world.node_id(i).to_string()),
    });
}

/// Fills node `i`'s disk or frees it, recording it.
pub(super) fn set_disk_full(world: &World, i: usize, full: bool) {
    world.set_disk_full(i, full);
    world.record(Event::Fault {
        at_us: world.now_us(),
        what: format!("disk of n{} {}", i + 1, if full { "full" } else { "has room again" }),
        erased: None,
    });
}

/// Writes `value-k` to every key through `node` at W = `w`.
pub(super) async fn write_all(world: &Arc<World>, node: usize, value: &str, w: usize) {
    for k in 0..KEYS {
        let write = Some(Some(format!("{value}-{k}")));
        workload::run_op(world, 0, node, workload::key(k), write, w, 0).await;
    }
}

pub(super) struct Timed {
    failed: usize,
    p99: Duration,
}

/// Five rounds of writes at W = `w` to every key through `node`, with their simulated
/// latencies.
pub(super) async fn timed_writes(world: &Arc<World>, node: usize, tag: &str, w: usize) -> Timed {
    let before = world.history().len();
    for round in 0..5 {
        write_all(world, node, &format!("{tag}{round}"), w).await;
    }
    let mut ops: Vec<Op> = world.history()[before..]
        .iter()
        .filter_map(|e| match e {
            Event::Op(op) => Some(op.clone()),
            _ => None,
        })
        .collect();
    let failed = ops.iter().filter(|o| o.outcome != Outcome::Acked).count();
    ops.sort_by_key(|o| o.end_us - o.start_us);
    let p99 = ops.get(ops.len() * 99 / 100).map_or(0, |o| o.end_us - o.start_us);
    Timed { failed, p99: Duration::from_micros(p99) }
}

/// The cluster's shared settings (its users) through crashes: a change made while n3 is
/// down, then a removal, then n2 crashes losing its disk. Once every node runs again,
/// every node must hold the same settings, with the newest value and the removal kept.
pub(super) fn settings_reach_every_node_through_a_crash_and_a_lost_disk(
    world: &Arc<World>,
) -> BoxFuture<'_, Vec<String>> {
    Box::pin(async move {
        const N2: usize = 1;
        let mut problems = Vec::new();
        let write = |i: usize, name: &'static str, value: Option<&'static str>| async move {
            let settings = world.cluster_settings(i).expect("a running node keeps settings");
            settings.write(name, value.map(str::to_string)).await
        };
        let wrote = [
            write(N1, "acl/user/alice", Some("v1")).await,
            async {
                world.crash(N3, false);
                write(N2, "acl/user/alice", Some("v2")).await
            }
            .await,
            write(N2, "acl/user/bob", Some("x")).await,
            write(N1, "acl/user/bob", None).await,
        ];
        problems.extend(wrote.iter().filter_map(|w| w.as_ref().err()).map(|e| format!("{e}")));
        world.crash(N2, true);
        world.start(N3);
        world.start(N2);
        let agree = |world: &Arc<World>| {
            let digests: Vec<Option<u64>> =
                (0..3).map(|i| world.cluster_settings(i).map(|s| s.read(|t| t.digest()))).collect();
            digests.iter().all(|d| d.is_some() && *d == digests[0])
        };
        if !within(Duration::from_secs(10), || agree(world)).await {
            problems.push("the nodes' settings still differ 10 s after every node is back".into());
        }
        for i in 0..3 {
            let Some(s) = world.cluster_settings(i) else { continue };
            let (alice, bob) = s.read(|t| {
                (t.value("acl/user/alice").map(str::to_string), t.value("acl/user/bob").is_some())
            });
            if alice.as_deref() != Some("v2") || bob {
                problems.push(format!("node {i} holds alice = {alice:?}, bob present = {bob}"));
            }
        }
        problems
    })
}
