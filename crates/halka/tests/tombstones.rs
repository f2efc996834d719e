//! Tombstone collection through real processes: deleted keys stop costing storage once
//! every owner holds their tombstones, and a node that was down during the deletes for
//! longer than the grace does not bring the values back.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster, http};
use std::time::{Duration, Instant};

/// A two-second grace; with `timeout_ms = 500` a node also holds a tombstone at least 5 s
/// (ten request timeouts) before removing it.
const SHORT_GRACE: &str =
    "[tombstones]\ngrace_secs = 2\ninterval_ms = 100\n[anti_entropy]\ninterval_ms = 5\n";

fn key(i: usize) -> String {
    format!("gone-{i}")
}

/// Node `i`'s tombstone figures, from `/v1/cluster`.
fn tombstones(c: &TestCluster, i: usize) -> serde_json::Value {
    let (_, body) = http("GET", &c.http_url(i, "/v1/cluster"), b"", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["tombstones"].clone()
}

/// Polls until `done` holds; `what` names it when the guard (against a hang only) trips.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set_then_delete(c: &TestCluster, keys: usize) {
    let mut conn = Raw::connect(&c.redis_addr(0));
    for i in 0..keys {
        assert_eq!(conn.cmd(&["SET", &key(i), "doomed"]), "+OK\r\n");
    }
    for i in 0..keys {
        assert_eq!(conn.cmd(&["DEL", &key(i)]), ":1\r\n", "{}", key(i));
    }
}

#[test]
fn tombstones_are_collected_on_every_node_once_all_hold_them() {
    let c = TestCluster::start_with(3, "periodic", SHORT_GRACE);
    set_then_delete(&c, 200);
    for i in 0..3 {
        wait_for(&format!("node {i} to collect"), || {
            let t = tombstones(&c, i);
            t["pending"] == 0 && t["collected"].as_u64().unwrap() >= 200
        });
    }
    let mut conn = Raw::connect(&c.redis_addr(1));
    for i in 0..200 {
        assert_eq!(conn.cmd(&["HALKA.GET", &key(i), "3"]), "$-1\r\n");
    }
    // A key deleted and collected can be written again, and reads back.
    assert_eq!(conn.cmd(&["SET", &key(7), "again"]), "+OK\r\n");
    let mut other = Raw::connect(&c.redis_addr(2));
    assert_eq!(other.cmd(&["HALKA.GET", &key(7), "3"]), "$5\r\nagain\r\n");
}

#[test]
fn a_node_down_past_the_grace_does_not_bring_deleted_values_back() {
    let mut c = TestCluster::start_with(3, "periodic", SHORT_GRACE);
    let mut conn = Raw::connect(&c.redis_addr(0));
    for i in 0..200 {
        assert_eq!(conn.cmd(&["SET", &key(i), "doomed"]), "+OK\r\n");
    }
    c.kill(2);
    for i in 0..200 {
        assert_eq!(conn.cmd(&["DEL", &key(i)]), ":1\r\n");
    }
    // Past the grace and the settle time, the others still keep every tombstone: node 3
    // holds the values and has not answered.
    wait_for("the tombstones to age past grace and settle", || {
        tombstones(&c, 0)["oldest_secs"].as_u64().unwrap() >= 8
    });
    for i in 0..2 {
        assert_eq!(tombstones(&c, i)["pending"], 200, "node {i}: {}", tombstones(&c, i));
        assert_eq!(tombstones(&c, i)["collected"], 0, "node {i}");
    }
    c.launch(2);
    for i in 0..3 {
        wait_for(&format!("node {i} to collect"), || tombstones(&c, i)["pending"] == 0);
    }
    for node in 0..3 {
        let mut conn = Raw::connect(&c.redis_addr(node));
        for i in 0..200 {
            assert_eq!(conn.cmd(&["HALKA.GET", &key(i), "1"]), "$-1\r\n", "{} at {node}", key(i));
        }
    }
}

#[test]
fn a_node_killed_after_collecting_keeps_deleted_keys_deleted_and_later_writes() {
    let mut c = TestCluster::start_with(3, "periodic", SHORT_GRACE);
    set_then_delete(&c, 100);
    wait_for("node 1 to collect", || tombstones(&c, 0)["collected"].as_u64().unwrap() >= 100);
    c.kill(0);
    c.launch(0);
    // Written through the restarted node right away, while the others may still hold
    // the tombstones it removed.
    let mut conn = Raw::connect(&c.redis_addr(0));
    for i in 0..100 {
        assert_eq!(conn.cmd(&["SET", &key(i), "later"]), "+OK\r\n");
    }
    for i in 0..3 {
        wait_for(&format!("node {i} to collect"), || tombstones(&c, i)["pending"] == 0);
    }
    for node in 0..3 {
        let mut conn = Raw::connect(&c.redis_addr(node));
        for i in 0..100 {
            assert_eq!(conn.cmd(&["HALKA.GET", &key(i), "3"]), "$5\r\nlater\r\n");
        }
    }
}

#[test]
fn status_shows_tombstones_on_every_surface() {
    let c = TestCluster::start_with(1, "periodic", SHORT_GRACE);
    set_then_delete(&c, 3);
    assert_eq!(tombstones(&c, 0)["pending"], 3);
    let info = Raw::connect(&c.redis_addr(0)).cmd(&["INFO", "halka"]);
    assert!(info.contains("tombstone_collection:on\r\ntombstones_pending:3\r\n"), "{info}");
    let out = std::process::Command::new(common::BIN)
        .args(["status", "--addr", &c.redis_addr(0)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tombstones: 3 waiting, deleted or expiring (oldest "), "{text}");
}

#[test]
fn expired_keys_are_collected_like_tombstones() {
    let c = TestCluster::start_with(3, "periodic", SHORT_GRACE);
    let mut conn = Raw::connect(&c.redis_addr(0));
    // Already expired when written: the grace runs from the expiry.
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    for i in 0..100 {
        assert_eq!(conn.cmd(&["SET", &key(i), "brief", "PXAT", &past]), "+OK\r\n");
    }
    // One key that lives on is never collected.
    assert_eq!(conn.cmd(&["SET", "kept", "v", "EX", "100000"]), "+OK\r\n");
    for i in 0..3 {
        wait_for(&format!("node {i} to collect the expired keys"), || {
            tombstones(&c, i)["collected"].as_u64().unwrap() >= 100
        });
    }
    for i in 0..3 {
        assert_eq!(tombstones(&c, i)["collected"].as_u64().unwrap(), 100, "node {i}");
    }
    let mut other = Raw::connect(&c.redis_addr(2));
    assert_eq!(other.cmd(&["HALKA.GET", "kept", "3"]), "$1\r\nv\r\n");
    assert_eq!(other.cmd(&["HALKA.GET", &key(3), "3"]), "$-1\r\n");
}
