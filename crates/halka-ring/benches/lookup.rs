//! Owner and preference-list lookups for every strategy, 6 nodes, 16-byte keys, hashing
//! included. Run: `cargo bench -p halka-ring --bench lookup`.

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

criterion_group!(benches, lookups);
criterion_main!(benches);
