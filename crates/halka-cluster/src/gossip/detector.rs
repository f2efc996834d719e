//! Phi-accrual failure detection (Hayashibara et al., 2004; as Cassandra and Akka use it).
//!
//! Instead of "down after T without news", the detector says how unlikely the silence so
//! far is, given how often news of the node usually arrives: `phi = -log10(P(silence
//! this long))`. With arrivals modelled as a Poisson process (inter-arrival times
//! exponential with the observed mean), `P(silence ≥ t) = e^(-t/mean)`, so
//! `phi = t / mean · log10(e)`: phi 8 is a silence 18.4 times the usual gap, a chance of
//! one in 10^8 that a live node was merely slow. A node whose news comes irregularly
//! (a busy network, a relayed heartbeat) has a larger mean and so needs a longer silence.
//!
//! Pure: the caller passes the time, so the tests use no clock at all.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// How the detector judges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Above this phi a node is convicted (down).
    pub threshold: f64,
    /// How many of the latest gaps the mean is taken over.
    pub window: usize,
    /// The gap assumed before any heartbeat arrived (also the first sample), so a node
    /// that never answers is convicted after `threshold / log10(e)` times this.
    pub prior: Duration,
    /// Gaps longer than this are not sampled (a node that was down and came back would
    /// otherwise make every later silence look normal).
    pub max_gap: Duration,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            threshold: 8.0,
            window: 100,
            prior: Duration::from_millis(500),
            max_gap: Duration::from_secs(10),
        }
    }
}

/// The heartbeats of one node, as they arrived here.
#[derive(Debug, Clone)]
pub struct Arrivals {
    gaps: VecDeque<f64>,
    sum: f64,
    last: Instant,
}

impl Arrivals {
    /// Starts watching a node at `now`, as if a heartbeat had just arrived.
    #[must_use]
    pub fn new(now: Instant, config: &DetectorConfig) -> Self {
        let prior = config.prior.as_secs_f64();
        Self { gaps: VecDeque::from([prior]), sum: prior, last: now }
    }

    /// A heartbeat arrived at `now`.
    pub fn heartbeat(&mut self, now: Instant, config: &DetectorConfig) {
        let gap = now.saturating_duration_since(self.last);
        self.last = now;
        if gap > config.max_gap || gap.is_zero() {
            return;
        }
        let gap = gap.as_secs_f64();
        self.gaps.push_back(gap);
        self.sum += gap;
        while self.gaps.len() > config.window.max(1) {
            if let Some(old) = self.gaps.pop_front() {
                self.sum -= old;
            }
        }
    }

    /// How long no heartbeat has arrived, at `now`.
    #[must_use]
    pub fn silence(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last)
    }

    /// How unlikely the silence since the last heartbeat is, at `now`.
    #[must_use]
    pub fn phi(&self, now: Instant) -> f64 {
        let mean = (self.sum / self.gaps.len() as f64).max(1e-3);
        let silence = now.saturating_duration_since(self.last).as_secs_f64();
        silence / mean * std::f64::consts::LOG10_E
    }

    /// When the last heartbeat arrived.
    #[must_use]
    pub fn last(&self) -> Instant {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DetectorConfig {
        DetectorConfig { prior: Duration::from_secs(1), ..DetectorConfig::default() }
    }

    fn steady(every: Duration, beats: u32) -> (Arrivals, Instant) {
        let config = config();
        let mut now = Instant::now();
        let mut arrivals = Arrivals::new(now, &config);
        for _ in 0..beats {
            now += every;
            arrivals.heartbeat(now, &config);
        }
        (arrivals, now)
    }

    #[test]
    fn phi_is_zero_right_after_a_heartbeat() {
        let (arrivals, now) = steady(Duration::from_millis(500), 10);
        assert!(arrivals.phi(now) < 1e-9);
    }

    #[test]
    fn a_silence_of_eighteen_usual_gaps_crosses_phi_eight() {
        let (arrivals, now) = steady(Duration::from_secs(1), 200);
        assert!(arrivals.phi(now + Duration::from_secs(17)) < 8.0);
        assert!(arrivals.phi(now + Duration::from_secs(19)) > 8.0);
    }

    #[test]
    fn a_node_heard_often_is_convicted_sooner_than_one_heard_rarely() {
        let (often, t1) = steady(Duration::from_millis(100), 200);
        let (rarely, t2) = steady(Duration::from_secs(2), 200);
        let silence = Duration::from_secs(3);
        assert!(often.phi(t1 + silence) > 8.0);
        assert!(rarely.phi(t2 + silence) < 1.0);
    }

    #[test]
    fn a_node_never_heard_is_convicted_after_eighteen_priors() {
        let config = config();
        let start = Instant::now();
        let arrivals = Arrivals::new(start, &config);
        assert!(arrivals.phi(start + Duration::from_secs(18)) < 8.0);
        assert!(arrivals.phi(start + Duration::from_secs(19)) > 8.0);
    }

    #[test]
    fn a_long_outage_is_not_taken_for_a_usual_gap() {
        let config = config();
        let (mut arrivals, now) = steady(Duration::from_millis(500), 50);
        let back = now + Duration::from_secs(60);
        arrivals.heartbeat(back, &config);
        // Had the outage been sampled, the mean would be about 1.7 s.
        assert!(arrivals.phi(back + Duration::from_secs(10)) > 8.0);
    }

    #[test]
    fn only_the_window_of_latest_gaps_counts() {
        let config = DetectorConfig { window: 10, ..config() };
        let mut now = Instant::now();
        let mut arrivals = Arrivals::new(now, &config);
        for _ in 0..100 {
            now += Duration::from_secs(5);
            arrivals.heartbeat(now, &config);
        }
        for _ in 0..10 {
            now += Duration::from_millis(100);
            arrivals.heartbeat(now, &config);
        }
        assert!(arrivals.phi(now + Duration::from_secs(3)) > 8.0);
    }
}
