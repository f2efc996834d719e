//! Replicas that recently failed as coordinators.
//!
//! A write waits for its coordinating replica before anything else happens, so a replica
//! that is down or hung costs every write routed to it first — a full deadline when it is
//! hung. After such a failure the replica is *suspected* for a while: coordinators try the
//! others first. It stays in the preference list and still receives the record (a
//! suspicion is not a membership change), and it is tried again once the suspicion lapses.

use halka_store::NodeId;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How long a failed coordinating replica is passed over.
pub(crate) const SUSPICION: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub(crate) struct Suspects {
    any: AtomicBool,
    until: RwLock<HashMap<NodeId, Instant>>,
}

impl Suspects {
    pub(crate) fn suspect(&self, node: &NodeId) {
        self.until.write().insert(node.clone(), Instant::now() + SUSPICION);
        self.any.store(true, Ordering::Release);
    }

    pub(crate) fn clear(&self, node: &NodeId) {
        if self.any.load(Ordering::Acquire) && self.until.write().remove(node).is_some() {
            let empty = self.until.read().is_empty();
            self.any.store(!empty, Ordering::Release);
        }
    }

    /// Whether `node` failed recently. Free when nothing is suspected (the common case).
    pub(crate) fn is_suspected(&self, node: &NodeId) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.until.read().get(node).is_some_and(|&t| Instant::now() < t)
    }
}
