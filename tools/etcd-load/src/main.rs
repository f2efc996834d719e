//! Drives one etcd endpoint with puts from `--clients` concurrent tasks, the way
//! redis-benchmark drives halka: random keys from a keyspace, fixed-size values. Prints
//! `PUT,<ops/s>,<p50 ms>,<p99 ms>` on one line.

use anyhow::Context;
use clap::Parser;
use etcd_client::Client;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoint: String,
    /// Concurrent clients (tasks), each with one request in flight.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// gRPC connections the clients share, round robin.
    #[arg(long, default_value_t = 50)]
    conns: usize,
    /// Puts in all.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    #[arg(long, default_value_t = 100_000)]
    keyspace: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.clients > 0 && args.conns > 0, "--clients and --conns must be at least 1");
    let mut conns = Vec::with_capacity(args.conns);
    for _ in 0..args.conns {
        let client = Client::connect([args.endpoint.as_str()], None)
            .await
            .with_context(|| format!("connecting to {}", args.endpoint))?;
        conns.push(client);
    }
    let value = vec![b'x'; args.value_size];
    let per_client = args.requests / args.clients as u64;
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|c| {
            let mut kv = conns[c % conns.len()].kv_client();
            let value = value.clone();
            let keyspace = args.keyspace;
            tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(c as u64);
                let mut hist = Histogram::<u64>::new(3)?;
                for _ in 0..per_client {
                    let key = format!("key:{:012}", rng.random_range(0..keyspace));
                    let t = Instant::now();
                    kv.put(key, value.clone(), None).await?;
                    hist.record(t.elapsed().as_micros() as u64)?;
                }
                anyhow::Ok(hist)
            })
        })
        .collect();
    let mut hist = Histogram::<u64>::new(3)?;
    for t in tasks {
        hist.add(t.await??)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "PUT,{:.2},{:.3},{:.3}",
        (per_client * args.clients as u64) as f64 / secs,
        ms(0.50),
        ms(0.99)
    );
    Ok(())
}
