//! Walking the cluster's keys (SCAN, KEYS, RANDOMKEY, FLUSHDB) against real processes.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::TestCluster;
use redis::aio::MultiplexedConnection;
use std::collections::BTreeSet;
use std::process::Command;

async fn write_keys(c: &TestCluster, n: usize) {
    let mut a = c.connect(0).await;
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET").arg(format!("key:{i}")).arg("v").ignore();
    }
    let () = pipe.query_async(&mut a).await.unwrap();
}

/// Scans to the end, one step through each node in turn; every key seen.
async fn scan_all(conns: &mut [MultiplexedConnection], args: &[&str]) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut step = 0;
    loop {
        let conn = &mut conns[step % conns.len()];
        step += 1;
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(&cursor);
        for a in args {
            cmd.arg(*a);
        }
        let (next, keys): (String, Vec<String>) = cmd.query_async(conn).await.unwrap();
        seen.extend(keys);
        if next == "0" {
            return seen;
        }
        cursor = next;
    }
}

fn expected(n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("key:{i}")).collect()
}

#[tokio::test]
async fn a_scan_continued_through_any_node_returns_every_key() {
    let c = TestCluster::start(3, "periodic");
    write_keys(&c, 500).await;
    let mut conns = vec![c.connect(0).await, c.connect(1).await, c.connect(2).await];
    let seen = scan_all(&mut conns, &["COUNT", "50"]).await;
    assert!(seen.len() >= 500, "{} keys", seen.len());
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected(500));
}

#[tokio::test]
async fn deleted_and_expired_keys_never_appear() {
    let c = TestCluster::start(3, "periodic");
    write_keys(&c, 100).await;
    let mut a = c.connect(0).await;
    for i in 0..50 {
        let _: i64 = redis::cmd("DEL").arg(format!("key:{i}")).query_async(&mut a).await.unwrap();
    }
    for i in 50..60 {
        let _: i64 = redis::cmd("PEXPIREAT")
            .arg(format!("key:{i}"))
            .arg(1)
            .query_async(&mut a)
            .await
            .unwrap();
    }
    let seen: BTreeSet<String> = scan_all(&mut [a], &[]).await.into_iter().collect();
    assert_eq!(seen, (60..100).map(|i| format!("key:{i}")).collect());
}

