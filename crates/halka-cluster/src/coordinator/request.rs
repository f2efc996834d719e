//! What a client asks of the coordinator and what it answers: write requests and
//! quorums, write receipts, read results.

use crate::ClusterError;
use bytes::Bytes;
use halka_store::{Change, Condition, NodeId, Outcome, Record, VersionVector};
use smallvec::SmallVec;
use std::sync::Arc;

/// Replicas that acknowledged a write; inline up to N = 5, so results allocate nothing.
pub type Acks = SmallVec<[NodeId; 5]>;

/// Replicas' answers to a read, in arrival order; inline up to N = 5.
pub type Replies = SmallVec<[(NodeId, Option<Arc<Record>>); 5]>;

/// What a successful write reports: its receipt.
#[derive(Debug, Clone)]
pub struct PutResult {
    /// Causal context of the new record; pass it back to replace what this write produced.
    pub context: VersionVector,
    /// Nodes that acknowledged before the call returned, owners and stand-ins, in order.
    pub acked: Acks,
    /// The stand-ins among them, each with the owner it keeps the write for.
    pub stand_ins: SmallVec<[(NodeId, NodeId); 2]>,
    /// Those of `acked` that fsynced the write before acknowledging it (sync policy
    /// `always`): the copies that survive their machine losing power. The others hold it
    /// as their sync policy holds writes.
    pub synced: Acks,
    /// What the coordinating replica made of the write. When it refused it (a condition
    /// did not hold, say), nothing was written and `acked` names that replica alone.
    pub outcome: Outcome,
}

/// A client write before the coordinator stamps it: what to change, against which
/// context, under which condition.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub change: Change,
    /// The context the client read; `None` replaces whatever the coordinating replica
    /// holds (plain `SET`).
    pub context: Option<VersionVector>,
    /// Checked at the coordinating replica (see [`WriteRequest::at_first_owner`]).
    pub condition: Condition,
    /// Report the key's previous value in [`Outcome::previous`].
    pub want_previous: bool,
    /// The media type a put stores with its value (see `Write::content_type`).
    pub content_type: Option<Box<str>>,
}

impl WriteRequest {
    /// An unconditional change against `context`.
    #[must_use]
    pub fn new(change: Change, context: Option<VersionVector>) -> Self {
        Self {
            change,
            context,
            condition: Condition::Always,
            want_previous: false,
            content_type: None,
        }
    }

    /// Whether the write depends on what the coordinating replica holds — a condition, a
    /// previous value to report, a change derived from the value (`INCR`, `EXPIRE`,
    /// `APPEND`). Such writes are coordinated by the key's first owner that answers: the
    /// same replica whichever node takes the request, and one that holds every such
    /// write before it acknowledges it. So concurrent conditional writes have one winner
    /// and each sees the ones before it, while that replica is up. Plain stores and
    /// deletes are coordinated by this node when it is an owner, saving a hop; they reach
    /// the first owner in their fan-out.
    #[must_use]
    pub fn at_first_owner(&self) -> bool {
        self.condition != Condition::Always
            || self.want_previous
            || !matches!(
                self.change,
                Change::Put { expiry: halka_store::Expiry::Never | halka_store::Expiry::At(_), .. }
                    | Change::Delete
            )
    }
}

/// How many acknowledgements a write waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteQuorum {
    /// Owner slots filled, by the owner or by a stand-in for it.
    pub w: usize,
    /// Slots filled by owners themselves (0: stand-ins may fill every slot but the
    /// coordinating owner's).
    pub pw: usize,
}

/// `pw` must not exceed `w`.
///
/// # Errors
/// [`ClusterError::OwnerQuorum`].
pub fn check_owner_quorum(pw: usize, w: usize) -> Result<(), ClusterError> {
    if pw > w {
        return Err(ClusterError::OwnerQuorum { pw, w });
    }
    Ok(())
}

/// What a successful read reports.
#[derive(Debug, Clone)]
pub struct GetResult {
    /// The first R answers, in arrival order: each replica's record (`None` if it had
    /// nothing). The seed project's map of replica → value.
    pub replies: Replies,
    /// The merge of the answers.
    pub record: Arc<Record>,
    /// The coordinator's clock when the read completed: what expiry is judged by.
    pub now_us: u64,
}

impl GetResult {
    /// Live sibling values of the merged record (empty when absent, deleted or expired).
    pub fn values(&self) -> impl Iterator<Item = &Bytes> {
        self.record.values_at(self.now_us)
    }

    /// The key's value for clients that want exactly one: the last writer's (for a
    /// counter, its joined value); `None` when absent, deleted or expired.
    #[must_use]
    pub fn value(&self) -> Option<Bytes> {
        self.record.value_at(self.now_us)
    }

    /// When the value expires (microseconds), if it lives and has an expiry.
    #[must_use]
    pub fn expires_at_us(&self) -> Option<u64> {
        self.record.live_winner(self.now_us).and_then(|v| v.expires_at_us)
    }

    /// The media type the winning value was stored with, if any.
    #[must_use]
    pub fn content_type(&self) -> Option<&str> {
        self.record.live_winner(self.now_us).and_then(|v| v.content_type.as_deref())
    }

    /// Whether concurrent writes left more than one live value for a client to choose
    /// from (a counter's concurrent states join into one value, so never).
    #[must_use]
    pub fn has_siblings(&self) -> bool {
        let counter = self.record.live_winner(self.now_us).is_some_and(|v| v.counter.is_some());
        !counter && self.values().nth(1).is_some()
    }

    /// The collection the key holds (see `halka_store::collection`), if it holds one.
    #[must_use]
    pub fn head(&self) -> Option<halka_store::Head> {
        self.record.head_at(self.now_us)
    }

    /// The causal context to pass to a write that resolves these siblings.
    #[must_use]
    pub fn context(&self) -> &VersionVector {
        self.record.context()
    }
}
