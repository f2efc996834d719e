//! Catching a new owner up with one old owner of the partitions it gains: the last step
//! of a partition transfer (`Transfers`), taken once every member writes to both layouts.
//!
//! After a new owner has streamed a partition from one old owner, another old owner may
//! hold writes the first lacked (a write acknowledged by W of N owners), and a coordinator
//! that had not yet installed the new layout may have written to the old owners alone.
//! So the new owner compares its digest trees with every old owner's, top down as
//! anti-entropy does, and takes what differs: the digests of every block of the hash
//! space in one call per side (32 KiB each at 4,096 blocks), then the leaves of the
//! gained blocks that differ, then the keys of the leaves that differ. When the owners
//! agree, which they do once repaired and unless a write is in flight, a whole change's
//! catch-up with one old owner costs two calls; before, it listed every key of every
//! gained partition on both sides.
//!
//! Only the new owner takes: what it holds that the old owner lacks is a write that went
//! to both layouts, which anti-entropy among the new owners looks after.

use crate::range_sync::{diff_keys, differing_runs};
use crate::replica::batch_weight;
use crate::stream::{MemoryCheckpoints, StreamError, Streamed, stream_range, within};
use crate::{Replica, ReplicaError};
use bytes::Bytes;
use futures::StreamExt;
use halka_store::HashRange;
use halka_store::digests::{BLOCK_BITS, LEAF_BITS};
use std::time::Duration;

/// Pieces of the gained ranges compared at once: each costs a few round trips, mostly
/// waiting.
const PIECES_IN_FLIGHT: usize = 8;

/// Keys read from the source at once.
const KEYS_PER_READ: usize = 512;

/// A part of a gained range whose block digests differ, to be compared further down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// A whole block, or a leaf-aligned part of one: compared leaf by leaf.
    Leaves(HashRange),
    /// Finer than a leaf: its keys are listed at once.
    Keys(HashRange),
}

/// Brings `target` up to date with `source` over `ranges` (each a partition of the
/// layout, a power-of-two slice of the hash space): copies every record `source` holds
/// that `target` lacks or holds differently. Falls back to streaming each range again
/// when either side keeps no digest tree.
///
/// # Errors
/// A call failed or met `deadline`; what was copied before stays, and calling again
/// compares again.
pub async fn catch_up(
    source: &dyn Replica,
    target: &dyn Replica,
    ranges: &[HashRange],
    deadline: Duration,
) -> Result<Streamed, StreamError> {
    let (theirs, mine) = tokio::join!(
        within(deadline, source.digests(HashRange::ALL, BLOCK_BITS)),
        within(deadline, target.digests(HashRange::ALL, BLOCK_BITS))
    );
    let (theirs, mine) = match (theirs, mine) {
        (Ok(theirs), Ok(mine)) => (theirs, mine),
        (Err(ReplicaError::Rejected(_)), _) | (_, Err(ReplicaError::Rejected(_))) => {
            return stream_again(source, target, ranges, deadline).await;
        }
        (Err(e), _) => return Err(StreamError::Source(e)),
        (_, Err(e)) => return Err(StreamError::Target(e)),
    };
    let pieces: Vec<Piece> =
        ranges.iter().flat_map(|&range| differing_pieces(range, &mine, &theirs)).collect();
    let mut compares = futures::stream::iter(pieces)
        .map(|piece| compare(source, target, piece, deadline))
        .buffer_unordered(PIECES_IN_FLIGHT);
    let mut total = Streamed::default();
    while let Some(copied) = compares.next().await {
        let copied = copied?;
        total.pages += copied.pages;
        total.records += copied.records;
        total.bytes += copied.bytes;
    }
    Ok(total)
}

/// Streams each range again, whole: for replicas without digest trees.
async fn stream_again(
    source: &dyn Replica,
    target: &dyn Replica,
    ranges: &[HashRange],
    deadline: Duration,
) -> Result<Streamed, StreamError> {
    let fresh = MemoryCheckpoints::default();
    let mut total = Streamed::default();
    for &range in ranges {
        let streamed = stream_range(source, target, range, &fresh, deadline).await?;
        total.pages += streamed.pages;
        total.records += streamed.records;
        total.bytes += streamed.bytes;
    }
    Ok(total)
}

