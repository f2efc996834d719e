//! Sloppy quorum through real processes: five nodes, N = 3. With two owners of a key
//! killed, W=2 writes still succeed through a stand-in, the receipt says so, PW refuses
//! what only owners may satisfy, and the owners hold the write once they are back.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster, http, own_values};
use std::time::{Duration, Instant};

/// The indexes of `key`'s owners (node-1 is index 0), asked while all answer.
fn owners(c: &TestCluster, key: &str) -> Vec<usize> {
    let all = Raw::connect(&c.redis_addr(0)).cmd(&["HALKA.GETALL", key, "3"]);
    (0..5).filter(|i| all.contains(&format!("node-{}\r\n", i + 1))).collect()
}

#[test]
fn with_two_owners_down_writes_go_through_a_stand_in_and_reach_the_owners_later() {
    let mut c = TestCluster::start_with(5, "periodic", "replication = 3\n");
    let key = "sloppy";
    assert_eq!(Raw::connect(&c.redis_addr(0)).cmd(&["SET", key, "v0"]), "+OK\r\n");
    let owners = owners(&c, key);
    assert_eq!(owners.len(), 3, "{owners:?}");
    let (up, gone) = (owners[0], &owners[1..]);
    for &o in gone {
        c.kill(o);
    }

    let mut conn = Raw::connect(&c.redis_addr(up));
    let receipt = conn.cmd(&["HALKA.SET", key, "v1", "2", "RECEIPT"]);
    assert!(receipt.starts_with("*6\r\n$5\r\nacked\r\n*2\r\n"), "{receipt}");
    assert!(!receipt.contains("stand_ins\r\n*0\r\n"), "a stand-in acknowledged: {receipt}");
    let err = conn.cmd(&["HALKA.SET", key, "v2", "2", "PW", "2"]);
    assert!(err.starts_with("-") && err.contains("pw=2"), "{err}");

    let (status, body) = http("PUT", &c.http_url(up, &format!("/v1/kv/{key}?w=2")), b"v3", &[]);
    assert_eq!(status, 200, "{body}");
    let put: serde_json::Value = serde_json::from_str(&body).unwrap();
    let stood_in_for = put["stand_ins"].as_object().unwrap().values().next().unwrap().clone();
    assert!(
        gone.iter().any(|&o| stood_in_for == format!("node-{}", o + 1)),
        "a stand-in for a dead owner: {body}"
    );

    for &o in gone {
        c.launch(o);
    }
    // No client reads the key: hints (and anti-entropy) bring it to the owners.
    let deadline = Instant::now() + Duration::from_secs(60);
    for &o in gone {
        while own_values(&c, o, key) != Some(vec!["v3".to_string()]) {
            assert!(Instant::now() < deadline, "node {o} holds {:?}", own_values(&c, o, key));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_receipt_names_the_acknowledgements_made_after_an_fsync() {
    // node-1 and node-2 fsync every write; node-3 is restarted under `periodic`.
    let mut c = TestCluster::start(3, "always");
    c.kill(2);
    let config = std::fs::read_to_string(&c.nodes[2].config).unwrap();
    std::fs::write(&c.nodes[2].config, config.replace("sync = \"always\"", "sync = \"periodic\""))
        .unwrap();
    c.launch(2);
    c.wait_seen_up(2);

    let receipt = Raw::connect(&c.redis_addr(0)).cmd(&["HALKA.SET", "k", "v", "3", "RECEIPT"]);
    // In the order the acknowledgements came.
    let synced = receipt.split("synced\r\n").nth(1).unwrap_or_default();
    assert!(
        ["*2\r\n$6\r\nnode-1\r\n$6\r\nnode-2\r\n", "*2\r\n$6\r\nnode-2\r\n$6\r\nnode-1\r\n"]
            .contains(&synced),
        "{receipt}"
    );

    let (status, body) = http("PUT", &c.http_url(1, "/v1/kv/k?w=3"), b"v2", &[]);
    assert_eq!(status, 200, "{body}");
    let put: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut synced: Vec<&str> =
        put["synced"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    synced.sort_unstable();
    assert_eq!(synced, ["node-1", "node-2"], "{body}");
    assert_eq!(put["acked"].as_array().unwrap().len(), 3, "{body}");
}

#[test]
fn pr_and_pw_above_their_quorum_are_refused_on_both_protocols() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let err = conn.cmd(&["HALKA.SET", "k", "v", "1", "PW", "2"]);
    assert!(err.starts_with("-ERR pw=2 exceeds w=1"), "{err}");
    let err = conn.cmd(&["HALKA.GET", "k", "1", "PR", "2"]);
    assert!(err.starts_with("-ERR pr=2 exceeds r=1"), "{err}");
    assert_eq!(conn.cmd(&["HALKA.GET", "k", "1", "PR", "1"]), "$-1\r\n");
    let (status, body) = http("PUT", &c.http_url(0, "/v1/kv/k?w=1&pw=2"), b"v", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("pw=2 exceeds w=1"), "{body}");
    let (status, body) = http("GET", &c.http_url(0, "/v1/kv/k?r=1&pr=2"), b"", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("pr=2 exceeds r=1"), "{body}");
}
