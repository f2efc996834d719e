//! Sorted sets against real server processes: members are records of their own whose
//! value is the score, so members added through different nodes all survive and
//! `ZINCRBY` counts every increment.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::TestCluster;
use redis::aio::MultiplexedConnection;
use std::collections::BTreeSet;

async fn zrange(n: &mut MultiplexedConnection, key: &str) -> Vec<(String, f64)> {
    redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES").query_async(n).await.unwrap()
}

#[tokio::test]
async fn members_added_through_every_node_at_once_all_survive_in_score_order() {
    let c = TestCluster::start(3, "periodic");
    let mut writers = Vec::new();
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        writers.push(tokio::spawn(async move {
            for m in 0..40 {
                // Scores interleave the writers: 0, 3, 6… for node 0; 1, 4, 7… for node 1.
                let score = m * 3 + i;
                let added: i64 = redis::cmd("ZADD")
                    .arg("board")
                    .arg(score)
                    .arg(format!("p{score}"))
                    .query_async(&mut n)
                    .await
                    .unwrap();
                assert_eq!(added, 1);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let expected: Vec<(String, f64)> = (0..120).map(|s| (format!("p{s}"), f64::from(s))).collect();
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        assert_eq!(zrange(&mut n, "board").await, expected, "through node {i}");
    }
}

#[tokio::test]
async fn zincrby_through_every_node_at_once_counts_every_increment() {
    let c = TestCluster::start(3, "periodic");
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        clients.push(tokio::spawn(async move {
            for _ in 0..50 {
                let _: f64 = redis::cmd("ZINCRBY")
                    .arg("z")
                    .arg(2)
                    .arg("hits")
                    .query_async(&mut n)
                    .await
                    .unwrap();
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let mut n = c.connect_with(1, 3, 1).await;
    let score: f64 = redis::cmd("ZSCORE").arg("z").arg("hits").query_async(&mut n).await.unwrap();
    assert_eq!(score, 300.0);
}

#[tokio::test]
async fn scores_acknowledged_before_a_crash_are_all_there_after_it() {
    let mut c = TestCluster::start(3, "always");
    let mut a = c.connect_with(0, 2, 2).await;
    for m in 0..100 {
        let _: i64 = redis::cmd("ZADD").arg("z").arg(m).arg(m).query_async(&mut a).await.unwrap();
    }
    let _: f64 = redis::cmd("ZINCRBY").arg("z").arg(0.5).arg(7).query_async(&mut a).await.unwrap();
    c.kill(1);
    c.launch(1);
    c.kill(2);
    let mut b = c.connect_with(1, 2, 2).await;
    let all = zrange(&mut b, "z").await;
    assert_eq!(all.len(), 100);
    let score: f64 = redis::cmd("ZSCORE").arg("z").arg(7).query_async(&mut b).await.unwrap();
    assert_eq!(score, 7.5);
}

#[tokio::test]
async fn zpopmin_through_every_node_at_once_gives_each_member_to_one_client() {
    let c = TestCluster::start_with(3, "periodic", common::FIRST_OWNER_WAITS);
    let mut n = c.connect(0).await;
    let mut zadd = redis::cmd("ZADD");
    zadd.arg("jobs");
    for i in 0..100 {
        zadd.arg(i).arg(format!("job{i}"));
    }
    let _: i64 = zadd.query_async(&mut n).await.unwrap();
    let mut poppers = Vec::new();
    for i in 0..3 {
        let mut n = c.connect(i).await;
        poppers.push(tokio::spawn(async move {
            let mut popped = Vec::new();
            loop {
                let got: Vec<(String, f64)> =
                    redis::cmd("ZPOPMIN").arg("jobs").query_async(&mut n).await.unwrap();
                let Some((job, _)) = got.into_iter().next() else { break };
                popped.push(job);
            }
            popped
        }));
    }
    let mut all = Vec::new();
    for p in poppers {
        all.extend(p.await.unwrap());
    }
    let popped: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(popped.len(), all.len(), "a job was popped twice");
    assert_eq!(popped, (0..100).map(|i| format!("job{i}")).collect::<BTreeSet<_>>());
    let left: i64 = redis::cmd("ZCARD").arg("jobs").query_async(&mut n).await.unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_http_api_shows_a_sorted_set_in_score_order() {
    let c = TestCluster::start(3, "periodic");
    let mut n = c.connect(0).await;
    let _: i64 = redis::cmd("ZADD")
        .arg("z")
        .arg(2)
        .arg("b")
        .arg("-inf")
        .arg("a")
        .arg(1.5)
        .arg("c")
        .query_async(&mut n)
        .await
        .unwrap();
    let (status, body) = common::http("GET", &c.http_url(1, "/v1/kv/z"), b"", &[]);
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["type"], "zset");
    assert_eq!(
        json["members"],
        serde_json::json!([
            {"member": "a", "score": "-inf"},
            {"member": "c", "score": 1.5},
            {"member": "b", "score": 2.0},
        ])
    );
}
