//! Record operations on the write path. Run: `cargo bench -p halka-store --bench record`.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use halka_store::{
    Engine, FjallEngine, FjallOptions, Limits, MemoryEngine, NodeId, Record, VersionVector, Write,
};
use std::hint::black_box;
use std::sync::Arc;

fn write(value: &'static [u8], overwrite: bool) -> Write {
    Write {
        overwrite,
        ..Write::value(Some(Bytes::from_static(value)), Some(VersionVector::new()), 1)
    }
}

fn records(c: &mut Criterion) {
    let (a, b) = (NodeId::new("node-1"), NodeId::new("node-2"));
    let value = &[b'x'; 100];
    let ra = Record::apply_write(None, &a, &write(value, true)).expect("numbered").into_record();
    let rb = Record::apply_write(None, &b, &write(value, true)).expect("numbered").into_record();
    c.bench_function("record/apply_write_overwrite", |bench| {
        let w = write(value, true);
        bench.iter(|| black_box(Record::apply_write(Some(&ra), &a, &w)));
    });
    c.bench_function("record/merge_concurrent", |bench| {
        bench.iter(|| black_box(ra.merge(black_box(&rb))));
    });
    let newer =
        Record::apply_write(Some(&ra), &a, &write(value, true)).expect("numbered").into_record();
    let (old, new) = (Arc::new(ra.clone()), Arc::new(newer));
    c.bench_function("record/absorb_newer", |bench| {
        bench.iter(|| black_box(Record::absorb(black_box(&old), black_box(&new))));
    });
    c.bench_function("record/encode_decode", |bench| {
        bench.iter(|| {
            let bytes = halka_store::encode_record(black_box(&ra)).expect("encodes");
            black_box(halka_store::decode_record(&bytes).expect("decodes"))
        });
    });
    let engine = MemoryEngine::new(Limits::default());
    let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i:012}")).collect();
    for k in &keys {
        engine.apply_write(k.as_bytes(), &a, &write(value, true)).expect("stored");
    }
    let mut i = 0;
    c.bench_function("memory_engine/get_10k_keys", |bench| {
        bench.iter(|| {
            i = (i + 1) % keys.len();
            black_box(engine.get(keys[i].as_bytes()).expect("read"))
        });
    });
    validation(c, &ra);
    layout(c, &keys);
    digests(c, &keys);
    deletes(c, &keys);
}

/// What the tombstone index adds to a delete, the one write it has work for (a write of a
/// value to a key that is not deleted only checks that no version is a tombstone).
fn deletes(c: &mut Criterion, keys: &[String]) {
    let a = NodeId::new("node-1");
    let delete = Write { overwrite: true, ..Write::value(None, Some(VersionVector::new()), 1) };
    let tracked = |tracking| {
        halka_store::TrackedEngine::build(Arc::new(MemoryEngine::new(Limits::default())), tracking)
            .expect("built")
    };
    let digests_only = tracked(halka_store::Tracking { digests: true, tombstones: false });
    let both = tracked(halka_store::Tracking::ALL);
    let mut i = 0;
    for (name, engine) in [("digested", &digests_only), ("digested_and_tombstones", &both)] {
        c.bench_function(&format!("tombstones/memory_delete_{name}"), |bench| {
            bench.iter(|| {
                i = (i + 1) % keys.len();
                black_box(engine.apply_write(keys[i].as_bytes(), &a, &delete).expect("stored"))
            });
        });
    }
}

