//! Conditional and read-modify-write string commands, against real server processes.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::TestCluster;

#[tokio::test]
async fn twenty_clients_racing_set_nx_through_three_nodes_have_exactly_one_winner() {
    let c = TestCluster::start(3, "periodic");
    let mut conns = Vec::new();
    for i in 0..20 {
        // One connection per client, spread over the nodes.
        let client = redis::Client::open(format!("redis://{}/", c.redis_addr(i % 3))).unwrap();
        conns.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    for round in 0..50 {
        let key = format!("lock:{round}");
        let racers: Vec<_> = conns
            .iter()
            .cloned()
            .enumerate()
            .map(|(id, mut conn)| {
                let key = key.clone();
                tokio::spawn(async move {
                    let won: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg(id)
                        .arg("NX")
                        .arg("PX")
                        .arg(5000)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    won.map(|_| id)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for r in racers {
            winners.extend(r.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let mut check = conns[0].clone();
        let held: String = redis::cmd("GET").arg(&key).query_async(&mut check).await.unwrap();
        assert_eq!(held, winners[0].to_string(), "the winner's value is stored");
    }
}

#[tokio::test]
async fn setnx_getset_and_getdel_report_what_they_replaced() {
    let c = TestCluster::start(3, "periodic");
    let (mut a, mut b) = (c.connect(0).await, c.connect(1).await);
    let set: i64 = redis::cmd("SETNX").arg("k").arg("1").query_async(&mut a).await.unwrap();
    assert_eq!(set, 1);
    let set: i64 = redis::cmd("SETNX").arg("k").arg("2").query_async(&mut b).await.unwrap();
    assert_eq!(set, 0);
    let old: String = redis::cmd("GETSET").arg("k").arg("3").query_async(&mut b).await.unwrap();
    assert_eq!(old, "1");
    let old: Option<String> =
        redis::cmd("SET").arg("k").arg("4").arg("GET").query_async(&mut a).await.unwrap();
    assert_eq!(old.as_deref(), Some("3"));
    let old: Option<String> = redis::cmd("GETDEL").arg("k").query_async(&mut b).await.unwrap();
    assert_eq!(old.as_deref(), Some("4"));
    let gone: Option<String> = redis::cmd("GET").arg("k").query_async(&mut a).await.unwrap();
    assert_eq!(gone, None);
    let none: Option<String> = redis::cmd("GETDEL").arg("k").query_async(&mut a).await.unwrap();
    assert_eq!(none, None);
}

#[tokio::test]
async fn set_xx_writes_only_over_a_value() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let r: Option<String> =
        redis::cmd("SET").arg("k").arg("v").arg("XX").query_async(&mut a).await.unwrap();
    assert_eq!(r, None);
    let got: Option<String> = redis::cmd("GET").arg("k").query_async(&mut a).await.unwrap();
    assert_eq!(got, None);
    let _: () = redis::cmd("SET").arg("k").arg("v").query_async(&mut a).await.unwrap();
    let r: Option<String> =
        redis::cmd("SET").arg("k").arg("w").arg("XX").query_async(&mut a).await.unwrap();
    assert_eq!(r.as_deref(), Some("OK"));
}

#[tokio::test]
async fn append_and_setrange_edit_the_value_in_place() {
    let c = TestCluster::start(3, "periodic");
    let (mut a, mut b) = (c.connect(0).await, c.connect(2).await);
    let n: i64 = redis::cmd("APPEND").arg("s").arg("Hello").query_async(&mut a).await.unwrap();
    assert_eq!(n, 5);
    let n: i64 = redis::cmd("APPEND").arg("s").arg(" World").query_async(&mut b).await.unwrap();
    assert_eq!(n, 11);
    let n: i64 =
        redis::cmd("SETRANGE").arg("s").arg(6).arg("Redis").query_async(&mut a).await.unwrap();
    assert_eq!(n, 11);
    let got: String = redis::cmd("GET").arg("s").query_async(&mut b).await.unwrap();
    assert_eq!(got, "Hello Redis");
    let n: i64 =
        redis::cmd("SETRANGE").arg("pad").arg(2).arg("x").query_async(&mut a).await.unwrap();
    assert_eq!(n, 3);
    let got: Vec<u8> = redis::cmd("GET").arg("pad").query_async(&mut b).await.unwrap();
    assert_eq!(got, b"\0\0x");
    let n: i64 = redis::cmd("SETRANGE").arg("s").arg(0).arg("").query_async(&mut a).await.unwrap();
    assert_eq!(n, 11, "an empty SETRANGE reports the length and writes nothing");
}

#[tokio::test]
async fn a_value_grown_past_the_limit_is_refused_and_kept() {
    let c = TestCluster::start_with(1, "periodic", "[limits]\nmax_value_bytes = 8\n");
    let mut a = c.connect(0).await;
    let _: () = redis::cmd("SET").arg("s").arg("12345").query_async(&mut a).await.unwrap();
    let err =
        redis::cmd("APPEND").arg("s").arg("6789").query_async::<i64>(&mut a).await.unwrap_err();
    assert!(err.to_string().contains("max_value_bytes"), "{err}");
    let err = redis::cmd("SETRANGE")
        .arg("s")
        .arg(100)
        .arg("x")
        .query_async::<i64>(&mut a)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exceeds maximum allowed size"), "{err}");
    let got: String = redis::cmd("GET").arg("s").query_async(&mut a).await.unwrap();
    assert_eq!(got, "12345");
}

#[test]
fn an_http_put_with_if_none_match_stores_only_over_nothing() {
    let c = TestCluster::start(3, "periodic");
    let star = [("If-None-Match", "*")];
    let (status, body) = common::http("PUT", &c.http_url(0, "/v1/kv/k"), b"first", &star);
    assert_eq!(status, 200, "{body}");
    let (status, body) = common::http("PUT", &c.http_url(2, "/v1/kv/k"), b"second", &star);
    assert_eq!(status, 412, "{body}");
    assert!(body.contains("already holds a value"), "{body}");
    let (_, body) = common::http("GET", &c.http_url(1, "/v1/kv/k"), b"", &[]);
    assert!(body.contains("\"value\":\"first\""), "{body}");
    let (status, body) =
        common::http("PUT", &c.http_url(0, "/v1/kv/k"), b"x", &[("If-None-Match", "\"abc\"")]);
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn msetnx_over_several_keys_is_refused_with_crossslot_and_writes_nothing() {
    let c = TestCluster::start(1, "periodic");
    let mut a = c.connect(0).await;
    let err = redis::cmd("MSETNX")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query_async::<i64>(&mut a)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    assert!(err.to_string().contains("consensus"), "{err}");
    let none: Vec<Option<String>> =
        redis::cmd("MGET").arg("a").arg("b").query_async(&mut a).await.unwrap();
    assert_eq!(none, [None, None]);
}

#[tokio::test]
async fn msetnx_over_one_key_is_setnx_with_the_last_value() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let set: i64 =
        redis::cmd("MSETNX").arg("k").arg("1").arg("k").arg("2").query_async(&mut a).await.unwrap();
    assert_eq!(set, 1);
    let mut b = c.connect(1).await;
    let again: i64 = redis::cmd("MSETNX").arg("k").arg("3").query_async(&mut b).await.unwrap();
    assert_eq!(again, 0);
    let held: String = redis::cmd("GET").arg("k").query_async(&mut b).await.unwrap();
    assert_eq!(held, "2");
}

/// The `ETag` of a GET, as sent back in `If-Match`.
fn etag(c: &TestCluster, node: usize, key: &str) -> String {
    let url = c.http_url(node, &format!("/v1/kv/{key}"));
    let (host, path) = url.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    use std::io::{Read, Write};
    write!(s, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|l| l.strip_prefix("etag: ").or_else(|| l.strip_prefix("ETag: ")))
        .unwrap_or_else(|| panic!("no ETag in {response}"))
        .trim()
        .to_string()
}

#[test]
fn an_http_put_with_if_match_is_a_compare_and_set() {
    let c = TestCluster::start(3, "periodic");
    common::http("PUT", &c.http_url(0, "/v1/kv/k"), b"v1", &[]);
    let tag = etag(&c, 1, "k");
    // Two writers read the same version; through different nodes, only one wins.
    let first = common::http("PUT", &c.http_url(1, "/v1/kv/k"), b"a", &[("If-Match", &tag)]);
    let second = common::http("PUT", &c.http_url(2, "/v1/kv/k"), b"b", &[("If-Match", &tag)]);
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(second.0, 412, "{}", second.1);
    assert!(second.1.contains("changed since"), "{}", second.1);
    let (_, body) = common::http("GET", &c.http_url(0, "/v1/kv/k"), b"", &[]);
    assert!(body.contains("\"value\":\"a\""), "{body}");
    assert!(body.contains("\"siblings\":[{"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["siblings"].as_array().unwrap().len(), 1, "the winner replaced what it read");
    let (status, body) =
        common::http("PUT", &c.http_url(0, "/v1/kv/k"), b"x", &[("If-Match", "\"garbage\"")]);
    assert_eq!(status, 400, "{body}");
}
