//! `halka sim`: the placement simulator. It replays the seed project's story in numbers —
//! modulo hashing moves almost every key, a plain ring is unbalanced, virtual nodes balance
//! as 1/sqrt(vnodes), and a partitioned table is both balanced and cheap to change.

mod plot;

use halka_ring::stats::{loads, moved, spread};
use halka_ring::{Member, Placement, PreferenceList, Strategy, key_hash};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub keys: usize,
    pub nodes: usize,
    pub add: usize,
    pub replicas: usize,
    pub vnodes: Vec<u32>,
    pub partitions: u32,
    pub plot: Option<PathBuf>,
}

/// One strategy at one setting. Field names are the JSON output's contract.
#[derive(Debug, Clone, Serialize)]
pub struct SimRow {
    pub strategy: &'static str,
    pub vnodes: Option<u32>,
    pub partitions: Option<u32>,
    pub nodes: usize,
    pub keys: usize,
    pub replicas: usize,
    pub load_max_over_mean: f64,
    pub load_cv: f64,
    pub slot_cv: Option<f64>,
    pub moved_fraction: Option<f64>,
    pub slot_moved_fraction: Option<f64>,
    pub ideal_moved_fraction: Option<f64>,
    pub lookup_ns: f64,
    /// Per-node primary load relative to the mean, for the plot (not in JSON).
    #[serde(skip)]
    pub node_loads: Vec<f64>,
}

/// The strategies and settings a run covers, in output order.
fn settings(opts: &SimOptions) -> Vec<Strategy> {
    let mut out = vec![Strategy::Modulo, Strategy::Ring];
    out.extend(opts.vnodes.iter().map(|&vnodes| Strategy::VnodeRing { vnodes }));
    out.push(Strategy::Partitioned { partitions: opts.partitions });
    out.push(Strategy::Jump);
    out.push(Strategy::Rendezvous);
    out
}

fn members(count: usize) -> Vec<Member> {
    // Equal-length names: the case where an affine token hash such as CRC-32 fails.
    (1..=count).map(|i| Member::new(format!("node-{i:04}"))).collect()
}

