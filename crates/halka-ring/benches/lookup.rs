//! Owner and preference-list lookups for every strategy, 6 nodes, 16-byte keys, hashing
//! included; and `key_hash` itself, plain and member keys. Run: `cargo bench -p halka-ring
//! --bench lookup`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use halka_ring::{Member, PreferenceList, Strategy, key_hash};
use std::hint::black_box;

fn strategies() -> Vec<(String, Strategy)> {
    vec![
        ("modulo".into(), Strategy::Modulo),
        ("ring".into(), Strategy::Ring),
        ("vnode-ring-100".into(), Strategy::VnodeRing { vnodes: 100 }),
        ("vnode-ring-256".into(), Strategy::VnodeRing { vnodes: 256 }),
        ("partitioned".into(), Strategy::default()),
        ("jump".into(), Strategy::Jump),
        ("rendezvous".into(), Strategy::Rendezvous),
    ]
}

fn lookups(c: &mut Criterion) {
    let members: Vec<Member> = (1..=6).map(|i| Member::new(format!("node-{i:04}"))).collect();
    let keys: Vec<String> = (0..1024).map(|i| format!("key-{i:012}")).collect();
    let mut group = c.benchmark_group("lookup");
    for (label, strategy) in strategies() {
        let placement = strategy.build(&members, 5).expect("valid placement");
        let mut i = 0;
        group.bench_function(BenchmarkId::new("owner", &label), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(placement.owner(key_hash(black_box(keys[i].as_bytes()))))
            });
        });
        for n in [3, 5] {
            let mut out = PreferenceList::new();
            group.bench_function(BenchmarkId::new(format!("preference_list_n{n}"), &label), |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    placement.preference_list_into(
                        key_hash(black_box(keys[i].as_bytes())),
                        n,
                        &mut out,
                    );
                    black_box(&out);
                });
            });
        }
    }
    group.finish();
}

/// What telling a collection's member key from a plain key costs placement: `key_hash` of
/// a plain 16-byte key against the bare xxh3 it wraps, and of a hash field's key.
fn hashing(c: &mut Criterion) {
    // A slice, as keys arrive: a fixed-size array would let xxh3 specialise on its length.
    let plain: &[u8] = b"key-000000000042";
    let member = halka_ring::member_key(b"user:1000", b"\0\0\0\0\0\0\0\x07last_seen");
    let mut group = c.benchmark_group("key_hash");
    group.bench_function("xxh3_plain", |b| {
        b.iter(|| {
            xxhash_rust::xxh3::xxh3_64_with_seed(black_box(plain), black_box(0x6861_6c6b_615f_6b65))
        });
    });
    group.bench_function("plain", |b| b.iter(|| key_hash(black_box(plain))));
    group.bench_function("member", |b| b.iter(|| key_hash(black_box(&member))));
    group.finish();
}

criterion_group!(benches, lookups, hashing);
criterion_main!(benches);
