//! Races and deadlocks: many tasks put, get and delete while others add and remove nodes.
//! The run must finish (a deadlock would hit the timeout), and afterwards every
//! acknowledged write must be readable with r + w > N.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::Cluster;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const WRITERS: u64 = 8;
const KEYS_PER_WRITER: u64 = 40;
const OPS_PER_WRITER: u64 = 1500;

/// What the last acknowledged operation on a key was.
#[derive(Debug, Clone, PartialEq)]
enum Last {
    Put(Bytes),
    Deleted,
}

async fn writer(cluster: Arc<Cluster>, id: u64) -> BTreeMap<String, Last> {
    let mut rng = SmallRng::seed_from_u64(id);
    let mut last = BTreeMap::new();
    for op in 0..OPS_PER_WRITER {
        // Each writer owns its keys, so "the last acknowledged write" is well defined.
        let key = format!("w{id}-k{}", rng.random_range(0..KEYS_PER_WRITER));
        match rng.random_range(0..10) {
            0..=5 => {
                let value = Bytes::from(format!("{key}-op{op}"));
                if cluster.put(key.clone(), value.clone(), 2).await.is_ok() {
                    last.insert(key, Last::Put(value));
                }
            }
            6 => {
                if cluster.delete(key.clone(), 2).await.is_ok() {
                    last.insert(key, Last::Deleted);
                }
            }
            _ => {
                let _ = cluster.get(key, 2).await;
            }
        }
    }
    last
}

async fn churn(cluster: Arc<Cluster>) {
    for round in 0..12 {
        cluster.add_node(&format!("extra-{round}")).await.unwrap();
        tokio::task::yield_now().await;
        if round > 0 {
            cluster.remove_node(&format!("extra-{}", round - 1)).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_operations_and_membership_changes_lose_no_acknowledged_write() {
    let cluster = Arc::new(Cluster::builder().replication(3).partitions(256).build().unwrap());
    for n in ["a", "b", "c", "d"] {
        cluster.add_node(n).await.unwrap();
    }
    let run = async {
        let writers: Vec<_> =
            (0..WRITERS).map(|id| tokio::spawn(writer(cluster.clone(), id))).collect();
        let membership = tokio::spawn(churn(cluster.clone()));
        let mut expected = BTreeMap::new();
        for w in writers {
            expected.extend(w.await.unwrap());
        }
        membership.await.unwrap();
        expected
    };
    let expected = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("deadlock: the stress run did not finish");
    assert!(expected.len() > 200, "enough keys were written: {}", expected.len());

    for (key, last) in &expected {
        let got = cluster.get(key.clone(), 2).await.unwrap();
        match last {
            Last::Put(v) => {
                assert_eq!(got.value(), Some(v.clone()), "{key}: lost acknowledged write");
            }
            Last::Deleted => assert_eq!(got.value(), None, "{key}: deleted value came back"),
        }
    }
}
