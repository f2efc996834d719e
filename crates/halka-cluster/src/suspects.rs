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
//!
//! A node whose gossip runs also has a failure detector (see `gossip`): a replica it
//! convicts is passed over without probes until its heartbeats return, and the write
//! path skips it outright (stand-ins take its writes, and it gets hints). The two
//! complement each other: a failed call is evidence at once, the detector notices a node
//! that no request happened to reach, and a node that is alive but hangs.

use crate::gossip::Liveness;
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
    detector: Option<Liveness>,
}

impl Suspects {
    /// Suspects that also pass over whom `detector` convicts.
    pub(crate) fn with_detector(detector: Liveness) -> Self {
        Self { detector: Some(detector), ..Self::default() }
    }

    /// Whether the failure detector convicts `node`.
    pub(crate) fn convicted(&self, node: &NodeId) -> bool {
        self.detector.as_ref().is_some_and(|d| d.convicted(node))
    }

    pub(crate) fn suspect(&self, node: &NodeId) {
        self.until.write().insert(node.clone(), Instant::now() + SUSPICION);
        self.any.store(true, Ordering::Release);
    }

    /// Whether any replica is suspected (or was, with its suspicion not yet looked at
    /// since it lapsed): when not, no replica needs asking about.
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
            || self.detector.as_ref().is_some_and(Liveness::any_convicted)
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
        if self.convicted(node) {
            return true;
        }
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
