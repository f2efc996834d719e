//! Named scenarios: the failures reported against earlier versions of halka, scripted step
//! by step on the simulated cluster and judged by the same checker as random runs. Each
//! must pass; each failed before the mechanism that fixed it.
//!
//! A scenario is data: a name, the steps (write every key, crash or start a node, wait,
//! or a step with code of its own for what needs measuring), and what it expects beyond
//! the checker. A new one is a few lines in [`TABLE`].

use crate::history::{Event, Op, Outcome};
use crate::world::{Settings, TOMBSTONE_GRACE, World};
use crate::{Options, Verdict, checker, workload};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use steps::*;

mod steps;

/// n3 is the node that goes away in most scenarios; n1 the one clients use.
const N1: usize = 0;
const N3: usize = 2;

/// One step of a scenario.
#[derive(Clone, Copy)]
enum Step {
    /// Writes `value-k` to every key through node `via` at W = `w`.
    WriteAll {
        via: usize,
        value: &'static str,
        w: usize,
    },
    /// Deletes every key through node `via` at W = `w`.
    DeleteAll {
        via: usize,
        w: usize,
    },
    /// Crashes a node, keeping or losing its disk (recorded for the checker).
    Crash {
        node: usize,
        lose_disk: bool,
    },
    Start(usize),
    /// Lets simulated time pass.
    Sleep(Duration),
    /// A step with code of its own; it returns the problems it found.
    Run(Custom),
}

/// A step with code of its own.
type Custom = for<'a> fn(&'a Arc<World>) -> BoxFuture<'a, Vec<String>>;

/// What a scenario expects after the quiet period, beyond the checker's verdict.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// n3 holds every key it owns.
    N3HoldsWhatItOwns,
    /// Some tombstone was collected (when collection is on).
    TombstonesCollected,
    /// No owner serves an expired key, and some were collected (when collection is on).
    ExpiredKeysGone,
}

/// A scenario.
struct Scenario {
    name: &'static str,
    /// Each node's bound on the hints it keeps for one owner.
    hint_bytes: u64,
    /// The nodes keep the cluster's shared settings (off elsewhere: see
    /// `world::Settings::shared_settings`).
    shared_settings: bool,
    steps: &'static [Step],
    expect: &'static [Expect],
}

const HINTS: u64 = crate::world::HINT_BYTES_PER_OWNER;

