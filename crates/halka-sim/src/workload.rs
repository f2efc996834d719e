//! Clients and faults: concurrent clients read, write and delete a small key set through
//! random nodes with random quorums while a nemesis crashes and restarts nodes (with or
//! without their disks), cuts links one way or both, and heals them.

use crate::history::{Event, Op, Outcome};
use crate::world::{N, World};
use bytes::Bytes;
use halka_cluster::{PutResult, WriteQuorum, WriteRequest};
use halka_store::{Change, Expiry, Float};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub fn key(i: u64) -> String {
    format!("k{i}")
}

/// Counter keys: only ever incremented, so the checker can sum what clients added.
pub const COUNTER_KEYS: u64 = 2;

pub fn counter_key(i: u64) -> String {
    format!("ck{i}")
}

/// One client operation through node `node`, recorded.
pub async fn operate(world: &World, client: usize, serial: u64, node: usize, keys: u64) {
    if world.settings.counters && world.chance(0.15) {
        let k = counter_key(world.draw(0..COUNTER_KEYS));
        let amount = world.draw(1..6) as i64;
        let w = world.draw(1..N as u64 + 1) as usize;
        increment(world, client, node, k, amount, w).await;
        return;
    }
    if world.settings.counters && world.chance(0.05) {
        crate::hyperloglogs::pfadd(world, client, serial, node).await;
        return;
    }
    if world.settings.collections && world.chance(0.2) {
        crate::collections::operate(world, client, serial, node).await;
        return;
    }
    let k = key(world.draw(0..keys));
    let roll = world.draw(0..100);
    let quorum = world.draw(1..N as u64 + 1) as usize;
    let write = match roll {
        0..50 => Some(Some(format!("c{client}-{serial}"))),
        50..65 => Some(None),
        _ => None,
    };
    // Some writes also require acknowledgements from owners themselves.
    let pw = if write.is_some() && world.chance(0.3) {
        world.draw(1..quorum as u64 + 1) as usize
    } else {
        0
    };
    run_op(world, client, node, k, write, quorum, pw).await;
}

/// Runs and records one operation: `write` is `Some(value or None for delete)`, or
/// `None` for a read.
pub async fn run_op(
    world: &World,
    client: usize,
    node: usize,
    key: String,
    write: Option<Option<String>>,
    quorum: usize,
    pw: usize,
) {
    let start_us = world.now_us();
    let (mut acked_by, mut stand_ins) = (Vec::new(), Vec::new());
    let outcome = match world.coordinator(node) {
        None => Outcome::Refused,
        Some(c) => {
            let k = Bytes::from(key.clone());
            match &write {
                Some(value) => {
                    let q = WriteQuorum { w: quorum, pw };
                    match c.write_with(k, value.clone().map(Bytes::from), None, q).await {
                        Ok(put) => {
                            (acked_by, stand_ins) = acks(&put);
                            Outcome::Acked
                        }
                        Err(e) => Outcome::Failed(e.to_string()),
                    }
                }
                None => match c.get(k, quorum).await {
                    Ok(read) => Outcome::Read(
                        read.values().map(|v| String::from_utf8_lossy(v).into_owned()).collect(),
                    ),
                    Err(e) => Outcome::Failed(e.to_string()),
                },
            }
        }
    };
    world.record(Event::Op(Op {
        client,
        node,
        key,
        write,
        add: None,
        observe: None,
        expires_at_us: None,
        quorum,
        pw,
        start_us,
        end_us: world.now_us(),
        outcome,
        acked_by,
        stand_ins,
    }));
}

/// Runs and records one `INCRBY key amount` (`INCRBYFLOAT` for even amounts) with write
/// quorum `w`.
pub(crate) async fn increment(
    world: &World,
    client: usize,
    node: usize,
    key: String,
    amount: i64,
    w: usize,
) {
    let op = Op { client, add: Some(amount), ..blank(node, key, w) };
    // Even amounts go through `INCRBYFLOAT`'s float part: whole numbers, so the value
    // stays one the checker can sum, while the float totals are joined through every
    // fault as the integer ones are.
    let change =
        if amount % 2 == 0 { Change::AddFloat(Float(amount as f64)) } else { Change::Add(amount) };
    apply_recorded(world, op, WriteRequest::new(change, None)).await;
}

/// Runs and records one `SET key value PXAT at` (coordinator microseconds) with write
/// quorum `w`.
pub(crate) async fn put_expiring(
    world: &World,
    node: usize,
    key: String,
    value: String,
    at: u64,
    w: usize,
) {
    let change = Change::Put { value: Bytes::from(value.clone()), expiry: Expiry::At(at) };
    let op = Op { write: Some(Some(value)), expires_at_us: Some(at), ..blank(node, key, w) };
    apply_recorded(world, op, WriteRequest::new(change, None)).await;
}

