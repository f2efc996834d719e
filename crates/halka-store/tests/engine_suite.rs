//! One behaviour suite, run against every engine.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_store::{
    Dot, Engine, FjallEngine, FjallOptions, Limits, MemoryEngine, NodeId, Record, StoreError,
    SyncPolicy, TrackedEngine, Tracking, VersionVector, Write,
};
use std::sync::Arc;

fn write(value: &str, context: &VersionVector) -> Write {
    Write {
        overwrite: false,
        ..Write::value(Some(Bytes::copy_from_slice(value.as_bytes())), Some(context.clone()), 1)
    }
}

fn small_limits() -> Limits {
    Limits { max_key_bytes: 16, max_value_bytes: 32, ..Limits::default() }
}

fn write_then_read(engine: &dyn Engine) {
    let a = NodeId::new("a");
    let (record, _) = engine.apply_write(b"k", &a, &write("v1", &VersionVector::new())).unwrap();
    assert_eq!(record.context().get(&a), 1, "the first write is numbered 1");
    assert_eq!(engine.get(b"k").unwrap(), Some(record));
    assert_eq!(engine.get(b"missing").unwrap(), None);
    assert_eq!(engine.key_count(), 1);
}

fn causal_overwrite_and_siblings(engine: &dyn Engine) {
    let (a, b) = (NodeId::new("a"), NodeId::new("b"));
    let (r1, _) = engine.apply_write(b"k", &a, &write("v1", &VersionVector::new())).unwrap();
    let (r2, _) = engine.apply_write(b"k", &a, &write("v2", r1.context())).unwrap();
    assert_eq!(r2.values().count(), 1);
    // A concurrent version arriving from a peer becomes a sibling.
    let theirs = Arc::new(
        Record::apply_write(None, &b, &write("w", &VersionVector::new())).unwrap().into_record(),
    );
    engine.merge(b"k", &theirs).unwrap();
    let stored = engine.get(b"k").unwrap().unwrap();
    assert_eq!(stored.values().count(), 2);
    // Merging again changes nothing (idempotent).
    engine.merge(b"k", &theirs).unwrap();
    assert_eq!(engine.get(b"k").unwrap().unwrap(), stored);
}

fn limits_reject_and_store_nothing(engine: &dyn Engine) {
    let a = NodeId::new("a");
    let big_key = vec![b'k'; 17];
    let err = engine.apply_write(&big_key, &a, &write("v", &VersionVector::new())).unwrap_err();
    assert!(matches!(err, StoreError::Limit(_)), "{err}");
    assert!(err.to_string().contains("maximum is 16"), "{err}");
    let big_value = "x".repeat(33);
    assert!(engine.apply_write(b"k", &a, &write(&big_value, &VersionVector::new())).is_err());
    assert!(engine.apply_write(b"", &a, &write("v", &VersionVector::new())).is_err());
    assert_eq!(engine.get(b"k").unwrap(), None);
    assert_eq!(engine.get(&big_key).unwrap(), None);
    assert_eq!(engine.key_count(), 0);
}

fn siblings_past_the_record_limit_are_refused_and_resolving_them_is_not(engine: &dyn Engine) {
    let a = NodeId::new("a");
    let value = "x".repeat(32);
    let old = VersionVector::new();
    // 32-byte values under a 96-byte record limit: three siblings fit, a fourth does not.
    for _ in 0..3 {
        let (_, outcome) = engine.apply_write(b"k", &a, &write(&value, &old)).unwrap();
        assert_eq!(outcome.refused, None);
    }
    let (record, outcome) = engine.apply_write(b"k", &a, &write(&value, &old)).unwrap();
    let refusal = outcome.refused.unwrap();
    assert!(refusal.to_string().contains("4 versions of 128 bytes"), "{refusal}");
    assert_eq!(record.versions().len(), 3, "the stored record is unchanged");
    assert_eq!(engine.get(b"k").unwrap().unwrap().versions().len(), 3);
    // A write with the record's context replaces its siblings.
    let (resolved, outcome) = engine.apply_write(b"k", &a, &write("v", record.context())).unwrap();
    assert_eq!((outcome.refused, resolved.versions().len()), (None, 1));
}

