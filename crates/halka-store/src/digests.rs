//! Digest trees: what lets two replicas find the keys on which they differ without
//! sending their keys to each other (Dynamo §4.7).
//!
//! Every stored key contributes an *entry digest*, a 64-bit hash of the key and of the
//! record's clock (its context and the dots of its versions: a dot names one value, so
//! the values themselves need not be hashed). The hash space is cut into `2^LEAF_BITS`
//! equal slices, the leaves; a leaf's digest is the XOR of the entry digests of the keys
//! hashing into it. Because XOR is its own inverse, an update changes a leaf by
//! `old ^ new` without reading anything else, and concurrent updates may apply their
//! changes in any order (the same property Riak's TictacAAE trees are built on). Coarser
//! digests are XORs of leaves; `2^BLOCK_BITS` of them are also kept up to date, so that
//! comparing a whole node costs a few thousand words.
//!
//! The tree is kept in memory and built from the store when the engine is opened; the
//! slices are hash ranges, and keys are stored by hash (see `layout`), so the records
//! behind any digest are one range read. Slices do not depend on the partition count:
//! a layout with other partitions compares the same trees at another granularity.

use crate::Record;
use crate::layout::{HashRange, key_hash};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;
use xxhash_rust::xxh3::Xxh3;

/// log2 of the number of leaves: 2^18 leaves (2 MiB) keep a leaf to a handful of keys
/// in a store of a million, so a differing leaf costs little to list.
pub const LEAF_BITS: u32 = 18;

/// log2 of the number of blocks, the coarse digests kept beside the leaves: as many as
/// the default partitions.
pub const BLOCK_BITS: u32 = 12;

/// Most digests one query may ask for: a frame's worth, whatever the range.
pub const MAX_DIGESTS_PER_QUERY: usize = 1 << 12;

/// Seed for entry digests, so they share nothing with placement hashes.
const ENTRY_SEED: u64 = 0x6861_6c6b_615f_6165;

/// A digest query that cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DigestQueryError {
    #[error("digests are kept down to 2^{LEAF_BITS} slices, not 2^{0}")]
    TooFine(u32),
    #[error("range {first:#x}..={last:#x} does not start and end on 2^{bits} slice boundaries")]
    Unaligned { first: u64, last: u64, bits: u32 },
    #[error("{0} digests asked for at once; at most {MAX_DIGESTS_PER_QUERY}")]
    TooMany(u64),
}

/// The digest of one key and its record.
#[must_use]
pub fn entry_digest(key: &[u8], record: &Record) -> u64 {
    let mut h = Xxh3::with_seed(ENTRY_SEED);
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    for (node, counter) in record.context().iter() {
        h.update(&(node.as_str().len() as u64).to_le_bytes());
        h.update(node.as_str().as_bytes());
        h.update(&counter.to_le_bytes());
    }
    // A separator: a context entry can never be mistaken for a version's dot.
    h.update(&[0xff]);
    for v in record.versions() {
        h.update(&(v.dot.node.as_str().len() as u64).to_le_bytes());
        h.update(v.dot.node.as_str().as_bytes());
        h.update(&v.dot.counter.to_le_bytes());
    }
    h.digest()
}

/// Leaf and block digests over one store.
#[derive(Debug)]
pub struct DigestTree {
    leaves: Box<[AtomicU64]>,
    blocks: Box<[AtomicU64]>,
}

impl Default for DigestTree {
    fn default() -> Self {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Self { leaves: zeros(1 << LEAF_BITS), blocks: zeros(1 << BLOCK_BITS) }
    }
}

impl DigestTree {
    /// Folds a change of one entry into the tree: `delta` is the old entry digest XOR the
    /// new one (a key that did not exist, or no longer does, contributes 0).
    pub fn apply(&self, hash: u64, delta: u64) {
        if delta == 0 {
            return;
        }
        self.leaves[(hash >> (64 - LEAF_BITS)) as usize].fetch_xor(delta, Ordering::Relaxed);
        self.blocks[(hash >> (64 - BLOCK_BITS)) as usize].fetch_xor(delta, Ordering::Relaxed);
    }

    /// Adds an entry (when building the tree from a store).
    pub fn insert(&self, key: &[u8], record: &Record) {
        self.apply(key_hash(key), entry_digest(key, record));
    }

    /// The digests of `range` cut into slices of `2^-bits` of the hash space, in order.
    ///
    /// # Errors
    /// Slices finer than the leaves, a range that does not fall on slice boundaries, or
    /// more than [`MAX_DIGESTS_PER_QUERY`] slices.
    pub fn digests(&self, range: HashRange, bits: u32) -> Result<Vec<u64>, DigestQueryError> {
        let count = slices(range, bits)?;
        let (level, level_bits) =
            if bits <= BLOCK_BITS { (&self.blocks, BLOCK_BITS) } else { (&self.leaves, LEAF_BITS) };
        let per_slice = 1_usize << (level_bits - bits);
        let first = (range.first >> (64 - level_bits)) as usize;
        Ok((0..count)
            .map(|i| {
                let start = first + i * per_slice;
                level[start..start + per_slice]
                    .iter()
                    .fold(0, |acc, d| acc ^ d.load(Ordering::Relaxed))
            })
            .collect())
    }
}

