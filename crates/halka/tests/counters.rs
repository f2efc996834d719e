//! Convergent counters (`INCR` and friends) against real server processes.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::TestCluster;
use redis::aio::MultiplexedConnection;

async fn incr_many(mut conn: MultiplexedConnection, key: &str, times: usize) {
    for _ in 0..times {
        let _: i64 = redis::cmd("INCR").arg(key).query_async(&mut conn).await.unwrap();
    }
}

async fn read_at_r2(c: &TestCluster, i: usize, key: &str) -> i64 {
    let mut n = c.connect(i).await;
    let v: String = redis::cmd("HALKA.GET").arg(key).arg(2).query_async(&mut n).await.unwrap();
    v.parse().unwrap()
}

#[tokio::test]
async fn four_clients_incrementing_through_every_node_count_every_increment() {
    let c = TestCluster::start(3, "periodic");
    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(tokio::spawn(incr_many(c.connect(i % 3).await, "hits", 1000)));
    }
    for t in clients {
        t.await.unwrap();
    }
    for i in 0..3 {
        assert_eq!(read_at_r2(&c, i, "hits").await, 4000, "through node {i}");
    }
}

#[tokio::test]
async fn increments_during_an_owners_crash_and_restart_all_count() {
    let mut c = TestCluster::start(3, "periodic");
    // Two nodes take the increments; the third, an owner of every key (N = 3), crashes
    // and comes back in the middle.
    let clients: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(c.connect(i % 2).await);
        }
        v
    };
    let first: Vec<_> =
        clients.iter().cloned().map(|conn| tokio::spawn(incr_many(conn, "k", 500))).collect();
    for t in first {
        t.await.unwrap();
    }
    c.kill(2);
    let during: Vec<_> =
        clients.iter().cloned().map(|conn| tokio::spawn(incr_many(conn, "k", 250))).collect();
    for t in during {
        t.await.unwrap();
    }
    c.launch(2);
    let after: Vec<_> =
        clients.into_iter().map(|conn| tokio::spawn(incr_many(conn, "k", 250))).collect();
    for t in after {
        t.await.unwrap();
    }
    for i in 0..3 {
        assert_eq!(read_at_r2(&c, i, "k").await, 4000, "through node {i}");
    }
}

#[tokio::test]
async fn incr_starts_from_an_integer_value_and_set_restarts_the_counter() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let mut b = c.connect(1).await;
    let _: () = redis::cmd("SET").arg("n").arg("10").query_async(&mut a).await.unwrap();
    let v: i64 = redis::cmd("INCRBY").arg("n").arg(5).query_async(&mut b).await.unwrap();
    assert_eq!(v, 15);
    let v: i64 = redis::cmd("DECRBY").arg("n").arg(20).query_async(&mut a).await.unwrap();
    assert_eq!(v, -5);
    let _: () = redis::cmd("SET").arg("n").arg("100").query_async(&mut b).await.unwrap();
    let v: i64 = redis::cmd("DECR").arg("n").query_async(&mut a).await.unwrap();
    assert_eq!(v, 99, "earlier increments do not leak into the new value");
    let got: String = redis::cmd("GET").arg("n").query_async(&mut b).await.unwrap();
    assert_eq!(got, "99");
}

#[tokio::test]
async fn a_deleted_counter_starts_again_from_zero() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    for _ in 0..5 {
        let _: i64 = redis::cmd("INCR").arg("n").query_async(&mut a).await.unwrap();
    }
    let _: i64 = redis::cmd("DEL").arg("n").query_async(&mut a).await.unwrap();
    let mut b = c.connect(2).await;
    let v: i64 = redis::cmd("INCR").arg("n").query_async(&mut b).await.unwrap();
    assert_eq!(v, 1);
}

