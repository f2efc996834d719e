//! The sans-IO core of a range sync: given what two replicas list for a range (block
//! digests, leaf digests, keys with their entry digests), which parts differ and which
//! records go which way. No calls, no clocks: the driver (`anti_entropy`) asks the
//! replicas and moves the records, and everything it decides is decided here, where it
//! is tested without a network.
//!
//! Streaming a partition to a new owner is the same sync with one side empty: every key
//! the other side lists is taken, nothing is sent back.

use bytes::Bytes;
use halka_store::HashRange;
use halka_store::digests::{BLOCK_BITS, LEAF_BITS};
use halka_store::layout::key_hash;
use std::collections::{HashMap, HashSet};

/// Longest run of differing leaves listed in one call: a whole block, a few hundred keys
/// in a store of a million, a few thousand in one of ten million.
pub(crate) const MAX_LEAVES_PER_LISTING: usize = 1 << (LEAF_BITS - BLOCK_BITS);

/// Which records of a listed range go which way.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyDiff {
    /// Keys whose record the other side has and this side lacks or holds differently:
    /// read there, merged here.
    pub take: Vec<Bytes>,
    /// Keys whose joined record goes back to the other side: those this side holds and
    /// the other lacks, and those both hold differently (the join of the two).
    pub send: Vec<Bytes>,
    /// Keys of `take` this side holds nothing for.
    pub absent_here: HashSet<Bytes>,
    /// Keys of `send` the other side holds nothing for.
    pub absent_there: HashSet<Bytes>,
    /// Keys that differ.
    pub divergent: u64,
}

/// Compares two listings of one range (key, entry digest), keeping only keys both sides
/// own (`both_own`, by placement hash).
pub(crate) fn diff_keys(
    mine: Vec<(Bytes, u64)>,
    theirs: Vec<(Bytes, u64)>,
    both_own: impl Fn(u64) -> bool,
) -> KeyDiff {
    // Looked up by key, but walked in the order given: the order repairs are sent in must
    // not depend on a per-process hash seed, or a simulated run would not repeat.
    let index: HashMap<&Bytes, u64> = mine.iter().map(|(k, d)| (k, *d)).collect();
    let mut diff = KeyDiff::default();
    let mut seen = HashSet::with_capacity(theirs.len());
    for (key, digest) in theirs {
        let differs = index.get(&key) != Some(&digest);
        if differs && both_own(key_hash(&key)) {
            diff.divergent += 1;
            // Theirs is merged here; the join goes back if this side had a record too.
            if index.contains_key(&key) {
                diff.send.push(key.clone());
            } else {
                diff.absent_here.insert(key.clone());
            }
            diff.take.push(key.clone());
        }
        seen.insert(key);
    }
    drop(index);
    for (key, _) in mine {
        if !seen.contains(&key) && both_own(key_hash(&key)) {
            diff.divergent += 1;
            diff.absent_there.insert(key.clone());
            diff.send.push(key);
        }
    }
    diff
}

/// The blocks of `range`, which must be a whole number of blocks.
pub(crate) fn blocks(range: HashRange) -> impl Iterator<Item = HashRange> {
    let first = range.first >> (64 - BLOCK_BITS);
    let last = range.last >> (64 - BLOCK_BITS);
    (first..=last).map(|b| HashRange::partition(b, BLOCK_BITS))
}

