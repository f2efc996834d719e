//! Judges a run's history against the final state, after every fault healed and the
//! cluster had time to converge.
//!
//! Causality comes from the versions themselves: every version a coordinating replica
//! created is recorded with the context its creator had seen, so "w was replaced by
//! something that knew it" is a fact of the history, not a guess from timing.
//!
//! A key's *outcome* is its final record's context joined with the contexts of every
//! tombstone collected for it: what the cluster ended up having seen, whether the record
//! for it is still stored or was collected away.
//!
//! - **Lost write**: an acknowledged write whose version is neither in the key's final
//!   record nor replaced — replaced means some recorded version whose creator had seen it
//!   is covered by the key's outcome.
//! - **Resurrection**: a live value in the final record that a recorded delete covered by
//!   the key's outcome had seen.
//! - **False sibling**: two versions side by side in the final record although one's
//!   creator had seen the other (siblings must be truly concurrent).
//! - **Reused dot**: two distinct versions with the same dot, which makes every rule
//!   above unsound (a node that forgot its counters: Riak's KV679).
//! - **Unconverged key**: after healing, the key's owners do not hold identical records;
//!   and no hint may be left anywhere.

use crate::history::{Event, History, Outcome, Version};
use crate::world::World;
use halka_store::{Dot, NodeId, Record, VersionVector};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the checker found; empty lists mean the run passed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub ops: u64,
    pub acked_writes: u64,
    pub lost_writes: Vec<String>,
    /// Acknowledged writes gone because every replica that acknowledged them lost its
    /// disk afterwards: beyond what W promises, so not a failure.
    pub lost_with_disks: u64,
    pub resurrections: Vec<String>,
    pub false_siblings: Vec<String>,
    pub reused_dots: Vec<String>,
    pub unconverged_keys: Vec<String>,
    pub hints_left: u64,
    /// Tombstones removed by collectors (not a failure: shows collection ran).
    pub tombstones_collected: u64,
    pub acked_increments: u64,
    /// Acknowledged writes of hash fields (`HSET`), among `acked_writes`.
    pub acked_field_writes: u64,
    /// Counter keys whose final value is below the sum of the acknowledged increments
    /// (less those whose every acknowledging replica lost its disk).
    pub lost_increments: Vec<String>,
    /// Counter keys whose final value is above the sum of every increment that may have
    /// been applied: one counted twice.
    pub doubled_increments: Vec<String>,
    /// Acknowledged `PFADD`s (see `hyperloglogs`).
    pub acked_hll_adds: u64,
    /// HyperLogLog registers below what an acknowledged `PFADD` raised them to (less
    /// those whose every acknowledging replica lost its disk), or above anything any
    /// `PFADD` offered.
    pub wrong_registers: Vec<String>,
    /// Layout changes made during the run (joins and leaves).
    pub layout_changes: u64,
    /// Nodes still in a layout change after the quiet period: a change that never
    /// completed.
    pub unfinished_changes: Vec<String>,
}

impl Verdict {
    #[must_use]
    pub fn passed(&self) -> bool {
        self.lost_writes.is_empty()
            && self.resurrections.is_empty()
            && self.false_siblings.is_empty()
            && self.reused_dots.is_empty()
            && self.unconverged_keys.is_empty()
            && self.hints_left == 0
            && self.lost_increments.is_empty()
            && self.doubled_increments.is_empty()
            && self.wrong_registers.is_empty()
            && self.unfinished_changes.is_empty()
    }
}

pub(crate) fn dot(d: &(String, u64)) -> Dot {
    Dot { node: NodeId::new(&d.0), counter: d.1 }
}