/// Every scenario.
const TABLE: &[Scenario] = &[
    Scenario {
        name: "returning-node-catches-up",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Crash { node: N3, lose_disk: false },
            Step::WriteAll { via: N1, value: "v2", w: 2 },
            Step::Start(N3),
        ],
        expect: &[Expect::N3HoldsWhatItOwns],
    },
    Scenario {
        name: "deletes-reach-a-returning-node",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Crash { node: N3, lose_disk: false },
            Step::DeleteAll { via: N1, w: 2 },
            Step::Start(N3),
        ],
        expect: &[],
    },
    Scenario {
        // Riak's KV679: v1 through n3, v2 through n1, n3 erased, v3 through n3.
        name: "erased-disk-keeps-acknowledged-writes",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N3, value: "v1", w: 3 },
            Step::WriteAll { via: N1, value: "v2", w: 3 },
            Step::Crash { node: N3, lose_disk: true },
            Step::Start(N3),
            Step::WriteAll { via: N3, value: "v3", w: 2 },
        ],
        expect: &[],
    },
    Scenario {
        name: "erased-disk-is-refilled",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Crash { node: N3, lose_disk: true },
            Step::Start(N3),
        ],
        expect: &[Expect::N3HoldsWhatItOwns],
    },
    Scenario {
        name: "hung-node-does-not-stall-quorums",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[Step::Run(hung_node_does_not_stall_quorums)],
        expect: &[],
    },
    Scenario {
        name: "a-hung-node-is-convicted-and-skipped-until-it-answers",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Run(a_hung_node_is_convicted_and_skipped_until_it_answers),
        ],
        expect: &[Expect::N3HoldsWhatItOwns],
    },
    Scenario {
        // n3 misses the deletes and stays away well past the tombstone grace (and its
        // hints' lifetime): the others must keep their tombstones for it.
        name: "node-down-past-the-grace-does-not-resurrect",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Crash { node: N3, lose_disk: false },
            Step::DeleteAll { via: N1, w: 2 },
            Step::Sleep(TOMBSTONE_GRACE.saturating_mul(5)),
            Step::Start(N3),
        ],
        expect: &[Expect::TombstonesCollected],
    },
    Scenario {
        name: "settings-reach-every-node-through-a-crash-and-a-lost-disk",
        hint_bytes: HINTS,
        shared_settings: true,
        steps: &[Step::Run(settings_reach_every_node_through_a_crash_and_a_lost_disk)],
        expect: &[],
    },
    Scenario {
        name: "stand-in-outlives-the-coordinators-disk",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[Step::Run(stand_in_outlives_the_coordinators_disk)],
        expect: &[],
    },
    Scenario {
        name: "increments-survive-crashes-a-lost-disk-and-a-partition",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[Step::Run(increments_survive_crashes_a_lost_disk_and_a_partition)],
        expect: &[],
    },
    Scenario {
        // Values written to expire a second from now; n3 crashes with them (or some of
        // them) on its disk and comes back after they expired: no replica may serve
        // them, and they are collected like tombstones.
        name: "expired-keys-stay-expired-through-a-crash-and-are-collected",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::Run(write_values_that_expire_in_a_second),
            Step::Crash { node: N3, lose_disk: false },
            Step::Sleep(Duration::from_secs(2)),
            Step::Start(N3),
        ],
        expect: &[Expect::ExpiredKeysGone],
    },
    Scenario {
        // n3 misses a write to each of its keys while every other node's hints for it
        // hold five: the coordinators' own hints evict their oldest, stand-ins refuse
        // what does not fit, and anti-entropy must bring n3 the rest.
        name: "full-hint-stores-evict-their-oldest-and-lose-nothing",
        hint_bytes: FULL_HINT_BYTES,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Crash { node: N3, lose_disk: false },
            Step::Run(overflow_the_hint_stores),
            Step::Start(N3),
        ],
        expect: &[],
    },
    Scenario {
        // A new replica streams every range from n3 while n3 crashes and restarts.
        name: "a-range-stream-resumes-through-a-crash-of-its-source",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Run(|world| crate::streaming::stream_through_a_crash(world, N1, N3, KEYS)),
        ],
        expect: &[],
    },
    Scenario {
        // The last node leaves and comes back while four clients read and write through
        // every node, 1% of messages lost: each change streams partitions to their new
        // owners and retires the old layout only as the nodes agree.
        name: "a-node-leaves-and-rejoins-under-writes",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Run(|world| crate::membership::leave_and_rejoin_under_writes(world, KEYS, None)),
        ],
        expect: &[],
    },
    Scenario {
        // The same, with n2 (an owner in every layout) crashing at a random moment of
        // each change and restarting with its disk: its streams resume, and it comes
        // back to the view it had moved to, never to reading the old owners again.
        name: "a-node-crashes-in-the-middle-of-each-change",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Run(|world| {
                crate::membership::leave_and_rejoin_under_writes(world, KEYS, Some(1))
            }),
        ],
        expect: &[],
    },
    Scenario {
        // The last node leaves; then an owner is lost with its disk and the last node
        // replaces it, streaming from the other owners; then the lost node, started
        // again empty, joins back. Clients read and write throughout.
        name: "a-member-lost-with-its-disk-is-replaced-under-writes",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Run(|world| crate::membership::replaced_under_writes(world, KEYS)),
        ],
        expect: &[],
    },
    Scenario {
        // The last node leaves; then n1 loses its disk while every other node is down,
        // and starts alone: it holds no layout until a node that kept its state answers,
        // then takes the cluster's (version 2), never its static list. Clients read and
        // write throughout.
        name: "a-node-restarted-empty-while-the-others-are-down-waits-for-the-layout",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Run(|world| {
                crate::membership::restarted_empty_while_the_others_are_down(world, KEYS)
            }),
        ],
        expect: &[],
    },
    Scenario {
        // n1 loses its disk and its Paxos votes while n3 is down: it takes the layout
        // from n2 but votes on the next version only once n3 has answered or been
        // convicted; then a commit brings the last node back. Clients write throughout.
        name: "a-node-without-its-votes-waits-to-hear-the-others",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[
            Step::WriteAll { via: N1, value: "v1", w: 3 },
            Step::Run(|world| {
                crate::membership::a_node_without_its_votes_waits_to_hear_the_others(world, KEYS)
            }),
        ],
        expect: &[],
    },
    Scenario {
        name: "full-disk-refuses-writes-and-the-others-take-them",
        hint_bytes: HINTS,
        shared_settings: false,
        steps: &[Step::Run(full_disk_refuses_writes_and_the_others_take_them)],
        expect: &[],
    },
];

