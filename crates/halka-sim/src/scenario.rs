//! Named scenarios: the failures reported against earlier versions of halka, scripted step
//! by step on the simulated cluster and judged by the same checker as random runs. Each
//! must pass; each failed before the mechanism that fixed it.

use crate::history::{Event, Op, Outcome};
use crate::world::{Settings, World};
use crate::{Options, Verdict, checker, workload};
use std::sync::Arc;
use std::time::Duration;

/// Every scenario, by name.
pub const SCENARIOS: &[&str] = &[
    "returning-node-catches-up",
    "deletes-reach-a-returning-node",
    "erased-disk-keeps-acknowledged-writes",
    "erased-disk-is-refilled",
    "hung-node-does-not-stall-quorums",
    "node-down-past-the-grace-does-not-resurrect",
    "stand-in-outlives-the-coordinators-disk",
    "increments-survive-crashes-a-lost-disk-and-a-partition",
    "expired-keys-stay-expired-through-a-crash-and-are-collected",
    "full-hint-stores-evict-their-oldest-and-lose-nothing",
    "full-disk-refuses-writes-and-the-others-take-them",
];

/// The outcome of one scenario: the checker's verdict and what the scenario itself
/// measured, if anything.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    pub verdict: Verdict,
    /// Failures of the scenario's own expectations (beyond the checker's).
    pub problems: Vec<String>,
}

impl ScenarioRun {
    #[must_use]
    pub fn passed(&self) -> bool {
        self.verdict.passed() && self.problems.is_empty()
    }
}

/// Runs scenario `name` with `options`' mechanisms (seed 0: the network still delays).
///
/// # Panics
/// An unknown name.
#[must_use]
pub fn run(name: &str, options: &Options) -> ScenarioRun {
    assert!(SCENARIOS.contains(&name), "no scenario {name}; there are {SCENARIOS:?}");
    let name = name.to_string();
    let options = options.clone();
    std::thread::scope(|s| {
        s.spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("a current-thread runtime")
                .block_on(script(&name, &options))
        })
        .join()
        .expect("the scenario panicked")
    })
}

const KEYS: u64 = 40;

/// A hint bound that five of the scenario's hints fill.
const FULL_HINT_BYTES: u64 = 1024;