/// Checks `history` against what the nodes of `world` hold for keys `0..keys`.
#[must_use]
pub fn check(world: &World, history: &History, keys: u64) -> Verdict {
    let mut verdict = Verdict::default();
    let mut facts = gather(history, &mut verdict);
    // The plain keys, and every hash head and member key a version was made for.
    let hashes = facts.versions.keys().filter(|k| crate::collections::is_hash_name(k));
    let names: Vec<String> =
        (0..keys).map(crate::workload::key).chain(hashes.map(|k| (*k).to_string())).collect();
    for key in names {
        let record = final_record(world, &key, &mut verdict);
        facts.finals.insert(key, record);
    }
    for event in history {
        if let Event::Op(op) = event {
            judge_write(&facts, op, &mut verdict);
        }
    }
    for (key, record) in &facts.finals {
        judge_final(&facts, key, record, &mut verdict);
    }
    for k in 0..crate::collections::HASH_KEYS {
        let hash = crate::collections::hash_key(k);
        if let Some(head) = facts.finals.get(&hash) {
            let seen = facts.outcome(&hash, head);
            let revived = crate::collections::revived(&hash, head, facts.of(&hash), &seen);
            verdict.resurrections.extend(revived);
        }
    }
    check_counters(world, history, &facts.erasures, &mut verdict);
    crate::hyperloglogs::check(world, history, &facts.erasures, &mut verdict);
    verdict.hints_left = (0..world.nodes()).map(|i| world.hints_pending(i)).sum();
    verdict.layout_changes = world.layout().version() - 1;
    verdict.unfinished_changes = (0..world.nodes())
        .filter_map(|i| {
            let view = world.coordinator(i)?.view();
            view.is_changing()
                .then(|| format!("n{} holds layouts {:?}", i + 1, view.active_versions()))
        })
        .collect();
    verdict.unfinished_changes.extend(other_layouts(world));
    verdict
}

/// What the history says, gathered once, and the final records of the keys judged.
struct Facts<'h> {
    /// Nodes whose disk a fault erased, and when.
    erasures: Vec<(&'h str, u64)>,
    /// Every version made, by key.
    versions: BTreeMap<&'h str, Vec<&'h Version>>,
    /// Dots number the versions of one key: unique per (key, dot).
    by_dot: BTreeMap<(&'h str, &'h (String, u64)), &'h Version>,
    /// The contexts of the tombstones collected, by key.
    collected: BTreeMap<&'h str, VersionVector>,
    finals: BTreeMap<String, Arc<Record>>,
}

impl Facts<'_> {
    /// The versions made for `key`.
    fn of(&self, key: &str) -> &[&Version] {
        self.versions.get(key).map_or(&[], Vec::as_slice)
    }

    /// What the cluster ended up having seen of `key`: its final record's context joined
    /// with those of its collected tombstones.
    fn outcome(&self, key: &str, record: &Record) -> VersionVector {
        let mut seen = record.context().clone();
        if let Some(c) = self.collected.get(key) {
            seen.join(c);
        }
        seen
    }

    fn erased_after(&self, node: &str, at_us: u64) -> bool {
        self.erasures.iter().any(|(e, at)| *e == node && *at >= at_us)
    }
}

/// Reads the history once: versions, erasures, collected tombstones, and the counts.
fn gather<'h>(history: &'h History, verdict: &mut Verdict) -> Facts<'h> {
    let mut facts = Facts {
        erasures: Vec::new(),
        versions: BTreeMap::new(),
        by_dot: BTreeMap::new(),
        collected: BTreeMap::new(),
        finals: BTreeMap::new(),
    };
    for event in history {
        match event {
            Event::Version(v) => {
                facts.versions.entry(v.key.as_str()).or_default().push(v);
                if let Some(earlier) = facts.by_dot.insert((v.key.as_str(), &v.dot), v) {
                    verdict.reused_dots.push(format!(
                        "{}: {}#{} made {:?} and {:?}",
                        v.key, v.dot.0, v.dot.1, earlier.value, v.value
                    ));
                }
            }
            Event::Op(op) => {
                verdict.ops += 1;
                if op.outcome == Outcome::Acked && matches!(op.write, Some(Some(_))) {
                    verdict.acked_writes += 1;
                    let field = crate::history::member_parts(&op.key).is_some();
                    verdict.acked_field_writes += u64::from(field);
                }
            }
            Event::Fault { erased: Some(node), at_us, .. } => {
                facts.erasures.push((node.as_str(), *at_us));
            }
            Event::Fault { .. } => {}
            Event::Collected(c) => {
                verdict.tombstones_collected += 1;
                let seen = c.seen.iter().map(|(n, counter)| (NodeId::new(n), *counter));
                facts.collected.entry(c.key.as_str()).or_default().join(&seen.collect());
            }
        }
    }
    facts
}

