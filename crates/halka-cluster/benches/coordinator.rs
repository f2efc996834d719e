//! Quorum put and get on an embedded cluster (6 nodes, N=5, W=R=3, memory engines).
//! Run: `cargo bench -p halka-cluster --bench coordinator`.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use halka_cluster::Cluster;
use std::hint::black_box;

fn coordinator(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let cluster = rt.block_on(async {
        let cluster = Cluster::builder().replication(5).build().expect("cluster");
        for n in ["foo", "bar", "bazz", "zapp", "zucc", "bars"] {
            cluster.add_node(n).await.expect("node");
        }
        for i in 0..1000 {
            cluster.put(format!("key-{i:012}"), "v", 3).await.expect("put");
        }
        cluster
    });
    let keys: Vec<Bytes> = (0..1000).map(|i| Bytes::from(format!("key-{i:012}"))).collect();
    let value = Bytes::from(vec![b'x'; 100]);
    let mut i = 0;
    c.bench_function("cluster/put_n5_w3", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            rt.block_on(cluster.put(keys[i].clone(), value.clone(), 3)).expect("put");
        });
    });
    c.bench_function("cluster/get_n5_r3", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(rt.block_on(cluster.get(keys[i].clone(), 3)).expect("get"));
        });
    });
}

criterion_group!(benches, coordinator);
criterion_main!(benches);
