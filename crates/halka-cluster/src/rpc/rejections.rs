//! Turned-away peer connections, counted in full and logged sparingly.
//!
//! Every rejection counts in `halka_peer_connections_rejected_total`, but a flood of
//! strangers must not become a flood of log lines (one line each once filled 100 MB a
//! minute). So the log shows the first rejection of each `interval` in full, and the rest
//! of that interval as one summary line with a count per reason.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// How often a rejection is logged in full.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Rejections {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_line: Option<Instant>,
    unlogged: BTreeMap<&'static str, u64>,
}

impl Rejections {
    pub fn new(interval: Duration) -> Self {
        Self { interval, state: Mutex::new(State::default()) }
    }

    /// Counts a connection from `peer` turned away for `reason`, and logs it with `detail`
    /// unless another was logged less than an interval ago.
    pub fn reject(&self, peer: SocketAddr, reason: &'static str, detail: impl Display) {
        crate::telemetry::count_rejected_peer(reason);
        if self.note(reason, Instant::now()) {
            tracing::warn!(%peer, reason, "rejected a peer connection: {detail}");
        }
    }

    /// Logs one line for the rejections not logged since the last summary, if any. Called
    /// every interval.
    pub fn summarise(&self) {
        let unlogged = std::mem::take(&mut self.state.lock().unlogged);
        if unlogged.is_empty() {
            return;
        }
        let total: u64 = unlogged.values().sum();
        let reasons: Vec<String> = unlogged.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        tracing::warn!(
            "rejected {total} more peer connections in the last {}s ({})",
            self.interval.as_secs(),
            reasons.join(", ")
        );
    }

    /// Whether a rejection at `now` is logged in full; if not, it waits for the summary.
    fn note(&self, reason: &'static str, now: Instant) -> bool {
        let mut state = self.state.lock();
        if state.last_line.is_none_or(|at| now.duration_since(at) >= self.interval) {
            state.last_line = Some(now);
            return true;
        }
        *state.unlogged.entry(reason).or_default() += 1;
        false
    }

    #[cfg(test)]
    fn unlogged(&self) -> u64 {
        self.state.lock().unlogged.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_one_line_per_interval_and_counts_the_rest() {
        let r = Rejections::new(INTERVAL);
        let start = Instant::now();
        let logged = (0..1000).filter(|_| r.note("busy", start)).count();
        assert_eq!((logged, r.unlogged()), (1, 999));
        assert!(r.note("timeout", start + INTERVAL), "the next interval logs again");
    }

    #[test]
    fn a_summary_takes_what_was_not_logged() {
        let r = Rejections::new(INTERVAL);
        let now = Instant::now();
        (0..3).for_each(|_| {
            r.note("not_a_peer", now);
        });
        r.summarise();
        assert_eq!(r.unlogged(), 0);
    }
}