/// What keeping anti-entropy digests adds to every write: the same overwrite through a
/// memory engine with and without a digest tree over it.
fn digests(c: &mut Criterion, keys: &[String]) {
    let a = NodeId::new("node-1");
    let w = write(&[b'x'; 100], true);
    let plain: Arc<dyn Engine> = Arc::new(MemoryEngine::new(Limits::default()));
    let tracked = |tracking| {
        halka_store::TrackedEngine::build(Arc::new(MemoryEngine::new(Limits::default())), tracking)
            .expect("built")
    };
    let digested = tracked(halka_store::Tracking { digests: true, tombstones: false });
    let both = tracked(halka_store::Tracking::ALL);
    for k in keys {
        plain.apply_write(k.as_bytes(), &a, &w).expect("stored");
        digested.apply_write(k.as_bytes(), &a, &w).expect("stored");
        both.apply_write(k.as_bytes(), &a, &w).expect("stored");
    }
    let record = plain.get(keys[0].as_bytes()).expect("read").expect("stored");
    c.bench_function("digests/entry_digest", |bench| {
        bench
            .iter(|| black_box(halka_store::entry_digest(black_box(b"key-000000000001"), &record)));
    });
    let mut i = 0;
    c.bench_function("digests/memory_apply_write_plain", |bench| {
        bench.iter(|| {
            i = (i + 1) % keys.len();
            black_box(plain.apply_write(keys[i].as_bytes(), &a, &w).expect("stored"))
        });
    });
    c.bench_function("digests/memory_apply_write_digested", |bench| {
        bench.iter(|| {
            i = (i + 1) % keys.len();
            black_box(digested.apply_write(keys[i].as_bytes(), &a, &w).expect("stored"))
        });
    });
    // The tombstone index as well: what every write pays for tombstone collection.
    c.bench_function("digests/memory_apply_write_digested_and_tombstones", |bench| {
        bench.iter(|| {
            i = (i + 1) % keys.len();
            black_box(both.apply_write(keys[i].as_bytes(), &a, &w).expect("stored"))
        });
    });
}

/// What validating causal metadata from outside adds to every merge.
fn validation(c: &mut Criterion, record: &Record) {
    c.bench_function("validate/record_one_version", |bench| {
        bench.iter(|| black_box(black_box(record).validate()));
    });
}

/// The hash layout's cost on every fjall read and write (the storage key), next to a
/// whole uncached fjall read for scale.
fn layout(c: &mut Criterion, keys: &[String]) {
    let mut i = 0;
    c.bench_function("layout/storage_key_16b", |bench| {
        bench.iter(|| {
            i = (i + 1) % keys.len();
            black_box(halka_store::layout::storage_key(black_box(keys[i].as_bytes())))
        });
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let engine =
        FjallEngine::open(FjallOptions { cache_bytes: 0, ..FjallOptions::new(dir.path()) })
            .expect("opens");
    let a = NodeId::new("node-1");
    for k in keys {
        engine.apply_write(k.as_bytes(), &a, &write(&[b'x'; 100], true)).expect("stored");
    }
    c.bench_function("fjall_engine/get_uncached_10k_keys", |bench| {
        bench.iter(|| {
            i = (i + 1) % keys.len();
            black_box(engine.get(keys[i].as_bytes()).expect("read"))
        });
    });
}

/// A counter's hot path: an increment applied at the coordinating replica of a key that
/// three nodes have counted on, and the join a replica does when the record arrives.
fn counters(c: &mut Criterion) {
    use halka_store::{Change, Float};
    let nodes = [NodeId::new("node-1"), NodeId::new("node-2"), NodeId::new("node-3")];
    let mut counted: Option<Record> = None;
    for (i, node) in nodes.iter().enumerate() {
        let change = if i == 2 { Change::AddFloat(Float(0.5)) } else { Change::Add(7) };
        let w = Write { change, ..Write::value(None, None, 1) };
        counted =
            Some(Record::apply_write(counted.as_ref(), node, &w).expect("numbered").into_record());
    }
    let integer = Record::apply_write(
        None,
        &nodes[0],
        &Write { change: Change::Add(1), ..Write::value(None, None, 1) },
    )
    .expect("numbered")
    .into_record();
    let counted = counted.expect("three increments");
    c.bench_function("counter/incr", |bench| {
        let w = Write { change: Change::Add(1), ..Write::value(None, None, 2) };
        bench.iter(|| black_box(Record::apply_write(Some(&integer), &nodes[0], &w)));
    });
    c.bench_function("counter/incrbyfloat_three_nodes", |bench| {
        let w = Write { change: Change::AddFloat(Float(0.25)), ..Write::value(None, None, 2) };
        bench.iter(|| black_box(Record::apply_write(Some(&counted), &nodes[0], &w)));
    });
}

criterion_group!(benches, records, counters);
criterion_main!(benches);