/// How many `2^-bits` slices `range` covers, if it falls on their boundaries.
///
/// # Errors
/// As [`DigestTree::digests`].
pub fn slices(range: HashRange, bits: u32) -> Result<usize, DigestQueryError> {
    if bits > LEAF_BITS {
        return Err(DigestQueryError::TooFine(bits));
    }
    let unaligned = DigestQueryError::Unaligned { first: range.first, last: range.last, bits };
    if bits == 0 {
        return if range == HashRange::ALL { Ok(1) } else { Err(unaligned) };
    }
    let shift = 64 - bits;
    let mask = (1_u64 << shift) - 1;
    if range.first & mask != 0 || range.last & mask != mask || range.last < range.first {
        return Err(unaligned);
    }
    let count = ((range.last >> shift) - (range.first >> shift)) + 1;
    if count > MAX_DIGESTS_PER_QUERY as u64 {
        return Err(DigestQueryError::TooMany(count));
    }
    Ok(count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, MemoryEngine, NodeId, TrackedEngine, Tracking, VersionVector, Write};
    use bytes::Bytes;
    use std::sync::Arc;

    fn write(value: &str) -> Write {
        Write {
            overwrite: true,
            ..Write::value(Some(Bytes::from(value.to_owned())), Some(VersionVector::new()), 1)
        }
    }

    fn engine() -> TrackedEngine {
        TrackedEngine::build(Arc::new(MemoryEngine::default()), Tracking::ALL).unwrap()
    }

    fn tree(e: &TrackedEngine) -> &DigestTree {
        e.digests().unwrap()
    }

    #[test]
    fn a_tree_kept_up_to_date_equals_one_built_from_the_store() {
        let e = engine();
        let node = NodeId::new("a");
        for i in 0..500 {
            e.apply_write(format!("k{i}").as_bytes(), &node, &write("v")).unwrap();
        }
        for i in 0..250 {
            e.apply_write(format!("k{i}").as_bytes(), &node, &write("w")).unwrap();
        }
        let rebuilt = TrackedEngine::build(Arc::clone(e.inner()), Tracking::ALL).unwrap();
        let live = tree(&e).digests(HashRange::ALL, BLOCK_BITS).unwrap();
        assert_eq!(live, tree(&rebuilt).digests(HashRange::ALL, BLOCK_BITS).unwrap());
        assert!(live.iter().any(|&d| d != 0), "the tree saw no writes");
    }

    #[test]
    fn replicas_holding_the_same_records_have_the_same_digests() {
        let (a, b) = (engine(), engine());
        let node = NodeId::new("a");
        for i in 0..100 {
            let key = format!("k{i}");
            let (record, _) = a.apply_write(key.as_bytes(), &node, &write("v")).unwrap();
            b.merge(key.as_bytes(), &record).unwrap();
        }
        let all = |e: &TrackedEngine| tree(e).digests(HashRange::ALL, BLOCK_BITS).unwrap();
        assert_eq!(all(&a), all(&b));
        a.apply_write(b"k7", &node, &write("newer")).unwrap();
        let differing: Vec<usize> =
            (0..1 << BLOCK_BITS).filter(|&i| all(&a)[i] != all(&b)[i]).collect();
        let block = (key_hash(b"k7") >> (64 - BLOCK_BITS)) as usize;
        assert_eq!(differing, vec![block], "one write shows in its own block only");
    }

    #[test]
    fn coarse_digests_are_the_xor_of_fine_ones() {
        let e = engine();
        for i in 0..300 {
            e.apply_write(format!("k{i}").as_bytes(), &NodeId::new("a"), &write("v")).unwrap();
        }
        let block = HashRange::partition(5, BLOCK_BITS);
        let leaves = tree(&e).digests(block, LEAF_BITS).unwrap();
        assert_eq!(leaves.len(), 1 << (LEAF_BITS - BLOCK_BITS));
        let whole = tree(&e).digests(block, BLOCK_BITS).unwrap();
        assert_eq!(whole, vec![leaves.iter().fold(0, |a, d| a ^ d)]);
        let top = tree(&e).digests(HashRange::ALL, 0).unwrap()[0];
        let blocks = tree(&e).digests(HashRange::ALL, BLOCK_BITS).unwrap();
        assert_eq!(top, blocks.iter().fold(0, |a, d| a ^ d));
    }

    #[test]
    fn queries_off_slice_boundaries_or_too_large_are_refused() {
        let tree = DigestTree::default();
        let half = HashRange { first: 1, last: u64::MAX };
        assert!(matches!(tree.digests(half, 4), Err(DigestQueryError::Unaligned { .. })));
        assert_eq!(tree.digests(HashRange::ALL, 19), Err(DigestQueryError::TooFine(19)));
        assert_eq!(tree.digests(HashRange::ALL, 13), Err(DigestQueryError::TooMany(1 << 13)));
    }
}
