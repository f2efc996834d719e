use crate::{
    Jump, Member, Modulo, NodeIdx, Partitioned, PlacementError, PreferenceList, Rendezvous, Ring,
    VnodeRing, key_hash,
};
use std::fmt;

/// A placement scheme built over a fixed member list.
///
/// Implementations are immutable once built: a membership change builds a new placement,
/// which callers swap in atomically. That keeps lookups lock-free.
pub trait Placement: Send + Sync + fmt::Debug {
    /// Short name of the strategy, e.g. `"vnode-ring"`.
    fn name(&self) -> &'static str;

    /// Members sorted by id; [`NodeIdx`] values index into this slice.
    fn members(&self) -> &[Member];

    /// The node that owns a key hash (the first entry of its preference list).
    fn owner(&self, hash: u64) -> NodeIdx;

    /// Fills `out` with up to `n` distinct nodes for `hash`, best first. Fewer than `n` when
    /// there are fewer members (or, for `Partitioned`, when `n` exceeds the width its table
    /// was built with).
    fn preference_list_into(&self, hash: u64, n: usize, out: &mut PreferenceList);

    /// Convenience: hashes `key` and returns its preference list.
    fn preference_list(&self, key: &[u8], n: usize) -> PreferenceList {
        let mut out = PreferenceList::new();
        self.preference_list_into(key_hash(key), n, &mut out);
        out
    }
}

/// A placement strategy and its parameters: what a configuration file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    Modulo,
    Ring,
    VnodeRing { vnodes: u32 },
    Partitioned { partitions: u32 },
    Jump,
    Rendezvous,
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::Partitioned { partitions: crate::DEFAULT_PARTITIONS }
    }
}

impl Strategy {
    /// Builds the placement for `members`. `replicas` is the preference-list width the
    /// placement must support (only `Partitioned` precomputes it).
    ///
    /// # Errors
    /// Empty or duplicate members, zero weights, or parameters out of range.
    pub fn build(
        self,
        members: &[Member],
        replicas: usize,
    ) -> Result<Box<dyn Placement>, PlacementError> {
        Ok(match self {
            Strategy::Modulo => Box::new(Modulo::new(members)?),
            Strategy::Ring => Box::new(Ring::new(members)?),
            Strategy::VnodeRing { vnodes } => Box::new(VnodeRing::new(members, vnodes)?),
            Strategy::Partitioned { partitions } => {
                Box::new(Partitioned::new(members, partitions, replicas)?)
            }
            Strategy::Jump => Box::new(Jump::new(members)?),
            Strategy::Rendezvous => Box::new(Rendezvous::new(members)?),
        })
    }

    /// The strategy's name as reported by [`Placement::name`].
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Modulo => "modulo",
            Strategy::Ring => "ring",
            Strategy::VnodeRing { .. } => "vnode-ring",
            Strategy::Partitioned { .. } => "partitioned",
            Strategy::Jump => "jump",
            Strategy::Rendezvous => "rendezvous",
        }
    }
}
