//! `halka bench --embedded`: the seed's workload in-process. Six nodes, N=5, W=3, R=3, a
//! preloaded keyspace, then a 50/50 put/get mix from a number of client tasks.

use bytes::Bytes;
use halka_cluster::{Cluster, EngineKind, NodeStats};
use halka_store::SyncPolicy;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub nodes: usize,
    pub replication: usize,
    pub w: usize,
    pub r: usize,
    pub fjall: Option<(PathBuf, SyncPolicy)>,
    pub keyspace: u64,
    pub ops: u64,
    pub value_size: usize,
    pub clients: Vec<usize>,
}

/// One client setting's result. Field names are the JSON output's contract.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub clients: usize,
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub errors: u64,
}

/// Key `i` of the keyspace: 16 bytes, like the seed's workload. Made per operation, as a
/// client would, but without the formatting machinery (bench/seed-go does the same).
fn key(i: u64) -> Bytes {
    let mut k = *b"key-000000000000";
    let mut n = i;
    for digit in k[4..].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    Bytes::copy_from_slice(&k)
}

/// Builds the cluster, preloads the keyspace and runs each client setting.
///
/// # Errors
/// Invalid options or a cluster that cannot be built.
pub async fn run(opts: &BenchOptions) -> anyhow::Result<(Vec<BenchRow>, Vec<NodeStats>)> {
    anyhow::ensure!(opts.keyspace > 0, "--keyspace must be at least 1");
    anyhow::ensure!(!opts.clients.is_empty(), "--clients needs at least one value");
    anyhow::ensure!(opts.clients.iter().all(|&c| c > 0), "--clients values must be at least 1");
    let engine = match &opts.fjall {
        None => EngineKind::Memory,
        Some((dir, sync)) => EngineKind::Fjall { dir: dir.clone(), sync: *sync },
    };
    let cluster =
        Arc::new(Cluster::builder().replication(opts.replication).engine(engine).build()?);
    for i in 1..=opts.nodes {
        cluster.add_node(&format!("node-{i}")).await?;
    }
    // Every put stores the same value, as in the seed's workload. A static buffer shares it
    // the way a Go string is shared: a reference-counted one would have all clients bump
    // one counter on every put, which measures the benchmark rather than the store.
    let value = Bytes::from_static(Box::leak(vec![b'x'; opts.value_size].into_boxed_slice()));
    for i in 0..opts.keyspace {
        cluster.put(key(i), value.clone(), opts.w).await?;
    }
    let mut rows = Vec::new();
    for &clients in &opts.clients {
        rows.push(run_setting(&cluster, opts, clients, &value).await?);
    }
    Ok((rows, cluster.node_stats()))
}

async fn run_setting(
    cluster: &Arc<Cluster>,
    opts: &BenchOptions,
    clients: usize,
    value: &Bytes,
) -> anyhow::Result<BenchRow> {
    let per_client = opts.ops / clients as u64;
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (cluster, value) = (Arc::clone(cluster), value.clone());
            let (keyspace, w, r) = (opts.keyspace, opts.w, opts.r);
            tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(c as u64);
                let mut hist = Histogram::<u64>::new(3).expect("3 significant figures is valid");
                let mut errors = 0_u64;
                for _ in 0..per_client {
                    let k = key(rng.random_range(0..keyspace));
                    let t = Instant::now();
                    let ok = if rng.random_bool(0.5) {
                        cluster.put(k, value.clone(), w).await.is_ok()
                    } else {
                        cluster.get(k, r).await.is_ok()
                    };
                    let _ = hist.record(t.elapsed().as_nanos() as u64);
                    errors += u64::from(!ok);
                }
                (hist, errors)
            })
        })
        .collect();
    let mut hist = Histogram::<u64>::new(3).expect("3 significant figures is valid");
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        hist.add(h)?;
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(BenchRow {
        clients,
        ops_per_sec: (per_client * clients as u64) as f64 / elapsed,
        p50_us: us(0.50),
        p99_us: us(0.99),
        p999_us: us(0.999),
        errors,
    })
}

/// Human-readable table.
#[must_use]
pub fn table(rows: &[BenchRow]) -> String {
    use std::fmt::Write;
    let mut s = format!(
        "{:>7} {:>12} {:>9} {:>9} {:>9} {:>7}\n",
        "clients", "ops/s", "p50 µs", "p99 µs", "p99.9 µs", "errors"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>7} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            r.clients, r.ops_per_sec, r.p50_us, r.p99_us, r.p999_us, r.errors
        );
    }
    s
}