fn concurrent_writers_get_distinct_dots(engine: Arc<dyn Engine>) {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let a = NodeId::new("a");
                (0..50)
                    .map(|_| {
                        let (record, _) = engine
                            .apply_write(b"hot", &a, &write("v", &VersionVector::new()))
                            .unwrap();
                        // The newest version is this write's: blind writes leave the
                        // others as siblings.
                        record.versions().iter().map(|v| v.dot.counter).max().unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut dots: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    dots.sort_unstable();
    assert_eq!(dots, (1..=200).collect::<Vec<_>>(), "every write got its own counter");
    let stored = engine.get(b"hot").unwrap().unwrap();
    assert_eq!(
        stored.versions().len(),
        halka_store::MAX_SIBLINGS,
        "blind writes are bounded siblings"
    );
}

fn scan_visits_every_key(engine: &dyn Engine) {
    let a = NodeId::new("a");
    for i in 0..100 {
        let key = format!("key-{i}");
        engine.apply_write(key.as_bytes(), &a, &write("v", &VersionVector::new())).unwrap();
    }
    let mut seen = Vec::new();
    engine
        .scan(&mut |k, r| {
            assert_eq!(r.values().count(), 1);
            seen.push(String::from_utf8(k.to_vec()).unwrap());
        })
        .unwrap();
    seen.sort();
    let mut expected: Vec<String> = (0..100).map(|i| format!("key-{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

/// A record or context no honest node produces is refused, and what was stored stays.
fn hostile_metadata_is_refused_and_stores_nothing(engine: &dyn Engine) {
    let a = NodeId::new("a");
    let (stored, _) = engine.apply_write(b"k", &a, &write("v1", &VersionVector::new())).unwrap();
    let forged: VersionVector = [(a.clone(), u64::MAX)].into_iter().collect();
    let err = engine.apply_write(b"k", &a, &write("v2", &forged)).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    // The same context inside a record sent by a "peer".
    let record = Arc::new(Record::from_parts(forged, Vec::new()));
    let err = engine.merge(b"k", &record).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(engine.get(b"k").unwrap(), Some(stored.clone()));
    // A later honest write still lands.
    let (next, _) = engine.apply_write(b"k", &a, &write("v3", stored.context())).unwrap();
    assert_eq!(next.lww_value(), Some(&Bytes::from_static(b"v3")));
}

/// Every key is in exactly one partition's range, the one its placement hash names.
fn scan_range_visits_exactly_its_partition(engine: &dyn Engine) {
    let a = NodeId::new("a");
    for i in 0..300 {
        let key = format!("key-{i}");
        engine.apply_write(key.as_bytes(), &a, &write("v", &VersionVector::new())).unwrap();
    }
    let bits = 4;
    let mut seen = std::collections::BTreeSet::new();
    for (p, range) in halka_store::HashRange::chunks(bits).enumerate() {
        engine
            .scan_range(range, &mut |k, _| {
                let hash = halka_store::layout::key_hash(k);
                assert_eq!(hash >> (64 - bits), p as u64, "{k:?} outside partition {p}");
                assert!(seen.insert(k.to_vec()), "{k:?} visited twice");
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
    }
    assert_eq!(seen.len(), 300);
}

fn remove_if_removes_only_what_the_predicate_accepts(engine: &dyn Engine) {
    let a = NodeId::new("a");
    let (kept, _) = engine.apply_write(b"kept", &a, &write("v", &VersionVector::new())).unwrap();
    engine.apply_write(b"gone", &a, &write("v", &VersionVector::new())).unwrap();
    assert!(!engine.remove_if(b"kept", &mut |_| false).unwrap());
    assert!(engine.remove_if(b"gone", &mut |_| true).unwrap());
    assert!(!engine.remove_if(b"missing", &mut |_| true).unwrap());
    assert_eq!(engine.get(b"gone").unwrap(), None);
    assert_eq!(engine.get(b"kept").unwrap(), Some(kept));
    let mut scanned = Vec::new();
    engine.scan(&mut |k, _| scanned.push(k.to_vec())).unwrap();
    assert_eq!(scanned, vec![b"kept".to_vec()]);
}

/// After a record is removed, the next write to its key must not reuse a dot the removed
/// record held: other replicas may still hold that record and would drop the write.
fn a_write_after_a_removal_numbers_past_the_removed_dots(engine: &dyn Engine) {
    let a = NodeId::new("a");
    let mut context = VersionVector::new();
    for _ in 0..5 {
        context = engine.apply_write(b"k", &a, &write("v", &context)).unwrap().0.context().clone();
    }
    assert!(engine.remove_if(b"k", &mut |_| true).unwrap());
    assert_eq!(engine.counter_floor(), 5);
    let (record, _) = engine.apply_write(b"k", &a, &write("again", &VersionVector::new())).unwrap();
    let dot = Dot { node: a.clone(), counter: record.context().get(&a) };
    assert!(!context.covers(&dot), "reused dot {dot:?} that {context:?} already covers");
}

macro_rules! engine_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn write_then_read() {
                let (_dir, e) = $make(Limits::default());
                super::write_then_read(e.as_ref());
            }

            #[test]
            fn causal_overwrite_and_siblings() {
                let (_dir, e) = $make(Limits::default());
                super::causal_overwrite_and_siblings(e.as_ref());
            }

            #[test]
            fn limits_reject_and_store_nothing() {
                let (_dir, e) = $make(small_limits());
                super::limits_reject_and_store_nothing(e.as_ref());
            }

            #[test]
            fn hostile_metadata_is_refused_and_stores_nothing() {
                let (_dir, e) = $make(Limits::default());
                super::hostile_metadata_is_refused_and_stores_nothing(e.as_ref());
            }

            #[test]
            fn scan_range_visits_exactly_its_partition() {
                let (_dir, e) = $make(Limits::default());
                super::scan_range_visits_exactly_its_partition(e.as_ref());
            }

            #[test]
            fn scan_visits_every_key() {
                let (_dir, e) = $make(Limits::default());
                super::scan_visits_every_key(e.as_ref());
            }

            #[test]
            fn remove_if_removes_only_what_the_predicate_accepts() {
                let (_dir, e) = $make(Limits::default());
                super::remove_if_removes_only_what_the_predicate_accepts(e.as_ref());
            }

            #[test]
            fn a_write_after_a_removal_numbers_past_the_removed_dots() {
                let (_dir, e) = $make(Limits::default());
                super::a_write_after_a_removal_numbers_past_the_removed_dots(e.as_ref());
            }

            #[test]
            fn siblings_past_the_record_limit_are_refused_and_resolving_them_is_not() {
                let limits = Limits { max_record_bytes: 96, ..small_limits() };
                let (_dir, e) = $make(limits);
                super::siblings_past_the_record_limit_are_refused_and_resolving_them_is_not(
                    e.as_ref(),
                );
            }

            #[test]
            fn concurrent_writers_get_distinct_dots() {
                let (_dir, e) = $make(Limits::default());
                super::concurrent_writers_get_distinct_dots(e);
            }
        }
    };
}

fn memory(limits: Limits) -> (Option<tempfile::TempDir>, Arc<dyn Engine>) {
    (None, Arc::new(MemoryEngine::new(limits)))
}

fn fjall_with(
    sync: SyncPolicy,
    cache_bytes: u64,
    background_threads: Option<usize>,
) -> impl Fn(Limits) -> (Option<tempfile::TempDir>, Arc<dyn Engine>) {
    move |limits| {
        let dir = tempfile::tempdir().unwrap();
        let options = FjallOptions {
            sync,
            limits,
            cache_bytes,
            background_threads,
            ..FjallOptions::new(dir.path())
        };
        let engine = FjallEngine::open(options).unwrap();
        (Some(dir), Arc::new(engine))
    }
}

engine_suite!(memory_engine, memory);
// The wrapper that keeps the digest tree and the tombstone index must behave the same.
engine_suite!(tracked_memory_engine, tracked(memory));
engine_suite!(tracked_fjall, tracked(fjall_with(PERIODIC, CACHE, None)));

fn tracked(
    make: impl Fn(Limits) -> (Option<tempfile::TempDir>, Arc<dyn Engine>),
) -> impl Fn(Limits) -> (Option<tempfile::TempDir>, Arc<dyn Engine>) {
    move |limits| {
        let (dir, inner) = make(limits);
        (dir, Arc::new(TrackedEngine::build(inner, Tracking::ALL).unwrap()))
    }
}
const CACHE: u64 = FjallOptions::DEFAULT_CACHE_BYTES;
const PERIODIC: SyncPolicy = SyncPolicy::Periodic { interval_ms: 10 };
engine_suite!(fjall_always, fjall_with(SyncPolicy::Always, CACHE, None));
engine_suite!(fjall_periodic, fjall_with(PERIODIC, CACHE, None));
// Without the record cache, and with one far smaller than the data (constant eviction).
engine_suite!(fjall_uncached, fjall_with(PERIODIC, 0, None));
engine_suite!(fjall_tiny_cache, fjall_with(PERIODIC, 2048, None));
// One background thread, as `halka dev` gives each node on a two-core host.
engine_suite!(fjall_one_background_thread, fjall_with(PERIODIC, CACHE, Some(1)));

#[test]
fn fjall_keeps_data_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        FjallEngine::open(FjallOptions {
            sync: SyncPolicy::Periodic { interval_ms: 1000 },
            ..FjallOptions::new(dir.path())
        })
        .unwrap()
    };
    let (record, _) = {
        let e = open();
        e.apply_write(b"k", &NodeId::new("a"), &write("kept", &VersionVector::new())).unwrap()
    };
    assert_eq!(open().get(b"k").unwrap(), Some(record));
}

#[test]
fn fjall_keeps_the_counter_floor_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let open = || FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    {
        let e = open();
        let a = NodeId::new("a");
        let mut context = VersionVector::new();
        for _ in 0..3 {
            context = e.apply_write(b"k", &a, &write("v", &context)).unwrap().0.context().clone();
        }
        assert!(e.remove_if(b"k", &mut |_| true).unwrap());
        e.flush().unwrap();
    }
    let e = open();
    assert_eq!(e.counter_floor(), 3);
    assert_eq!(e.get(b"k").unwrap(), None, "the removal is durable after a flush");
}

#[test]
fn failed_fsync_poisons_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let e = FjallEngine::open(FjallOptions {
        sync: SyncPolicy::Always,
        ..FjallOptions::new(dir.path())
    })
    .unwrap();
    let a = NodeId::new("a");
    e.apply_write(b"before", &a, &write("v", &VersionVector::new())).unwrap();
    e.inject_sync_failure();
    let err = e.apply_write(b"k", &a, &write("v", &VersionVector::new())).unwrap_err();
    assert!(matches!(err, StoreError::Poisoned(_)), "{err}");
    // Every later write is refused, even though no further fsync fails.
    let err = e.apply_write(b"k2", &a, &write("v", &VersionVector::new())).unwrap_err();
    assert!(matches!(err, StoreError::Poisoned(_)), "{err}");
    assert!(err.to_string().contains("reopens its storage"), "{err}");
    assert!(e.poisoned().is_some_and(|why| why.contains("injected")));
    // Reads keep working.
    assert!(e.get(b"before").unwrap().is_some());
}

