//! The metrics the coordinator records, described for exporters.
//!
//! Counters appear at zero from the start: an alert on `rate(...)` or a dashboard panel
//! then has a series to read before the first failure, rather than none at all.

use crate::ReplicaError;
use halka_store::NodeId;

pub(crate) const QUORUM_FAILURES: &str = "halka_quorum_failures_total";
pub(crate) const READ_REPAIRS: &str = "halka_read_repairs_total";
pub(crate) const REPLICA_ERRORS: &str = "halka_replica_errors_total";
pub(crate) const BACKGROUND_DROPPED: &str = "halka_background_dropped_total";
pub(crate) const HINTS_STORED: &str = "halka_hints_stored_total";
pub(crate) const HINTS_DROPPED: &str = "halka_hints_dropped_total";
pub(crate) const HINTS_DELIVERED: &str = "halka_hints_delivered_total";
pub(crate) const HINTS_PENDING: &str = "halka_hints_pending";
pub(crate) const STAND_IN_ACKS: &str = "halka_stand_in_acks_total";
pub(crate) const TOMBSTONES_PENDING: &str = "halka_tombstones_pending";
pub(crate) const TOMBSTONES_OLDEST: &str = "halka_tombstones_oldest_seconds";
pub(crate) const TOMBSTONES_COLLECTED: &str = "halka_tombstones_collected_total";
pub(crate) const AAE_EXCHANGES: &str = "halka_anti_entropy_exchanges_total";
pub(crate) const AAE_DIVERGENT: &str = "halka_anti_entropy_keys_divergent_total";
pub(crate) const AAE_REPAIRED: &str = "halka_anti_entropy_keys_repaired_total";
pub(crate) const AAE_OLDEST: &str = "halka_anti_entropy_oldest_uncompared_seconds";
pub(crate) const PEERS_REJECTED: &str = "halka_peer_connections_rejected_total";
pub(crate) const TRANSFER_RECORDS: &str = "halka_transfer_records_total";
pub(crate) const TRANSFER_BYTES: &str = "halka_transfer_bytes_total";
pub(crate) const TRANSFER_DONE: &str = "halka_transfer_partitions_done_total";
pub(crate) const TRANSFER_PENDING: &str = "halka_transfer_partitions_pending";
pub(crate) const LAYOUT_VERSION: &str = "halka_layout_version";
pub(crate) const MEMBERS_DOWN: &str = "halka_members_down";

/// Every value of the `reason` label of [`PEERS_REJECTED`].
const REJECT_REASONS: [&str; 9] = [
    "not_a_peer",
    "own_id",
    "wrong_secret",
    "wrong_node",
    "refused",
    "io",
    "timeout",
    "busy",
    "displaced",
];

pub(crate) fn count_rejected_peer(reason: &'static str) {
    metrics::counter!(PEERS_REJECTED, "reason" => reason).increment(1);
}

/// Every value of the `kind` label, as [`error_kind`] gives them.
const ERROR_KINDS: [&str; 5] = ["timeout", "unavailable", "lost", "storage", "rejected"];

/// The `kind` label of a replica error.
pub(crate) fn error_kind(e: &ReplicaError) -> &'static str {
    match e {
        ReplicaError::Timeout(_) => "timeout",
        ReplicaError::Unavailable(_) => "unavailable",
        ReplicaError::Lost(_) => "lost",
        ReplicaError::Storage(_) => "storage",
        ReplicaError::NoSpace(_) => "no_space",
        ReplicaError::Rejected(_) => "rejected",
    }
}

pub(crate) fn count_replica_error(replica: &NodeId, e: &ReplicaError) {
    metrics::counter!(REPLICA_ERRORS, "replica" => replica.to_string(), "kind" => error_kind(e))
        .increment(1);
}

