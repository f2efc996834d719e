//! Probe: put latency with `SyncPolicy::Always` from many threads (group commit).
//! `cargo run --release -p halka-store --example fsync_probe -- <threads> <puts per thread> <dir>`

use bytes::Bytes;
use halka_store::{Engine, FjallEngine, FjallOptions, NodeId, SyncPolicy, Write};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let puts: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = args.get(3).cloned().unwrap_or_else(|| "/tmp/halka-fsync-probe".into());
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Arc::new(
        FjallEngine::open(FjallOptions { sync: SyncPolicy::Always, ..FjallOptions::new(&dir) })
            .expect("open"),
    );
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let node = NodeId::new("n");
                let mut lat = Vec::with_capacity(puts);
                for i in 0..puts {
                    let w = Write::value(Some(Bytes::from(vec![b'x'; 100])), None, 0);
                    let t0 = Instant::now();
                    engine.apply_write(format!("k{t}-{i}").as_bytes(), &node, &w).expect("write");
                    lat.push(t0.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().expect("thread")).collect();
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{} puts in {secs:.2}s = {:.0}/s; p50 {} µs p99 {} µs max {} µs",
        all.len(),
        all.len() as f64 / secs,
        q(0.5),
        q(0.99),
        q(1.0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
