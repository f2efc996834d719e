//! Stable hashing for placement.
//!
//! Every node, every process and every future version of halka must map a key to the same
//! position, or data silently moves between releases. So placement hashes with xxh3-64 and
//! fixed seeds, never with `std`'s `DefaultHasher` (randomly seeded per process) or any
//! hasher whose output may change between versions. `tests::pinned_outputs` pins known
//! values: if it fails, the change would move data and needs a migration, not a test update.
//!
//! Token positions are hashed with a different seed than keys and from the full node name
//! plus the token index. The seed project placed tokens at `crc32(i + name)`; CRC-32 is
//! affine over GF(2), so nodes whose names have equal length got shifted copies of each
//! other's token sets and load stayed 16–19% uneven however many virtual nodes were used.
//! xxh3 has no such structure.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed for key hashes. Part of the on-disk/on-wire contract: never change it.
const KEY_SEED: u64 = 0x6861_6c6b_615f_6b65; // "halka_ke"
/// Seed for node tokens (ring positions) and per-node scores.
const TOKEN_SEED: u64 = 0x6861_6c6b_615f_746f; // "halka_to"

/// Seed for the part of a member key's hash that its member contributes.
const MEMBER_SEED: u64 = 0x6861_6c6b_615f_6d65; // "halka_me"

/// Keys that begin with these bytes name a member of a collection (a hash's field, a
/// set's member) rather than a key of its own: see [`member_key`]. Clients cannot write
/// keys that begin with them.
pub const MEMBER_PREFIX: &[u8] = b"\xff\xfehalka\x00";

/// The low bits of a member key's hash, which come from the member; the high bits come
/// from its collection's key. Partitions are ranges of the high bits (at most 2^20 of
/// them), so every member lies in its collection's partition and with its owners, while
/// the members of one collection still spread over 2^32 hashes: pages, digest leaves and
/// streamed batches that end at a hash boundary can end inside a collection.
const MEMBER_BITS: u32 = 32;

/// Position of `key` in the 64-bit hash space. The same for every node and version. A
/// member key ([`member_key`]) lies in its collection's range ([`collection_range`]).
#[inline]
#[must_use]
pub fn key_hash(key: &[u8]) -> u64 {
    // Nearly every key is no member key: one byte says so.
    if key.first() != MEMBER_PREFIX.first() {
        return xxh3_64_with_seed(key, KEY_SEED);
    }
    match split_member_key(key) {
        Some((collection, member)) => {
            let low = u64::MAX >> (64 - MEMBER_BITS);
            (xxh3_64_with_seed(collection, KEY_SEED) & !low)
                | (xxh3_64_with_seed(member, MEMBER_SEED) & low)
        }
        None => xxh3_64_with_seed(key, KEY_SEED),
    }
}

/// The key that stores `member` of the collection at `collection`: [`MEMBER_PREFIX`], the
/// collection key's length (4 bytes, big-endian), the collection key, then `member` as
/// the caller encodes it.
#[must_use]
pub fn member_key(collection: &[u8], member: &[u8]) -> Vec<u8> {
    let len = u32::try_from(collection.len()).expect("keys are far shorter than 4 GiB");
    let mut out = Vec::with_capacity(MEMBER_PREFIX.len() + 4 + collection.len() + member.len());
    out.extend_from_slice(MEMBER_PREFIX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(collection);
    out.extend_from_slice(member);
    out
}

/// The collection key and member part of a member key; `None` for any other key.
#[inline]
#[must_use]
pub fn split_member_key(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = key.strip_prefix(MEMBER_PREFIX)?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The hashes every member of the collection at `key` lies in (the key itself too),
/// first and last inclusive.
#[must_use]
pub fn collection_range(key: &[u8]) -> (u64, u64) {
    let low = u64::MAX >> (64 - MEMBER_BITS);
    let first = xxh3_64_with_seed(key, KEY_SEED) & !low;
    (first, first | low)
}

/// Position of virtual node `index` of node `node_id` on the ring.
#[must_use]
pub fn token(node_id: &str, index: u32) -> u64 {
    let mut buf = Vec::with_capacity(node_id.len() + 5);
    buf.extend_from_slice(node_id.as_bytes());
    // A separator keeps ("ab", 1) and ("a", ...) from sharing input bytes by accident.
    buf.push(0xff);
    buf.extend_from_slice(&index.to_le_bytes());
    xxh3_64_with_seed(&buf, TOKEN_SEED)
}

/// A per-node seed, used by schemes that score (key, node) pairs.
#[must_use]
pub fn node_seed(node_id: &str) -> u64 {
    xxh3_64_with_seed(node_id.as_bytes(), TOKEN_SEED ^ 0x5bd1_e995)
}

/// Mixes two 64-bit values into a well-distributed score (Murmur3's finaliser over their
/// combination). Cheap enough for per-lookup scoring in `Rendezvous`.
#[inline]
#[must_use]
pub fn mix(a: u64, b: u64) -> u64 {
    let mut x = a ^ b.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned outputs. A failure here means keys would move between versions.
    #[test]
    fn pinned_outputs() {
        assert_eq!(key_hash(b""), PINNED[0]);
        assert_eq!(key_hash(b"Mahmut"), PINNED[1]);
        assert_eq!(key_hash(b"key-000000000042"), PINNED[2]);
        assert_eq!(token("foo", 0), PINNED[3]);
        assert_eq!(token("node-0001", 99), PINNED[4]);
        assert_eq!(node_seed("zucc"), PINNED[5]);
        assert_eq!(mix(1, 2), PINNED[6]);
    }

    const PINNED: [u64; 7] = [
        0xeaea_99ec_323a_30a8,
        0xbdae_a3d5_acbd_0134,
        0xc49e_5e20_823e_56ee,
        0x7b24_53a3_a8d0_a88e,
        0x177e_6d16_6e03_55ec,
        0x8314_102a_f123_5297,
        0xbea0_03d2_a6d8_2826,
    ];

    #[test]
    fn members_lie_in_their_collections_range_and_partition() {
        let (first, last) = collection_range(b"cart:7");
        assert!((first..=last).contains(&key_hash(b"cart:7")));
        let hashes: std::collections::HashSet<u64> = (0..1000)
            .map(|i| {
                let key = member_key(b"cart:7", format!("item-{i}").as_bytes());
                assert_eq!(
                    split_member_key(&key),
                    Some((&b"cart:7"[..], format!("item-{i}").as_bytes()))
                );
                key_hash(&key)
            })
            .inspect(|h| assert!((first..=last).contains(h)))
            .collect();
        assert!(hashes.len() > 990, "members spread over the range: {}", hashes.len());
    }

    #[test]
    fn a_key_that_only_looks_like_a_member_key_hashes_as_itself() {
        let mut key = MEMBER_PREFIX.to_vec();
        key.extend_from_slice(&[0, 0, 0, 9, b'a']);
        assert_eq!(split_member_key(&key), None);
        assert_eq!(key_hash(&key), xxh3_64_with_seed(&key, KEY_SEED));
        assert_eq!(split_member_key(b"plain"), None);
    }

    #[test]
    fn tokens_differ_by_name_and_index() {
        assert_ne!(token("foo", 0), token("foo", 1));
        assert_ne!(token("foo", 0), token("bar", 0));
        assert_ne!(token("a", 1), token("a\u{1}", 0));
    }
}
