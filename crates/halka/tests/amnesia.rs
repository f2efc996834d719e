//! A node that lost its disk, or crashed before its journal was synced, must not reuse the
//! dots it issued before: other replicas would drop its new writes as already seen.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster, http};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn actor(c: &TestCluster, i: usize) -> String {
    let (_, body) = http("GET", &c.http_url(i, "/v1/cluster"), b"", &[]);
    json(&body)["actor"].as_str().unwrap().to_string()
}

/// The sequence from Riak's KV679: v1 through node-3, v2 through node-1, node-3 loses
/// its disk and comes back under the same id, v3 through node-3. v3 must win.
#[test]
fn a_node_that_lost_its_disk_does_not_erase_acknowledged_writes() {
    let mut c = TestCluster::start(3, "periodic");
    let keys: Vec<String> = (0..50).map(|i| format!("kv679-{i}")).collect();
    let (mut via3, mut via1) = (Raw::connect(&c.redis_addr(2)), Raw::connect(&c.redis_addr(0)));
    for k in &keys {
        assert_eq!(via3.cmd(&["SET", k, "v1"]), "+OK\r\n");
        assert_eq!(via1.cmd(&["HALKA.CONSISTENCY", "3", "3"]), "+OK\r\n");
        assert_eq!(via1.cmd(&["SET", k, "v2"]), "+OK\r\n");
    }
    c.kill(2);
    std::fs::remove_dir_all(c.dir.path().join("node-3")).unwrap();
    c.launch(2);
    let mut via3 = Raw::connect(&c.redis_addr(2));
    for k in &keys {
        assert_eq!(via3.cmd(&["SET", k, "v3"]), "+OK\r\n", "{k}");
    }
    for i in 0..3 {
        let mut conn = Raw::connect(&c.redis_addr(i));
        assert_eq!(conn.cmd(&["HALKA.CONSISTENCY", "2", "2"]), "+OK\r\n");
        for k in &keys {
            assert_eq!(conn.cmd(&["GET", k]), "$2\r\nv3\r\n", "{k} read through node-{}", i + 1);
        }
    }
}

#[test]
fn a_clean_restart_keeps_the_actor_and_a_crash_takes_a_new_one() {
    let mut c = TestCluster::start(3, "periodic");
    let first = actor(&c, 0);
    assert!(first.starts_with("node-1#"), "{first}");
    // Writes coordinated by node-1 carry its actor.
    let (_, body) = http("PUT", &c.http_url(0, "/v1/kv/k"), b"v", &[]);
    // W = 2, and the key's first owner is awaited too: two or three acknowledgements.
    assert!(json(&body)["acked"].as_array().unwrap().len() >= 2, "{body}");
    let (_, body) = http("GET", &c.http_url(0, "/v1/kv/k"), b"", &[]);
    assert_eq!(json(&body)["siblings"][0]["node"], first.as_str(), "{body}");

    assert!(c.terminate(0).success());
    c.launch(0);
    assert_eq!(actor(&c, 0), first, "a clean shutdown keeps the actor");

    c.kill(0);
    c.launch(0);
    let after_crash = actor(&c, 0);
    assert!(after_crash.starts_with("node-1#") && after_crash != first, "{after_crash}");
}