async fn script(name: &str, options: &Options) -> ScenarioRun {
    crate::start_clock();
    let world = World::new(
        0,
        Settings {
            nodes: options.nodes.max(crate::world::N),
            handoff: options.handoff,
            anti_entropy: options.anti_entropy,
            collect_tombstones: options.collect_tombstones,
            stand_ins: options.stand_ins,
            reckless_collection: options.reckless_collection,
            reuse_actor_after_crash: options.reuse_actor_after_crash,
            counters: options.counters,
            hint_bytes_per_owner: if name == "full-hint-stores-evict-their-oldest-and-lose-nothing"
            {
                FULL_HINT_BYTES
            } else {
                crate::world::HINT_BYTES_PER_OWNER
            },
        },
    );
    world.set_loss(0.0);
    for i in 0..world.nodes() {
        world.start(i);
    }
    let mut problems = Vec::new();
    // n3 is the node that goes away in every scenario; n1 the one clients use.
    let (n1, n3) = (0, 2);
    match name {
        "returning-node-catches-up" => {
            write_all(&world, n1, "v1", 3).await;
            world.crash(n3, false);
            write_all(&world, n1, "v2", 2).await;
            world.start(n3);
        }
        "deletes-reach-a-returning-node" => {
            write_all(&world, n1, "v1", 3).await;
            world.crash(n3, false);
            for k in 0..KEYS {
                workload::run_op(&world, 0, n1, workload::key(k), Some(None), 2, 0).await;
            }
            world.start(n3);
        }
        "erased-disk-keeps-acknowledged-writes" => {
            // Riak's KV679: v1 through n3, v2 through n1, n3 erased, v3 through n3.
            write_all(&world, n3, "v1", 3).await;
            write_all(&world, n1, "v2", 3).await;
            world.crash(n3, true);
            world.start(n3);
            write_all(&world, n3, "v3", 2).await;
        }
        "erased-disk-is-refilled" => {
            write_all(&world, n1, "v1", 3).await;
            world.crash(n3, true);
            world.start(n3);
        }
        "hung-node-does-not-stall-quorums" => {
            let healthy = timed_writes(&world, n1, "before").await;
            // Hung: up, its sockets open, nothing answers.
            for other in 0..world.nodes() {
                if other != n3 {
                    world.cut(other, n3);
                    world.cut(n3, other);
                }
            }
            let hung = timed_writes(&world, n1, "during").await;
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
        }
        "node-down-past-the-grace-does-not-resurrect" => {
            // n3 misses the deletes and stays away well past the tombstone grace (and
            // its hints' lifetime): the others must keep their tombstones for it.
            write_all(&world, n1, "v1", 3).await;
            world.crash(n3, false);
            for k in 0..KEYS {
                workload::run_op(&world, 0, n1, workload::key(k), Some(None), 2, 0).await;
            }
            tokio::time::sleep(crate::world::TOMBSTONE_GRACE * 5).await;
            world.start(n3);
        }
        "full-hint-stores-evict-their-oldest-and-lose-nothing" => {
            // n3 misses a write to each of its keys while every other node's hints for
            // it hold five: the coordinators' own hints evict their oldest, stand-ins
            // refuse what does not fit, and anti-entropy must bring n3 the rest.
            write_all(&world, n1, "v1", 3).await;
            world.crash(n3, false);
            // Values of a hundred bytes: five hints fill a bound, stand-ins' too.
            write_all(&world, n1, &format!("v2{}", "x".repeat(100)), 2).await;
            let missed = (0..KEYS)
                .filter(|&k| world.owners(workload::key(k).as_bytes()).contains(&n3))
                .count() as u64;
            let kept = world.hints_pending(n1);
            if kept >= missed {
                problems.push(format!(
                    "n1 keeps {kept} hints for the {missed} writes n3 missed: nothing was evicted"
                ));
            }
            world.start(n3);
        }
        "full-disk-refuses-writes-and-the-others-take-them" => {
            // n3's disk fills: it refuses every write, some after applying them. Writes
            // and increments through n1 and through n3 itself must still be acknowledged
            // by the others (stand-ins, hints), each increment counted once, and n3 must
            // catch up once it has room again.
            write_all(&world, n1, "v1", 3).await;
            set_disk_full(&world, n3, true);
            let before = world.history().len();
            write_all(&world, n1, "v2", 2).await;
            write_all(&world, n3, "v3", 2).await;
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
                workload::increment(&world, 0, via, key.clone(), 1, 2).await;
            }
            let failed = world.history()[before..]
                .iter()
                .filter(|e| matches!(e, Event::Op(op) if op.outcome != Outcome::Acked))
                .count();
            if failed > 0 {
                problems.push(format!("{failed} W=2 writes failed with one disk full"));
            }
            set_disk_full(&world, first, false);
            set_disk_full(&world, n3, false);
        }
        "stand-in-outlives-the-coordinators-disk" => {
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
                crash(&world, o, false);
            }
            for &k in &keys {
                let write = Some(Some(format!("v-{k}")));
                workload::run_op(&world, 0, owners[0], workload::key(k), write, 2, 0).await;
            }
            // Long enough for a hint to age past anything a timer might do to it.
            tokio::time::sleep(crate::world::TOMBSTONE_GRACE * 2).await;
            crash(&world, owners[0], true);
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
        }
        "increments-survive-crashes-a-lost-disk-and-a-partition" => {
            // Increments through every live node at W=2 while owners crash (one losing
            // its disk) and a partition splits the cluster: each acknowledged one must
            // count exactly once. One whose coordinating replica timed out is not
            // retried elsewhere (it may have been applied) and fails instead.
            let mut through = 0;
            let mut bump = async |world: &Arc<World>, rounds: u64| {
                for _ in 0..rounds {
                    for k in 0..workload::COUNTER_KEYS {
                        let up: Vec<usize> =
                            (0..world.nodes()).filter(|&i| world.is_up(i)).collect();
                        let node = up[through % up.len()];
                        through += 1;
                        workload::increment(world, 0, node, workload::counter_key(k), 1, 2).await;
                    }
                }
            };
            bump(&world, 10).await;
            crash(&world, n3, false);
            bump(&world, 10).await;
            world.start(n3);
            bump(&world, 10).await;
            crash(&world, n1, true);
            world.start(n1);
            bump(&world, 10).await;
            world.cut(n1, n3);
            world.cut(n3, n1);
            bump(&world, 10).await;
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
        }
        "expired-keys-stay-expired-through-a-crash-and-are-collected" => {
            // Values written to expire a second from now; n3 crashes with them (or some
            // of them) on its disk and comes back after they expired: no replica may
            // serve them, and they are collected like tombstones.
            let at = crate::sim_clock_us() + 1_000_000;
            for k in 0..KEYS {
                let (key, value) = (workload::key(k), format!("brief-{k}"));
                workload::put_expiring(&world, n1, key, value, at, 2).await;
            }
            crash(&world, n3, false);
            tokio::time::sleep(Duration::from_secs(2)).await;
            world.start(n3);
        }
        _ => unreachable!("checked above"),
    }
    // No client reads from here on: only hints and anti-entropy can repair.
    tokio::time::sleep(options.quiesce).await;
    let history = world.history();
    // Scenarios print no history; `HALKA_SIM_DUMP=FILE` writes it as JSON lines.
    if let Ok(path) = std::env::var("HALKA_SIM_DUMP") {
        let _ = std::fs::write(path, crate::history::to_json_lines(&history));
    }
    let verdict = checker::check(&world, &history, KEYS);
    if name == "erased-disk-is-refilled" || name == "returning-node-catches-up" {
        let held = (0..KEYS)
            .filter(|&k| world.stored(n3, workload::key(k).as_bytes()).is_some())
            .count() as u64;
        let owned = (0..KEYS)
            .filter(|&k| world.owners(workload::key(k).as_bytes()).contains(&n3))
            .count() as u64;
        if held < owned {
            problems.push(format!("n3 holds {held} of the {owned} keys it owns"));
        }
    }
    if name == "node-down-past-the-grace-does-not-resurrect"
        && options.collect_tombstones
        && verdict.tombstones_collected == 0
    {
        problems.push("no tombstone was collected after n3 came back".into());
    }
    if name == "expired-keys-stay-expired-through-a-crash-and-are-collected" {
        let now = crate::sim_clock_us();
        for k in 0..KEYS {
            let key = workload::key(k);
            for i in world.owners(key.as_bytes()) {
                if world.stored(i, key.as_bytes()).and_then(|r| r.value_at(now)).is_some() {
                    problems.push(format!("n{} serves {key} after it expired", i + 1));
                }
            }
        }
        if options.collect_tombstones && verdict.tombstones_collected == 0 {
            problems.push("no expired key was collected".into());
        }
    }
    world.stop_all();
    ScenarioRun { verdict, problems }
}

