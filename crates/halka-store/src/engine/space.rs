//! Free disk space, watched so that writes are refused while it runs low instead of
//! filling the disk.
//!
//! fjall poisons its database on a failed journal write, and only reopening it recovers
//! (a restart of the node). A write refused before it reaches the journal costs nothing:
//! reads go on, and writes resume by themselves once space is freed. So every write asks
//! [`SpaceGuard::admit`] first. The free space is measured (`statvfs`) at most once a
//! second, or sooner once the writes since the last measurement could have used a
//! quarter of the reserve, so the check costs an atomic load or two on the hot path.

use crate::StoreError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Measures the free bytes of the filesystem holding a directory.
pub type Probe = Arc<dyn Fn(&Path) -> std::io::Result<u64> + Send + Sync>;

/// The free space of the filesystem holding `dir`, as an unprivileged process may use it.
///
/// # Errors
/// The filesystem could not be asked.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// Refuses writes while the free space under a directory is below a reserve.
pub struct SpaceGuard {
    dir: PathBuf,
    reserve: u64,
    probe: Probe,
    started: Instant,
    /// Free bytes at the last measurement.
    free: AtomicU64,
    /// Bytes admitted since then.
    written: AtomicU64,
    /// Milliseconds since `started` of the last measurement.
    measured_ms: AtomicU64,
    /// Whether writes are being refused now (for the log: it says so once per episode).
    refusing: AtomicBool,
}

impl std::fmt::Debug for SpaceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceGuard")
            .field("dir", &self.dir)
            .field("reserve", &self.reserve)
            .field("free", &self.free.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SpaceGuard {
    /// Keeps `reserve` bytes free under `dir` (0: never refuses), measured by `probe`.
    #[must_use]
    pub fn new(dir: PathBuf, reserve: u64, probe: Probe) -> Self {
        let guard = Self {
            dir,
            reserve,
            probe,
            started: Instant::now(),
            free: AtomicU64::new(u64::MAX),
            written: AtomicU64::new(0),
            measured_ms: AtomicU64::new(0),
            refusing: AtomicBool::new(false),
        };
        guard.measure();
        guard
    }

    /// Admits a write of about `bytes`, or refuses it while the space left after it
    /// would be below the reserve.
    ///
    /// # Errors
    /// [`StoreError::DiskFull`].
    pub fn admit(&self, bytes: usize) -> Result<(), StoreError> {
        if self.reserve == 0 {
            return Ok(());
        }
        let bytes = bytes as u64;
        let written = self.written.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let age = self.elapsed_ms().saturating_sub(self.measured_ms.load(Ordering::Relaxed));
        // While refusing, every write measures again: it resumes as soon as space is
        // freed (refused writes are the exception; a measurement costs a system call).
        let stale = age >= 1000 || written >= self.reserve / 4;
        if stale || self.refusing.load(Ordering::Relaxed) {
            // The measurement starts the count again, this write included.
            self.measure();
            self.written.fetch_add(bytes, Ordering::Relaxed);
        }
        let free = self.free.load(Ordering::Relaxed);
        let left = free.saturating_sub(self.written.load(Ordering::Relaxed));
        if left >= self.reserve {
            if self.refusing.swap(false, Ordering::Relaxed) {
                tracing::info!(free, dir = %self.dir.display(), "disk space recovered; accepting writes again");
            }
            return Ok(());
        }
        // Not written after all.
        self.written.fetch_sub(bytes.min(self.written.load(Ordering::Relaxed)), Ordering::Relaxed);
        if !self.refusing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                free,
                reserve = self.reserve,
                dir = %self.dir.display(),
                "disk nearly full; refusing writes until space is freed"
            );
        }
        Err(StoreError::DiskFull {
            free,
            reserve: self.reserve,
            dir: self.dir.display().to_string(),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn measure(&self) {
        match (self.probe)(&self.dir) {
            Ok(free) => {
                self.free.store(free, Ordering::Relaxed);
                self.written.store(0, Ordering::Relaxed);
            }
            // Writes are not refused for want of an answer: the journal's own error
            // remains the last line.
            Err(e) => tracing::warn!(error = %e, "cannot measure free disk space"),
        }
        self.measured_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn guard(reserve: u64, free: &Arc<AtomicU64>) -> SpaceGuard {
        let free = Arc::clone(free);
        SpaceGuard::new(
            PathBuf::from("/"),
            reserve,
            Arc::new(move |_| Ok(free.load(Ordering::Relaxed))),
        )
    }

    #[test]
    fn writes_are_refused_below_the_reserve_and_resume_once_space_is_freed() {
        let free = Arc::new(AtomicU64::new(1000));
        let g = guard(800, &free);
        assert!(g.admit(100).is_ok(), "leaves 900");
        free.store(900, Ordering::Relaxed);
        assert!(matches!(g.admit(150), Err(StoreError::DiskFull { .. })), "would leave 750");
        assert!(matches!(g.admit(150), Err(StoreError::DiskFull { .. })), "still");
        free.store(10_000, Ordering::Relaxed);
        assert!(g.admit(150).is_ok(), "measured again at once while refusing");
    }

    #[test]
    fn space_used_since_the_last_measurement_counts() {
        let free = Arc::new(AtomicU64::new(900));
        let g = guard(800, &free);
        assert!(g.admit(50).is_ok(), "850 left by the count, no measurement yet");
        assert!(g.admit(60).is_err(), "the count alone refuses past the reserve");
    }

    #[test]
    fn a_zero_reserve_never_refuses() {
        let free = Arc::new(AtomicU64::new(0));
        assert!(guard(0, &free).admit(1 << 30).is_ok());
    }

    #[test]
    fn the_real_probe_measures_a_directory() {
        assert!(free_bytes(Path::new("/")).is_ok());
    }
}
