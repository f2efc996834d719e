//! Who is down, as the failure detector last judged: one shared answer for the request
//! paths, hinted handoff, anti-entropy and tombstone collection.
//!
//! The gossip service judges every node once a round and publishes the result here; the
//! request paths only read it. Reading is free while nobody is convicted (one atomic
//! load), which is the common case.

use arc_swap::ArcSwap;
use halka_store::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One node as the detector sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub phi: f64,
    pub convicted: bool,
}

/// The detector's latest judgement of every node it watches. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    any_convicted: AtomicBool,
    judged: ArcSwap<BTreeMap<NodeId, Judged>>,
}

impl Liveness {
    /// Replaces the judgement.
    pub fn publish(&self, judged: BTreeMap<NodeId, Judged>) {
        let any = judged.values().any(|j| j.convicted);
        self.inner.judged.store(Arc::new(judged));
        self.inner.any_convicted.store(any, Ordering::Release);
    }

    /// Whether `node` is convicted. A node the detector does not watch is not.
    #[must_use]
    pub fn convicted(&self, node: &NodeId) -> bool {
        self.inner.any_convicted.load(Ordering::Acquire)
            && self.inner.judged.load().get(node).is_some_and(|j| j.convicted)
    }

    /// Whether any node is convicted.
    #[must_use]
    pub fn any_convicted(&self) -> bool {
        self.inner.any_convicted.load(Ordering::Acquire)
    }

    /// `node` as last judged, if watched.
    #[must_use]
    pub fn judged(&self, node: &NodeId) -> Option<Judged> {
        self.inner.judged.load().get(node).copied()
    }

    /// Every node watched.
    #[must_use]
    pub fn all(&self) -> Arc<BTreeMap<NodeId, Judged>> {
        self.inner.judged.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_not_watched_is_not_convicted() {
        let liveness = Liveness::default();
        assert!(!liveness.convicted(&NodeId::new("a")));
    }

    #[test]
    fn the_latest_judgement_is_what_every_clone_reads() {
        let liveness = Liveness::default();
        let reader = liveness.clone();
        let down = Judged { phi: 12.0, convicted: true };
        liveness.publish(BTreeMap::from([(NodeId::new("a"), down)]));
        assert!(reader.convicted(&NodeId::new("a")));
        assert!(reader.any_convicted());
        liveness
            .publish(BTreeMap::from([(NodeId::new("a"), Judged { phi: 0.1, convicted: false })]));
        assert!(!reader.convicted(&NodeId::new("a")));
        assert!(!reader.any_convicted());
    }
}
