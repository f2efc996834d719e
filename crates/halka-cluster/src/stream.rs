//! Streaming a hash range from one replica to another: what a new owner does for each
//! partition it gains when the layout changes (`Transfers`; DESIGN.md, "Elastic
//! membership").
//!
//! The source answers one page at a time ([`Replica::read_range`], about `BATCH_BYTES`,
//! closed at a hash boundary), the target merges each page ([`Replica::merge_many`],
//! which resolves once the page is as durable as a write), and only then is the page's
//! last hash recorded as the range's checkpoint. A stream that stops — the source fails,
//! the target node crashes — starts again just past its checkpoint, so what was stored
//! is not read again; and since every record is merged (a join), a page repeated after a
//! crash between merge and checkpoint changes nothing. A finished range keeps its
//! checkpoint at its last hash, so a node restarted later in the change does not stream
//! it again; `Transfers` clears a change's checkpoints once it is over.

use crate::{KeyPage, Replica, ReplicaError};
use halka_store::HashRange;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where streams of ranges stopped: the last hash of each range already stored.
pub trait Checkpoints: Send + Sync {
    /// The last hash of `range` already stored, if a stream of it stopped midway.
    fn stored_through(&self, range: HashRange) -> Option<u64>;

    /// Records that every record of `range` hashed up to `through` is stored.
    ///
    /// # Errors
    /// The checkpoint could not be kept (the stream stops rather than run ahead of it).
    fn record(&self, range: HashRange, through: u64) -> std::io::Result<()>;

    /// Records that `range` is stored in full: a later stream of it reads nothing.
    ///
    /// # Errors
    /// As [`Checkpoints::record`].
    fn finish(&self, range: HashRange) -> std::io::Result<()> {
        self.record(range, range.last)
    }

    /// Forgets every checkpoint (and every scoped set): the change they were for is
    /// over, and a later change must stream its ranges afresh.
    ///
    /// # Errors
    /// They cannot be removed.
    fn clear(&self) -> std::io::Result<()>;

    /// Checkpoints of their own for streams from one source (`scope`: its id), so that
    /// streams of one range from several sources each resume where they stopped.
    ///
    /// # Errors
    /// They cannot be kept (the default: this kind cannot be scoped).
    fn scoped(&self, scope: &str) -> std::io::Result<std::sync::Arc<dyn Checkpoints>> {
        Err(std::io::Error::other(format!("these checkpoints cannot be scoped to {scope:?}")))
    }
}

/// What one call to [`stream_range`] moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streamed {
    pub pages: u64,
    pub records: u64,
    /// The records' size as batches are weighed (`batch_weight`: keys, values, and a
    /// fixed overhead per record and version).
    pub bytes: u64,
}

/// Why a stream stopped before the end of its range.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    #[error("reading from the source failed: {0}")]
    Source(ReplicaError),
    #[error("storing on the target failed: {0}")]
    Target(ReplicaError),
    #[error("keeping the stream's checkpoint failed: {0}")]
    Checkpoint(std::io::Error),
}

/// Copies every record of `range` from `source` to `target`, from just past the range's
/// checkpoint to its end, checkpointing after each page. Reading a page and storing it
/// each get `deadline`: a source that stops answering fails the stream rather than hang
/// it.
///
/// # Errors
/// A page could not be read, stored or checkpointed; calling again resumes after the
/// last page checkpointed.
pub async fn stream_range(
    source: &dyn Replica,
    target: &dyn Replica,
    range: HashRange,
    checkpoints: &dyn Checkpoints,
    deadline: Duration,
) -> Result<Streamed, StreamError> {
    let mut streamed = Streamed::default();
    let mut next = match checkpoints.stored_through(range) {
        Some(through) if through == range.last => return Ok(streamed),
        Some(through) => through.checked_add(1),
        None => Some(range.first),
    };
    while let Some(first) = next {
        let page = source.read_range(HashRange { first, last: range.last });
        let KeyPage { keys, through } =
            within(deadline, page).await.map_err(StreamError::Source)?;
        streamed.pages += 1;
        streamed.records += keys.len() as u64;
        let bytes: usize = keys.iter().map(|(k, r)| crate::replica::batch_weight(k, r)).sum();
        streamed.bytes += bytes as u64;
        within(deadline, target.merge_many(keys)).await.map_err(StreamError::Target)?;
        next = match through {
            Some(through) => {
                checkpoints.record(range, through).map_err(StreamError::Checkpoint)?;
                through.checked_add(1).filter(|n| *n <= range.last)
            }
            None => None,
        };
    }
    checkpoints.finish(range).map_err(StreamError::Checkpoint)?;
    Ok(streamed)
}

