//! One suite for both hint stores: hints merge per (owner, key), are handed out in
//! bounded batches, are removed only once delivered unchanged, and stay within their
//! byte bound. The durable one keeps them across a reopen.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use bytes::Bytes;
use halka_store::{
    FjallEngine, FjallOptions, HintKind, HintStore, MemoryHints, NodeId, Record, Stored,
    VersionVector, Write,
};
use std::sync::Arc;

fn record(node: &str, value: &str, base: Option<&Record>) -> Arc<Record> {
    record_at(node, value, base, 1)
}

/// A record written at `timestamp_us`.
fn record_at(node: &str, value: &str, base: Option<&Record>, timestamp_us: u64) -> Arc<Record> {
    let write = Write {
        overwrite: false,
        ..Write::value(
            Some(Bytes::copy_from_slice(value.as_bytes())),
            Some(VersionVector::new()),
            timestamp_us,
        )
    };
    Arc::new(Record::apply_write(base, &NodeId::new(node), &write).unwrap().into_record())
}

const KEPT: Stored = Stored::Kept { evicted: 0 };
use HintKind::{Counted, Extra};

/// The keys of `owner`'s hints, in key order.
/// The keys `owner` has hints for, sorted (each store walks them in its own order).
fn keys(store: &dyn HintStore, owner: &NodeId) -> Vec<String> {
    let batch = store.batch(owner, None, 100).unwrap();
    let mut keys: Vec<String> =
        batch.iter().map(|h| String::from_utf8(h.key.to_vec()).unwrap()).collect();
    keys.sort_unstable();
    keys
}

fn hints_merge_and_are_removed_only_when_delivered_unchanged(store: &dyn HintStore) {
    let owner = NodeId::new("node-3");
    let first = record("node-1", "a", None);
    assert_eq!(store.put(&owner, b"k", &first, Counted).unwrap(), KEPT);
    let concurrent = record("node-2", "b", None);
    store.put(&owner, b"k", &concurrent, Counted).unwrap();
    let batch = store.batch(&owner, None, 10).unwrap();
    assert_eq!(batch.len(), 1, "one hint per key");
    assert_eq!(batch[0].record.values().count(), 2, "the two writes merged");
    // A write merged in after the batch was read keeps the hint.
    store.put(&owner, b"k", &record("node-1", "c", Some(&first)), Counted).unwrap();
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
        store
            .put(&owner, format!("k{i:02}").as_bytes(), &record("node-1", "v", None), Counted)
            .unwrap();
    }
    store.put(&other, b"k00", &record("node-1", "v", None), Counted).unwrap();
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
    assert_eq!(store.put(&owner, b"a", &big, Counted).unwrap(), KEPT);
    assert_eq!(store.put(&owner, b"b", &big, Counted).unwrap(), Stored::Dropped);
    // Another owner has its own bound.
    assert_eq!(store.put(&NodeId::new("node-2"), b"b", &big, Counted).unwrap(), KEPT);
}

/// Bound 1000: each of these hints weighs 265 bytes, so three fit.
fn the_oldest_extra_hints_make_room_for_a_new_one(store: &dyn HintStore) {
    let owner = NodeId::new("node-3");
    let value = "x".repeat(200);
    for (key, at) in [("b", 20), ("a", 30), ("c", 10)] {
        assert_eq!(
            store.put(&owner, key.as_bytes(), &record_at("n", &value, None, at), Extra).unwrap(),
            KEPT
        );
    }
    let fourth = record_at("n", &value, None, 40);
    assert_eq!(store.put(&owner, b"d", &fourth, Extra).unwrap(), Stored::Kept { evicted: 1 });
    assert_eq!(keys(store, &owner), ["a", "b", "d"], "c, written first, made room");
    assert_eq!(store.stats()[&owner].hints, 3);
}

fn a_counted_hint_is_never_evicted(store: &dyn HintStore) {
    let owner = NodeId::new("node-3");
    let value = "x".repeat(200);
    let old = record_at("n", &value, None, 10);
    assert_eq!(store.put(&owner, b"counted", &old, Counted).unwrap(), KEPT);
    assert_eq!(store.put(&owner, b"e1", &record_at("n", &value, None, 20), Extra).unwrap(), KEPT);
    assert_eq!(store.put(&owner, b"e2", &record_at("n", &value, None, 30), Extra).unwrap(), KEPT);
    // A counted hint evicts extra ones too: it is one of a write's W copies.
    let newer = record_at("n", &value, None, 40);
    assert_eq!(store.put(&owner, b"c2", &newer, Counted).unwrap(), Stored::Kept { evicted: 1 });
    let newest = record_at("n", &value, None, 50);
    assert_eq!(store.put(&owner, b"e3", &newest, Extra).unwrap(), Stored::Kept { evicted: 1 });
    assert_eq!(keys(store, &owner), ["c2", "counted", "e3"]);
    // Only counted hints left to evict: no room.
    let big = record_at("n", &"x".repeat(500), None, 60);
    assert_eq!(store.put(&owner, b"e4", &big, Extra).unwrap(), Stored::Dropped);
    assert_eq!(keys(store, &owner), ["c2", "counted", "e3"]);
}

