//! Streaming a hash range from one replica to another, page by page, resuming past the
//! last page checkpointed.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::catch_up::catch_up;
use halka_cluster::stream::{
    Checkpoints, FileCheckpoints, MemoryCheckpoints, Streamed, stream_range,
};
use halka_cluster::{LocalReplica, Replica};
use halka_store::{HashRange, MemoryEngine, NodeId, VersionVector, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn replica(node: &str) -> LocalReplica {
    LocalReplica::new(NodeId::new(node), Arc::new(MemoryEngine::default()))
}

/// A source of 3,000 keys with 1 KiB values (about three pages), a deleted key and a key
/// with two siblings.
async fn source() -> LocalReplica {
    let source = replica("src");
    let value = Bytes::from(vec![b'v'; 1024]);
    for i in 0..3000 {
        let write = Write::value(Some(value.clone()), None, 1);
        source.coordinate_write(&Bytes::from(format!("key-{i}")), &write).await.unwrap();
    }
    source.coordinate_write(&Bytes::from("key-7"), &Write::value(None, None, 2)).await.unwrap();
    let sibling = Write::value(Some(Bytes::from("other")), Some(VersionVector::new()), 3);
    source.coordinate_write(&Bytes::from("key-8"), &sibling).await.unwrap();
    source
}

async fn assert_same(source: &LocalReplica, target: &LocalReplica) {
    for i in 0..3000 {
        let key = Bytes::from(format!("key-{i}"));
        let (want, got) = (source.get(&key).await.unwrap(), target.get(&key).await.unwrap());
        assert_eq!(got, want, "{key:?}");
    }
}

#[tokio::test]
async fn a_range_streams_page_by_page_and_the_target_holds_every_record() {
    let (source, target) = (source().await, replica("dst"));
    let checkpoints = MemoryCheckpoints::default();
    let streamed =
        stream_range(&source, &target, HashRange::ALL, &checkpoints, DEADLINE).await.unwrap();
    assert!(streamed.pages >= 3, "{streamed:?}");
    assert_eq!(streamed.records, 3000);
    assert_same(&source, &target).await;
    assert_eq!(checkpoints.stored_through(HashRange::ALL), Some(u64::MAX), "kept as done");
    let again =
        stream_range(&source, &target, HashRange::ALL, &checkpoints, DEADLINE).await.unwrap();
    assert_eq!(again.pages, 0, "a finished range is not streamed again");
    let deleted = target.get(&Bytes::from("key-7")).await.unwrap().unwrap();
    assert_eq!(deleted.lww_value(), None, "the tombstone came along");
    assert_eq!(target.get(&Bytes::from("key-8")).await.unwrap().unwrap().values().count(), 2);
}

/// Checkpoints that refuse to keep more than `allowed` pages.
struct Refusing {
    inner: MemoryCheckpoints,
    allowed: AtomicUsize,
}

impl Checkpoints for Refusing {
    fn stored_through(&self, range: HashRange) -> Option<u64> {
        self.inner.stored_through(range)
    }

    fn record(&self, range: HashRange, through: u64) -> std::io::Result<()> {
        if self.allowed.fetch_sub(1, Ordering::SeqCst) == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        self.inner.record(range, through)
    }

    fn finish(&self, range: HashRange) -> std::io::Result<()> {
        self.inner.finish(range)
    }

    fn clear(&self) -> std::io::Result<()> {
        self.inner.clear()
    }
}

#[tokio::test]
async fn a_stream_stopped_midway_resumes_past_its_last_checkpoint() {
    let source = source().await;
    let whole = stream_range(
        &source,
        &replica("x"),
        HashRange::ALL,
        &MemoryCheckpoints::default(),
        DEADLINE,
    )
    .await
    .unwrap();
    let target = replica("dst");
    let stopping = Refusing { inner: MemoryCheckpoints::default(), allowed: AtomicUsize::new(2) };
    assert!(stream_range(&source, &target, HashRange::ALL, &stopping, DEADLINE).await.is_err());
    let resumed =
        stream_range(&source, &target, HashRange::ALL, &stopping.inner, DEADLINE).await.unwrap();
    // Two pages were checkpointed; the third was stored but not checkpointed, so it is
    // read again (harmless: records merge).
    assert_eq!(resumed.pages, whole.pages - 2);
    assert_same(&source, &target).await;
}

#[test]
fn file_checkpoints_are_found_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let range = HashRange { first: 1 << 60, last: (2 << 60) - 1 };
    FileCheckpoints::open(dir.path()).unwrap().record(range, (1 << 60) + 5).unwrap();
    let reopened = FileCheckpoints::open(dir.path()).unwrap();
    assert_eq!(reopened.stored_through(range), Some((1 << 60) + 5));
    assert_eq!(reopened.stored_through(HashRange::ALL), None);
    reopened.finish(range).unwrap();
    assert_eq!(FileCheckpoints::open(dir.path()).unwrap().stored_through(range), Some(range.last));
    reopened.scoped("node-2").unwrap().record(range, range.first).unwrap();
    reopened.clear().unwrap();
    let cleared = FileCheckpoints::open(dir.path()).unwrap();
    assert_eq!(cleared.stored_through(range), None);
    assert_eq!(cleared.scoped("node-2").unwrap().stored_through(range), None);
}

