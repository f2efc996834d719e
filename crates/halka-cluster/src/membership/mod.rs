//! Membership: the layouts a node has installed, how the next one is chosen, and how
//! every node comes to install it.
//!
//! - [`spec`]: a layout written down, with every member's state and addresses.
//! - [`staging`]: the joins, leaves and replaces an operator stages, and their plan.
//! - [`ballot`]: choosing the next version (single-decree Paxos among the current
//!   layout's members), so that two racing commits cannot make two layouts of one version.
//! - [`store`]: what a node keeps across restarts (its installed layouts, its votes).
//! - [`Membership`]: one node's part in all this, answering peers over RPC
//!   (`Replica::membership`), and committing an operator's changes.

pub mod ballot;
mod commit;
mod recovery;
mod service;
pub mod spec;
mod spread;
pub mod staging;
mod start;
pub mod store;

pub use commit::{CommitError, Committed};
pub use service::{Admit, Connect, Membership, MembershipConfig, MembershipError};
pub use spec::{Addresses, LayoutSpec, MemberSpec, StateSpec};
pub use staging::{Change, Plan, StageError};
pub use store::{FileStore, MembershipStore, MemoryStore, Saved};

use ballot::{Ballot, Vote};
use serde::{Deserialize, Serialize};

/// What one node asks another about membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipRequest {
    /// Who the node is and where it is reached (what a join records).
    Describe,
    /// The layouts the node has installed.
    Current,
    /// Phase 1 of choosing layout `version`.
    Prepare { version: u64, ballot: Ballot },
    /// Phase 2: accept `proposal` under `ballot`.
    Accept { ballot: Ballot, proposal: LayoutSpec },
    /// Install the active layouts `layouts` (oldest first; the newest was chosen).
    Install { layouts: Vec<LayoutSpec> },
    /// The sender's gossip table (see `gossip`); answered with the receiver's.
    Gossip(Vec<crate::gossip::Announcement>),
    /// The digest of the sender's settings (see `settings`), with its entries when it
    /// found the receiver's older. Answered with the receiver's entries when they differ.
    Settings { digest: u64, entries: Option<Vec<(String, crate::settings::Setting)>> },
    /// What the node promised and accepted for layout `version` (asked by a member that
    /// lost its own votes).
    Votes { version: u64 },
}

/// The answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipResponse {
    Described(MemberSpec),
    Current { layouts: Vec<LayoutSpec>, reads_newest: bool },
    Vote(Vote),
    Installed,
    Gossip(Vec<crate::gossip::Announcement>),
    Settings(Option<Vec<(String, crate::settings::Setting)>>),
    Votes(ballot::Votes),
}
