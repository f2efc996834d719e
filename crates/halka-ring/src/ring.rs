//! Consistent-hash rings: one token per node (the seed's V2) and many virtual nodes per node
//! (V3). A key belongs to the first token at or after its hash, wrapping around; its
//! preference list continues clockwise, skipping nodes already chosen (V4).

use crate::hash::token;
use crate::member::{canonical, idx};
use crate::{Member, NodeIdx, Placement, PlacementError, PreferenceList};

const MAX_VNODES: u32 = 100_000;

/// A ring with `vnodes × weight` tokens per node.
#[derive(Debug, Clone)]
pub struct VnodeRing {
    members: Vec<Member>,
    vnodes: u32,
    // Structure of arrays: the binary search touches only `tokens`.
    tokens: Vec<u64>,
    owners: Vec<NodeIdx>,
    /// For each token, the first `width` distinct nodes clockwise from it, so a lookup is a
    /// binary search and a copy instead of a walk that skips repeats.
    successors: Vec<NodeIdx>,
    width: usize,
}

/// Preference-list length precomputed per token; longer lists walk the ring.
const PRECOMPUTED_WIDTH: usize = 8;

impl VnodeRing {
    /// Builds a ring where each member holds `vnodes × weight` tokens.
    ///
    /// # Errors
    /// See [`PlacementError`].
    pub fn new(members: &[Member], vnodes: u32) -> Result<Self, PlacementError> {
        if vnodes == 0 || vnodes > MAX_VNODES {
            return Err(PlacementError::BadVnodeCount(vnodes));
        }
        let members = canonical(members)?;
        let mut points: Vec<(u64, NodeIdx)> = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let count = vnodes.saturating_mul(m.weight);
            points.extend((0..count).map(|v| (token(&m.id, v), idx(i))));
        }
        // Ties between tokens are astronomically rare; ordering by node keeps them
        // deterministic anyway.
        points.sort_unstable();
        let (tokens, owners): (Vec<u64>, Vec<NodeIdx>) = points.into_iter().unzip();
        let width = members.len().min(PRECOMPUTED_WIDTH);
        let mut successors = Vec::with_capacity(tokens.len() * width);
        let mut list = PreferenceList::new();
        for start in 0..tokens.len() {
            walk(&owners, start, width, &mut list);
            successors.extend_from_slice(&list);
        }
        Ok(Self { members, vnodes, tokens, owners, successors, width })
    }

    #[must_use]
    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }

    #[inline]
    fn start(&self, hash: u64) -> usize {
        let i = self.tokens.partition_point(|&t| t < hash);
        if i == self.tokens.len() { 0 } else { i }
    }
}

impl Placement for VnodeRing {
    fn name(&self) -> &'static str {
        "vnode-ring"
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn owner(&self, hash: u64) -> NodeIdx {
        self.owners[self.start(hash)]
    }

    #[inline]
    fn preference_list_into(&self, hash: u64, n: usize, out: &mut PreferenceList) {
        let start = self.start(hash);
        let want = n.min(self.members.len()).min(crate::MAX_REPLICAS);
        if want <= self.width {
            out.set_from(&self.successors[start * self.width..start * self.width + want]);
        } else {
            walk(&self.owners, start, want, out);
        }
    }
}

/// The first `want` distinct owners clockwise from token `start`.
fn walk(owners: &[NodeIdx], start: usize, want: usize, out: &mut PreferenceList) {
    out.clear();
    let len = owners.len();
    let mut i = start;
    // Bounded: after one full turn every node has been seen.
    for _ in 0..len {
        if out.len() == want {
            break;
        }
        out.push_distinct(owners[i]);
        i += 1;
        if i == len {
            i = 0;
        }
    }
}

/// One token per node: the seed's basic ring. Cheap membership changes, poor balance.
#[derive(Debug, Clone)]
pub struct Ring(VnodeRing);

impl Ring {
    /// # Errors
    /// See [`PlacementError`].
    pub fn new(members: &[Member]) -> Result<Self, PlacementError> {
        // Weights are validated, then ignored: a single token cannot express capacity.
        let unweighted: Vec<Member> =
            canonical(members)?.into_iter().map(|m| Member { weight: 1, ..m }).collect();
        VnodeRing::new(&unweighted, 1).map(Ring)
    }
}

impl Placement for Ring {
    fn name(&self) -> &'static str {
        "ring"
    }

    fn members(&self) -> &[Member] {
        self.0.members()
    }

    #[inline]
    fn owner(&self, hash: u64) -> NodeIdx {
        self.0.owner(hash)
    }

    fn preference_list_into(&self, hash: u64, n: usize, out: &mut PreferenceList) {
        self.0.preference_list_into(hash, n, out);
    }
}
