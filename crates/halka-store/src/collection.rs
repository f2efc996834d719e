//! Collections (hashes, and the other Redis types as they come): a *head* at the
//! collection's key, and each member as a record of its own.
//!
//! The head is a version of the key's record like a string's, marked with a [`Head`]: the
//! collection's [`Kind`] and the *lifetimes* it is made of. Expiry, `DEL`, `TYPE` and
//! everything else about the key act on the head alone. A member is the record at
//! [`member_key`]`(key, lifetime, member)`: replicated, hinted, repaired, streamed and
//! collected like any record, and placed beside the head (`halka_ring::key_hash`), so one
//! member's write rewrites that member only.
//!
//! A lifetime is a 64-bit name drawn from the write that created the head. `DEL` or
//! expiry ends the head, and with it its lifetimes; a later write makes a new head with a
//! new lifetime, so members left from before — on any replica, arriving at any time —
//! belong to no live head and are never seen again. Two heads created concurrently
//! (through different nodes during a partition) are siblings: the collection is the union
//! of their lifetimes, and the next write to the head keeps that union.

use crate::{Dot, Record, Version};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// What a collection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Fields with values (Redis hashes).
    Hash,
    /// Members without values (Redis sets): a member is there while its record lives.
    Set,
    /// Members with scores (Redis sorted sets): a member's value is its score as text, a
    /// float counter once `ZINCRBY` added to it.
    SortedSet,
}

impl Kind {
    /// The name `TYPE` answers.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::SortedSet => "zset",
        }
    }
}

/// The mark on a version that makes it a collection's head.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Head {
    pub kind: Kind,
    /// Sorted, without repeats; one unless heads were created concurrently.
    pub lifetimes: SmallVec<[u64; 1]>,
}

impl Head {
    /// The head a write with dot `dot` creates.
    #[must_use]
    pub fn created(kind: Kind, dot: &Dot) -> Self {
        let mut name = dot.node.as_str().as_bytes().to_vec();
        name.extend_from_slice(&dot.counter.to_be_bytes());
        let lifetime = xxhash_rust::xxh3::xxh3_64(&name);
        Self { kind, lifetimes: SmallVec::from_buf([lifetime]) }
    }

    fn absorb(&mut self, other: &Head) {
        for l in &other.lifetimes {
            if let Err(at) = self.lifetimes.binary_search(l) {
                self.lifetimes.insert(at, *l);
            }
        }
    }
}

impl Record {
    /// The collection the record holds at `now_us`: the live winner's head, with the
    /// lifetimes of every live sibling head of the same kind. `None` when the key holds
    /// a string or nothing.
    #[must_use]
    pub fn head_at(&self, now_us: u64) -> Option<Head> {
        let winner = self.live_winner(now_us)?;
        let mut head = (**winner.collection.as_ref()?).clone();
        let siblings = self.versions.iter().filter(|v| v.is_live(now_us));
        for other in siblings.filter_map(|v| v.collection.as_deref()) {
            if other.kind == head.kind {
                head.absorb(other);
            }
        }
        Some(head)
    }
}

impl Record {
    /// A member's value at `now_us`, with the time it was written: the newest of its live
    /// versions. Unlike a key's value ([`Record::value_at`]), a removal concurrent with a
    /// write does not hide it — the removal took away only the versions it had seen —
    /// so a member written while another node removed it stays (add wins). A counter's
    /// value joins its concurrent states, as `INCR`'s does.
    #[must_use]
    pub fn member_at(&self, now_us: u64) -> Option<(u64, Bytes)> {
        let newest = self
            .versions
            .iter()
            .filter(|v| v.is_live(now_us))
            .max_by(|a, b| a.lww_key().cmp(&b.lww_key()))?;
        let value = match &newest.counter {
            None => newest.value.clone()?,
            Some(_) => Bytes::from(self.joined_counter(newest)?.value().ok()?.to_string()),
        };
        Some((newest.timestamp_us, value))
    }
}