#[tokio::test]
async fn incr_on_text_or_past_the_limit_is_refused_and_changes_nothing() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let _: () = redis::cmd("SET").arg("t").arg("ten").query_async(&mut a).await.unwrap();
    let err = redis::cmd("INCR").arg("t").query_async::<i64>(&mut a).await.unwrap_err();
    assert!(err.to_string().contains("not an integer or out of range"), "{err}");
    let got: String = redis::cmd("GET").arg("t").query_async(&mut a).await.unwrap();
    assert_eq!(got, "ten");
    let max = i64::MAX.to_string();
    let _: () = redis::cmd("SET").arg("m").arg(&max).query_async(&mut a).await.unwrap();
    let err = redis::cmd("INCR").arg("m").query_async::<i64>(&mut a).await.unwrap_err();
    assert!(err.to_string().contains("would overflow"), "{err}");
    let got: String = redis::cmd("GET").arg("m").query_async(&mut a).await.unwrap();
    assert_eq!(got, max);
    let err = redis::cmd("INCRBY").arg("m").arg("x").query_async::<i64>(&mut a).await.unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
}

#[tokio::test]
async fn a_counter_keeps_its_expiry() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let _: () =
        redis::cmd("SET").arg("n").arg("1").arg("EX").arg(500).query_async(&mut a).await.unwrap();
    let _: i64 = redis::cmd("INCR").arg("n").query_async(&mut a).await.unwrap();
    let ttl: i64 = redis::cmd("TTL").arg("n").query_async(&mut a).await.unwrap();
    assert!((1..=500).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn an_incr_through_another_node_sees_the_set_acknowledged_before_it() {
    // A write waits for the key's first owner (which coordinates INCR) at most
    // `read_hedge_ms` once W is met; on a loaded machine that owner can take longer, so
    // the wait is made long enough that the SET's acknowledgement always includes it.
    let c = TestCluster::start_with(3, "periodic", common::FIRST_OWNER_WAITS);
    let mut conns = Vec::new();
    for i in 0..3 {
        conns.push(c.connect(i).await);
    }
    for i in 0..60 {
        let key = format!("n{i}");
        let (set_via, incr_via) = (i % 3, (i + 1) % 3);
        let _: () =
            redis::cmd("SET").arg(&key).arg(10).query_async(&mut conns[set_via]).await.unwrap();
        let v: i64 = redis::cmd("INCR").arg(&key).query_async(&mut conns[incr_via]).await.unwrap();
        assert_eq!(v, 11, "{key}: SET through node {set_via}, INCR through node {incr_via}");
        let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conns[set_via]).await.unwrap();
        let v: i64 = redis::cmd("INCR").arg(&key).query_async(&mut conns[incr_via]).await.unwrap();
        assert_eq!(v, 1, "{key}: DEL through node {set_via}, INCR through node {incr_via}");
    }
}

async fn incrbyfloat(
    conn: &mut MultiplexedConnection,
    key: &str,
    by: &str,
) -> redis::RedisResult<String> {
    redis::cmd("INCRBYFLOAT").arg(key).arg(by).query_async(conn).await
}

#[tokio::test]
async fn incrbyfloat_behaves_as_redis_documents() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    let _: () = redis::cmd("SET").arg("f").arg("10.50").query_async(&mut a).await.unwrap();
    assert_eq!(incrbyfloat(&mut a, "f", "0.1").await.unwrap(), "10.6");
    assert_eq!(incrbyfloat(&mut a, "f", "-5").await.unwrap(), "5.6");
    let _: () = redis::cmd("SET").arg("f").arg("5.0e3").query_async(&mut a).await.unwrap();
    assert_eq!(incrbyfloat(&mut a, "f", "2.0e2").await.unwrap(), "5200");
    let mut b = c.connect(1).await;
    let read: String = redis::cmd("GET").arg("f").query_async(&mut b).await.unwrap();
    assert_eq!(read, "5200");
    // INCR works on an integral value and is refused on a fractional one, as in Redis.
    let n: i64 = redis::cmd("INCR").arg("f").query_async(&mut b).await.unwrap();
    assert_eq!(n, 5201);
    assert_eq!(incrbyfloat(&mut b, "f", "0.5").await.unwrap(), "5201.5");
    let err = redis::cmd("INCR").arg("f").query_async::<i64>(&mut b).await.unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
}

