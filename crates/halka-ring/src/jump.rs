//! Jump consistent hash (Lamping & Veach, 2014): no table, perfect balance, minimal movement —
//! but only when nodes are added or removed at the end of the bucket list. Buckets here are
//! members in id order, so a new node that sorts last moves only the keys it takes.
//! Replicas beyond the first come from re-hashing the key, skipping nodes already chosen.

use crate::hash::mix;
use crate::member::{canonical, idx};
use crate::{Member, NodeIdx, Placement, PlacementError, PreferenceList};

#[derive(Debug, Clone)]
pub struct Jump {
    members: Vec<Member>,
}

impl Jump {
    /// # Errors
    /// See [`PlacementError`].
    pub fn new(members: &[Member]) -> Result<Self, PlacementError> {
        Ok(Self { members: canonical(members)? })
    }
}

/// The published algorithm, with its linear congruential step.
#[inline]
fn jump(mut key: u64, buckets: i64) -> i64 {
    let (mut b, mut j) = (-1_i64, 0_i64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1_i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b
}

impl Placement for Jump {
    fn name(&self) -> &'static str {
        "jump"
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn owner(&self, hash: u64) -> NodeIdx {
        idx(jump(hash, self.members.len() as i64) as usize)
    }

    fn preference_list_into(&self, hash: u64, n: usize, out: &mut PreferenceList) {
        out.clear();
        let len = self.members.len();
        let want = n.min(len).min(crate::MAX_REPLICAS);
        out.push_distinct(self.owner(hash));
        // Re-hash for further replicas; after a bounded number of tries fall back to a scan
        // so the list is always complete.
        let mut attempt = 1_u64;
        while out.len() < want && attempt < 64 {
            out.push_distinct(idx(jump(mix(hash, attempt), len as i64) as usize));
            attempt += 1;
        }
        let first = usize::from(out[0]);
        for i in 1..len {
            if out.len() == want {
                break;
            }
            out.push_distinct(idx((first + i) % len));
        }
    }
}
