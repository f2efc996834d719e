//! Rendezvous (highest random weight) hashing: every node scores every key; the N highest
//! scores win. Minimal movement and good balance with no table, at O(nodes) per lookup.
//! Weights use the logarithmic method, score = weight / -ln(u), so a node's share is
//! proportional to its weight.

use crate::hash::{mix, node_seed};
use crate::member::{canonical, idx};
use crate::{Member, NodeIdx, Placement, PlacementError, PreferenceList};

#[derive(Debug, Clone)]
pub struct Rendezvous {
    members: Vec<Member>,
    seeds: Vec<u64>,
    weights: Vec<f64>,
    uniform: bool,
}

impl Rendezvous {
    /// # Errors
    /// See [`PlacementError`].
    pub fn new(members: &[Member]) -> Result<Self, PlacementError> {
        let members = canonical(members)?;
        let seeds = members.iter().map(|m| node_seed(&m.id)).collect();
        let weights: Vec<f64> = members.iter().map(|m| f64::from(m.weight)).collect();
        let uniform = members.iter().all(|m| m.weight == members[0].weight);
        Ok(Self { members, seeds, weights, uniform })
    }

    #[inline]
    fn score(&self, hash: u64, i: usize) -> f64 {
        let h = mix(hash, self.seeds[i]);
        if self.uniform {
            // Monotone in h, so equal weights need no logarithm.
            return h as f64;
        }
        // u in (0, 1]: never 0, so ln(u) is finite.
        let u = ((h >> 11) + 1) as f64 / (1_u64 << 53) as f64;
        self.weights[i] / -u.ln()
    }
}

impl Placement for Rendezvous {
    fn name(&self) -> &'static str {
        "rendezvous"
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    fn owner(&self, hash: u64) -> NodeIdx {
        let mut best = (f64::MIN, 0);
        for i in 0..self.members.len() {
            let s = self.score(hash, i);
            if s > best.0 {
                best = (s, i);
            }
        }
        idx(best.1)
    }

    fn preference_list_into(&self, hash: u64, n: usize, out: &mut PreferenceList) {
        out.clear();
        let want = n.min(self.members.len()).min(crate::MAX_REPLICAS);
        // Keep the top `want` (score, node) pairs in a small sorted buffer.
        let mut top: [(f64, NodeIdx); crate::MAX_REPLICAS] = [(f64::MIN, 0); crate::MAX_REPLICAS];
        let mut len = 0;
        for i in 0..self.members.len() {
            let s = self.score(hash, i);
            if len < want {
                len += 1;
            } else if s <= top[len - 1].0 {
                continue;
            }
            let mut j = len - 1;
            while j > 0 && top[j - 1].0 < s {
                top[j] = top[j - 1];
                j -= 1;
            }
            top[j] = (s, idx(i));
        }
        for &(_, node) in &top[..len] {
            out.push_distinct(node);
        }
    }
}
