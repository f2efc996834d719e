//! The store's default placement: a fixed number of partitions (Dynamo's strategy 3, as in
//! Riak and Garage) with a precomputed replica table.
//!
//! A key's partition is the top `log2(Q)` bits of its hash; its preference list is one row
//! of the table, so lookup is a shift and a slice. The table is a pure function of the
//! member list (ids, zones, weights), built in `width` rounds, one per replica position:
//!
//! 1. Every (partition, node) pair gets a pseudo-random score from their hashes.
//! 2. Each node may take a quota of partitions in the round, proportional to its weight
//!    (largest-remainder rounding, so quotas sum to Q exactly).
//! 3. Pairs are taken greedily in descending score, skipping full nodes and nodes that are
//!    not eligible: already in the partition's row, or — when there are at least `width`
//!    zones — in a zone already in the row. When both sides rank pairs by the same score
//!    this greedy pass is the unique stable matching, so the result does not depend on
//!    iteration order, and a membership change disturbs only the pairs it must: a joining
//!    node takes partitions where it scores highest, which are spread evenly over the old
//!    nodes, and each old node's quota shrinks by about what it gives up.
//! 4. Partitions left without an eligible node under quota (rare: exclusions near the end
//!    of a round) swap with an assigned partition whose node can take them while a node
//!    with spare quota takes the other, so quotas stay exact. Only when no such swap exists
//!    (zones too unequal to satisfy both rules) does a node go over quota, and the zone
//!    rule is relaxed only when no node in a new zone is left.
//!
//! Every round is balanced on its own, so primaries are balanced as well as replica slots.

use crate::hash::{mix, node_seed};
use crate::member::{canonical, idx};
use crate::{MAX_REPLICAS, Member, NodeIdx, Placement, PlacementError, PreferenceList};
use std::collections::BTreeMap;

/// Default partition count. 4096 keeps per-node load within a fraction of a percent for
/// clusters up to a few dozen nodes, at 8 KiB per replica column.
pub const DEFAULT_PARTITIONS: u32 = 4096;

const MAX_PARTITIONS: u32 = 1 << 20;
/// Salt for partition scores, so they do not coincide with key hashes of small integers.
const PARTITION_SALT: u64 = 0x7061_7274_6974_696f;

#[derive(Debug, Clone)]
pub struct Partitioned {
    members: Vec<Member>,
    partitions: u32,
    bits: u32,
    width: usize,
    /// Row-major: partition p's preference list is `table[p*width..(p+1)*width]`.
    table: Vec<NodeIdx>,
}

impl Partitioned {
    /// Builds the table for `members` with `partitions` partitions (a power of two) and
    /// `replicas` nodes per row (capped at the member count).
    ///
    /// # Errors
    /// See [`PlacementError`].
    pub fn new(
        members: &[Member],
        partitions: u32,
        replicas: usize,
    ) -> Result<Self, PlacementError> {
        if partitions == 0 || partitions > MAX_PARTITIONS || !partitions.is_power_of_two() {
            return Err(PlacementError::BadPartitionCount(partitions));
        }
        if replicas == 0 || replicas > MAX_REPLICAS {
            return Err(PlacementError::BadReplication { replicas, max: MAX_REPLICAS });
        }
        let members = canonical(members)?;
        let width = replicas.min(members.len());
        let table = build_table(&members, partitions as usize, width);
        Ok(Self { members, partitions, bits: partitions.trailing_zeros(), width, table })
    }

    #[must_use]
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition a key hash falls into.
    #[inline]
    #[must_use]
    pub fn partition(&self, hash: u64) -> usize {
        if self.bits == 0 { 0 } else { (hash >> (64 - self.bits)) as usize }
    }

    /// The replica row of partition `p`.
    #[must_use]
    pub fn row(&self, p: usize) -> &[NodeIdx] {
        &self.table[p * self.width..(p + 1) * self.width]
    }
}

impl Placement for Partitioned {
    fn name(&self) -> &'static str {
        "partitioned"
    }

    fn members(&self) -> &[Member] {
        &self.members
    }

    #[inline]
    fn owner(&self, hash: u64) -> NodeIdx {
        self.table[self.partition(hash) * self.width]
    }

    #[inline]
    fn preference_list_into(&self, hash: u64, n: usize, out: &mut PreferenceList) {
        let row = self.row(self.partition(hash));
        out.set_from(&row[..n.min(self.width)]);
    }
}