/// Describes the coordinator's metrics to the installed recorder and registers its
/// counters at zero, one series per replica in `replicas` for the per-replica ones.
pub fn describe(replicas: &[NodeId]) {
    metrics::describe_counter!(
        QUORUM_FAILURES,
        "Requests that failed because too few replicas answered (op: read or write)"
    );
    metrics::describe_counter!(
        READ_REPAIRS,
        "Merged records written back to replicas that answered a read with stale data"
    );
    metrics::describe_counter!(
        REPLICA_ERRORS,
        "Replica calls that failed, by replica and kind (timeout, unavailable, storage, rejected)"
    );
    metrics::describe_counter!(
        BACKGROUND_DROPPED,
        "Straggler calls and repairs dropped because the background queue was full"
    );
    metrics::describe_counter!(
        PEERS_REJECTED,
        "Connections to the peer port closed before serving anything, by reason \
         (wrong_secret, own_id, not_a_peer, timeout, busy, ...)"
    );
    metrics::describe_counter!(
        HINTS_STORED,
        "Writes kept as hints for a replica that did not acknowledge them"
    );
    metrics::describe_counter!(
        HINTS_DROPPED,
        "Hints not kept, or evicted oldest first, because their owner's hints were at the \
         byte bound (anti-entropy repairs those keys), or refused by their owner"
    );
    metrics::describe_counter!(HINTS_DELIVERED, "Hints handed to their owner and removed");
    metrics::describe_gauge!(HINTS_PENDING, "Hints waiting for their owner");
    metrics::describe_counter!(
        STAND_IN_ACKS,
        "Write acknowledgements from a node standing in for an owner that did not answer"
    );
    metrics::describe_gauge!(
        TOMBSTONES_PENDING,
        "Deleted keys whose tombstones are still stored, waiting for collection"
    );
    metrics::describe_gauge!(
        TOMBSTONES_OLDEST,
        "Age in seconds of the oldest tombstone still stored"
    );
    metrics::describe_counter!(
        TOMBSTONES_COLLECTED,
        "Tombstones removed once every owner held them and the grace had passed"
    );
    metrics::describe_counter!(
        AAE_EXCHANGES,
        "Anti-entropy exchanges with another replica, by result (ok, failed)"
    );
    metrics::describe_counter!(
        AAE_DIVERGENT,
        "Keys anti-entropy found different between this node and another replica"
    );
    metrics::describe_counter!(
        AAE_REPAIRED,
        "Records anti-entropy sent to or took from another replica"
    );
    metrics::describe_gauge!(
        AAE_OLDEST,
        "Seconds since the part of the hash space compared longest ago was last compared \
         with every other replica"
    );
    describe_transfers();
    for result in ["ok", "failed"] {
        metrics::counter!(AAE_EXCHANGES, "result" => result).increment(0);
    }
    for counter in [AAE_DIVERGENT, AAE_REPAIRED] {
        metrics::counter!(counter).increment(0);
    }
    for counter in [HINTS_STORED, HINTS_DROPPED, HINTS_DELIVERED, TOMBSTONES_COLLECTED] {
        metrics::counter!(counter).increment(0);
    }
    for gauge in [HINTS_PENDING, TOMBSTONES_PENDING, TOMBSTONES_OLDEST] {
        metrics::gauge!(gauge).set(0.0);
    }
    for reason in REJECT_REASONS {
        metrics::counter!(PEERS_REJECTED, "reason" => reason).increment(0);
    }
    for op in ["read", "write"] {
        metrics::counter!(QUORUM_FAILURES, "op" => op).increment(0);
    }
    metrics::counter!(READ_REPAIRS).increment(0);
    metrics::counter!(BACKGROUND_DROPPED).increment(0);
    for replica in replicas {
        for kind in ERROR_KINDS {
            metrics::counter!(REPLICA_ERRORS, "replica" => replica.to_string(), "kind" => kind)
                .increment(0);
        }
    }
}

/// The partition transfers' metrics (see `Transfers`).
fn describe_transfers() {
    metrics::describe_counter!(
        TRANSFER_RECORDS,
        "Records streamed into this node from old owners of partitions it gained in layout \
         changes"
    );
    metrics::describe_counter!(
        TRANSFER_BYTES,
        "Bytes streamed into this node in layout changes (keys, values and per-version \
         overhead, as batches are weighed)"
    );
    metrics::describe_counter!(
        TRANSFER_DONE,
        "Partitions this node gained in layout changes and holds in full"
    );
    metrics::describe_gauge!(
        TRANSFER_PENDING,
        "Partitions this node gains in the change under way and does not hold yet"
    );
    metrics::describe_gauge!(LAYOUT_VERSION, "The newest layout version this node has installed");
    metrics::describe_gauge!(
        MEMBERS_DOWN,
        "Nodes this node's failure detector holds down (phi above [gossip] phi_threshold)"
    );
    for counter in [TRANSFER_RECORDS, TRANSFER_BYTES, TRANSFER_DONE] {
        metrics::counter!(counter).increment(0);
    }
    for gauge in [TRANSFER_PENDING, LAYOUT_VERSION, MEMBERS_DOWN] {
        metrics::gauge!(gauge).set(0.0);
    }
}