/// An acknowledged write: in its key's final record, or replaced by a version that had
/// seen it and reached the outcome — else lost (or lost with every disk that held it).
fn judge_write(facts: &Facts<'_>, op: &crate::history::Op, verdict: &mut Verdict) {
    let (Outcome::Acked, Some(Some(value))) = (&op.outcome, &op.write) else { return };
    let Some(record) = facts.finals.get(&op.key) else { return };
    // An expired value may be gone: collected like a tombstone once past the grace.
    if op.expires_at_us.is_some_and(|at| at <= crate::sim_clock_us()) {
        return;
    }
    let mine = facts.of(&op.key);
    // A coordinator that lost its first choice retries on the next owner: the same
    // write can create more than one version.
    let created: Vec<&&Version> = mine.iter().filter(|v| v.value.as_ref() == Some(value)).collect();
    if created.is_empty() {
        verdict.lost_writes.push(format!("{}={value}: acknowledged, never created", op.key));
        return;
    }
    let seen = facts.outcome(&op.key, record);
    let survives = created.iter().any(|c| {
        let kept = record.versions().iter().any(|v| v.dot == dot(&c.dot));
        let replaced = mine.iter().any(|u| u.saw(&c.dot) && seen.covers(&dot(&u.dot)));
        kept || replaced
    });
    if survives {
        judge_field_lifetime(facts, &op.key, verdict);
        return;
    }
    if erased_everywhere(op, &facts.erasures) {
        verdict.lost_with_disks += 1;
    } else {
        verdict.lost_writes.push(format!(
            "{}={value} ({}#{}) acknowledged by {:?} with W={}, gone without a successor",
            op.key, created[0].dot.0, created[0].dot.1, op.acked_by, op.quorum
        ));
    }
}

/// A hash's field that survives as a record: its hash's lifetime must live on, or have
/// been ended by a delete (`collections::lifetime_lost`).
fn judge_field_lifetime(facts: &Facts<'_>, name: &str, verdict: &mut Verdict) {
    let Some((hash, lifetime, _)) = crate::history::member_parts(name) else { return };
    let Some(head) = facts.finals.get(hash) else { return };
    let heads = facts.of(hash);
    let seen = facts.outcome(hash, head);
    let Some(lost) = crate::collections::lifetime_lost(name, head, heads, &seen) else { return };
    // The head that held the lifetime may have been lost with every disk that held it
    // (its creator's among them): then a later write made a new one.
    let mut holders = heads.iter().filter(|v| v.lifetimes.contains(&lifetime)).peekable();
    let any_holder = holders.peek().is_some();
    let creator_erased = |v: &&Version| {
        let node = v.dot.0.split('#').next().unwrap_or_default();
        facts.erased_after(node, v.at_us)
    };
    if any_holder && holders.all(creator_erased) {
        verdict.lost_with_disks += 1;
    } else {
        verdict.lost_writes.push(lost);
    }
}

/// A key's final record: no live value a surviving delete had seen, and no two versions
/// side by side of which one had seen the other.
fn judge_final(facts: &Facts<'_>, key: &str, record: &Record, verdict: &mut Verdict) {
    let mine = facts.of(key);
    let present: Vec<(String, u64)> =
        record.versions().iter().map(|v| (v.dot.node.to_string(), v.dot.counter)).collect();
    let seen = facts.outcome(key, record);
    for (x, version) in present.iter().zip(record.versions()) {
        if version.value.is_some()
            && mine.iter().any(|u| u.value.is_none() && u.saw(x) && seen.covers(&dot(&u.dot)))
        {
            verdict.resurrections.push(format!("{key}: {}#{} came back after a delete", x.0, x.1));
        }
        for y in &present {
            if facts.by_dot.get(&(key, y)).is_some_and(|v| v.saw(x)) {
                verdict.false_siblings.push(format!(
                    "{key}: {}#{} beside {}#{}, which had seen it",
                    x.0, x.1, y.0, y.1
                ));
            }
        }
    }
}

