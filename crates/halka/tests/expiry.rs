//! Expiry through the Redis protocol and HTTP, against real server processes.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{TestCluster, http};
use redis::aio::MultiplexedConnection;

async fn run<T: redis::FromRedisValue>(conn: &mut MultiplexedConnection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(conn).await.unwrap()
}

fn unix_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    u64::try_from(now.as_millis()).unwrap()
}

#[tokio::test]
async fn a_key_with_a_past_expiry_reads_as_missing_on_every_node_and_every_path() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let past = (unix_ms() - 1).to_string();
    let _: () = run(&mut a, &["SET", "gone", "v", "PXAT", &past]).await;
    for i in 0..3 {
        let mut n = c.connect(i).await;
        let got: Option<String> = run(&mut n, &["GET", "gone"]).await;
        assert_eq!(got, None, "node {i}");
        let one: Option<String> = run(&mut n, &["HALKA.GET", "gone", "1"]).await;
        assert_eq!(one, None, "node {i} at R=1");
        let exists: i64 = run(&mut n, &["EXISTS", "gone"]).await;
        assert_eq!(exists, 0);
        let ttl: i64 = run(&mut n, &["TTL", "gone"]).await;
        assert_eq!(ttl, -2);
        let all: redis::Value = run(&mut n, &["HALKA.GETALL", "gone", "3"]).await;
        assert!(!format!("{all:?}").contains("bulk-string('\"v\"')"), "{all:?}");
        let (status, _) = http("GET", &c.http_url(i, "/v1/kv/gone"), b"", &[]);
        assert_eq!(status, 404, "HTTP on node {i}");
    }
}

#[tokio::test]
async fn ttl_and_pttl_count_down_from_the_expiry_set() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let _: () = run(&mut a, &["SET", "k", "v", "EX", "1000"]).await;
    let mut b = c.connect(1).await;
    let ttl: i64 = run(&mut b, &["TTL", "k"]).await;
    assert!((1..=1000).contains(&ttl), "{ttl}");
    let pttl: i64 = run(&mut b, &["PTTL", "k"]).await;
    assert!((1..=1_000_000).contains(&pttl), "{pttl}");
    let at: i64 = run(&mut b, &["PEXPIRETIME", "k"]).await;
    let at = u64::try_from(at).unwrap();
    assert!(at > unix_ms(), "the expiry lies ahead: {at}");
    let _: () = run(&mut a, &["SET", "plain", "v"]).await;
    let none: i64 = run(&mut b, &["TTL", "plain"]).await;
    assert_eq!(none, -1);
    let missing: i64 = run(&mut b, &["EXPIRETIME", "nope"]).await;
    assert_eq!(missing, -2);
}

#[tokio::test]
async fn expire_persist_and_getex_change_the_expiry_and_keep_the_value() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let _: () = run(&mut a, &["SET", "k", "v"]).await;
    let set: i64 = run(&mut a, &["EXPIRE", "k", "500"]).await;
    assert_eq!(set, 1);
    let nx: i64 = run(&mut a, &["EXPIRE", "k", "100", "NX"]).await;
    assert_eq!(nx, 0, "NX: it already has an expiry");
    let gt: i64 = run(&mut a, &["EXPIRE", "k", "100", "GT"]).await;
    assert_eq!(gt, 0, "GT: 100 s is sooner");
    let lt: i64 = run(&mut a, &["EXPIRE", "k", "100", "LT"]).await;
    assert_eq!(lt, 1);
    let mut b = c.connect(2).await;
    let ttl: i64 = run(&mut b, &["TTL", "k"]).await;
    assert!((1..=100).contains(&ttl), "{ttl}");
    let persisted: i64 = run(&mut b, &["PERSIST", "k"]).await;
    assert_eq!(persisted, 1);
    let ttl: i64 = run(&mut a, &["TTL", "k"]).await;
    assert_eq!(ttl, -1);
    let got: String = run(&mut a, &["GETEX", "k", "EX", "50"]).await;
    assert_eq!(got, "v");
    let ttl: i64 = run(&mut b, &["TTL", "k"]).await;
    assert!((1..=50).contains(&ttl), "{ttl}");
    let missing: i64 = run(&mut a, &["EXPIRE", "nope", "10"]).await;
    assert_eq!(missing, 0);
    let deleted: i64 = run(&mut a, &["EXPIRE", "k", "-1"]).await;
    assert_eq!(deleted, 1, "a time in the past deletes the key, as in Redis");
    let got: Option<String> = run(&mut b, &["GET", "k"]).await;
    assert_eq!(got, None);
}

