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
    /// An earlier fsync failed. The engine no longer knows what is on disk, so it refuses
    /// writes until it is reopened (and recovers from its journal).
    #[error("storage engine refused the write: an earlier fsync failed ({0}); restart the node")]
    Poisoned(String),
    /// Free space under the data directory is below the reserve: the write was refused
    /// before reaching the journal, so nothing is lost and writes resume once space is
    /// freed.
    #[error(
        "disk nearly full: {free} bytes free under {dir}, below storage.min_free_bytes \
         ({reserve}); writes resume once space is freed"
    )]
    DiskFull { free: u64, reserve: u64, dir: String },
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("stored record for a key is corrupt: {0}")]
    Corrupt(String),
}
