//! How halka nodes cooperate.
//!
//! The [`Coordinator`] turns a client request into quorum operations on the N replicas of a
//! key: it fans out to all of them at once, returns at the W-th acknowledgement or R-th
//! answer, and leaves the stragglers to finish in the background under a deadline. Replicas
//! sit behind the [`Replica`] trait, so the same coordinator drives replicas in this process
//! ([`LocalReplica`]), on other hosts (the RPC client), or behind fault injection
//! ([`FaultyReplica`]) in tests and simulations.
//!
//! [`Cluster`] is the embedded form: every replica in one process, with the seed project's
//! API (`add_node`, `put(key, value, w)`, `get(key, r)`).

pub mod anti_entropy;
mod assembly;
mod background;
pub mod catch_up;
mod clock;
mod cluster;
pub mod collection;
mod coordinator;
mod durable_file;
mod error;
mod fanout;
mod faulty;
mod glob;
pub mod gossip;
mod handoff;
mod listing;
mod local;
mod members;
pub mod membership;
mod quorum;
mod range_sync;
mod repair_budget;
mod replica;
pub mod rpc;
mod secret;
pub mod settings;
pub mod stream;
mod stripe;
mod suspects;
mod syncer;
pub mod telemetry;
pub mod tombstones;
mod transfers;
mod view;
mod view_handle;

pub use anti_entropy::{AntiEntropy, AntiEntropyConfig, AntiEntropyStats};
pub use assembly::{AssembledNode, MembershipSpec, NodeSpec, ServeLocal, Services, TransferSpec};
pub use background::Background;
pub use clock::Clock;
pub use cluster::{Cluster, ClusterBuilder, EngineKind, NodeStats};
pub use coordinator::{
    Acks, Coordinator, CoordinatorConfig, GetResult, MemberRecords, PutResult, ReadFanout, Replies,
    WriteQuorum, WriteRequest, check_owner_quorum,
};
pub use error::{ClusterError, QuorumError, check_quorum};
pub use faulty::{FaultPlan, FaultyReplica};
pub use glob::{Glob, GlobError, MAX_PATTERN_BYTES};
pub use handoff::{Handoff, HandoffConfig};
pub use listing::{Page, step};
pub use local::LocalReplica;
pub use members::Members;
pub use membership::Membership;
pub use repair_budget::{BUSY_OPS_PER_SECOND, Load, RepairBudget};
pub use replica::{
    Coordinated, Durability, KeyPage, LIST_PAGE_BYTES, PageBuilder, Replica, ReplicaError,
    ReplicaFuture, answered, deferred,
};
pub use secret::{ClusterSecret, MIN_DISTINCT_BYTES, MIN_SECRET_BYTES, WeakSecret};
pub use tombstones::{Collector, CollectorConfig, CollectorStats};
pub use transfers::{ChangePhase, Gain, KeepView, Progress, TransferConfig, Transfers};
pub use view::{HistoryError, OwnerSets, View, ViewHandle};
