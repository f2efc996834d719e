//! Hashes against real server processes: fields are records of their own under a head
//! at the key, so writes through different nodes to different fields all survive, `DEL`
//! and expiry end a hash for good, and `HINCRBY` fields count every increment.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::TestCluster;
use redis::aio::MultiplexedConnection;
use std::collections::BTreeMap;

async fn hgetall(n: &mut MultiplexedConnection, key: &str) -> BTreeMap<String, String> {
    redis::cmd("HGETALL").arg(key).query_async(n).await.unwrap()
}

#[tokio::test]
async fn fields_written_through_every_node_at_once_all_survive() {
    let c = TestCluster::start(3, "periodic");
    let mut writers = Vec::new();
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        writers.push(tokio::spawn(async move {
            for f in 0..50 {
                let field = format!("n{i}-f{f}");
                let added: i64 = redis::cmd("HSET")
                    .arg("h")
                    .arg(&field)
                    .arg(f)
                    .query_async(&mut n)
                    .await
                    .unwrap();
                assert_eq!(added, 1, "{field} is new");
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut expected = BTreeMap::new();
    for i in 0..3 {
        for f in 0..50 {
            expected.insert(format!("n{i}-f{f}"), f.to_string());
        }
    }
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        assert_eq!(hgetall(&mut n, "h").await, expected, "through node {i}");
        let len: i64 = redis::cmd("HLEN").arg("h").query_async(&mut n).await.unwrap();
        assert_eq!(len, 150);
    }
}

#[tokio::test]
async fn a_deleted_hash_comes_back_with_none_of_its_old_fields() {
    let c = TestCluster::start_with(3, "periodic", common::FIRST_OWNER_WAITS);
    let mut a = c.connect(0).await;
    let mut b = c.connect(1).await;
    let _: i64 = redis::cmd("HSET")
        .arg("h")
        .arg("old1")
        .arg(1)
        .arg("old2")
        .arg(2)
        .query_async(&mut a)
        .await
        .unwrap();
    let deleted: i64 = redis::cmd("DEL").arg("h").query_async(&mut b).await.unwrap();
    assert_eq!(deleted, 1);
    let _: i64 = redis::cmd("HSET").arg("h").arg("new").arg(3).query_async(&mut a).await.unwrap();
    for n in [&mut a, &mut b] {
        let all = hgetall(n, "h").await;
        assert_eq!(all, BTreeMap::from([("new".to_string(), "3".to_string())]));
        let old: Option<String> =
            redis::cmd("HGET").arg("h").arg("old1").query_async(n).await.unwrap();
        assert_eq!(old, None);
    }
}

#[tokio::test]
async fn a_hash_whose_last_field_is_removed_no_longer_exists() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let _: i64 = redis::cmd("HSET").arg("h").arg("f").arg(1).query_async(&mut a).await.unwrap();
    let kind: String = redis::cmd("TYPE").arg("h").query_async(&mut a).await.unwrap();
    assert_eq!(kind, "hash");
    let removed: i64 =
        redis::cmd("HDEL").arg("h").arg("f").arg("missing").query_async(&mut a).await.unwrap();
    assert_eq!(removed, 1);
    let exists: i64 = redis::cmd("EXISTS").arg("h").query_async(&mut a).await.unwrap();
    assert_eq!(exists, 0);
    let kind: String = redis::cmd("TYPE").arg("h").query_async(&mut a).await.unwrap();
    assert_eq!(kind, "none");
    let deleted: i64 = redis::cmd("DEL").arg("h").query_async(&mut a).await.unwrap();
    assert_eq!(deleted, 0);
}

#[tokio::test]
async fn hincrby_through_every_node_counts_every_increment() {
    let c = TestCluster::start(3, "periodic");
    let mut clients = Vec::new();
    for i in 0..4 {
        let mut n = c.connect(i % 3).await;
        clients.push(tokio::spawn(async move {
            for _ in 0..200 {
                let _: i64 = redis::cmd("HINCRBY")
                    .arg("stats")
                    .arg("hits")
                    .arg(1)
                    .query_async(&mut n)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in clients {
        t.await.unwrap();
    }
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        let hits: i64 =
            redis::cmd("HGET").arg("stats").arg("hits").query_async(&mut n).await.unwrap();
        assert_eq!(hits, 800, "through node {i}");
    }
}

#[tokio::test]
async fn an_expired_hash_is_gone_and_a_new_one_starts_empty() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let _: i64 = redis::cmd("HSET")
        .arg("session")
        .arg("user")
        .arg("ayse")
        .arg("cart")
        .arg(3)
        .query_async(&mut a)
        .await
        .unwrap();
    let set: i64 = redis::cmd("PEXPIRE").arg("session").arg(50).query_async(&mut a).await.unwrap();
    assert_eq!(set, 1);
    // Waits for the expiry, not for a time: each probe asks again.
    let guard = std::time::Instant::now();
    loop {
        let kind: String = redis::cmd("TYPE").arg("session").query_async(&mut a).await.unwrap();
        if kind == "none" {
            break;
        }
        assert!(guard.elapsed().as_secs() < 60, "the hash never expired");
        tokio::task::yield_now().await;
    }
    let _: i64 = redis::cmd("HSET")
        .arg("session")
        .arg("user")
        .arg("mehmet")
        .query_async(&mut a)
        .await
        .unwrap();
    let all = hgetall(&mut a, "session").await;
    assert_eq!(all, BTreeMap::from([("user".to_string(), "mehmet".to_string())]));
    let ttl: i64 = redis::cmd("TTL").arg("session").query_async(&mut a).await.unwrap();
    assert_eq!(ttl, -1, "the new hash has no expiry");
}

#[tokio::test]
async fn string_commands_on_a_hash_and_hash_commands_on_a_string_say_wrongtype() {
    let c = TestCluster::start(1, "periodic");
    let mut a = c.connect(0).await;
    let _: i64 = redis::cmd("HSET").arg("h").arg("f").arg("v").query_async(&mut a).await.unwrap();
    let _: () = redis::cmd("SET").arg("s").arg("v").query_async(&mut a).await.unwrap();
    for cmd in [
        &["GET", "h"][..],
        &["INCR", "h"],
        &["APPEND", "h", "x"],
        &["GETDEL", "h"],
        &["HGET", "s", "f"],
        &["HSET", "s", "f", "v"],
        &["HGETALL", "s"],
        &["HINCRBY", "s", "f", "1"],
    ] {
        let err = redis::cmd(cmd[0])
            .arg(&cmd[1..])
            .query_async::<redis::Value>(&mut a)
            .await
            .unwrap_err();
        let words = "Operation against a key holding the wrong kind of value";
        assert_eq!(err.code(), Some("WRONGTYPE"), "{cmd:?}: {err}");
        assert!(err.to_string().contains(words), "{cmd:?}: {err}");
    }
    let mget: Vec<Option<String>> =
        redis::cmd("MGET").arg("h").arg("s").query_async(&mut a).await.unwrap();
    assert_eq!(mget, [None, Some("v".into())], "MGET reads another type as missing");
    // SET replaces a hash, as in Redis; the old fields do not come back with a new hash.
    let _: () = redis::cmd("SET").arg("h").arg("now a string").query_async(&mut a).await.unwrap();
    let _: i64 = redis::cmd("DEL").arg("h").query_async(&mut a).await.unwrap();
    let _: i64 = redis::cmd("HSET").arg("h").arg("g").arg("w").query_async(&mut a).await.unwrap();
    let fields: Vec<String> = redis::cmd("HKEYS").arg("h").query_async(&mut a).await.unwrap();
    assert_eq!(fields, ["g"]);
}

#[tokio::test]
async fn scan_lists_a_hash_once_and_never_its_fields() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let _: i64 = redis::cmd("HSET")
        .arg("h")
        .arg("a")
        .arg(1)
        .arg("b")
        .arg(2)
        .query_async(&mut a)
        .await
        .unwrap();
    let _: () = redis::cmd("SET").arg("s").arg(1).query_async(&mut a).await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut a).await.unwrap();
    keys.sort();
    assert_eq!(keys, ["h", "s"]);
    let (_, hashes): (String, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(1000)
        .arg("TYPE")
        .arg("hash")
        .query_async(&mut a)
        .await
        .unwrap();
    assert_eq!(hashes, ["h"]);
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut a).await.unwrap();
    assert_eq!(size, 2, "node 0 holds both keys (N = 3) and counts no field as a key");
}

#[tokio::test]
async fn fields_acknowledged_before_a_crash_are_all_there_after_it() {
    let mut c = TestCluster::start(3, "always");
    let mut a = c.connect(0).await;
    let _: () = redis::cmd("HALKA.CONSISTENCY").arg(2).arg(2).query_async(&mut a).await.unwrap();
    for f in 0..100 {
        let _: i64 = redis::cmd("HSET")
            .arg("h")
            .arg(format!("f{f}"))
            .arg(f)
            .query_async(&mut a)
            .await
            .unwrap();
    }
    c.kill(1);
    c.launch(1);
    c.kill(2);
    let mut b = c.connect(1).await;
    let _: () = redis::cmd("HALKA.CONSISTENCY").arg(2).arg(2).query_async(&mut b).await.unwrap();
    let all = hgetall(&mut b, "h").await;
    assert_eq!(all.len(), 100, "read from nodes 0 and 1 after node 1's crash");
    assert_eq!(all["f42"], "42");
}

#[tokio::test]
async fn keys_in_the_bytes_kept_for_fields_are_refused_saying_why() {
    let c = TestCluster::start(1, "periodic");
    let mut a = c.connect(0).await;
    let mut reserved = b"\xff\xfehalka\x00".to_vec();
    reserved.extend_from_slice(b"\x00\x00\x00\x01h");
    for cmd in ["GET", "HGETALL", "DEL"] {
        let err = redis::cmd(cmd).arg(&reserved).query_async::<redis::Value>(&mut a).await;
        let err = err.unwrap_err();
        assert!(err.to_string().contains("reserved"), "{cmd}: {err}");
    }
    let err = redis::cmd("SET").arg(&reserved).arg("v").query_async::<()>(&mut a).await;
    assert!(err.unwrap_err().to_string().contains("reserved"));
}

#[tokio::test]
async fn the_http_api_shows_a_hash_and_a_set_as_json() {
    let c = TestCluster::start(1, "periodic");
    let mut a = c.connect(0).await;
    let _: i64 = redis::cmd("HSET")
        .arg("user")
        .arg("name")
        .arg("Ayşe")
        .arg("visits")
        .arg(3)
        .query_async(&mut a)
        .await
        .unwrap();
    let _: i64 =
        redis::cmd("SADD").arg("tags").arg("b").arg("a").query_async(&mut a).await.unwrap();
    let (status, body) = common::http("GET", &c.http_url(0, "/v1/kv/user"), b"", &[]);
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["type"], "hash");
    assert_eq!(body["members"], serde_json::json!({ "name": "Ayşe", "visits": "3" }));
    let (status, body) = common::http("GET", &c.http_url(0, "/v1/kv/tags"), b"", &[]);
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["type"], "set");
    assert_eq!(body["members"], serde_json::json!(["a", "b"]));
}

/// Every field of `key`, walked with `HSCAN … COUNT 10` through node after node in turn.
async fn hscan_all(c: &TestCluster, key: &str) -> (BTreeMap<String, String>, usize) {
    let (mut cursor, mut steps, mut seen) = ("0".to_string(), 0, BTreeMap::new());
    loop {
        let mut n = c.connect(steps % 3).await;
        let (next, items): (String, Vec<String>) = redis::cmd("HSCAN")
            .arg(key)
            .arg(&cursor)
            .arg("COUNT")
            .arg(10)
            .query_async(&mut n)
            .await
            .unwrap();
        for pair in items.chunks(2) {
            seen.insert(pair[0].clone(), pair[1].clone());
        }
        steps += 1;
        if next == "0" {
            return (seen, steps);
        }
        cursor = next;
    }
}

#[tokio::test]
async fn hscan_walks_every_field_of_a_large_hash_across_nodes() {
    let c = TestCluster::start(3, "periodic");
    let mut n = c.connect(0).await;
    let mut expected = BTreeMap::new();
    // Enough bytes that the fields span several of a replica's range pages (1 MiB).
    let value = "v".repeat(1000);
    for batch in 0..40 {
        let mut cmd = redis::cmd("HSET");
        cmd.arg("big");
        for f in 0..50 {
            let field = format!("f{batch}-{f}");
            cmd.arg(&field).arg(&value);
            expected.insert(field, value.clone());
        }
        let _: i64 = cmd.query_async(&mut n).await.unwrap();
    }
    let (seen, steps) = hscan_all(&c, "big").await;
    assert_eq!(seen.len(), expected.len());
    assert_eq!(seen, expected);
    assert!(steps > 1, "two thousand 1000-byte fields take more than one step");
}
