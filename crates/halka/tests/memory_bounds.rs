//! Attacks that used to make a node's memory balloon, replayed against real processes,
//! with the node's peak resident memory (`VmHWM`) checked afterwards.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster};
use std::io::Write;

const MIB: u64 = 1 << 20;

#[test]
fn an_mget_naming_a_large_value_many_times_leaves_memory_bounded() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let value = "x".repeat(1 << 20);
    assert_eq!(conn.cmd(&["SET", "big", &value]), "+OK\r\n");
    let before: Vec<u64> = (0..3).map(|i| c.peak_rss(i)).collect();
    // 13.5 KB naming one 1 MiB key 1,500 times: a 1.5 GB reply, which took two nodes
    // past 1 GB resident before replies had a budget.
    let mut args = vec!["MGET"];
    args.extend(std::iter::repeat_n("big", 1500));
    let reply = conn.cmd(&args);
    assert!(reply.contains("limits.max_reply_bytes"), "{}", &reply[..reply.len().min(200)]);
    for (i, before) in before.iter().enumerate() {
        let peak = c.peak_rss(i);
        eprintln!("node {i}: peak resident {} MiB (before {} MiB)", peak / MIB, before / MIB);
        assert!(peak < before + 128 * MIB, "node {i} peaked at {} MiB", peak / MIB);
    }
    assert_eq!(conn.cmd(&["STRLEN", "big"]), format!(":{}\r\n", 1 << 20));
}

#[test]
fn an_endless_request_is_cut_off_at_its_limit_without_holding_it_in_memory() {
    let c = TestCluster::start_with(1, "periodic", "[limits]\nmax_request_bytes = 16777216");
    let before = c.peak_rss(0);
    let mut conn = Raw::connect(&c.redis_addr(0));
    // An MSET of 400 one-MiB arguments, each within every limit, sent one at a time:
    // the request as a whole is cut off at 16 MiB instead of being buffered to 400.
    conn.0.write_all(b"*401\r\n$4\r\nMSET\r\n").unwrap();
    let mut arg = b"$1048576\r\n".to_vec();
    arg.extend(std::iter::repeat_n(b'x', 1 << 20));
    arg.extend_from_slice(b"\r\n");
    let mut sent = 0_u64;
    for _ in 0..400 {
        if conn.0.write_all(&arg).is_err() {
            break;
        }
        sent += MIB;
    }
    assert!(sent < 400 * MIB, "the node read all 400 MiB of an oversized request");
    let peak = c.peak_rss(0);
    eprintln!(
        "peak resident {} MiB (before {} MiB), {} MiB sent",
        peak / MIB,
        before / MIB,
        sent / MIB
    );
    assert!(peak < before + 64 * MIB, "peaked at {} MiB", peak / MIB);
    let mut other = Raw::connect(&c.redis_addr(0));
    assert_eq!(other.cmd(&["EXISTS", "k"]), ":0\r\n");
}
