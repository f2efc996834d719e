use crate::ReplicaError;
use halka_ring::PlacementError;
use halka_store::{LimitError, NodeId};
use std::fmt;
use thiserror::Error;

/// Why a cluster operation failed. Messages say what was wrong and what is allowed.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// `w` or `r` outside `1..=n`; rejected before any I/O.
    #[error("{name}={given} {}", quorum_hint(*.given, *.n))]
    BadQuorum { name: &'static str, given: usize, n: usize },
    /// `pw` (owner acknowledgements) above `w`; rejected before any I/O.
    #[error(
        "pw={pw} exceeds w={w}: owners' acknowledgements are among the w; allowed range is 0..={w}"
    )]
    OwnerQuorum { pw: usize, w: usize },
    /// The cluster has fewer nodes than the quorum needs.
    #[error("{name}={given} needs {given} replicas but the cluster has only {nodes} node(s)")]
    TooFewNodes { name: &'static str, given: usize, nodes: usize },
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    #[error("node {0:?} is already a member")]
    DuplicateNode(String),
    #[error("node {0:?} is not a member")]
    UnknownNode(String),
    /// Its messages say what is wrong with the placement.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// This node has no layout yet: it waits to be joined to a cluster.
    #[error(
        "this node is not in a cluster yet: join it from a member (`halka cluster join \
         PEER_ADDR --addr MEMBER`), then commit"
    )]
    NotInCluster,
    /// This node was replaced (it is gone from the newest layout): it serves no clients,
    /// since the members no longer take its requests.
    #[error(
        "this node was replaced in layout version {version} and is no longer a member: \
         connect to a member ({})",
        members.join(", ")
    )]
    Replaced { version: u64, members: Vec<String> },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A command that reads a whole collection found more than it may hold in memory.
    #[error(
        "the collection holds more than {max} bytes, more than one reply may carry \
         (limits.max_reply_bytes)"
    )]
    CollectionTooLarge { max: usize },
    /// The key holds a string where a collection was asked for, or another kind of
    /// collection (Redis's words, with their own prefix).
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// The coordinating replica refused a write that has no condition to fail (a record
    /// at its size limit, say).
    #[error(transparent)]
    Refused(halka_store::Refusal),
    #[error("storage: {0}")]
    Storage(String),
}

fn quorum_hint(given: usize, n: usize) -> String {
    if given == 0 {
        format!("is invalid; it must be between 1 and the replication factor n={n}")
    } else {
        format!("exceeds replication factor n={n}; allowed range is 1..={n}")
    }
}

/// Not enough replicas answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct QuorumError {
    /// `"write"` or `"read"`.
    pub op: &'static str,
    pub required: usize,
    pub succeeded: usize,
    /// Calls still unanswered when the quorum became impossible (the request returns at
    /// once then; these finish in the background and may still succeed).
    pub in_flight: usize,
    pub replicas: usize,
    /// Replicas that failed, and why.
    pub failures: Vec<(NodeId, ReplicaError)>,
}

impl QuorumError {
    /// Whether every replica that failed did so for lack of disk space: the client hears
    /// that, not just that the quorum was missed.
    #[must_use]
    pub fn for_lack_of_space(&self) -> bool {
        !self.failures.is_empty()
            && self.failures.iter().all(|(_, e)| matches!(e, ReplicaError::NoSpace(_)))
    }
}

impl fmt::Display for QuorumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.op {
            "write" => "w",
            "owner-write" => "pw",
            _ => "r",
        };
        if self.op == "list" {
            write!(
                f,
                "list failed: {} of {} members must answer, {} answered",
                self.required, self.replicas, self.succeeded
            )?;
        } else {
            write!(
                f,
                "{} quorum not reached: {name}={} of {} replicas, {} answered",
                self.op, self.required, self.replicas, self.succeeded
            )?;
        }
        if self.in_flight > 0 {
            write!(f, " and {} still in flight", self.in_flight)?;
        }
        for (i, (node, err)) in self.failures.iter().enumerate() {
            f.write_str(if i == 0 { "; failed: " } else { ", " })?;
            write!(f, "{node} ({err})")?;
        }
        if self.op == "write" || self.op == "owner-write" {
            // No rollback, as in Dynamo: replicas that took the write keep it, and a later
            // read or repair may spread it.
            f.write_str("; the write may still be stored on the replicas it reached")?;
        }
        Ok(())
    }
}

/// Checks `1 <= given <= n`.
///
/// # Errors
/// [`ClusterError::BadQuorum`] with a message naming the allowed range.
pub fn check_quorum(name: &'static str, given: usize, n: usize) -> Result<(), ClusterError> {
    if given == 0 || given > n {
        return Err(ClusterError::BadQuorum { name, given, n });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_errors_name_the_allowed_range() {
        let e = check_quorum("w", 4, 3).unwrap_err();
        assert_eq!(e.to_string(), "w=4 exceeds replication factor n=3; allowed range is 1..=3");
        let e = check_quorum("r", 0, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r=0 is invalid; it must be between 1 and the replication factor n=3"
        );
        assert!(check_quorum("w", 3, 3).is_ok());
    }

    #[test]
    fn quorum_failures_say_what_was_needed_and_what_failed() {
        let failures = vec![(NodeId::new("b"), ReplicaError::Timeout(500))];
        let e = QuorumError {
            op: "write",
            required: 3,
            succeeded: 2,
            in_flight: 0,
            replicas: 3,
            failures,
        };
        assert_eq!(
            e.to_string(),
            "write quorum not reached: w=3 of 3 replicas, 2 answered; failed: b (timed out \
             after 500 ms); the write may still be stored on the replicas it reached"
        );
        let e = QuorumError { in_flight: 1, failures: vec![], ..e };
        assert_eq!(
            e.to_string(),
            "write quorum not reached: w=3 of 3 replicas, 2 answered and 1 still in flight; \
             the write may still be stored on the replicas it reached"
        );
        let e = QuorumError { op: "read", required: 2, succeeded: 1, in_flight: 0, ..e };
        assert_eq!(e.to_string(), "read quorum not reached: r=2 of 3 replicas, 1 answered");
        let e = QuorumError { op: "list", ..e };
        assert_eq!(e.to_string(), "list failed: 2 of 3 members must answer, 1 answered");
    }
}
