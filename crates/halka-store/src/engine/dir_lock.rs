//! One engine per data directory: an exclusive `flock` on a `LOCK` file inside it.
//!
//! `flock` locks belong to an open file, so a second engine in the same process is
//! refused as surely as one in another process, and the kernel releases the lock when
//! the process dies (a crashed node never leaves a stale lock behind).

use crate::StoreError;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The lock file's name inside the data directory.
const LOCK_FILE: &str = "LOCK";

/// Holds the directory until dropped.
pub(crate) struct DirLock(#[allow(dead_code, reason = "held for its drop")] Flock<File>);

impl DirLock {
    /// Locks `dir`, or refuses if another engine has it open.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Self(lock)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                Err(StoreError::InUse(dir.display().to_string()))
            }
            Err((_, e)) => Err(StoreError::Io(format!("cannot lock {}: {e}", path.display()))),
        }
    }
}