#[tokio::test(start_paused = true)]
async fn a_silent_source_fails_the_stream_at_its_deadline() {
    use halka_cluster::{FaultPlan, FaultyReplica};
    let silent = FaultyReplica::new(Arc::new(source().await), FaultPlan::silent(), 1);
    let checkpoints = MemoryCheckpoints::default();
    let stopped = stream_range(&silent, &replica("dst"), HashRange::ALL, &checkpoints, DEADLINE)
        .await
        .unwrap_err();
    assert!(stopped.to_string().contains("timed out after 60000 ms"), "{stopped}");
}

fn tracked(node: &str) -> LocalReplica {
    let engine = halka_store::TrackedEngine::build(
        Arc::new(MemoryEngine::default()),
        halka_store::Tracking::ALL,
    )
    .unwrap();
    LocalReplica::new(NodeId::new(node), Arc::new(engine))
}

/// Two sources holding the same 500 keys, but for a write only the second got
/// (acknowledged at W < N) and a key only it holds; and a target streamed from the first.
async fn streamed_from_the_first() -> (LocalReplica, LocalReplica) {
    let (first, second, target) = (tracked("a"), tracked("b"), tracked("new"));
    for i in 0..500 {
        let key = Bytes::from(format!("key-{i}"));
        let write = Write::value(Some(Bytes::from(format!("v{i}"))), None, 1);
        let record = first.coordinate_write(&key, &write).await.unwrap().record;
        second.merge(&key, &record).await.unwrap();
    }
    let only = Write::value(Some(Bytes::from("late")), None, 2);
    second.coordinate_write(&Bytes::from("key-3"), &only).await.unwrap();
    second.coordinate_write(&Bytes::from("new-key"), &only).await.unwrap();
    let checkpoints = MemoryCheckpoints::default();
    stream_range(&first, &target, HashRange::ALL, &checkpoints, DEADLINE).await.unwrap();
    (second, target)
}

/// The partitions of a 64-partition layout: each spans 64 digest blocks.
fn partitions() -> Vec<HashRange> {
    (0..64).map(|p| HashRange::partition(p, 6)).collect()
}

#[tokio::test]
async fn a_catch_up_copies_only_what_the_second_source_holds_differently() {
    let (second, target) = streamed_from_the_first().await;
    let copied = catch_up(&second, &target, &partitions(), DEADLINE).await.unwrap();
    assert_eq!(copied.records, 2, "{copied:?}");
    let got = target.get(&Bytes::from("key-3")).await.unwrap().unwrap();
    assert!(got.values().any(|v| v.as_ref() == b"late"), "{got:?}");
    assert!(target.get(&Bytes::from("new-key")).await.unwrap().is_some());
    let again = catch_up(&second, &target, &partitions(), DEADLINE).await.unwrap();
    assert_eq!(again, Streamed::default(), "replicas that agree copy nothing");
}

#[tokio::test]
async fn a_catch_up_leaves_alone_the_partitions_it_was_not_asked_for() {
    let (second, target) = streamed_from_the_first().await;
    let elsewhere: Vec<HashRange> = partitions()
        .into_iter()
        .filter(|p| {
            let hashes = [b"key-3".as_slice(), b"new-key"].map(halka_store::layout::key_hash);
            !hashes.iter().any(|h| (p.first..=p.last).contains(h))
        })
        .collect();
    let copied = catch_up(&second, &target, &elsewhere, DEADLINE).await.unwrap();
    assert_eq!(copied.records, 0, "{copied:?}");
    assert!(target.get(&Bytes::from("new-key")).await.unwrap().is_none());
}

#[tokio::test]
async fn a_catch_up_without_digest_trees_streams_the_ranges_again() {
    let (source, target) = (source().await, replica("dst"));
    let copied = catch_up(&source, &target, &partitions(), DEADLINE).await.unwrap();
    assert_eq!(copied.records, 3000);
    assert_same(&source, &target).await;
}
