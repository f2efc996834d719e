//! Placement statistics: how evenly a placement spreads keys, and how many keys move when
//! the membership changes. Used by the simulator and by the property tests.

use crate::{Placement, PreferenceList};

/// Spread of per-node load, each node's count divided by its weight share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Most-loaded node's load over the mean (1.0 is perfect).
    pub max_over_mean: f64,
    /// Coefficient of variation: standard deviation over mean (0.0 is perfect).
    pub cv: f64,
}

/// Spread of `counts`, normalised by `weights` (same length).
#[must_use]
pub fn spread(counts: &[u64], weights: &[u32]) -> Spread {
    let total_w: f64 = weights.iter().map(|&w| f64::from(w)).sum();
    let total_c: f64 = counts.iter().map(|&c| c as f64).sum();
    if counts.is_empty() || total_c == 0.0 {
        return Spread { max_over_mean: 1.0, cv: 0.0 };
    }
    // Load relative to a node's fair share: 1.0 means exactly its share.
    let rel: Vec<f64> = counts
        .iter()
        .zip(weights)
        .map(|(&c, &w)| c as f64 / (total_c * f64::from(w) / total_w))
        .collect();
    let mean = rel.iter().sum::<f64>() / rel.len() as f64;
    let var = rel.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rel.len() as f64;
    let max = rel.iter().copied().fold(f64::MIN, f64::max);
    Spread { max_over_mean: max / mean, cv: var.sqrt() / mean }
}

/// Keys per node as primary owner, and replica slots per node for `n` replicas.
#[must_use]
pub fn loads(placement: &dyn Placement, hashes: &[u64], n: usize) -> (Vec<u64>, Vec<u64>) {
    let len = placement.members().len();
    let (mut primary, mut slots) = (vec![0_u64; len], vec![0_u64; len]);
    let mut pl = PreferenceList::new();
    for &h in hashes {
        placement.preference_list_into(h, n, &mut pl);
        if let Some(&first) = pl.first() {
            primary[usize::from(first)] += 1;
        }
        for &node in pl.iter() {
            slots[usize::from(node)] += 1;
        }
    }
    (primary, slots)
}

/// Fractions of keys whose owner changed, and of replica slots that moved to a node that
/// did not hold them before, between two placements. Nodes are matched by id, since a
/// node's index shifts when others join.
#[must_use]
pub fn moved(
    before: &dyn Placement,
    after: &dyn Placement,
    hashes: &[u64],
    n: usize,
) -> (f64, f64) {
    // Map `before` indices to `after` indices by member id.
    let remap: Vec<Option<u16>> = before
        .members()
        .iter()
        .map(|m| after.members().iter().position(|a| a.id == m.id).map(crate::member::idx))
        .collect();
    let (mut keys_moved, mut slots_moved, mut slots_total) = (0_u64, 0_u64, 0_u64);
    let (mut old, mut new) = (PreferenceList::new(), PreferenceList::new());
    for &h in hashes {
        before.preference_list_into(h, n, &mut old);
        after.preference_list_into(h, n, &mut new);
        let old_mapped = |i: usize| remap[usize::from(old[i])];
        if old_mapped(0) != new.first().copied() {
            keys_moved += 1;
        }
        for &node in new.iter() {
            if !(0..old.len()).any(|i| old_mapped(i) == Some(node)) {
                slots_moved += 1;
            }
        }
        slots_total += new.len() as u64;
    }
    let keys = hashes.len().max(1) as f64;
    (keys_moved as f64 / keys, slots_moved as f64 / slots_total.max(1) as f64)
}