#[tokio::test]
async fn incrbyfloat_on_text_or_toward_infinity_is_refused_and_changes_nothing() {
    let c = TestCluster::start(1, "periodic");
    let mut a = c.connect(0).await;
    let _: () = redis::cmd("SET").arg("t").arg("abc").query_async(&mut a).await.unwrap();
    let err = incrbyfloat(&mut a, "t", "1").await.unwrap_err();
    assert!(err.to_string().contains("not a valid float"), "{err}");
    let err = incrbyfloat(&mut a, "n", "nan").await.unwrap_err();
    assert!(err.to_string().contains("not a valid float"), "{err}");
    let _: () = redis::cmd("SET").arg("big").arg("1e308").query_async(&mut a).await.unwrap();
    let err = incrbyfloat(&mut a, "big", "1e308").await.unwrap_err();
    assert!(err.to_string().contains("NaN or Infinity"), "{err}");
    let kept: Vec<Option<String>> =
        redis::cmd("MGET").arg("t").arg("n").arg("big").query_async(&mut a).await.unwrap();
    assert_eq!(kept, [Some("abc".into()), None, Some("1e308".into())]);
}

#[tokio::test]
async fn float_increments_through_every_node_during_an_owners_crash_all_count() {
    let mut c = TestCluster::start(3, "periodic");
    async fn add_halves(mut conn: MultiplexedConnection, times: usize) {
        for _ in 0..times {
            incrbyfloat(&mut conn, "amount", "0.5").await.unwrap();
        }
    }
    // Halves add up exactly in binary floating point, so the total is exact.
    let before: Vec<_> = [c.connect(0).await, c.connect(1).await, c.connect(2).await]
        .into_iter()
        .map(|conn| tokio::spawn(add_halves(conn, 100)))
        .collect();
    for t in before {
        t.await.unwrap();
    }
    c.kill(2);
    let during: Vec<_> = [c.connect(0).await, c.connect(1).await]
        .into_iter()
        .map(|conn| tokio::spawn(add_halves(conn, 100)))
        .collect();
    for t in during {
        t.await.unwrap();
    }
    c.launch(2);
    let after = tokio::spawn(add_halves(c.connect(2).await, 100));
    after.await.unwrap();
    for i in 0..3 {
        let mut n = c.connect(i).await;
        let v: String =
            redis::cmd("HALKA.GET").arg("amount").arg(2).query_async(&mut n).await.unwrap();
        assert_eq!(v, "300", "through node {i}");
    }
}

async fn incrby(conn: &mut MultiplexedConnection, cmd: &str, key: &str, by: i64) -> i64 {
    redis::cmd(cmd).arg(key).arg(by).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn a_counter_back_at_zero_after_huge_increments_keeps_counting() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    assert_eq!(incrby(&mut a, "INCRBY", "d", 1 << 62).await, 1 << 62);
    assert_eq!(incrby(&mut a, "DECRBY", "d", 1 << 62).await, 0);
    assert_eq!(incrby(&mut a, "INCRBY", "d", 1).await, 1);
    // The whole range of the value, as in Redis, as often as a client likes.
    for _ in 0..3 {
        assert_eq!(incrby(&mut a, "INCRBY", "d", i64::MAX - 1).await, i64::MAX);
        assert_eq!(incrby(&mut a, "DECRBY", "d", i64::MAX - 1).await, 1);
    }
    let mut b = c.connect(1).await;
    assert_eq!(incrby(&mut b, "INCRBY", "d", 1).await, 2);
    let err = redis::cmd("INCRBY").arg("d").arg(i64::MAX).query_async::<i64>(&mut b).await;
    assert!(err.unwrap_err().to_string().contains("would overflow"));
}

#[tokio::test]
async fn a_float_counter_back_at_zero_after_huge_increments_keeps_counting() {
    let c = TestCluster::start(3, "periodic");
    let mut a = c.connect(0).await;
    incrbyfloat(&mut a, "c", "1e308").await.unwrap();
    assert_eq!(incrbyfloat(&mut a, "c", "-1e308").await.unwrap(), "0");
    assert_eq!(incrbyfloat(&mut a, "c", "1").await.unwrap(), "1");
    assert_eq!(incrbyfloat(&mut a, "c", "1").await.unwrap(), "2");
    let mut b = c.connect(2).await;
    let read: String = redis::cmd("GET").arg("c").query_async(&mut b).await.unwrap();
    assert_eq!(read, "2");
}