/// `call`, or a timeout once `deadline` has passed.
pub(crate) async fn within<T>(
    deadline: Duration,
    call: crate::ReplicaFuture<T>,
) -> Result<T, ReplicaError> {
    let ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
    tokio::time::timeout(deadline, call).await.unwrap_or(Err(ReplicaError::Timeout(ms)))
}

/// Checkpoints in memory: for tests, the simulator, and nodes on the memory engine (which
/// keep nothing across restarts anyway).
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    ranges: Mutex<HashMap<HashRange, u64>>,
    scopes: Mutex<HashMap<String, std::sync::Arc<MemoryCheckpoints>>>,
}

impl Checkpoints for MemoryCheckpoints {
    fn stored_through(&self, range: HashRange) -> Option<u64> {
        self.ranges.lock().get(&range).copied()
    }

    fn record(&self, range: HashRange, through: u64) -> std::io::Result<()> {
        self.ranges.lock().insert(range, through);
        Ok(())
    }

    fn clear(&self) -> std::io::Result<()> {
        self.ranges.lock().clear();
        self.scopes.lock().clear();
        Ok(())
    }

    fn scoped(&self, scope: &str) -> std::io::Result<std::sync::Arc<dyn Checkpoints>> {
        let mut scopes = self.scopes.lock();
        let scoped = scopes.entry(scope.to_string()).or_default();
        Ok(std::sync::Arc::clone(scoped) as std::sync::Arc<dyn Checkpoints>)
    }
}

/// Checkpoints as files in a directory: one per range in progress, each replaced whole
/// (written aside, renamed over), and one line per finished range appended to `done`. A
/// node that stops finds the last ones it kept.
///
/// They are not fsynced. A checkpoint lost in a crash only makes a stream read again
/// what it already stored (merging it again changes nothing); and a checkpoint can
/// outlive the records it covers only in a crash that loses acknowledged writes too (a
/// periodic sync policy), after which the node clears them all (see `halka`'s
/// `transfer_spec`) rather than trust one. Syncing each would cost two fsyncs per
/// partition and source, most of a small change's time.
#[derive(Debug)]
pub struct FileCheckpoints {
    dir: PathBuf,
    /// The finished ranges, as `done` lists them.
    done: Mutex<std::collections::HashSet<HashRange>>,
}

impl FileCheckpoints {
    /// Checkpoints kept in `dir` (created if missing).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let done = match std::fs::read_to_string(dir.join(DONE)) {
            Ok(text) => text.lines().filter_map(parse_range).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => return Err(e),
        };
        Ok(Self { dir: dir.to_path_buf(), done: Mutex::new(done) })
    }

    fn path(&self, range: HashRange) -> PathBuf {
        self.dir.join(range_name(range))
    }
}

/// The file finished ranges are appended to.
const DONE: &str = "done";

fn range_name(range: HashRange) -> String {
    format!("{:016x}-{:016x}", range.first, range.last)
}

/// A line of `done` (a line cut short by a crash parses as nothing).
fn parse_range(line: &str) -> Option<HashRange> {
    let (first, last) = line.split_once('-')?;
    let (first, last) = (u64::from_str_radix(first, 16).ok()?, u64::from_str_radix(last, 16).ok()?);
    (line.len() == 33).then_some(HashRange { first, last })
}

impl Checkpoints for FileCheckpoints {
    fn stored_through(&self, range: HashRange) -> Option<u64> {
        if self.done.lock().contains(&range) {
            return Some(range.last);
        }
        let text = std::fs::read_to_string(self.path(range)).ok()?;
        u64::from_str_radix(text.trim(), 16).ok()
    }

    fn record(&self, range: HashRange, through: u64) -> std::io::Result<()> {
        use std::io::Write as _;
        let path = self.path(range);
        let aside = path.with_extension("new");
        std::fs::File::create(&aside)?.write_all(format!("{through:016x}\n").as_bytes())?;
        std::fs::rename(&aside, &path)
    }

    /// One line appended to `done` (one write, where a file per range would cost a
    /// create and a rename), and the range's file in progress removed.
    fn finish(&self, range: HashRange) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(DONE))?;
        file.write_all(format!("{}\n", range_name(range)).as_bytes())?;
        self.done.lock().insert(range);
        match std::fs::remove_file(self.path(range)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn clear(&self) -> std::io::Result<()> {
        self.done.lock().clear();
        std::fs::remove_dir_all(&self.dir)?;
        std::fs::create_dir_all(&self.dir)
    }

    /// A subdirectory named for `scope` (characters other than letters, digits, `-` and
    /// `_` become `_`).
    fn scoped(&self, scope: &str) -> std::io::Result<std::sync::Arc<dyn Checkpoints>> {
        let name: String = scope
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        Ok(std::sync::Arc::new(FileCheckpoints::open(&self.dir.join(name))?))
    }
}