#[tokio::test]
async fn a_cursor_survives_a_node_failure() {
    let mut c = TestCluster::start(3, "periodic");
    write_keys(&c, 300).await;
    let mut a = c.connect(0).await;
    let (cursor, first): (String, Vec<String>) =
        redis::cmd("SCAN").arg(0).arg("COUNT").arg(100).query_async(&mut a).await.unwrap();
    assert_ne!(cursor, "0");
    c.kill(2);
    let mut b = c.connect(1).await;
    let mut seen: BTreeSet<String> = first.into_iter().collect();
    let mut cursor = cursor;
    while cursor != "0" {
        let (next, keys): (String, Vec<String>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("COUNT")
            .arg(100)
            .query_async(&mut b)
            .await
            .unwrap();
        seen.extend(keys);
        cursor = next;
    }
    assert_eq!(seen, expected(300));
}

#[tokio::test]
async fn match_and_type_filter_and_keys_lists_every_match() {
    let c = TestCluster::start(3, "periodic");
    write_keys(&c, 30).await;
    let mut a = c.connect(1).await;
    let seen: BTreeSet<String> =
        scan_all(&mut [a.clone()], &["MATCH", "key:1*"]).await.into_iter().collect();
    let ones: BTreeSet<String> = [
        "key:1", "key:10", "key:11", "key:12", "key:13", "key:14", "key:15", "key:16", "key:17",
        "key:18", "key:19",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(seen, ones);
    assert!(scan_all(&mut [a.clone()], &["TYPE", "hash"]).await.is_empty());
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("key:1?").query_async(&mut a).await.unwrap();
    keys.sort();
    assert_eq!(keys.len(), 10, "{keys:?}");
    let all: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut a).await.unwrap();
    assert_eq!(all.len(), 30);
}

#[tokio::test]
async fn redis_cli_scan_lists_every_key() {
    let c = TestCluster::start(3, "periodic");
    write_keys(&c, 200).await;
    let out = Command::new("redis-cli")
        .args(["-p", &c.nodes[2].redis_port.to_string(), "--scan", "--pattern", "key:*"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: BTreeSet<String> =
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(seen, expected(200));
}

#[tokio::test]
async fn randomkey_returns_a_live_key_and_nil_on_an_empty_cluster() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let none: Option<String> = redis::cmd("RANDOMKEY").query_async(&mut a).await.unwrap();
    assert_eq!(none, None);
    write_keys(&c, 20).await;
    for _ in 0..10 {
        let key: String = redis::cmd("RANDOMKEY").query_async(&mut a).await.unwrap();
        assert!(expected(20).contains(&key), "{key}");
    }
}

#[tokio::test]
async fn flushdb_deletes_every_key_and_is_refused_with_a_member_down() {
    let mut c = TestCluster::start(3, "periodic");
    write_keys(&c, 200).await;
    let mut a = c.connect(0).await;
    let () = redis::cmd("FLUSHDB").query_async(&mut a).await.unwrap();
    let mut b = c.connect(2).await;
    let left: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut b).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let got: Option<String> = redis::cmd("GET").arg("key:7").query_async(&mut b).await.unwrap();
    assert_eq!(got, None);
    write_keys(&c, 10).await;
    c.kill(2);
    let mut a = c.connect(0).await;
    let err = redis::cmd("FLUSHALL").query_async::<()>(&mut a).await.unwrap_err();
    assert!(err.to_string().contains("every member"), "{err}");
    // A listing that fails says so, not that a write did.
    assert!(err.to_string().contains("list failed"), "{err}");
    assert!(!err.to_string().contains("the write may"), "{err}");
    let still: Option<String> = redis::cmd("GET").arg("key:7").query_async(&mut a).await.unwrap();
    assert_eq!(still.as_deref(), Some("v"), "nothing was deleted");
}

#[test]
fn the_http_listing_pages_through_every_key_with_a_prefix() {
    let c = TestCluster::start(3, "periodic");
    for i in 0..50 {
        common::http("PUT", &c.http_url(0, &format!("/v1/kv/a{i}")), b"v", &[]);
        common::http("PUT", &c.http_url(0, &format!("/v1/kv/b{i}")), b"v", &[]);
    }
    let mut seen = BTreeSet::new();
    let mut cursor: Option<u64> = None;
    loop {
        let path = match cursor {
            None => "/v1/kv?prefix=a&limit=10".to_string(),
            Some(c) => format!("/v1/kv?prefix=a&limit=10&cursor={c}"),
        };
        let (status, body) = common::http("GET", &c.http_url(1, &path), b"", &[]);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        for k in v["keys"].as_array().unwrap() {
            seen.insert(k["key"].as_str().unwrap().to_string());
        }
        match v["cursor"].as_u64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (0..50).map(|i| format!("a{i}")).collect());
    let (status, _) = common::http("GET", &c.http_url(1, "/v1/kv?limit=0"), b"", &[]);
    assert_eq!(status, 400);
}

#[tokio::test]
async fn scan_with_a_huge_count_answers_a_page_and_the_walk_lists_every_key() {
    let c = TestCluster::start(3, "periodic");
    write_keys(&c, 20_000).await;
    let mut a = c.connect(0).await;
    // The report's `COUNT 1000000000`: each member answers one bounded page of the range
    // instead of every key it holds, so the step ends early and says where to go on.
    let (next, keys): (String, Vec<String>) = redis::cmd("SCAN")
        .arg("0")
        .arg("COUNT")
        .arg(1_000_000_000)
        .query_async(&mut a)
        .await
        .unwrap();
    assert_ne!(next, "0", "a step of 20,000 keys was answered in one page");
    assert!(!keys.is_empty() && keys.len() < 20_000, "{} keys", keys.len());
    let seen = scan_all(&mut [a], &["COUNT", "1000000000"]).await;
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected(20_000));
}

/// Waits until node's `connected_clients` is `n`.
async fn wait_clients(conn: &mut MultiplexedConnection, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query_async(conn).await.unwrap();
        let connected: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:")?.trim().parse().ok())
            .unwrap();
        if connected == n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never {n} clients: {info}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn keys_stops_walking_when_its_client_goes_away() {
    use std::io::Write;
    let c = TestCluster::start_with(3, "periodic", "timeout_ms = 600000");
    write_keys(&c, 100).await;
    // node-3 hangs: every step of the walk waits for it (timeout_ms is ten minutes).
    c.signal(2, nix::sys::signal::Signal::SIGSTOP);
    let mut walker = std::net::TcpStream::connect(c.redis_addr(0)).unwrap();
    walker.write_all(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n").unwrap();
    let mut a = c.connect(0).await;
    // The walk is under way while its client is connected; once the client is gone the
    // node drops the walk and the connection.
    wait_clients(&mut a, 2).await;
    drop(walker);
    wait_clients(&mut a, 1).await;
    c.signal(2, nix::sys::signal::Signal::SIGCONT);
}