/// Runs the simulation and returns one row per strategy setting.
///
/// # Errors
/// A strategy that cannot be built from the options (e.g. a bad partition count).
pub fn run(opts: &SimOptions) -> anyhow::Result<Vec<SimRow>> {
    anyhow::ensure!(opts.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(opts.keys >= 1, "--keys must be at least 1");
    anyhow::ensure!(
        (1..=halka_ring::MAX_REPLICAS).contains(&opts.replicas),
        "--replicas must be between 1 and {}",
        halka_ring::MAX_REPLICAS
    );
    let keys: Vec<String> = (0..opts.keys).map(|i| format!("key-{i:012}")).collect();
    let hashes: Vec<u64> = keys.iter().map(|k| key_hash(k.as_bytes())).collect();
    let before = members(opts.nodes);
    let after = members(opts.nodes + opts.add);
    let settings = settings(opts);

    let bar = ProgressBar::new(settings.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows = Vec::with_capacity(settings.len());
    for strategy in settings {
        bar.set_message(strategy.name());
        let placement = strategy.build(&before, opts.replicas)?;
        let (primary, slots) = loads(placement.as_ref(), &hashes, opts.replicas);
        let weights = vec![1; primary.len()];
        let load = spread(&primary, &weights);
        let mean = primary.iter().sum::<u64>() as f64 / primary.len() as f64;
        let (moved_keys, moved_slots, ideal) = if opts.add > 0 {
            let grown = strategy.build(&after, opts.replicas)?;
            let (k, s) = moved(placement.as_ref(), grown.as_ref(), &hashes, opts.replicas);
            (Some(k), Some(s), Some(opts.add as f64 / (opts.nodes + opts.add) as f64))
        } else {
            (None, None, None)
        };
        rows.push(SimRow {
            strategy: strategy.name(),
            vnodes: match strategy {
                Strategy::VnodeRing { vnodes } => Some(vnodes),
                Strategy::Ring => Some(1),
                _ => None,
            },
            partitions: match strategy {
                Strategy::Partitioned { partitions } => Some(partitions),
                _ => None,
            },
            nodes: opts.nodes,
            keys: opts.keys,
            replicas: opts.replicas,
            load_max_over_mean: load.max_over_mean,
            load_cv: load.cv,
            slot_cv: (opts.replicas > 1).then(|| spread(&slots, &weights).cv),
            moved_fraction: moved_keys,
            slot_moved_fraction: moved_slots,
            ideal_moved_fraction: ideal,
            lookup_ns: lookup_ns(placement.as_ref(), &keys, opts.replicas),
            node_loads: primary.iter().map(|&c| c as f64 / mean).collect(),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(path) = &opts.plot {
        plot::draw(path, &rows)?;
    }
    Ok(rows)
}

/// Mean time to hash a key and fill its preference list, measured over the key set.
fn lookup_ns(placement: &dyn Placement, keys: &[String], n: usize) -> f64 {
    let mut out = PreferenceList::new();
    let sample = &keys[..keys.len().min(200_000)];
    // One pass to warm caches, one measured.
    for pass in 0..2 {
        let start = Instant::now();
        for k in sample {
            placement.preference_list_into(key_hash(k.as_bytes()), n, &mut out);
            std::hint::black_box(&out);
        }
        if pass == 1 {
            return start.elapsed().as_nanos() as f64 / sample.len() as f64;
        }
    }
    unreachable!("the loop returns on its second pass")
}

fn opt(v: Option<f64>, pct: bool) -> String {
    match v {
        Some(x) if pct => format!("{:.2}%", x * 100.0),
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    }
}

/// Human-readable table.
#[must_use]
pub fn table(rows: &[SimRow]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9}",
        "strategy",
        "vnodes",
        "parts",
        "max/mean",
        "cv",
        "slot cv",
        "moved",
        "slots mv",
        "ideal",
        "lookup ns"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<12} {:>7} {:>6} {:>9.3} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9.1}",
            r.strategy,
            r.vnodes.map_or("-".into(), |v| v.to_string()),
            r.partitions.map_or("-".into(), |v| v.to_string()),
            r.load_max_over_mean,
            opt(Some(r.load_cv), true),
            opt(r.slot_cv, true),
            opt(r.moved_fraction, true),
            opt(r.slot_moved_fraction, true),
            opt(r.ideal_moved_fraction, true),
            r.lookup_ns,
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimOptions {
        SimOptions {
            keys: 20_000,
            nodes: 6,
            add: 1,
            replicas: 3,
            vnodes: vec![1, 100],
            partitions: 1024,
            plot: None,
        }
    }

    #[test]
    fn covers_every_strategy_once_per_setting() {
        let rows = run(&small()).unwrap();
        let names: Vec<_> = rows.iter().map(|r| r.strategy).collect();
        assert_eq!(
            names,
            ["modulo", "ring", "vnode-ring", "vnode-ring", "partitioned", "jump", "rendezvous"]
        );
        let modulo = &rows[0];
        assert!((modulo.moved_fraction.unwrap() - 6.0 / 7.0).abs() < 0.02);
        assert!(rows[4].load_cv < rows[1].load_cv, "partitioned beats a one-token ring");
    }

    #[test]
    fn plot_writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.png");
        run(&SimOptions { plot: Some(path.clone()), ..small() }).unwrap();
        let png = std::fs::read(path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let err =
            run(&SimOptions { plot: Some(dir.path().join("sim.gif")), ..small() }).unwrap_err();
        assert!(err.to_string().contains("must end in .svg or .png"), "{err}");
    }

    /// Run alone too (`cargo test plot_writes_an_svg`): the PNG test used to register the
    /// font this one silently relied on, and `halka sim --plot x.svg` failed.
    #[test]
    fn plot_writes_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.svg");
        run(&SimOptions { plot: Some(path.clone()), ..small() }).unwrap();
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(svg.contains("<svg") && svg.contains("vnode-ring"));
    }

    #[test]
    fn the_plot_names_lines_that_coincide_together_and_shows_movement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.svg");
        run(&SimOptions { plot: Some(path.clone()), ..small() }).unwrap();
        let svg = std::fs::read_to_string(path).unwrap();
        // `ring` places as `vnode-ring 1` does: one line, both names.
        assert!(svg.contains("ring = vnode-ring 1"), "the ring's line is not hidden");
        assert!(svg.contains("keys moved when a node joins"));
        assert!(svg.contains("ideal 14.3%"));
    }
}