/// Crashes node `i`, recording it so the checker knows which disks were lost.
fn crash(world: &World, i: usize, lose_disk: bool) {
    world.crash(i, lose_disk);
    world.record(Event::Fault {
        at_us: world.now_us(),
        what: format!("crash n{} ({})", i + 1, if lose_disk { "disk lost" } else { "disk kept" }),
        erased: lose_disk.then(|| world.node_id(i).to_string()),
    });
}

/// Fills node `i`'s disk or frees it, recording it.
fn set_disk_full(world: &World, i: usize, full: bool) {
    world.set_disk_full(i, full);
    world.record(Event::Fault {
        at_us: world.now_us(),
        what: format!("disk of n{} {}", i + 1, if full { "full" } else { "has room again" }),
        erased: None,
    });
}

/// Writes `value-k` to every key through `node` at W = `w`.
async fn write_all(world: &Arc<World>, node: usize, value: &str, w: usize) {
    for k in 0..KEYS {
        let write = Some(Some(format!("{value}-{k}")));
        workload::run_op(world, 0, node, workload::key(k), write, w, 0).await;
    }
}

struct Timed {
    failed: usize,
    p99: Duration,
}

/// Five rounds of W=2 writes to every key through `node`, with their simulated latencies.
async fn timed_writes(world: &Arc<World>, node: usize, tag: &str) -> Timed {
    let before = world.history().len();
    for round in 0..5 {
        write_all(world, node, &format!("{tag}{round}"), 2).await;
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
