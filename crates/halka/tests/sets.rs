//! Sets against real server processes: an add-wins set whose members are records of
//! their own, so members added through different nodes all survive.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::TestCluster;
use redis::aio::MultiplexedConnection;
use std::collections::BTreeSet;

async fn smembers(n: &mut MultiplexedConnection, key: &str) -> BTreeSet<String> {
    redis::cmd("SMEMBERS").arg(key).query_async(n).await.unwrap()
}

#[tokio::test]
async fn members_added_through_every_node_at_once_all_survive() {
    let c = TestCluster::start(3, "periodic");
    let mut writers = Vec::new();
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        writers.push(tokio::spawn(async move {
            for m in 0..50 {
                let member = format!("n{i}-m{m}");
                let added: i64 =
                    redis::cmd("SADD").arg("tags").arg(&member).query_async(&mut n).await.unwrap();
                assert_eq!(added, 1, "{member} is new");
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let expected: BTreeSet<String> =
        (0..3).flat_map(|i| (0..50).map(move |m| format!("n{i}-m{m}"))).collect();
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        assert_eq!(smembers(&mut n, "tags").await, expected, "through node {i}");
        let card: i64 = redis::cmd("SCARD").arg("tags").query_async(&mut n).await.unwrap();
        assert_eq!(card, 150);
    }
}

#[tokio::test]
async fn a_removed_member_is_gone_everywhere_and_can_be_added_again() {
    let c = TestCluster::start_with(3, "periodic", common::FIRST_OWNER_WAITS);
    let mut a = c.connect(0).await;
    let mut b = c.connect(1).await;
    let _: i64 = redis::cmd("SADD").arg("s").arg("x").arg("y").query_async(&mut a).await.unwrap();
    let removed: i64 =
        redis::cmd("SREM").arg("s").arg("x").arg("z").query_async(&mut b).await.unwrap();
    assert_eq!(removed, 1);
    for n in [&mut a, &mut b] {
        let is: i64 = redis::cmd("SISMEMBER").arg("s").arg("x").query_async(n).await.unwrap();
        assert_eq!(is, 0);
    }
    let added: i64 = redis::cmd("SADD").arg("s").arg("x").query_async(&mut b).await.unwrap();
    assert_eq!(added, 1);
    let all = smembers(&mut a, "s").await;
    assert_eq!(all, BTreeSet::from(["x".to_string(), "y".to_string()]));
}

#[tokio::test]
async fn set_algebra_stores_a_new_set_over_whatever_the_destination_held() {
    let c = TestCluster::start_with(3, "periodic", common::FIRST_OWNER_WAITS);
    let mut a = c.connect(0).await;
    let _: i64 =
        redis::cmd("SADD").arg("a").arg(1).arg(2).arg(3).query_async(&mut a).await.unwrap();
    let _: i64 =
        redis::cmd("SADD").arg("b").arg(2).arg(3).arg(4).query_async(&mut a).await.unwrap();
    let _: i64 = redis::cmd("SADD").arg("dest").arg("old").query_async(&mut a).await.unwrap();
    let n: i64 =
        redis::cmd("SINTERSTORE").arg("dest").arg("a").arg("b").query_async(&mut a).await.unwrap();
    assert_eq!(n, 2);
    let mut b = c.connect(2).await;
    let dest = smembers(&mut b, "dest").await;
    assert_eq!(dest, BTreeSet::from(["2".to_string(), "3".to_string()]), "old is gone");
    let moved: i64 =
        redis::cmd("SMOVE").arg("a").arg("dest").arg("1").query_async(&mut b).await.unwrap();
    assert_eq!(moved, 1);
    assert_eq!(smembers(&mut a, "a").await, BTreeSet::from(["2".into(), "3".into()]));
    assert_eq!(smembers(&mut a, "dest").await.len(), 3);
}

#[tokio::test]
async fn members_acknowledged_before_a_crash_are_all_there_after_it() {
    let mut c = TestCluster::start(3, "always");
    let mut a = c.connect(0).await;
    let _: () = redis::cmd("HALKA.CONSISTENCY").arg(2).arg(2).query_async(&mut a).await.unwrap();
    for m in 0..100 {
        let _: i64 = redis::cmd("SADD").arg("s").arg(m).query_async(&mut a).await.unwrap();
    }
    c.kill(1);
    c.launch(1);
    c.kill(2);
    let mut b = c.connect(1).await;
    let _: () = redis::cmd("HALKA.CONSISTENCY").arg(2).arg(2).query_async(&mut b).await.unwrap();
    assert_eq!(smembers(&mut b, "s").await.len(), 100);
}

#[tokio::test]
async fn sscan_with_match_gives_the_matching_members_and_only_those() {
    let c = TestCluster::start(3, "periodic");
    let mut n = c.connect(0).await;
    let members: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    let _: i64 = redis::cmd("SADD").arg("s").arg(&members).query_async(&mut n).await.unwrap();
    let (mut cursor, mut seen) = ("0".to_string(), std::collections::BTreeSet::new());
    loop {
        let (next, items): (String, Vec<String>) = redis::cmd("SSCAN")
            .arg("s")
            .arg(&cursor)
            .arg("MATCH")
            .arg("m1*")
            .query_async(&mut n)
            .await
            .unwrap();
        seen.extend(items);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let expected: std::collections::BTreeSet<String> =
        members.into_iter().filter(|m| m.starts_with("m1")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn spop_through_every_node_at_once_gives_each_member_to_one_client() {
    let c = TestCluster::start_with(3, "periodic", common::FIRST_OWNER_WAITS);
    let members: BTreeSet<String> = (0..200).map(|i| format!("m{i}")).collect();
    let mut n = c.connect(0).await;
    let _: i64 = redis::cmd("SADD")
        .arg("s")
        .arg(Vec::from_iter(&members))
        .query_async(&mut n)
        .await
        .unwrap();
    let mut poppers = Vec::new();
    for i in 0..3 {
        let mut n = c.connect(i).await;
        poppers.push(tokio::spawn(async move {
            let mut popped = Vec::new();
            while let Some(m) =
                redis::cmd("SPOP").arg("s").query_async::<Option<String>>(&mut n).await.unwrap()
            {
                popped.push(m);
            }
            popped
        }));
    }
    let mut all = Vec::new();
    for p in poppers {
        all.extend(p.await.unwrap());
    }
    let left: BTreeSet<String> = redis::cmd("SMEMBERS").arg("s").query_async(&mut n).await.unwrap();
    let popped: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(popped.len(), all.len(), "a member was popped twice");
    assert!(popped.is_disjoint(&left), "a popped member is still in the set");
    assert_eq!(popped.union(&left).cloned().collect::<BTreeSet<_>>(), members);
}

#[tokio::test]
async fn srandmember_draws_distinct_members_and_negative_counts_repeat() {
    let c = TestCluster::start(3, "periodic");
    let mut n = c.connect(0).await;
    let members: BTreeSet<String> = (0..50).map(|i| format!("m{i}")).collect();
    let _: i64 = redis::cmd("SADD")
        .arg("s")
        .arg(Vec::from_iter(&members))
        .query_async(&mut n)
        .await
        .unwrap();
    let ten: Vec<String> =
        redis::cmd("SRANDMEMBER").arg("s").arg(10).query_async(&mut n).await.unwrap();
    let distinct: BTreeSet<String> = ten.iter().cloned().collect();
    assert_eq!(distinct.len(), 10, "{ten:?}");
    assert!(distinct.is_subset(&members));
    let many: Vec<String> =
        redis::cmd("SRANDMEMBER").arg("s").arg(-200).query_async(&mut n).await.unwrap();
    assert_eq!(many.len(), 200);
    assert!(many.iter().all(|m| members.contains(m)));
    let card: i64 = redis::cmd("SCARD").arg("s").query_async(&mut n).await.unwrap();
    assert_eq!(card, 50, "drawing removes nothing");
}
