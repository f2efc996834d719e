//! The simulator and its checker: deterministic, passing with every healing mechanism on,
//! and failing when one is switched off or a known bug is switched back on.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use halka_sim::{Options, run, to_json_lines};
use std::time::Duration;

/// Shorter runs than the binary's default, so that a hundred seeds fit in CI.
fn options() -> Options {
    Options {
        chaos: Duration::from_secs(5),
        quiesce: Duration::from_secs(20),
        ..Options::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_history_byte_for_byte() {
    let (a, b) = (run(42, &options()), run(42, &options()));
    assert!(a.history.len() > 1000, "a run does something: {} events", a.history.len());
    assert_eq!(to_json_lines(&a.history), to_json_lines(&b.history));
    assert_ne!(to_json_lines(&a.history), to_json_lines(&run(43, &options()).history));
}

/// Two processes, not two runs in one: anything seeded per process (a hasher's keys,
/// tokio's choice among ready `select!` branches, unless the runtime is seeded) would
/// show here and not above.
#[test]
fn two_processes_given_the_same_seed_print_the_same_history() {
    let history = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_halka-sim"))
            .args(["--seeds", "3..4", "--chaos-secs", "5", "--quiesce-secs", "20", "--history"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        // The summary's last line gives the wall time the run took.
        text.lines().filter(|l| l.starts_with('{')).collect::<Vec<_>>().join("\n")
    };
    let first = history();
    assert!(first.lines().count() > 1000, "a run does something: {} events", first.lines().count());
    assert!(first == history(), "two runs differ: was this built without --cfg tokio_unstable?");
}

/// Seeds `range` with every mechanism on: each must pass.
fn seeds_pass(range: std::ops::Range<u64>) {
    for seed in range {
        let result = run(seed, &options());
        assert!(
            result.verdict.passed(),
            "seed {seed}: {:?}\nreplay: halka-sim --seeds {seed}..{} --chaos-secs 5 --quiesce-secs 20 --history",
            result.verdict,
            seed + 1
        );
        assert!(
            result.verdict.acked_writes > 100,
            "seed {seed} wrote little: {:?}",
            result.verdict
        );
    }
}

#[test]
fn seeds_0_to_25_pass() {
    seeds_pass(0..25);
}

#[test]
fn seeds_25_to_50_pass() {
    seeds_pass(25..50);
}

#[test]
fn seeds_50_to_75_pass() {
    seeds_pass(50..75);
}

#[test]
fn seeds_75_to_100_pass() {
    seeds_pass(75..100);
}

#[test]
fn without_hints_and_anti_entropy_replicas_stay_apart() {
    let off = Options { handoff: false, anti_entropy: false, ..options() };
    let unconverged: usize =
        (0..5).map(|seed| run(seed, &off).verdict.unconverged_keys.len()).sum();
    assert!(unconverged > 0, "the checker saw no divergence with healing switched off");
}

#[test]
fn a_node_that_reuses_its_actor_after_a_crash_is_caught() {
    let buggy = Options { reuse_actor_after_crash: true, ..options() };
    let caught = (0..20)
        .map(|seed| run(seed, &buggy).verdict)
        .filter(|v| !v.reused_dots.is_empty() || !v.lost_writes.is_empty())
        .count();
    assert!(caught > 0, "the checker missed actor amnesia in every seed");
}

/// Hashes through every fault, layout changes included.
#[test]
fn seeds_with_hashes_0_to_25_pass() {
    let hashes = Options { collections: true, ..options() };
    for seed in 0..25 {
        let verdict = run(seed, &hashes).verdict;
        assert!(verdict.passed(), "seed {seed} with hashes: {verdict:?}");
        assert!(verdict.acked_field_writes > 5, "seed {seed} set few fields: {verdict:?}");
    }
}

#[test]
fn hash_fields_written_outside_their_heads_lifetime_are_caught() {
    let buggy = Options { stray_lifetimes: true, collections: true, ..options() };
    let verdict = run(0, &buggy).verdict;
    let strays = verdict.lost_writes.iter().filter(|w| w.contains("ended with nothing")).count();
    assert!(strays > 0, "the checker missed fields outside every lifetime: {verdict:?}");
}

#[test]
fn every_named_scenario_passes() {
    for name in halka_sim::scenario::names() {
        let result = halka_sim::scenario::run(name, &options());
        assert!(result.passed(), "{name}: {:?} {:?}", result.verdict, result.problems);
    }
}

#[test]
fn the_erased_disk_scenario_fails_when_actors_are_reused() {
    let buggy = Options { reuse_actor_after_crash: true, ..options() };
    let result = halka_sim::scenario::run("erased-disk-keeps-acknowledged-writes", &buggy);
    assert!(!result.verdict.reused_dots.is_empty(), "{:?}", result.verdict);
}

#[test]
fn a_returning_node_catches_up_only_through_hints_or_anti_entropy() {
    let off = Options { handoff: false, anti_entropy: false, ..options() };
    let result = halka_sim::scenario::run("returning-node-catches-up", &off);
    assert!(!result.passed(), "no mechanism, yet the node caught up: {:?}", result.problems);
}

#[test]
fn tombstones_are_collected_during_a_run() {
    let collected: u64 =
        (0..5).map(|seed| run(seed, &options()).verdict.tombstones_collected).sum();
    assert!(collected > 0, "no tombstone was collected in five seeds");
}

#[test]
fn tombstones_removed_on_a_timer_alone_are_caught() {
    // Without hints, so that only anti-entropy carries the deletes to the node that
    // missed them (hints would carry them too, and hide the reckless collector).
    let reckless = Options { reckless_collection: true, handoff: false, ..options() };
    let run = halka_sim::scenario::run("node-down-past-the-grace-does-not-resurrect", &reckless);
    assert!(
        !run.verdict.resurrections.is_empty(),
        "the checker missed the resurrections of a reckless collector: {:?}",
        run.verdict
    );
}

#[test]
fn without_hints_anti_entropy_alone_keeps_collected_deletes_deleted() {
    let no_hints = Options { handoff: false, ..options() };
    let run = halka_sim::scenario::run("node-down-past-the-grace-does-not-resurrect", &no_hints);
    assert!(run.passed(), "{:?} {:?}", run.verdict, run.problems);
}
