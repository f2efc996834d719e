//! How one node keeps data.
//!
//! A key maps to a [`Record`]: the set of concurrent versions (siblings) written for it and
//! the causal context that summarises every version the record has seen. Records merge by a
//! join that is commutative, associative and idempotent, so replicas can exchange them in
//! any order, any number of times, and converge. See `DESIGN.md` ("Versions and clocks") for
//! why halka uses dotted version vectors.
//!
//! Records live in an [`Engine`]: [`MemoryEngine`] for tests and the embedded demo,
//! [`FjallEngine`] for durable storage with a configurable [`SyncPolicy`].

mod clock;
mod codec;
pub mod collection;
mod counter;
pub mod digests;
pub mod engine;
mod error;
pub mod hints;
pub mod hll;
pub mod layout;
mod limits;
mod record;
pub mod score;
pub mod tombstones;
mod validate;
mod write;

pub use clock::{Dot, NodeId, VersionVector};
pub use codec::{decode_record, encode_record};
pub use collection::{Head, Kind};
pub use counter::{
    Counter, CounterEntry, CounterError, Float, FloatEntry, FloatPart, Number, parse_float,
    parse_integer,
};
pub use digests::{DigestTree, entry_digest};
pub use engine::{
    Engine, FjallEngine, FjallOptions, MemoryEngine, SyncPolicy, SyncToken, TrackedEngine,
    Tracking, Visit,
};
pub use error::StoreError;
pub use hints::{Hint, HintKind, HintStats, HintStore, MemoryHints, Stored};
pub use layout::HashRange;
pub use limits::{LimitError, Limits};
pub use record::{MAX_SIBLINGS, Record, Version};
pub use score::{Score, ScoreError};
pub use tombstones::{TombstoneIndex, TombstoneStats};
pub use validate::{
    InvalidRecord, MAX_CONTENT_TYPE_BYTES, MAX_CONTEXT_ENTRIES, MAX_COUNTER, MAX_NODE_ID_BYTES,
    MAX_NUMBERED, valid_content_type,
};
pub use write::{Applied, Change, Condition, ExpireWhen, Expiry, Outcome, Refusal, Write};
