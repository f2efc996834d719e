//! `hash % n`: the seed project's first step (V1). Balanced, but changing `n` remaps almost
//! every key — about n/(n+1) of them — which is the lesson the simulator shows.

use crate::member::{canonical, idx};
use crate::{Member, NodeIdx, Placement, PlacementError, PreferenceList};

#[derive(Debug, Clone)]
pub struct Modulo {
    members: Vec<Member>,
}

impl Modulo {
    /// # Errors
    /// See [`PlacementError`].
    pub fn new(members: &[Member]) -> Result<Self, PlacementError> {
        Ok(Self { members: canonical(members)? })
    }
}

impl Placement for Modulo {
    fn name(&self) -> &'static str {
        "modulo"
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn owner(&self, hash: u64) -> NodeIdx {
        idx((hash % self.members.len() as u64) as usize)
    }

    fn preference_list_into(&self, hash: u64, n: usize, out: &mut PreferenceList) {
        out.clear();
        let len = self.members.len();
        let first = (hash % len as u64) as usize;
        let mut node = first;
        for _ in 0..n.min(len).min(crate::MAX_REPLICAS) {
            out.push_distinct(idx(node));
            node += 1;
            if node == len {
                node = 0;
            }
        }
    }
}
