//! Replicas that recently failed, passed over until they answer again.
//!
//! A write waits for its coordinating replica, and a read for the replicas it asked, so a
//! replica that is down or hung would cost every request routed to it — a full deadline
//! as coordinator, a hedge delay as a read replica. After any failure (also one that
//! arrives after the request returned, from a straggler) the replica is *suspected*:
//! requests ask the others first. It stays in the preference list and still receives
//! every record (a suspicion is not a membership change). Any successful answer clears
//! the suspicion. When it has lasted `SUSPICION` without news, exactly one request — the
//! first to look — asks the replica again as a probe, and the suspicion is renewed for
//! everyone else meanwhile; the probe's answer clears or renews it.

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

    /// Whether any replica is suspected (or was, with its suspicion not yet looked at
    /// since it lapsed): when not, no replica needs asking about.
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    pub(crate) fn clear(&self, node: &NodeId) {
        // Every answer clears its replica: look before taking the write lock, so healthy
        // replicas cost a shared read while another is suspected.
        if !self.any.load(Ordering::Acquire) || !self.until.read().contains_key(node) {
            return;
        }
        if self.until.write().remove(node).is_some() {
            let empty = self.until.read().is_empty();
            self.any.store(!empty, Ordering::Release);
        }
    }

    /// Whether to pass `node` over. Free when nothing is suspected (the common case). A
    /// lapsed suspicion answers `false` to one caller (the probe) and is renewed for the
    /// rest.
    pub(crate) fn is_suspected(&self, node: &NodeId) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        match self.until.read().get(node) {
            None => return false,
            Some(&t) if now < t => return true,
            Some(_) => {}
        }
        // Lapsed: whoever renews it first probes.
        let mut until = self.until.write();
        match until.get_mut(node) {
            Some(t) if *t <= now => {
                *t = now + SUSPICION;
                false
            }
            Some(_) => true,
            None => false,
        }
    }
}
