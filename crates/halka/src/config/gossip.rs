//! `[gossip]`: how often a node gossips and how sure its failure detector must be before
//! it counts a member as down.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Gossip and failure detection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipSettings {
    /// Milliseconds between a node's gossip rounds (each raises its heartbeat).
    pub interval_ms: u64,
    /// Phi above which a member counts as down. 8 convicts a node silent for about 18
    /// times its usual gap between heartbeats (a chance of 1 in 10^8 that it was only
    /// slow); lower convicts sooner and wrongly more often.
    pub phi_threshold: f64,
    /// Seconds a node that is no member (one that left, once its change is over; one
    /// replaced; one never joined) stays in gossip tables and `halka cluster status`
    /// after the last news of it.
    pub forget_after_secs: u64,
}

impl Default for GossipSettings {
    fn default() -> Self {
        Self { interval_ms: 500, phi_threshold: 8.0, forget_after_secs: 3600 }
    }
}

// A configuration is compared whole (`NodeConfig: Eq`); a phi threshold that is NaN never
// passes validation, so equality is an equivalence for every settings a node runs with.
impl Eq for GossipSettings {}

impl GossipSettings {
    /// What is wrong with these settings, if anything.
    pub(super) fn problem(&self) -> Option<String> {
        let interval_ok = (10..=60_000).contains(&self.interval_ms);
        let phi_ok = self.phi_threshold.is_finite() && (1.0..=100.0).contains(&self.phi_threshold);
        let forget_ok = (60..=7 * 24 * 3600).contains(&self.forget_after_secs);
        (!interval_ok || !phi_ok || !forget_ok).then(|| {
            "interval_ms must be from 10 to 60000, phi_threshold from 1 to 100 and \
             forget_after_secs from 60 to 604800 (a week)"
                .to_string()
        })
    }

    /// The gossip configuration with these settings.
    #[must_use]
    pub fn apply(&self) -> halka_cluster::gossip::GossipConfig {
        let interval = Duration::from_millis(self.interval_ms);
        halka_cluster::gossip::GossipConfig {
            interval,
            // A swap slower than four rounds is of no use to the detector.
            deadline: interval.saturating_mul(4),
            detector: halka_cluster::gossip::DetectorConfig {
                threshold: self.phi_threshold,
                prior: interval,
                max_gap: interval.saturating_mul(20),
                ..halka_cluster::gossip::DetectorConfig::default()
            },
            forget_after: Duration::from_secs(self.forget_after_secs),
            ..halka_cluster::gossip::GossipConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::NodeConfig;

    fn parse(text: &str) -> Result<NodeConfig, String> {
        let config: NodeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.finish("node.toml").map_err(|e| e.to_string())
    }

    const SECRET: &str = "cluster_secret = \"0123456789abcdef0123\"\n";

    #[test]
    fn seeds_without_a_member_list_make_a_node_that_waits_to_be_joined() {
        let c = parse(&format!("{SECRET}seeds = [\"127.0.0.1:7380\"]\n")).unwrap();
        assert!(c.join);
        assert_eq!(c.seeds, ["127.0.0.1:7380"]);
    }

    #[test]
    fn a_seed_that_is_not_an_address_is_refused_saying_so() {
        let e = parse(&format!("{SECRET}seeds = [\"node-1\"]\n")).unwrap_err();
        assert!(e.contains("seeds") && e.contains("\"node-1\" is not a peer address"), "{e}");
    }

    #[test]
    fn gossip_settings_out_of_range_are_refused_saying_what_is_allowed() {
        for bad in [
            "interval_ms = 0",
            "phi_threshold = 0.5",
            "phi_threshold = nan",
            "forget_after_secs = 5",
        ] {
            let e = parse(&format!("[gossip]\n{bad}\n")).unwrap_err();
            assert!(
                e.contains("gossip") && e.contains("phi_threshold from 1 to 100"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_phi_threshold_and_interval_reach_the_detector() {
        let c = parse("[gossip]\ninterval_ms = 200\nphi_threshold = 12\nforget_after_secs = 90\n")
            .unwrap();
        let applied = c.gossip.apply();
        assert_eq!(applied.forget_after, std::time::Duration::from_secs(90));
        assert_eq!(applied.interval, std::time::Duration::from_millis(200));
        assert_eq!(applied.detector.prior, std::time::Duration::from_millis(200));
        assert!((applied.detector.threshold - 12.0).abs() < f64::EPSILON);
    }
}