fn an_extra_hint_merged_with_a_counted_one_stays_counted(store: &dyn HintStore) {
    let owner = NodeId::new("node-3");
    let value = "x".repeat(200);
    store.put(&owner, b"k", &record_at("n1", &value, None, 10), Extra).unwrap();
    store.put(&owner, b"k", &record_at("n2", "y", None, 11), Counted).unwrap();
    store.put(&owner, b"e1", &record_at("n", &value, None, 20), Extra).unwrap();
    let big = record_at("n", &"x".repeat(500), None, 30);
    assert_eq!(store.put(&owner, b"e2", &big, Extra).unwrap(), Stored::Kept { evicted: 1 });
    assert_eq!(keys(store, &owner), ["e2", "k"], "e1 went; k, older but counted, stayed");
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
            fn the_oldest_extra_hints_make_room_for_a_new_one() {
                let (_keep, store) = $make(BOUND);
                super::the_oldest_extra_hints_make_room_for_a_new_one(store.as_ref());
            }

            #[test]
            fn a_counted_hint_is_never_evicted() {
                let (_keep, store) = $make(BOUND);
                super::a_counted_hint_is_never_evicted(store.as_ref());
            }

            #[test]
            fn an_extra_hint_merged_with_a_counted_one_stays_counted() {
                let (_keep, store) = $make(BOUND);
                super::an_extra_hint_merged_with_a_counted_one_stays_counted(store.as_ref());
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
        hints.put(&owner, b"k1", &record("node-1", "v", None), Counted).unwrap();
        hints.put(&owner, b"k2", &record("node-1", "w", None), Counted).unwrap();
    }
    let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    let hints = engine.hints(BOUND).unwrap();
    assert_eq!(hints.stats()[&owner].hints, 2);
    let batch = hints.batch(&owner, None, 10).unwrap();
    let mut keys: Vec<&[u8]> = batch.iter().map(|h| &h.key[..]).collect();
    keys.sort_unstable();
    assert_eq!(keys, [b"k1", b"k2"]);
    // Hints are kept apart from records.
    use halka_store::Engine as _;
    assert_eq!(engine.get(b"k1").unwrap(), None);
}

#[test]
fn fjall_extra_hints_keep_their_kind_and_age_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let owner = NodeId::new("node-3");
    let value = "x".repeat(200);
    {
        let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
        let hints = engine.hints(BOUND).unwrap();
        hints.put(&owner, b"counted", &record_at("n", &value, None, 5), Counted).unwrap();
        hints.put(&owner, b"young", &record_at("n", &value, None, 30), Extra).unwrap();
        hints.put(&owner, b"old", &record_at("n", &value, None, 10), Extra).unwrap();
    }
    let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    let hints = engine.hints(BOUND).unwrap();
    let next = record_at("n", &value, None, 40);
    assert_eq!(hints.put(&owner, b"next", &next, Extra).unwrap(), Stored::Kept { evicted: 1 });
    assert_eq!(keys(hints.as_ref(), &owner), ["counted", "next", "young"]);
}

#[test]
fn one_owners_hints_come_in_placement_hash_order() {
    // The order records are stored in: one partition's hints are one range.
    let dir = tempfile::tempdir().unwrap();
    let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    let hints = engine.hints(1 << 20).unwrap();
    let owner = NodeId::new("node-3");
    for i in 0..20 {
        hints.put(&owner, format!("k{i}").as_bytes(), &record("n", "v", None), Counted).unwrap();
    }
    let batch = hints.batch(&owner, None, 100).unwrap();
    let hashes: Vec<u64> = batch.iter().map(|h| halka_store::layout::key_hash(&h.key)).collect();
    assert_eq!(hashes.len(), 20);
    assert!(hashes.is_sorted(), "{hashes:?}");
}

/// `tests/fixtures/hints-v1`: a data directory whose hints were written keyed by bare key
/// (node-3: alpha counted, beta extra, gamma counted; node-4: alpha extra), and a record.
#[test]
fn hints_of_the_first_layout_are_migrated_on_open() {
    let dir = common::fixture("hints-v1");
    let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    let hints = engine.hints(BOUND).unwrap();
    let (n3, n4) = (NodeId::new("node-3"), NodeId::new("node-4"));
    assert_eq!(hints.stats()[&n3].hints, 3);
    assert_eq!(hints.stats()[&n4].hints, 1);
    assert_eq!(keys(&*hints, &n3), ["alpha", "beta", "gamma"]);
    assert!(hints.holds(&n4, b"alpha").unwrap());
    // Kinds kept: a hint that needs room evicts node-3's extra hint (beta), never
    // the counted ones.
    let room = usize::try_from(BOUND - hints.stats()[&n3].bytes).unwrap();
    let fills = record_at("n", &"x".repeat(room), None, 40);
    assert_eq!(hints.put(&n3, b"delta", &fills, Extra).unwrap(), Stored::Kept { evicted: 1 });
    assert_eq!(keys(&*hints, &n3), ["alpha", "delta", "gamma"]);
    use halka_store::Engine as _;
    assert!(engine.get(b"alpha").unwrap().is_some(), "records untouched");
}