/// Running nodes whose newest layout is not the one the cluster's commits chose: two
/// layouts under one version, or a node that never learned the last change.
fn other_layouts(world: &World) -> Vec<String> {
    let chosen = world.layout();
    (0..world.nodes())
        .filter_map(|i| {
            let spec = world.membership(i)?.newest()?;
            let layout = spec.layout().ok()?;
            let same = layout.version() == chosen.version() && layout.roster() == chosen.roster();
            (!same).then(|| {
                format!(
                    "n{} holds layout version {} ({}), not the version {} the commits chose",
                    i + 1,
                    layout.version(),
                    spec.fingerprint(),
                    chosen.version()
                )
            })
        })
        .collect()
}

/// Whether every copy an acknowledged write was acknowledged with went with a disk erased
/// after the write began. A stand-in's copy is a hint, handed to its owner and then
/// dropped: that copy is lost with the owner's disk, or with the stand-in's if erased
/// before it handed the hint on (the history does not say when it did, so either counts).
pub(crate) fn erased_everywhere(op: &crate::history::Op, erasures: &[(&str, u64)]) -> bool {
    let erased = |n: &str| erasures.iter().any(|(e, at)| *e == n && *at >= op.start_us);
    op.acked_by.iter().all(|n| {
        let owner = op.stand_ins.iter().find(|(s, _)| s == n).map(|(_, o)| o.as_str());
        erased(n) || owner.is_some_and(erased)
    })
}

/// Counter keys: each final value lies between the sum of the increments acknowledged
/// (less those lost with every disk that acknowledged them) and the sum of every increment
/// that may have been applied (acknowledged or failed; not refused).
fn check_counters(
    world: &World,
    history: &History,
    erasures: &[(&str, u64)],
    verdict: &mut Verdict,
) {
    for k in 0..crate::workload::COUNTER_KEYS {
        let key = crate::workload::counter_key(k);
        let (mut low, mut high) = (0_i64, 0_i64);
        for event in history {
            let Event::Op(op) = event else { continue };
            let (Some(amount), true) = (op.add, op.key == key) else { continue };
            match op.outcome {
                Outcome::Acked => {
                    verdict.acked_increments += 1;
                    if erased_everywhere(op, erasures) {
                        verdict.lost_with_disks += 1;
                    } else {
                        low += amount;
                    }
                    high += amount;
                }
                Outcome::Failed(_) => high += amount,
                Outcome::Refused | Outcome::Read(_) => {}
            }
        }
        let record = final_record(world, &key, verdict);
        let value =
            record.value_at(0).map_or(Some(0), |v| String::from_utf8_lossy(&v).parse().ok());
        match value {
            Some(v) if v < low => {
                verdict.lost_increments.push(format!("{key}: {v}, below the {low} acknowledged"));
            }
            Some(v) if v > high => verdict
                .doubled_increments
                .push(format!("{key}: {v}, above the {high} ever attempted")),
            Some(_) => {}
            None => verdict.lost_increments.push(format!("{key}: not a number")),
        }
    }
}

/// The merge of what `key`'s owners hold, noting the key if they differ.
pub(crate) fn final_record(world: &World, key: &str, verdict: &mut Verdict) -> Arc<Record> {
    let raw = crate::history::key_bytes(key);
    let held: Vec<Option<Arc<Record>>> =
        world.owners(&raw).into_iter().map(|i| world.stored(i, &raw)).collect();
    let same = held.windows(2).all(|w| match (&w[0], &w[1]) {
        (Some(a), Some(b)) => a.same_as(b),
        (None, None) => true,
        _ => false,
    });
    if !same {
        verdict.unconverged_keys.push(key.to_string());
    }
    let merged = held.iter().flatten().fold(Record::default(), |acc, r| acc.merge(r));
    Arc::new(merged)
}