#[test]
fn a_poisoned_engine_reopened_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let options = FjallOptions { sync: SyncPolicy::Always, ..FjallOptions::new(dir.path()) };
    let a = NodeId::new("a");
    let e = FjallEngine::open(options.clone()).unwrap();
    for i in 0..50 {
        e.apply_write(format!("k{i}").as_bytes(), &a, &write("v", &VersionVector::new())).unwrap();
    }
    e.inject_sync_failure();
    e.apply_write(b"refused", &a, &write("v", &VersionVector::new())).unwrap_err();
    drop(e);
    let e = FjallEngine::open(options).unwrap();
    assert_eq!(e.poisoned(), None);
    for i in 0..50 {
        assert!(e.get(format!("k{i}").as_bytes()).unwrap().is_some(), "k{i} lost");
    }
    e.apply_write(b"after", &a, &write("v", &VersionVector::new())).unwrap();
}

#[test]
fn a_data_directory_is_open_in_one_engine_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    let err = FjallEngine::open(FjallOptions::new(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::InUse(_)), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    // The hint store keeps the directory open too.
    let hints = first.hints(1 << 20).unwrap();
    drop(first);
    assert!(matches!(FjallEngine::open(FjallOptions::new(dir.path())), Err(StoreError::InUse(_))));
    drop(hints);
    FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
}

