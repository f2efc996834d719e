//! One suite for both hint stores: hints merge per (owner, key), are handed out in
//! bounded batches, are removed only once delivered unchanged, and stay within their
//! byte bound. The durable one keeps them across a reopen.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_store::{
    FjallEngine, FjallOptions, HintStore, MemoryHints, NodeId, Record, Stored, VersionVector, Write,
};
use std::sync::Arc;

fn record(node: &str, value: &str, base: Option<&Record>) -> Arc<Record> {
    let write = Write {
        overwrite: false,
        ..Write::value(
            Some(Bytes::copy_from_slice(value.as_bytes())),
            Some(VersionVector::new()),
            1,
        )
    };
    Arc::new(Record::apply_write(base, &NodeId::new(node), &write).unwrap().into_record())
}

fn hints_merge_and_are_removed_only_when_delivered_unchanged(store: &dyn HintStore) {
    let owner = NodeId::new("node-3");
    let first = record("node-1", "a", None);
    assert_eq!(store.put(&owner, b"k", &first).unwrap(), Stored::Kept);
    let concurrent = record("node-2", "b", None);
    store.put(&owner, b"k", &concurrent).unwrap();
    let batch = store.batch(&owner, None, 10).unwrap();
    assert_eq!(batch.len(), 1, "one hint per key");
    assert_eq!(batch[0].record.values().count(), 2, "the two writes merged");
    // A write merged in after the batch was read keeps the hint.
    store.put(&owner, b"k", &record("node-1", "c", Some(&first))).unwrap();
    store.remove_delivered(&owner, b"k", &batch[0].record).unwrap();
    let again = store.batch(&owner, None, 10).unwrap();
    assert_eq!(again.len(), 1);
    store.remove_delivered(&owner, b"k", &again[0].record).unwrap();
    assert!(store.batch(&owner, None, 10).unwrap().is_empty());
    assert!(store.stats().is_empty());
}

fn batches_walk_one_owners_hints_in_steps(store: &dyn HintStore) {
    let (owner, other) = (NodeId::new("node-3"), NodeId::new("node-2"));
    for i in 0..25 {
        store.put(&owner, format!("k{i:02}").as_bytes(), &record("node-1", "v", None)).unwrap();
    }
    store.put(&other, b"k00", &record("node-1", "v", None)).unwrap();
    let mut seen = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let batch = store.batch(&owner, after.as_deref(), 10).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 10);
        after = Some(batch.last().unwrap().key.clone());
        seen.extend(batch.into_iter().map(|h| h.key));
    }
    assert_eq!(seen.len(), 25, "every hint of node-3 and none of node-2's");
    let stats = store.stats();
    assert_eq!((stats[&owner].hints, stats[&other].hints), (25, 1));
}

fn an_owner_at_its_bound_gets_no_more_hints(store: &dyn HintStore) {
    let owner = NodeId::new("node-3");
    let big = record("node-1", &"x".repeat(600), None);
    assert_eq!(store.put(&owner, b"a", &big).unwrap(), Stored::Kept);
    assert_eq!(store.put(&owner, b"b", &big).unwrap(), Stored::Dropped);
    // Another owner has its own bound.
    assert_eq!(store.put(&NodeId::new("node-2"), b"b", &big).unwrap(), Stored::Kept);
}

const BOUND: u64 = 1000;

macro_rules! suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn hints_merge_and_are_removed_only_when_delivered_unchanged() {
                let (_keep, store) = $make(1 << 20);
                super::hints_merge_and_are_removed_only_when_delivered_unchanged(store.as_ref());
            }

            #[test]
            fn batches_walk_one_owners_hints_in_steps() {
                let (_keep, store) = $make(1 << 20);
                super::batches_walk_one_owners_hints_in_steps(store.as_ref());
            }

            #[test]
            fn an_owner_at_its_bound_gets_no_more_hints() {
                let (_keep, store) = $make(BOUND);
                super::an_owner_at_its_bound_gets_no_more_hints(store.as_ref());
            }
        }
    };
}

fn memory(bound: u64) -> ((), Arc<dyn HintStore>) {
    ((), Arc::new(MemoryHints::new(bound)))
}

fn fjall(bound: u64) -> ((tempfile::TempDir, FjallEngine), Arc<dyn HintStore>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    let hints = engine.hints(bound).unwrap();
    ((dir, engine), hints)
}

suite!(memory_hints, memory);
suite!(fjall_hints, fjall);

#[test]
fn fjall_hints_survive_a_reopen_with_their_counts() {
    let dir = tempfile::tempdir().unwrap();
    let owner = NodeId::new("node-3");
    {
        let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
        let hints = engine.hints(BOUND).unwrap();
        hints.put(&owner, b"k1", &record("node-1", "v", None)).unwrap();
        hints.put(&owner, b"k2", &record("node-1", "w", None)).unwrap();
    }
    let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    let hints = engine.hints(BOUND).unwrap();
    assert_eq!(hints.stats()[&owner].hints, 2);
    let batch = hints.batch(&owner, None, 10).unwrap();
    assert_eq!(batch.iter().map(|h| &h.key[..]).collect::<Vec<_>>(), [b"k1", b"k2"]);
    // Hints are kept apart from records.
    use halka_store::Engine as _;
    assert_eq!(engine.get(b"k1").unwrap(), None);
}
