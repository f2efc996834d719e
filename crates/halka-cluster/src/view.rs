//! An immutable membership snapshot: placement plus the replica for each member.
//!
//! Requests load the current view once and use it throughout, so a membership change never
//! tears a request in half. A change swaps in a new view, then takes the old view's gate
//! for writing — which waits for every request still using it — and retires it; a request
//! that reaches a retired view's gate late reloads the current view instead.

use crate::Replica;
use halka_ring::{Member, NodeIdx, Placement, PreferenceList, key_hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

#[derive(Debug)]
pub struct View {
    epoch: u64,
    placement: Option<Box<dyn Placement>>,
    /// Indexed by `NodeIdx` (members sorted by id).
    replicas: Vec<Arc<dyn Replica>>,
    replication: usize,
    gate: Arc<RwLock<()>>,
    retired: AtomicBool,
}

/// Holding this keeps a view from being retired.
pub type ViewGuard = OwnedRwLockReadGuard<()>;

impl View {
    /// A view over `placement`'s members; `replicas[i]` serves member `i`.
    #[must_use]
    pub fn new(
        epoch: u64,
        placement: Option<Box<dyn Placement>>,
        replicas: Vec<Arc<dyn Replica>>,
        replication: usize,
    ) -> Self {
        Self {
            epoch,
            placement,
            replicas,
            replication,
            gate: Arc::new(RwLock::new(())),
            retired: AtomicBool::new(false),
        }
    }

    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Members sorted by id.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        self.placement.as_ref().map_or(&[], |p| p.members())
    }

    #[must_use]
    pub fn placement(&self) -> Option<&dyn Placement> {
        self.placement.as_deref()
    }

    /// Replicas a key actually gets: N, or fewer while the cluster is smaller than N.
    #[must_use]
    pub fn width(&self) -> usize {
        self.replication.min(self.replicas.len())
    }

    /// The preference list for `key`.
    #[must_use]
    pub fn preference(&self, key: &[u8]) -> PreferenceList {
        let mut out = PreferenceList::new();
        if let Some(p) = &self.placement {
            p.preference_list_into(key_hash(key), self.replication, &mut out);
        }
        out
    }

    #[must_use]
    pub fn replica(&self, idx: NodeIdx) -> &Arc<dyn Replica> {
        &self.replicas[usize::from(idx)]
    }

    #[must_use]
    pub fn replicas(&self) -> &[Arc<dyn Replica>] {
        &self.replicas
    }

    pub(crate) async fn enter(self: &Arc<Self>) -> Option<ViewGuard> {
        let guard = Arc::clone(&self.gate).read_owned().await;
        (!self.retired.load(Ordering::Acquire)).then_some(guard)
    }

    /// Waits for every request using this view to finish, then retires it.
    pub(crate) async fn retire(&self) {
        let _exclusive = self.gate.write().await;
        self.retired.store(true, Ordering::Release);
    }
}