#[test]
fn a_nearly_full_disk_refuses_writes_and_they_resume_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let free = Arc::new(std::sync::atomic::AtomicU64::new(1 << 30));
    let probe = {
        let free = Arc::clone(&free);
        Arc::new(move |_: &std::path::Path| Ok(free.load(std::sync::atomic::Ordering::Relaxed)))
    };
    let e = FjallEngine::open(FjallOptions {
        min_free_bytes: 1 << 20,
        space_probe: Some(probe),
        ..FjallOptions::new(dir.path())
    })
    .unwrap();
    let a = NodeId::new("a");
    // Values of a third of the reserve: each write re-measures soon enough.
    let big = "x".repeat(300 << 10);
    e.apply_write(b"before", &a, &write(&big, &VersionVector::new())).unwrap();
    free.store(1 << 20, std::sync::atomic::Ordering::Relaxed);
    let err = e.apply_write(b"k", &a, &write(&big, &VersionVector::new())).unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("storage.min_free_mb"), "{err}");
    assert!(e.get(b"k").unwrap().is_none(), "nothing was stored");
    assert!(e.get(b"before").unwrap().is_some(), "reads go on");
    free.store(1 << 30, std::sync::atomic::Ordering::Relaxed);
    e.apply_write(b"k", &a, &write(&big, &VersionVector::new())).unwrap();
    e.flush().unwrap();
    assert!(e.get(b"k").unwrap().is_some(), "writes resume without a reopen");
}

/// `always` syncs fjall's journal through the engine's own handle, outside fjall's lock
/// (see `engine/journal.rs`); if fjall's on-disk layout changes, this is the test that says
/// so, instead of the engine quietly falling back to the slower path.
#[test]
fn fsync_finds_fjalls_journal_on_new_and_reopened_directories() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        FjallEngine::open(FjallOptions {
            sync: SyncPolicy::Always,
            ..FjallOptions::new(dir.path())
        })
        .unwrap()
    };
    let a = NodeId::new("a");
    let (record, _) = {
        let e = open();
        assert!(e.syncs_journal_directly(), "no journal found in a new directory");
        e.apply_write(b"k", &a, &write("v", &VersionVector::new())).unwrap()
    };
    let e = open();
    assert!(e.syncs_journal_directly(), "no journal found after reopening");
    assert_eq!(e.get(b"k").unwrap(), Some(record));
    e.apply_write(b"k2", &a, &write("w", &VersionVector::new())).unwrap();
    e.flush().unwrap();
}
