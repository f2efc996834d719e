//! Where data lives.
//!
//! `halka-ring` answers two questions for any key: which node owns it, and which N distinct
//! physical nodes hold its replicas (the *preference list*). It is pure and synchronous: a
//! placement is a function of the member list and the strategy, so every node that knows the
//! same members computes the same answer without talking to anyone.
//!
//! The strategies retrace the path from naive to production placement:
//!
//! | strategy | idea | lookup |
//! |---|---|---|
//! | [`Modulo`] | `hash % n`; almost every key moves when `n` changes | O(1) |
//! | [`Ring`] | one token per node on a hash ring; cheap to change, unbalanced | O(log n) |
//! | [`VnodeRing`] | many tokens per node; balance improves as 1/sqrt(vnodes) | O(log nv) |
//! | [`Partitioned`] | fixed 2^k partitions, balanced replica table, zones, weights (default) | O(1) |
//! | [`Jump`] | Lamping & Veach jump consistent hash | O(log n) |
//! | [`Rendezvous`] | highest random weight | O(n) |
//!
//! Nodes are addressed by [`NodeIdx`], an index into [`Placement::members`], which is the
//! member list sorted by id. Sorting first is what makes placement independent of the order
//! in which members were listed.

mod error;
pub mod hash;
mod jump;
mod layout;
mod member;
mod modulo;
mod partitioned;
mod placement;
mod preference;
mod rendezvous;
mod ring;
pub mod stats;

pub use error::PlacementError;
pub use hash::{MEMBER_PREFIX, collection_range, key_hash, member_key, split_member_key};
pub use jump::Jump;
pub use layout::{Layout, LayoutDiff, LayoutMember, MemberState, PartitionId, PartitionMove};
pub use member::{Member, NodeIdx};
pub use modulo::Modulo;
pub use partitioned::{DEFAULT_PARTITIONS, Partitioned};
pub use placement::{Placement, Strategy};
pub use preference::{MAX_REPLICAS, PreferenceList};
pub use rendezvous::Rendezvous;
pub use ring::{Ring, VnodeRing};
