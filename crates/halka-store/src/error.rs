use crate::{InvalidRecord, LimitError};
use thiserror::Error;

/// Why a storage operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// Causal metadata from outside that fails validation; nothing was stored.
    #[error("invalid causal metadata: {0}")]
    Invalid(#[from] InvalidRecord),
    /// An earlier journal write or fsync failed. The engine no longer knows what is on
    /// disk, so it refuses writes until it is reopened (and recovers from its journal); a
    /// halka node does that by itself once the disk has room.
    #[error(
        "storage refused the write: an earlier journal write or fsync failed ({0}); the \
         node reopens its storage once the disk has room again"
    )]
    Poisoned(String),
    /// As `Poisoned`, and the failure was the disk running out of space.
    #[error(
        "out of disk space: a journal write failed ({0}); writes are refused until the disk \
         has room again, and then the node reopens its storage by itself"
    )]
    OutOfSpace(String),
    /// Free space under the data directory is below the reserve: the write was refused
    /// before reaching the journal, so nothing is lost and writes resume once space is
    /// freed.
    #[error(
        "disk nearly full: {free} bytes free under {dir}, below the reserve of {reserve} \
         bytes (storage.min_free_mb); writes resume once space is freed"
    )]
    DiskFull { free: u64, reserve: u64, dir: String },
    /// Another engine (in this process or another) has the data directory open.
    #[error(
        "data directory {0} is in use by another halka process (or is still being closed); \
         give each node its own data_dir"
    )]
    InUse(String),
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("stored record for a key is corrupt: {0}")]
    Corrupt(String),
}
