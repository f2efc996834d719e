//! `halka cluster ...`: an operator's layout changes, sent to one member over the Redis
//! protocol (`HALKA.CLUSTER`), shown as text or JSON.

use crate::cli::{ClusterAction, ClusterArgs};
use crate::client::RespClient;
use crate::cluster_admin::{CommitReport, LayoutStatus, Transfers};
use crate::commands::{check, text};
use anyhow::Context;
use halka_cluster::membership::Plan;
use std::fmt::Write as _;
use std::time::Duration;

/// Runs one `halka cluster` action against the node at `--addr`.
///
/// # Errors
/// The node cannot be reached, or refuses the action (its error says why).
pub async fn run(args: &ClusterArgs) -> anyhow::Result<String> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut client = RespClient::connect(&args.addr, timeout).await?;
    if let Some(password) = &args.password {
        client.log_in(&args.user, password).await?;
    }
    let reply = match &args.action {
        ClusterAction::Status => ask(&mut client, &["STATUS"]).await?,
        ClusterAction::Join { node, zone, weight } => {
            let mut words = vec!["JOIN".to_string(), node.clone()];
            if let Some(z) = zone {
                words.extend(["ZONE".into(), z.clone()]);
            }
            if let Some(w) = weight {
                words.extend(["WEIGHT".into(), w.to_string()]);
            }
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            ask(&mut client, &words).await?
        }
        ClusterAction::Leave { node } => ask(&mut client, &["LEAVE", node]).await?,
        ClusterAction::Replace { old, node } => ask(&mut client, &["REPLACE", old, node]).await?,
        ClusterAction::Plan => ask(&mut client, &["PLAN"]).await?,
        ClusterAction::Commit { wait } => {
            let reply = ask(&mut client, &["COMMIT"]).await?;
            if *wait {
                let report: CommitReport = serde_json::from_str(&reply)?;
                wait_for_change(&mut client, report.layout_version).await?;
            }
            reply
        }
        ClusterAction::Clear => ask(&mut client, &["CLEAR"]).await?,
    };
    if args.json {
        return Ok(reply);
    }
    Ok(match &args.action {
        ClusterAction::Status => status_text(&serde_json::from_str(&reply)?),
        ClusterAction::Commit { .. } => commit_text(&serde_json::from_str(&reply)?),
        ClusterAction::Clear => "staged changes dropped".into(),
        _ => plan_text(&serde_json::from_str(&reply)?),
    })
}

async fn ask(client: &mut RespClient, words: &[&str]) -> anyhow::Result<String> {
    let mut args: Vec<&[u8]> = vec![b"HALKA.CLUSTER"];
    args.extend(words.iter().map(|w| w.as_bytes()));
    let reply = check(client.call(&args).await?)?;
    text(&reply).context("the node answered HALKA.CLUSTER with something other than text")
}

