//! How keys are laid out on disk: by their placement hash.
//!
//! The engine stores a key under `key_hash(key)` (8 bytes, big-endian) followed by the key.
//! Placement puts a key in partition `hash >> (64 - log2 Q)`, so every partition is one
//! contiguous range of stored keys, whatever the partition count: reading, hashing or
//! sending "partition p" is a range read that touches nothing else, and a layout with
//! another partition count still finds its partitions as ranges. This is why the prefix is
//! the hash itself rather than a partition number.

use smallvec::SmallVec;

/// An inclusive range of key hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct HashRange {
    pub first: u64,
    pub last: u64,
}

impl HashRange {
    /// Every hash.
    pub const ALL: HashRange = HashRange { first: 0, last: u64::MAX };

    /// Partition `partition` of `2^bits` equal partitions (the placement's partitions when
    /// `bits = log2 Q`).
    ///
    /// # Panics
    /// `bits > 63` or `partition >= 2^bits`: no such partition.
    #[must_use]
    pub fn partition(partition: u64, bits: u32) -> HashRange {
        assert!(bits < 64 && partition < (1 << bits), "no partition {partition} of 2^{bits}");
        if bits == 0 {
            return HashRange::ALL;
        }
        let shift = 64 - bits;
        let first = partition << shift;
        HashRange { first, last: first | ((1_u64 << shift) - 1) }
    }

    /// The range split into `2^bits` consecutive equal parts (for walking a store in
    /// bounded steps).
    pub fn chunks(bits: u32) -> impl Iterator<Item = HashRange> {
        (0..1_u64 << bits).map(move |p| HashRange::partition(p, bits))
    }

    #[must_use]
    pub fn contains(&self, hash: u64) -> bool {
        (self.first..=self.last).contains(&hash)
    }
}

/// The placement hash of a key: the same function placement uses, so that partitions are
/// hash ranges.
#[must_use]
pub fn key_hash(key: &[u8]) -> u64 {
    halka_ring::key_hash(key)
}

/// The engine's key for `key`: its hash, big-endian, then the key. Inline up to 64 bytes:
/// every read and write builds one.
#[must_use]
pub fn storage_key(key: &[u8]) -> SmallVec<[u8; 64]> {
    let mut out = SmallVec::with_capacity(8 + key.len());
    out.extend_from_slice(&key_hash(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The key inside a storage key; `None` for one too short to be a storage key.
#[must_use]
pub fn user_key(storage_key: &[u8]) -> Option<&[u8]> {
    storage_key.get(8..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_tile_the_hash_space() {
        let parts: Vec<HashRange> = HashRange::chunks(3).collect();
        assert_eq!(parts.len(), 8);
        assert_eq!(parts[0].first, 0);
        assert_eq!(parts[7].last, u64::MAX);
        for w in parts.windows(2) {
            assert_eq!(w[0].last + 1, w[1].first);
        }
        assert_eq!(HashRange::partition(0, 0), HashRange::ALL);
    }

    #[test]
    fn a_key_lies_in_its_placement_partition() {
        for i in 0..1000 {
            let key = format!("key-{i}");
            let hash = key_hash(key.as_bytes());
            let partition = hash >> (64 - 12);
            assert!(HashRange::partition(partition, 12).contains(hash));
            let stored = storage_key(key.as_bytes());
            assert_eq!(user_key(&stored), Some(key.as_bytes()));
            assert_eq!(stored[..8], hash.to_be_bytes());
        }
    }

    /// The layout is on disk: a change here breaks every data directory. (`halka-ring`
    /// pins `key_hash` itself.)
    #[test]
    fn storage_keys_are_pinned() {
        assert_eq!(storage_key(b"Mahmut")[..8], key_hash(b"Mahmut").to_be_bytes());
        assert_eq!(key_hash(b"Mahmut"), halka_ring::key_hash(b"Mahmut"));
    }
}
