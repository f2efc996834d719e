//! Gossip: how nodes learn of each other and judge who is down.
//!
//! - [`table`]: each node's announcement of itself (who, where, which layout, a
//!   heartbeat) and how tables merge.
//! - [`detector`]: phi-accrual failure detection over the heartbeats' arrivals.
//! - [`liveness`]: the detector's latest judgement, shared with every path that must
//!   know who is down.
//! - [`Gossip`]: one node's rounds, swapping tables with a few peers at a time.
//!
//! Gossip carries no layout: layouts are chosen by Paxos and spread by `membership`.
//! What gossip adds is liveness, and a way in for a node that knows only a seed.

pub mod detector;
pub mod liveness;
mod service;
pub mod table;

pub use detector::DetectorConfig;
pub use liveness::{Judged, Liveness};
pub use service::{Gossip, GossipConfig, GossipSpec, Known, LayoutVersion, Reach, Watched};
pub use table::Announcement;