/// Per-node quotas for one round: `q` slots split by weight, largest remainder first, ties
/// to the lower node index. Sums to `q` exactly.
fn quotas(members: &[Member], q: usize) -> Vec<usize> {
    let total: u128 = members.iter().map(|m| u128::from(m.weight)).sum();
    let q128 = q as u128;
    let mut quota: Vec<usize> = Vec::with_capacity(members.len());
    let mut rema: Vec<(u128, usize)> = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let exact = q128 * u128::from(m.weight);
        quota.push((exact / total) as usize);
        rema.push((exact % total, i));
    }
    let given: usize = quota.iter().sum();
    rema.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rema.iter().take(q - given) {
        quota[i] += 1;
    }
    quota
}

fn build_table(members: &[Member], q: usize, width: usize) -> Vec<NodeIdx> {
    let n = members.len();
    let seeds: Vec<u64> = members.iter().map(|m| node_seed(&m.id)).collect();
    let zone_ids: BTreeMap<&str, usize> =
        members.iter().map(|m| m.zone.as_str()).enumerate().map(|(i, z)| (z, i)).collect();
    let zone_of: Vec<usize> = members.iter().map(|m| zone_ids[m.zone.as_str()]).collect();
    let enforce_zones = zone_ids.len() >= width;
    let quota = quotas(members, q);

    let mut table = vec![0 as NodeIdx; q * width];
    let mut pairs: Vec<(u64, u32, NodeIdx)> = Vec::with_capacity(q * n);
    for round in 0..width {
        let in_row = |table: &[NodeIdx], p: usize, i: usize, zones: bool| {
            table[p * width..p * width + round]
                .iter()
                .any(|&j| usize::from(j) == i || (zones && zone_of[usize::from(j)] == zone_of[i]))
        };
        pairs.clear();
        for p in 0..q {
            let ph = mix(p as u64, PARTITION_SALT);
            for (i, &seed) in seeds.iter().enumerate() {
                if !in_row(&table, p, i, enforce_zones) {
                    pairs.push((mix(ph, seed), p as u32, idx(i)));
                }
            }
        }
        pairs.sort_unstable_by(|a, b| b.cmp(a));

        let mut load = vec![0_usize; n];
        let mut done = vec![false; q];
        for &(_, p, i) in &pairs {
            let (p, iu) = (p as usize, usize::from(i));
            if !done[p] && load[iu] < quota[iu] {
                table[p * width + round] = i;
                done[p] = true;
                load[iu] += 1;
            }
        }
        // Leftovers: every node with spare quota is excluded from these partitions. Swap
        // with an assigned partition whose node could serve this one (an augmenting path of
        // length two), so quotas stay exact; only if no swap exists, overflow a node.
        let leftovers: Vec<usize> = (0..q).filter(|&p| !done[p]).collect();
        for p in leftovers {
            let swap = (0..n).filter(|&i| load[i] < quota[i]).find_map(|spare| {
                (0..q)
                    .find(|&other| {
                        let j = usize::from(table[other * width + round]);
                        done[other]
                            && !in_row(&table, p, j, enforce_zones)
                            && !in_row(&table, other, spare, enforce_zones)
                            && j != spare
                    })
                    .map(|other| (spare, other))
            });
            if let Some((spare, other)) = swap {
                table[p * width + round] = table[other * width + round];
                table[other * width + round] = idx(spare);
                load[spare] += 1;
                done[p] = true;
                continue;
            }
            let ph = mix(p as u64, PARTITION_SALT);
            let pick = |zones: bool| {
                (0..n)
                    .filter(|&i| !in_row(&table, p, i, zones))
                    .max_by_key(|&i| (quota[i] as i64 - load[i] as i64, mix(ph, seeds[i])))
            };
            let Some(i) = pick(enforce_zones).or_else(|| pick(false)) else {
                continue; // unreachable: width <= n leaves a node outside the row
            };
            table[p * width + round] = idx(i);
            load[i] += 1;
            done[p] = true;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_sum_and_follow_weights() {
        let m = vec![Member::new("a").with_weight(1), Member::new("b").with_weight(3)];
        assert_eq!(quotas(&m, 4096), vec![1024, 3072]);
        let m: Vec<Member> = (0..7).map(|i| Member::new(format!("n{i}"))).collect();
        let q = quotas(&m, 4096);
        assert_eq!(q.iter().sum::<usize>(), 4096);
        assert!(q.iter().all(|&x| x == 585 || x == 586));
    }

    #[test]
    fn rejects_bad_partition_counts() {
        let m = [Member::new("a")];
        assert!(Partitioned::new(&m, 3, 1).is_err());
        assert!(Partitioned::new(&m, 0, 1).is_err());
        assert!(Partitioned::new(&m, 1, 0).is_err());
        assert!(Partitioned::new(&m, 1, 1).is_ok());
    }
}
