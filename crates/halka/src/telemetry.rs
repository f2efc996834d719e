//! The node's Prometheus metrics: the process-wide recorder, the help text of each
//! series, and the upkeep that keeps histograms from growing without bound.

use crate::config::NodeConfig;
use halka_store::NodeId;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The process-wide Prometheus recorder (one per process, shared by nodes in one process).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    1.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .clone()
}

/// HELP text for every metric a node exports; counters start at zero (see
/// `halka_cluster::telemetry`).
pub(crate) fn describe_metrics(config: &NodeConfig) {
    metrics::describe_counter!("halka_requests_total", "Client requests, by protocol and op");
    metrics::describe_histogram!(
        "halka_request_duration_seconds",
        metrics::Unit::Seconds,
        "Client request latency, by protocol and op"
    );
    metrics::describe_gauge!("halka_connected_clients", "Open Redis-protocol connections");
    metrics::gauge!("halka_connected_clients").set(0.0);
    metrics::describe_counter!(
        "halka_auth_failures_total",
        "Failed logins (AUTH, HELLO AUTH, HTTP Basic): a wrong password, an unknown or disabled user"
    );
    metrics::describe_counter!(
        "halka_auth_throttled_total",
        "Logins made to wait because their source address kept failing, by protocol"
    );
    metrics::describe_counter!(
        "halka_acl_denied_total",
        "Commands refused by a user's rules (NOPERM), by reason: command or key"
    );
    metrics::describe_counter!(
        "halka_tls_handshake_failures_total",
        "Client TLS handshakes that failed, by listener (redis, http)"
    );
    metrics::describe_counter!(
        "halka_tls_reloads_total",
        "Certificate reloads (SIGHUP or a changed file), by result"
    );
    metrics::counter!("halka_auth_failures_total").absolute(0);
    let members: Vec<NodeId> = config.members.iter().map(|m| NodeId::new(&m.id)).collect();
    halka_cluster::telemetry::describe(&members);
}

/// How often latency histograms are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets until `shutdown`. The recorder
/// keeps every sample until then (or until a scrape), so a node nobody scrapes would
/// otherwise grow by about 20 MB per million requests.
pub(crate) async fn metrics_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
