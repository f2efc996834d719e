//! Anti-entropy through real processes, with hinted handoff switched off so that only
//! anti-entropy can repair: a node back from a crash, and a node back with an empty data
//! directory, come to hold every write and delete they missed without any client reading
//! those keys.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster, http, own_values};
use std::time::{Duration, Instant};

const NO_HINTS: &str = "[handoff]\nenabled = false\n[anti_entropy]\ninterval_ms = 5\n";

fn key(i: usize) -> String {
    format!("aae-{i}")
}

/// The anti-entropy figures in node `i`'s `/v1/cluster`.
fn stats(c: &TestCluster, i: usize) -> serde_json::Value {
    let (_, body) = http("GET", &c.http_url(i, "/v1/cluster"), b"", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["anti_entropy"].clone()
}

/// Waits until node `node`'s own replica holds `want(i)` for every key it owns. `within`
/// only guards against a hang; how long repair takes is measured in BENCHMARKS.md.
fn wait_until_held(c: &TestCluster, node: usize, keys: usize, want: impl Fn(usize) -> Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let wrong = (0..keys)
            .filter(|&i| own_values(c, node, &key(i)).is_some_and(|held| held != want(i)))
            .count();
        if wrong == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{wrong} keys still differ on node {node}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_back_from_a_crash_holds_what_it_missed_without_hints() {
    let mut c = TestCluster::start_with(3, "periodic", NO_HINTS);
    let mut conn = Raw::connect(&c.redis_addr(0));
    for i in 0..300 {
        assert_eq!(conn.cmd(&["SET", &key(i), "old"]), "+OK\r\n");
    }
    c.kill(2);
    for i in 0..600 {
        let mut conn = Raw::connect(&c.redis_addr(i % 2));
        let reply =
            if i < 100 { conn.cmd(&["DEL", &key(i)]) } else { conn.cmd(&["SET", &key(i), "new"]) };
        assert!(reply == ":1\r\n" || reply == "+OK\r\n", "{i}: {reply}");
    }
    c.launch(2);
    wait_until_held(&c, 2, 600, |i| if i < 100 { vec![] } else { vec!["new".into()] });
    let repaired = stats(&c, 2)["keys_repaired"].as_u64().unwrap()
        + stats(&c, 0)["keys_repaired"].as_u64().unwrap()
        + stats(&c, 1)["keys_repaired"].as_u64().unwrap();
    assert!(repaired >= 600, "anti-entropy did the repairs: {repaired}");
}

#[test]
fn a_node_back_with_an_empty_disk_is_refilled_and_deletes_stay_deleted() {
    let mut c = TestCluster::start_with(3, "periodic", NO_HINTS);
    let mut conn = Raw::connect(&c.redis_addr(0));
    for i in 0..500 {
        assert_eq!(conn.cmd(&["SET", &key(i), "v"]), "+OK\r\n");
    }
    for i in 0..100 {
        assert_eq!(conn.cmd(&["DEL", &key(i)]), ":1\r\n");
    }
    c.kill(2);
    std::fs::remove_dir_all(c.dir.path().join("node-3")).unwrap();
    c.launch(2);
    wait_until_held(&c, 2, 500, |i| if i < 100 { vec![] } else { vec!["v".into()] });
    // Every node reads every deleted key as missing, also at R=1 through the refilled one.
    let mut conn = Raw::connect(&c.redis_addr(2));
    for i in 0..100 {
        assert_eq!(conn.cmd(&["HALKA.GET", &key(i), "1"]), "$-1\r\n", "{}", key(i));
    }
}

#[test]
fn status_shows_anti_entropy_on_every_surface() {
    let c = TestCluster::start_with(3, "periodic", NO_HINTS);
    // The JSON status, once a whole pass is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats(&c, 0)["passes"].as_u64().unwrap() == 0 {
        assert!(Instant::now() < deadline, "no pass completed: {}", stats(&c, 0));
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = stats(&c, 0);
    // Exchanges fail while the other nodes are still starting; the rest succeed.
    let done = s["exchanges"].as_u64().unwrap() + s["failed_exchanges"].as_u64().unwrap();
    assert!(done >= 128, "every stretch with both peers: {s}");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let info = conn.cmd(&["INFO", "halka"]);
    assert!(info.contains("anti_entropy:on\r\n"), "{info}");
    assert!(info.contains("aae_exchanges:"), "{info}");
    let out = std::process::Command::new(common::BIN)
        .args(["status", "--addr", &c.redis_addr(0)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("anti-entropy: 0 keys repaired in"), "{text}");
}