#[tokio::test]
async fn keepttl_keeps_the_expiry_and_a_plain_set_clears_it() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let _: () = run(&mut a, &["SETEX", "k", "300", "v1"]).await;
    let _: () = run(&mut a, &["SET", "k", "v2", "KEEPTTL"]).await;
    let ttl: i64 = run(&mut a, &["TTL", "k"]).await;
    assert!((1..=300).contains(&ttl), "{ttl}");
    let _: () = run(&mut a, &["SET", "k", "v3"]).await;
    let ttl: i64 = run(&mut a, &["TTL", "k"]).await;
    assert_eq!(ttl, -1);
}

#[tokio::test]
async fn bad_expiry_arguments_get_redis_errors() {
    let c = TestCluster::start(1, "periodic");
    let mut a = c.connect(0).await;
    let err = |args: &'static [&'static str]| {
        let mut a = a.clone();
        async move {
            let mut cmd = redis::cmd(args[0]);
            for x in &args[1..] {
                cmd.arg(*x);
            }
            cmd.query_async::<redis::Value>(&mut a).await.unwrap_err().to_string()
        }
    };
    assert!(err(&["SET", "k", "v", "EX", "0"]).await.contains("invalid expire time in 'set'"));
    assert!(err(&["SET", "k", "v", "EX", "x"]).await.contains("not an integer"));
    assert!(err(&["SET", "k", "v", "EX", "1", "PX", "1"]).await.contains("syntax error"));
    assert!(err(&["SETEX", "k", "-5", "v"]).await.contains("invalid expire time in 'setex'"));
    assert!(err(&["EXPIRE", "k", "10", "NX", "XX"]).await.contains("not compatible"));
    assert!(
        err(&["EXPIRE", "k", "9223372036854775807"]).await.contains("invalid expire time"),
        "overflowing times are refused"
    );
    let _: () = run(&mut a, &["SET", "k", "v"]).await;
}

#[tokio::test]
async fn an_expiry_survives_a_crash_of_the_node_that_holds_it() {
    let mut c = TestCluster::start(3, "always");
    let mut a = c.connect(0).await;
    let _: () = run(&mut a, &["SET", "k", "v", "EX", "1000"]).await;
    let _: () = run(&mut a, &["SET", "short", "v", "PX", "1"]).await;
    c.kill(0);
    c.launch(0);
    let mut a = c.connect(0).await;
    // R=1 through node 1 reads its own replica first.
    let ttl: i64 = run(&mut a, &["TTL", "k"]).await;
    assert!((1..=1000).contains(&ttl), "{ttl}");
    let own = common::own_values(&c, 0, "k").unwrap();
    assert_eq!(own, ["v"]);
    let gone: Option<String> = run(&mut a, &["HALKA.GET", "short", "1"]).await;
    assert_eq!(gone, None, "expired before the crash, still expired after it");
}

#[tokio::test]
async fn an_http_put_with_ttl_ms_expires_like_set_px() {
    let c = TestCluster::start(3, "periodic");
    let (status, body) = http("PUT", &c.http_url(0, "/v1/kv/k?ttl_ms=600000"), b"v", &[]);
    assert_eq!(status, 200, "{body}");
    let (_, body) = http("GET", &c.http_url(1, "/v1/kv/k"), b"", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let at = v["siblings"][0]["expires_at_us"].as_u64().unwrap();
    assert!(at > unix_ms() * 1000, "{body}");
    let mut b = c.connect(2).await;
    let ttl: i64 = run(&mut b, &["TTL", "k"]).await;
    assert!((1..=600).contains(&ttl), "{ttl}");
    let (status, body) = http("PUT", &c.http_url(0, "/v1/kv/k?ttl_ms=0"), b"v", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ttl_ms must be at least 1"), "{body}");
}
