//! What gossip and the failure detector cost: merging a peer's table of 100 nodes (one
//! swap), its size on the wire, and the liveness check every write makes per replica.
//! Run: `cargo bench -p halka-cluster --bench gossip`.

use criterion::{Criterion, criterion_group, criterion_main};
use halka_cluster::gossip::table::Table;
use halka_cluster::gossip::{Announcement, Judged, Liveness};
use halka_cluster::membership::{Addresses, MemberSpec};
use halka_store::NodeId;
use std::hint::black_box;

fn announcements(n: usize, heartbeat: u64) -> Vec<Announcement> {
    (0..n)
        .map(|i| Announcement {
            member: MemberSpec {
                zone: format!("zone-{}", i % 3),
                ..MemberSpec::active(
                    format!("node-{i}"),
                    Addresses {
                        peer: format!("10.0.{}.{}:7380", i / 250, i % 250),
                        redis: format!("10.0.{}.{}:6380", i / 250, i % 250),
                        http: format!("10.0.{}.{}:8080", i / 250, i % 250),
                    },
                )
            },
            generation: 1_765_000_000_000_000,
            heartbeat,
            layout_version: 7,
        })
        .collect()
}

fn gossip(c: &mut Criterion) {
    let older = announcements(100, 1);
    let newer = announcements(100, 2);
    let bytes = postcard::to_allocvec(&newer).expect("encodes").len();
    println!("a 100-node table is {bytes} bytes on the wire");
    c.bench_function("gossip/merge_100_newer", |b| {
        b.iter_batched(
            || {
                let mut table = Table::default();
                table.merge("me", older.clone());
                (table, newer.clone())
            },
            |(mut table, newer)| black_box(table.merge("me", newer)),
            criterion::BatchSize::SmallInput,
        );
    });
    let liveness = Liveness::default();
    let node = NodeId::new("node-3");
    c.bench_function("gossip/convicted_nobody_down", |b| {
        b.iter(|| black_box(liveness.convicted(black_box(&node))));
    });
    let down = Judged { phi: 12.0, convicted: true };
    liveness.publish((0..100).map(|i| (NodeId::new(&format!("node-{i}")), down)).collect());
    let other = NodeId::new("node-200");
    c.bench_function("gossip/convicted_100_watched_one_down", |b| {
        b.iter(|| black_box(liveness.convicted(black_box(&other))));
    });
}

criterion_group!(benches, gossip);
criterion_main!(benches);
