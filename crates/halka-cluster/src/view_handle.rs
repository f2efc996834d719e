//! A node's current view, swapped as layouts are installed and changes move on, with the
//! node's clock and its failure detector's judgement: what the coordinator and the
//! services beside it read.

use crate::view::View;
use std::sync::Arc;
use tokio::sync::Notify;

/// The current view, the node's clock and who the failure detector convicts: what the
/// services beside the coordinator (handoff, anti-entropy, tombstone collection) read,
/// without holding the coordinator.
/// Cheap to clone; every clone sees the view the coordinator last installed.
#[derive(Debug, Clone)]
pub struct ViewHandle {
    current: Arc<arc_swap::ArcSwap<View>>,
    /// Held while a view is kept and installed (see [`ViewHandle::transition`]).
    transitions: Arc<parking_lot::Mutex<()>>,
    /// Views replaced while requests may still be inside them (see
    /// [`ViewHandle::settle`]).
    replaced: Arc<parking_lot::Mutex<Vec<Arc<View>>>>,
    /// Woken whenever a view is installed.
    changed: Arc<Notify>,
    clock: crate::Clock,
    liveness: crate::gossip::Liveness,
}

impl ViewHandle {
    #[must_use]
    pub fn new(view: View, clock: crate::Clock) -> Self {
        Self {
            current: Arc::new(arc_swap::ArcSwap::from_pointee(view)),
            transitions: Arc::default(),
            replaced: Arc::default(),
            changed: Arc::default(),
            clock,
            liveness: crate::gossip::Liveness::default(),
        }
    }

    /// Moves to `view` if the current view is still `from` (any view with `None`): keeps
    /// it with `keep` first, and installs it only if that succeeded. Two transitions never
    /// interleave, so a node never installs one view while keeping another (a change
    /// step computed from a view that an install replaced meanwhile is dropped).
    ///
    /// Returns whether `view` was installed.
    ///
    /// # Errors
    /// `keep`'s error; nothing is installed then.
    pub fn transition(
        &self,
        from: Option<&Arc<View>>,
        keep: impl FnOnce(&View) -> std::io::Result<()>,
        view: View,
    ) -> std::io::Result<bool> {
        let _one_at_a_time = self.transitions.lock();
        if let Some(from) = from
            && !Arc::ptr_eq(&self.current.load(), from)
        {
            return Ok(false);
        }
        keep(&view)?;
        let old = self.current.swap(Arc::new(view));
        self.replaced(old);
        Ok(true)
    }

    /// Notes `old`, just replaced, until no request is left inside it.
    fn replaced(&self, old: Arc<View>) {
        let mut replaced = self.replaced.lock();
        // A view only this list holds has no request inside, and none can enter it.
        replaced.retain(|v| Arc::strong_count(v) > 1);
        replaced.push(old);
        self.changed.notify_waiters();
    }

    /// Resolves when a view is installed after this call.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Resolves once no request that began under a view replaced before this call is
    /// still under way: from then on, every request this node coordinates follows the
    /// current view. A node takes a layout change up only then, so that when it says
    /// it has, no write it acknowledged later went to the old layout's owners alone.
    pub async fn settle(&self) {
        let replaced = std::mem::take(&mut *self.replaced.lock());
        for view in replaced {
            view.retire().await;
        }
    }

    /// The current view.
    #[must_use]
    pub fn view(&self) -> Arc<View> {
        self.current.load_full()
    }

    /// A handle that does not keep the views alive: for what the views' replicas hold
    /// (a node's own replica holds its transfers, which read the views).
    #[must_use]
    pub fn downgrade(&self) -> std::sync::Weak<arc_swap::ArcSwap<View>> {
        Arc::downgrade(&self.current)
    }

    /// The node's wall clock in microseconds (the coordinator's timestamps).
    #[must_use]
    pub fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    /// The current view without touching its reference count (see `View::enter`).
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<View>> {
        self.current.load()
    }

    /// Installs `view`; returns the one it replaces.
    pub(crate) fn swap(&self, view: View) -> Arc<View> {
        let old = self.current.swap(Arc::new(view));
        self.replaced(Arc::clone(&old));
        old
    }

    pub(crate) fn set_clock(&mut self, clock: crate::Clock) {
        self.clock = clock;
    }

    /// Who the failure detector convicts (nobody, on a node without gossip): a service
    /// leaves a convicted member alone until it is back.
    #[must_use]
    pub fn liveness(&self) -> &crate::gossip::Liveness {
        &self.liveness
    }

    pub(crate) fn set_liveness(&mut self, liveness: crate::gossip::Liveness) {
        self.liveness = liveness;
    }
}
