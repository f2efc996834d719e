//! HyperLogLogs against real server processes: registers merged by maximum, so adds
//! through every node at once all count, and a count is the count of every element added.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::TestCluster;
use halka_store::hll::{Registers, observe};

/// What one HyperLogLog holding all of `elements` counts.
fn count_of(elements: impl IntoIterator<Item = String>) -> i64 {
    let mut registers = Registers::default();
    for e in elements {
        let (index, value) = observe(e.as_bytes());
        registers.raise(index, value);
    }
    i64::try_from(registers.count()).unwrap()
}

#[tokio::test]
async fn adds_through_every_node_at_once_all_count() {
    let c = TestCluster::start(3, "periodic");
    let mut writers = Vec::new();
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        writers.push(tokio::spawn(async move {
            for batch in 0..20 {
                let elements: Vec<String> =
                    (0..50).map(|e| format!("n{i}-b{batch}-e{e}")).collect();
                let _: i64 = redis::cmd("PFADD")
                    .arg("visitors")
                    .arg(&elements)
                    .query_async(&mut n)
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let all = (0..3)
        .flat_map(|i| (0..20).flat_map(move |b| (0..50).map(move |e| format!("n{i}-b{b}-e{e}"))));
    let expected = count_of(all);
    for i in 0..3 {
        let mut n = c.connect_with(i, 3, 1).await;
        let counted: i64 = redis::cmd("PFCOUNT").arg("visitors").query_async(&mut n).await.unwrap();
        assert_eq!(counted, expected, "through node {i}");
    }
    assert!((expected - 3000).abs() < 3000 / 20, "{expected} is an estimate of 3000");
}

#[tokio::test]
async fn adds_acknowledged_before_a_crash_are_counted_after_it() {
    let mut c = TestCluster::start(3, "always");
    let mut a = c.connect_with(0, 2, 2).await;
    let elements: Vec<String> = (0..500).map(|e| format!("e{e}")).collect();
    for chunk in elements.chunks(50) {
        let _: i64 = redis::cmd("PFADD").arg("h").arg(chunk).query_async(&mut a).await.unwrap();
    }
    c.kill(1);
    c.launch(1);
    c.kill(2);
    let mut b = c.connect_with(1, 2, 2).await;
    let counted: i64 = redis::cmd("PFCOUNT").arg("h").query_async(&mut b).await.unwrap();
    assert_eq!(counted, count_of(elements));
}