/// Shows how the change to `version` goes until every member has retired the older
/// layouts (a member that has left may be stopped then), polling the node twice a second:
/// a bar of partitions moved on a terminal, a line whenever it changes otherwise.
async fn wait_for_change(client: &mut RespClient, version: u64) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} partitions {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut rate = Rate::new();
    let mut last = String::new();
    loop {
        let status: LayoutStatus = serde_json::from_str(&ask(client, &["STATUS"]).await?)?;
        let over = |phase: &str| matches!(phase, "retired" | "gone");
        if status.layout_version > version
            || (status.layout_version == version && status.nodes.iter().all(|n| over(&n.phase)))
        {
            bar.finish_and_clear();
            eprintln!("layout version {version}: every partition has moved");
            return Ok(());
        }
        let t = &status.transfers;
        let phases: Vec<String> =
            status.nodes.iter().map(|n| format!("{} {}", n.id, n.phase)).collect();
        let message = format!("{}; {}", rate.describe(t), phases.join(", "));
        if terminal {
            bar.set_length((t.done + t.pending) as u64);
            bar.set_position(t.done as u64);
            bar.set_message(message);
        } else {
            let line = format!(
                "layout version {version}: {}/{} partitions, {message}",
                t.done,
                t.done + t.pending
            );
            if line != last {
                eprintln!("{line}");
                last = line;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The rate a change moves bytes at, since the wait began.
struct Rate {
    started: std::time::Instant,
    /// The bytes moved when the wait began.
    first: Option<u64>,
}

impl Rate {
    fn new() -> Self {
        Self { started: std::time::Instant::now(), first: None }
    }

    /// "12 MB of ~40 MB, 8.0 MB/s, 3 s left" (what is known of it).
    fn describe(&mut self, t: &Transfers) -> String {
        let first = *self.first.get_or_insert(t.bytes_done);
        let secs = self.started.elapsed().as_secs_f64();
        let per_second = (secs > 0.0).then(|| t.bytes_done.saturating_sub(first) as f64 / secs);
        let mb = |b: f64| b / 1e6;
        let mut out = format!("{:.0} MB", mb(t.bytes_done as f64));
        if let Some(total) = t.bytes_total {
            out += &format!(" of ~{:.0} MB", mb(total as f64));
        }
        if let Some(rate) = per_second.filter(|r| *r > 0.0) {
            out += &format!(", {:.1} MB/s", mb(rate));
            if let Some(total) = t.bytes_total {
                let left = total.saturating_sub(t.bytes_done) as f64 / rate;
                out += &format!(", {left:.0} s left");
            }
        }
        out
    }
}

fn status_text(s: &LayoutStatus) -> String {
    let mut out = format!("layout version {} (asked {})\n", s.layout_version, s.node);
    if s.active_versions.len() > 1 {
        let _ = writeln!(
            out,
            "changing: versions {:?} active, reads from the {} layout; {} partitions moved, {} \
             to go ({} streaming now), {:.0} MB moved",
            s.active_versions,
            if s.reads_newest { "new" } else { "old" },
            s.transfers.done,
            s.transfers.pending,
            s.transfers.active,
            s.transfers.bytes_done as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "{:<12} {:<8} {:<6} {:>6} {:<22} {:<22} {:<6} phase",
        "node", "state", "alive", "phi", "peer", "redis", "weight"
    );
    let phi = |p: Option<f64>| p.map_or_else(|| "-".to_string(), |p| format!("{p:.1}"));
    for n in &s.nodes {
        let _ = writeln!(
            out,
            "{:<12} {:<8} {:<6} {:>6} {:<22} {:<22} {:<6} {}",
            n.id,
            n.state,
            n.alive,
            phi(n.phi),
            n.peer_addr,
            n.redis_addr,
            n.weight,
            n.phase
        );
    }
    for a in &s.announced {
        let _ = writeln!(
            out,
            "announced by gossip, not a member: {} (peer {}, alive {}, phi {}): \
             `halka cluster join {}` stages it",
            a.id,
            a.peer_addr,
            a.alive,
            phi(a.phi),
            a.id
        );
    }
    if !s.staged.is_empty() {
        let _ = writeln!(out, "staged, not committed: {:?}", s.staged);
    }
    out
}

fn plan_text(p: &Plan) -> String {
    let mut out =
        format!("layout version {} -> {}: {} partition copies move\n", p.from, p.to, p.transfers);
    let _ = writeln!(
        out,
        "{:<12} {:<8} {:>7} {:>7} {:>8} {:>6} {:>6}",
        "node", "state", "before", "after", "ideal", "gains", "loses"
    );
    for n in &p.nodes {
        let _ = writeln!(
            out,
            "{:<12} {:<8} {:>7} {:>7} {:>8.1} {:>6} {:>6}",
            n.id,
            n.state.as_str(),
            n.before,
            n.after,
            n.ideal,
            n.gains,
            n.loses
        );
    }
    out.push_str("commit with `halka cluster commit`");
    out
}

fn commit_text(r: &CommitReport) -> String {
    if r.ours {
        format!("committed layout version {}", r.layout_version)
    } else {
        format!(
            "layout version {} went to another commit (layout {}); your changes stay staged: \
             see `halka cluster plan`, then commit again",
            r.layout_version,
            r.layout.fingerprint()
        )
    }
}
