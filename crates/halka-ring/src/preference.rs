use crate::NodeIdx;
use std::ops::Deref;

/// Largest replication factor a preference list can hold.
pub const MAX_REPLICAS: usize = 16;

/// The distinct nodes that hold a key, best first. Inline and `Copy` so a lookup on the hot
/// path never allocates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PreferenceList {
    len: u8,
    nodes: [NodeIdx; MAX_REPLICAS],
}

impl PreferenceList {
    #[must_use]
    pub const fn new() -> Self {
        Self { len: 0, nodes: [0; MAX_REPLICAS] }
    }

    /// Appends `node` unless it is already present or the list is full. Returns whether it
    /// was added.
    #[inline]
    pub fn push_distinct(&mut self, node: NodeIdx) -> bool {
        let len = usize::from(self.len);
        if len == MAX_REPLICAS || self.nodes[..len].contains(&node) {
            return false;
        }
        self.nodes[len] = node;
        self.len += 1;
        true
    }

    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    #[inline]
    pub(crate) fn set_from(&mut self, nodes: &[NodeIdx]) {
        let n = nodes.len().min(MAX_REPLICAS);
        self.nodes[..n].copy_from_slice(&nodes[..n]);
        self.len = n as u8;
    }
}

impl Default for PreferenceList {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for PreferenceList {
    type Target = [NodeIdx];
    #[inline]
    fn deref(&self) -> &[NodeIdx] {
        &self.nodes[..usize::from(self.len)]
    }
}

impl std::ops::DerefMut for PreferenceList {
    #[inline]
    fn deref_mut(&mut self) -> &mut [NodeIdx] {
        &mut self.nodes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for PreferenceList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