/// An operation of client 0 through `node` on `key` with write quorum `w`, before it runs.
pub(crate) fn blank(node: usize, key: String, w: usize) -> Op {
    Op {
        client: 0,
        node,
        key,
        write: None,
        add: None,
        observe: None,
        expires_at_us: None,
        quorum: w,
        pw: 0,
        start_us: 0,
        end_us: 0,
        outcome: Outcome::Refused,
        acked_by: Vec::new(),
        stand_ins: Vec::new(),
    }
}

/// Applies `request` to `op.key` through `op.node` at W = `op.quorum` and records `op`
/// with its timing and outcome. A write the coordinating replica refused counts as failed.
pub(crate) async fn apply_recorded(world: &World, mut op: Op, request: WriteRequest) {
    op.start_us = world.now_us();
    op.outcome = match world.coordinator(op.node) {
        None => Outcome::Refused,
        Some(c) => {
            let quorum = WriteQuorum { w: op.quorum, pw: 0 };
            match c.apply(Bytes::from(op.key.clone()), request, quorum).await {
                Ok(put) if put.outcome.refused.is_none() => {
                    (op.acked_by, op.stand_ins) = acks(&put);
                    Outcome::Acked
                }
                Ok(put) => Outcome::Failed(format!("refused: {:?}", put.outcome.refused)),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }
    };
    op.end_us = world.now_us();
    world.record(Event::Op(op));
}

/// A client: operations through random nodes, with short pauses, until `until`.
pub async fn client(world: Arc<World>, client: usize, keys: u64, until: Instant) {
    let mut serial = 0;
    while Instant::now() < until {
        serial += 1;
        let node = world.draw(0..world.nodes() as u64) as usize;
        operate(&world, client, serial, node, keys).await;
        tokio::time::sleep(Duration::from_micros(world.draw(0..20_000))).await;
    }
}

/// Faults until `until`: at most `N - 1` nodes down at once.
pub async fn nemesis(world: Arc<World>, until: Instant) {
    loop {
        tokio::time::sleep(Duration::from_millis(world.draw(100..400))).await;
        if Instant::now() >= until {
            return;
        }
        let nodes = world.nodes() as u64;
        let down: Vec<usize> = (0..world.nodes()).filter(|&i| !world.is_up(i)).collect();
        let mut erased = None;
        let what = match world.draw(0..120) {
            0..30 if down.len() < N - 1 => {
                let i = world.draw(0..nodes) as usize;
                if !world.is_up(i) {
                    continue;
                }
                let lose = world.chance(0.3);
                world.crash(i, lose);
                erased = lose.then(|| world.node_id(i).to_string());
                format!("crash n{} ({})", i + 1, if lose { "disk lost" } else { "disk kept" })
            }
            0..60 if !down.is_empty() => {
                let i = down[world.draw(0..down.len() as u64) as usize];
                world.start(i);
                format!("restart n{}", i + 1)
            }
            60..80 => {
                let (a, b) = (world.draw(0..nodes) as usize, world.draw(0..nodes) as usize);
                if a == b {
                    continue;
                }
                world.cut(a, b);
                if world.chance(0.5) {
                    world.cut(b, a);
                    format!("partition n{} <-> n{}", a + 1, b + 1)
                } else {
                    format!("one-way cut n{} -> n{}", a + 1, b + 1)
                }
            }
            80..100 => {
                world.heal_links();
                "heal links".to_string()
            }
            100..110 => {
                let i = world.draw(0..nodes) as usize;
                if world.is_disk_slow(i) {
                    world.set_slow_disk(i, None);
                    format!("disk of n{} fast again", i + 1)
                } else {
                    let max = Duration::from_millis(world.draw(2..60));
                    world.set_slow_disk(i, Some(max));
                    format!("disk of n{} slow (acks wait up to {max:?})", i + 1)
                }
            }
            110..120 => {
                let i = world.draw(0..nodes) as usize;
                let full = !world.is_disk_full(i);
                world.set_disk_full(i, full);
                format!("disk of n{} {}", i + 1, if full { "full" } else { "has room again" })
            }
            _ => continue,
        };
        world.record(Event::Fault { at_us: world.now_us(), what, erased });
    }
}

/// One last write or delete per key, one after another, while the faults still stand:
/// the operations the checker can hold to the strictest rules.
pub async fn epilogue(world: &World, client: usize, keys: u64) {
    for k in 0..keys {
        let up: Vec<usize> = (0..world.nodes()).filter(|&i| world.is_up(i)).collect();
        let node = up[world.draw(0..up.len() as u64) as usize];
        let write = if world.chance(0.8) { Some(format!("last-{k}")) } else { None };
        let quorum = world.draw(1..3) as usize;
        run_op(world, client, node, key(k), Some(write), quorum, 0).await;
    }
}

/// Who acknowledged `put`, and which of them stood in for which owner.
fn acks(put: &PutResult) -> (Vec<String>, Vec<(String, String)>) {
    let acked = put.acked.iter().map(ToString::to_string).collect();
    let stand_ins = put.stand_ins.iter().map(|(s, o)| (s.to_string(), o.to_string())).collect();
    (acked, stand_ins)
}