/// The runs of consecutive leaves of `block` whose digests differ, each at most
/// `MAX_LEAVES_PER_LISTING` long, as hash ranges.
pub(crate) fn differing_runs(block: HashRange, mine: &[u64], theirs: &[u64]) -> Vec<HashRange> {
    let first_leaf = block.first >> (64 - LEAF_BITS);
    let leaf = |i: usize| HashRange::partition(first_leaf + i as u64, LEAF_BITS);
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for i in 0..mine.len().max(theirs.len()) {
        if mine.get(i) == theirs.get(i) {
            continue;
        }
        match runs.last_mut() {
            Some((start, end)) if *end + 1 == i && i - *start < MAX_LEAVES_PER_LISTING => *end = i,
            _ => runs.push((i, i)),
        }
    }
    runs.into_iter().map(|(s, e)| HashRange { first: leaf(s).first, last: leaf(e).last }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(entries: &[(&str, u64)]) -> Vec<(Bytes, u64)> {
        entries.iter().map(|(k, d)| (Bytes::copy_from_slice(k.as_bytes()), *d)).collect()
    }

    fn keys(keys: &[Bytes]) -> Vec<&str> {
        let mut out: Vec<&str> = keys.iter().map(|k| std::str::from_utf8(k).unwrap()).collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn identical_listings_move_nothing() {
        let both = listing(&[("a", 1), ("b", 2)]);
        assert_eq!(diff_keys(both.clone(), both, |_| true), KeyDiff::default());
    }

    #[test]
    fn a_key_held_differently_is_taken_and_its_join_sent_back() {
        let diff = diff_keys(listing(&[("a", 1)]), listing(&[("a", 2)]), |_| true);
        assert_eq!((keys(&diff.take), keys(&diff.send)), (vec!["a"], vec!["a"]));
        assert!(diff.absent_here.is_empty() && diff.absent_there.is_empty());
        assert_eq!(diff.divergent, 1);
    }

    #[test]
    fn a_key_one_side_lacks_goes_to_that_side_only() {
        let diff = diff_keys(listing(&[("mine", 1)]), listing(&[("theirs", 2)]), |_| true);
        assert_eq!((keys(&diff.take), keys(&diff.send)), (vec!["theirs"], vec!["mine"]));
        assert!(diff.absent_here.contains(&Bytes::from_static(b"theirs")));
        assert!(diff.absent_there.contains(&Bytes::from_static(b"mine")));
    }

    /// A partition streamed to a new owner: its side is empty, and it takes everything.
    #[test]
    fn an_empty_side_takes_every_key_and_sends_nothing() {
        let theirs = listing(&[("a", 1), ("b", 2), ("c", 3)]);
        let diff = diff_keys(Vec::new(), theirs, |_| true);
        assert_eq!(keys(&diff.take), vec!["a", "b", "c"]);
        assert!(diff.send.is_empty());
        assert_eq!(diff.absent_here.len(), 3);
    }

    #[test]
    fn keys_the_two_sides_do_not_both_own_are_left_alone() {
        let diff = diff_keys(listing(&[("a", 1)]), listing(&[("b", 2)]), |_| false);
        assert_eq!(diff, KeyDiff::default());
    }

    #[test]
    fn runs_of_differing_leaves_are_merged_up_to_the_cap() {
        let block = HashRange::partition(3, BLOCK_BITS);
        let n = 1 << (LEAF_BITS - BLOCK_BITS);
        let mine = vec![0_u64; n];
        let mut theirs = mine.clone();
        for i in [1, 2, 3, 10] {
            theirs[i] = 7;
        }
        let runs = differing_runs(block, &mine, &theirs);
        let leaf = |i: u64| HashRange::partition((3 << (LEAF_BITS - BLOCK_BITS)) + i, LEAF_BITS);
        assert_eq!(runs, vec![HashRange { first: leaf(1).first, last: leaf(3).last }, leaf(10)]);
        let all_differ = vec![1_u64; n];
        let runs = differing_runs(block, &mine, &all_differ);
        assert_eq!(runs.len(), n / MAX_LEAVES_PER_LISTING);
        assert_eq!(runs[0].first, block.first);
        assert_eq!(runs.last().map(|r| r.last), Some(block.last));
    }

    #[test]
    fn a_stretch_is_a_whole_number_of_blocks() {
        let stretch = HashRange::partition(5, crate::anti_entropy::STRETCH_BITS);
        let b: Vec<HashRange> = blocks(stretch).collect();
        assert_eq!(b.len(), 1 << (BLOCK_BITS - crate::anti_entropy::STRETCH_BITS));
        assert_eq!(b[0].first, stretch.first);
        assert_eq!(b.last().map(|r| r.last), Some(stretch.last));
    }
}