/// Every scenario's name.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|s| s.name)
}

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
    let Some(scenario) = TABLE.iter().find(|s| s.name == name) else {
        panic!("no scenario {name}; there are {:?}", names().collect::<Vec<_>>());
    };
    let options = options.clone();
    std::thread::scope(|s| {
        s.spawn(move || crate::runtime(0).block_on(script(scenario, &options)))
            .join()
            .expect("the scenario panicked")
    })
}

const KEYS: u64 = 40;

/// A hint bound that five of the scenario's hints fill.
const FULL_HINT_BYTES: u64 = 1024;

async fn script(scenario: &Scenario, options: &Options) -> ScenarioRun {
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
            stray_lifetimes: options.stray_lifetimes,
            counters: options.counters,
            collections: options.collections,
            hint_bytes_per_owner: scenario.hint_bytes,
            shared_settings: scenario.shared_settings,
        },
    );
    world.set_loss(0.0);
    for i in 0..world.nodes() {
        world.start(i);
    }
    let mut problems = Vec::new();
    for step in scenario.steps {
        take(&world, *step, &mut problems).await;
    }
    // No client reads from here on: only hints and anti-entropy can repair.
    tokio::time::sleep(options.quiesce).await;
    let history = world.history();
    // Scenarios print no history; `HALKA_SIM_DUMP=FILE` writes it as JSON lines.
    if let Ok(path) = std::env::var("HALKA_SIM_DUMP") {
        let _ = std::fs::write(path, crate::history::to_json_lines(&history));
    }
    let verdict = checker::check(&world, &history, KEYS);
    for expect in scenario.expect {
        problems.extend(judge(&world, *expect, &verdict, options));
    }
    world.stop_all();
    ScenarioRun { verdict, problems }
}

async fn take(world: &Arc<World>, step: Step, problems: &mut Vec<String>) {
    match step {
        Step::WriteAll { via, value, w } => write_all(world, via, value, w).await,
        Step::DeleteAll { via, w } => {
            for k in 0..KEYS {
                workload::run_op(world, 0, via, workload::key(k), Some(None), w, 0).await;
            }
        }
        Step::Crash { node, lose_disk } => crash(world, node, lose_disk),
        Step::Start(node) => {
            world.start(node);
            world.until_serving(node).await;
        }
        Step::Sleep(d) => tokio::time::sleep(d).await,
        Step::Run(custom) => problems.extend(custom(world).await),
    }
}

/// The problems `expect` finds once the cluster has been quiet.
fn judge(world: &World, expect: Expect, verdict: &Verdict, options: &Options) -> Vec<String> {
    let collecting = options.collect_tombstones;
    match expect {
        Expect::N3HoldsWhatItOwns => {
            let keys = || (0..KEYS).map(workload::key);
            let held = keys().filter(|k| world.stored(N3, k.as_bytes()).is_some()).count();
            let owned = keys().filter(|k| world.owners(k.as_bytes()).contains(&N3)).count();
            (held < owned)
                .then(|| format!("n3 holds {held} of the {owned} keys it owns"))
                .into_iter()
                .collect()
        }
        Expect::TombstonesCollected => (collecting && verdict.tombstones_collected == 0)
            .then(|| "no tombstone was collected after n3 came back".to_string())
            .into_iter()
            .collect(),
        Expect::ExpiredKeysGone => {
            let now = crate::sim_clock_us();
            let mut problems = Vec::new();
            for k in 0..KEYS {
                let key = workload::key(k);
                for i in world.owners(key.as_bytes()) {
                    if world.stored(i, key.as_bytes()).and_then(|r| r.value_at(now)).is_some() {
                        problems.push(format!("n{} serves {key} after it expired", i + 1));
                    }
                }
            }
            if collecting && verdict.tombstones_collected == 0 {
                problems.push("no expired key was collected".into());
            }
            problems
        }
    }
}