/// The parts of `range` whose block digests differ between the two sides (`mine` and
/// `theirs`: one digest per block of the whole hash space).
fn differing_pieces(range: HashRange, mine: &[u64], theirs: &[u64]) -> Vec<Piece> {
    let block_of = |hash: u64| (hash >> (64 - BLOCK_BITS)) as usize;
    let (first, last) = (block_of(range.first), block_of(range.last));
    let differs = |b: usize| mine.get(b) != theirs.get(b);
    if first == last {
        // Within one block (partitions finer than blocks): the block's digest speaks for
        // the range, then its leaves or keys are compared.
        if !differs(first) {
            return Vec::new();
        }
        let width = range.last - range.first;
        let leaf_aligned = width >= (1 << (64 - LEAF_BITS)) - 1;
        return vec![if leaf_aligned { Piece::Leaves(range) } else { Piece::Keys(range) }];
    }
    (first..=last)
        .filter(|&b| differs(b))
        .map(|b| Piece::Leaves(HashRange::partition(b as u64, BLOCK_BITS)))
        .collect()
}

/// Compares one piece down to its keys and copies what `source` holds differently.
async fn compare(
    source: &dyn Replica,
    target: &dyn Replica,
    piece: Piece,
    deadline: Duration,
) -> Result<Streamed, StreamError> {
    let listings = match piece {
        Piece::Keys(range) => vec![range],
        Piece::Leaves(range) => {
            let (theirs, mine) = tokio::join!(
                within(deadline, source.digests(range, LEAF_BITS)),
                within(deadline, target.digests(range, LEAF_BITS))
            );
            let theirs = theirs.map_err(StreamError::Source)?;
            let mine = mine.map_err(StreamError::Target)?;
            differing_runs(range, &mine, &theirs)
        }
    };
    let mut total = Streamed::default();
    for listing in listings {
        let (theirs, mine) = tokio::join!(
            within(deadline, source.key_digests(listing)),
            within(deadline, target.key_digests(listing))
        );
        let theirs = theirs.map_err(StreamError::Source)?;
        let mine = mine.map_err(StreamError::Target)?;
        let take = diff_keys(mine, theirs, |_| true).take;
        let copied = copy(source, target, take, deadline).await?;
        total.pages += copied.pages;
        total.records += copied.records;
        total.bytes += copied.bytes;
    }
    Ok(total)
}

/// Reads `keys` from `source` and merges them into `target`, a batch at a time.
pub(crate) async fn copy(
    source: &dyn Replica,
    target: &dyn Replica,
    mut keys: Vec<Bytes>,
    deadline: Duration,
) -> Result<Streamed, StreamError> {
    let mut copied = Streamed::default();
    while !keys.is_empty() {
        let ask: Vec<Bytes> = keys.iter().take(KEYS_PER_READ).cloned().collect();
        let records =
            within(deadline, source.get_many(ask.clone())).await.map_err(StreamError::Source)?;
        if records.is_empty() {
            let empty = ReplicaError::Unavailable("answered a batch read with nothing".into());
            return Err(StreamError::Source(empty));
        }
        keys.drain(..records.len().min(ask.len()));
        let entries: Vec<_> =
            ask.into_iter().zip(records).filter_map(|(k, r)| r.map(|r| (k, r))).collect();
        copied.pages += 1;
        copied.records += entries.len() as u64;
        copied.bytes += entries.iter().map(|(k, r)| batch_weight(k, r) as u64).sum::<u64>();
        within(deadline, target.merge_many(entries)).await.map_err(StreamError::Target)?;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks_differing(differing: &[usize]) -> (Vec<u64>, Vec<u64>) {
        let mine = vec![0_u64; 1 << BLOCK_BITS];
        let mut theirs = mine.clone();
        for &b in differing {
            theirs[b] = 1;
        }
        (mine, theirs)
    }

    #[test]
    fn a_partition_whose_blocks_agree_needs_no_further_comparison() {
        let (mine, theirs) = blocks_differing(&[7]);
        let partition = HashRange::partition(3, BLOCK_BITS);
        assert!(differing_pieces(partition, &mine, &theirs).is_empty());
    }

    #[test]
    fn a_partition_of_several_blocks_descends_only_into_those_that_differ() {
        // 1,024 partitions: each is four blocks.
        let (mine, theirs) = blocks_differing(&[9, 11, 40]);
        let partition = HashRange::partition(2, BLOCK_BITS - 2);
        let pieces = differing_pieces(partition, &mine, &theirs);
        let expected = [9, 11].map(|b| Piece::Leaves(HashRange::partition(b, BLOCK_BITS)));
        assert_eq!(pieces, expected);
    }

    #[test]
    fn a_partition_finer_than_a_block_is_compared_by_leaves_then_by_keys() {
        let (mine, theirs) = blocks_differing(&[0]);
        let by_leaves = HashRange::partition(1, BLOCK_BITS + 2);
        assert_eq!(differing_pieces(by_leaves, &mine, &theirs), [Piece::Leaves(by_leaves)]);
        let finer_than_a_leaf = HashRange::partition(1, LEAF_BITS + 1);
        let pieces = differing_pieces(finer_than_a_leaf, &mine, &theirs);
        assert_eq!(pieces, [Piece::Keys(finer_than_a_leaf)]);
    }
}