impl Version {
    /// Whether the version is a collection's head.
    #[must_use]
    pub fn is_head(&self) -> bool {
        self.collection.is_some()
    }
}

/// The key of member `member` in lifetime `lifetime` of the collection at `key`.
#[must_use]
pub fn member_key(key: &[u8], lifetime: u64, member: &[u8]) -> Vec<u8> {
    let mut part = Vec::with_capacity(8 + member.len());
    part.extend_from_slice(&lifetime.to_be_bytes());
    part.extend_from_slice(member);
    halka_ring::member_key(key, &part)
}

/// The collection key, lifetime and member a member key names; `None` for other keys.
#[must_use]
pub fn split_member_key(key: &[u8]) -> Option<(&[u8], u64, &[u8])> {
    let (collection, part) = halka_ring::split_member_key(key)?;
    let (lifetime, member) = part.split_first_chunk::<8>()?;
    Some((collection, u64::from_be_bytes(*lifetime), member))
}

/// Whether `key` is a member key rather than a key clients see.
#[must_use]
pub fn is_member_key(key: &[u8]) -> bool {
    key.starts_with(halka_ring::MEMBER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Change, NodeId, Write};

    #[test]
    fn a_member_key_names_its_collection_lifetime_and_member() {
        let key = member_key(b"user:1", 42, b"name");
        assert_eq!(split_member_key(&key), Some((&b"user:1"[..], 42, &b"name"[..])));
        assert!(is_member_key(&key));
        assert!(!is_member_key(b"user:1"));
        let (first, last) = halka_ring::collection_range(b"user:1");
        assert!((first..=last).contains(&crate::layout::key_hash(&key)));
    }

    #[test]
    fn heads_created_by_different_writes_have_different_lifetimes() {
        let a = Head::created(Kind::Hash, &Dot { node: NodeId::new("n1"), counter: 1 });
        let b = Head::created(Kind::Hash, &Dot { node: NodeId::new("n1"), counter: 2 });
        let c = Head::created(Kind::Hash, &Dot { node: NodeId::new("n2"), counter: 1 });
        assert_ne!(a.lifetimes, b.lifetimes);
        assert_ne!(a.lifetimes, c.lifetimes);
    }

    #[test]
    fn a_member_written_while_another_node_removes_it_stays() {
        let n1 = NodeId::new("n1");
        let put =
            |v: &'static str, t| Write::value(Some(Bytes::from_static(v.as_bytes())), None, t);
        let first = Record::apply_write(None, &n1, &put("a", 1)).unwrap().into_record();
        // n2 removes the version it saw; n3, not having seen the removal, writes anew.
        let removed =
            Record::apply_write(Some(&first), &NodeId::new("n2"), &Write::value(None, None, 30))
                .unwrap()
                .into_record();
        let written = Record::apply_write(Some(&first), &NodeId::new("n3"), &put("b", 20))
            .unwrap()
            .into_record();
        for merged in [removed.merge(&written), written.merge(&removed)] {
            assert_eq!(merged.member_at(40), Some((20, Bytes::from_static(b"b"))));
            // A plain key's value is the newest write's: the removal.
            assert_eq!(merged.value_at(40), None);
        }
        assert_eq!(removed.member_at(40), None, "a removal of all it saw removes");
    }

    #[test]
    fn concurrent_heads_make_one_collection_of_both_lifetimes() {
        let create = Write::new(Change::Create(Kind::Hash), None, 1000);
        let a = Record::apply_write(None, &NodeId::new("n1"), &create).unwrap().into_record();
        let b = Record::apply_write(None, &NodeId::new("n2"), &create).unwrap().into_record();
        let merged = a.merge(&b);
        let head = merged.head_at(2000).unwrap();
        assert_eq!(head.kind, Kind::Hash);
        assert_eq!(head.lifetimes.len(), 2);
        let mut both = a.head_at(2000).unwrap().lifetimes.to_vec();
        both.extend(b.head_at(2000).unwrap().lifetimes);
        both.sort_unstable();
        assert_eq!(head.lifetimes.to_vec(), both);
    }
}
