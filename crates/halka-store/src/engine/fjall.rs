//! The durable engine, on fjall (an LSM tree with a write-ahead journal).
//!
//! Durability follows [`SyncPolicy`]:
//! - `Always`: a write returns only after the journal is fsynced. Concurrent writers share
//!   fsyncs (group commit): each waits until some fsync started after its own insert.
//! - `Periodic`: a write returns once the journal holding it is handed to the OS, and a
//!   background thread fsyncs every `interval_ms`; a power loss loses at most that window
//!   of acknowledged writes, a killed process nothing.
//!
//! Inserts leave their journal entries in fjall's buffer (`manual_journal_persist`); the
//! wait for durability flushes it. Writes applied together and then waited for — a batch
//! of replica writes arriving in one network read, or the writers behind one fsync —
//! share one `write` system call instead of paying one each.
//!
//! After a failed fsync the engine is poisoned: the journal's state on disk is unknown, so
//! it refuses all further writes instead of acknowledging writes it may not keep. Reopening
//! recovers from the journal.

use super::journal::JournalFile;
use super::space::{SpaceGuard, free_bytes};
use super::{Engine, SyncToken, Updater, Visit};
use crate::hints::{Hint, HintKind, HintStats, HintStore, Ledger, Stored};
use crate::layout::{HashRange, storage_key, user_key};
use crate::{Limits, NodeId, Record, StoreError, decode_record, encode_record};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

/// When acknowledged writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum SyncPolicy {
    /// fsync before acknowledging each write (shared between concurrent writers).
    Always,
    /// fsync in the background every `interval_ms` milliseconds.
    Periodic { interval_ms: u64 },
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy::Periodic { interval_ms: 100 }
    }
}

/// How to open a [`FjallEngine`].
#[derive(Clone)]
pub struct FjallOptions {
    pub path: PathBuf,
    pub sync: SyncPolicy,
    pub limits: Limits,
    /// Bytes of decoded records kept in memory (approximately); 0 turns the cache off.
    pub cache_bytes: u64,
    /// fjall's background threads (memtable flushes, compaction); `None` leaves fjall's
    /// default, one per core up to four.
    pub background_threads: Option<usize>,
    /// Writes are refused while less than this many bytes are free on the data
    /// directory's filesystem (see `space`); 0 never refuses.
    pub min_free_bytes: u64,
    /// How free space is measured; `None`: the filesystem's own figure (`statvfs`).
    pub space_probe: Option<super::space::Probe>,
}

impl std::fmt::Debug for FjallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallOptions")
            .field("path", &self.path)
            .field("sync", &self.sync)
            .field("cache_bytes", &self.cache_bytes)
            .field("min_free_bytes", &self.min_free_bytes)
            .finish_non_exhaustive()
    }
}

impl FjallOptions {
    /// Default cache size: the working set of a small node, without crowding a laptop.
    pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;
    /// Default free-space reserve: room for compactions to finish and an operator to act.
    pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 << 20;

    /// Options for `path` with every default.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            sync: SyncPolicy::default(),
            limits: Limits::default(),
            cache_bytes: Self::DEFAULT_CACHE_BYTES,
            background_threads: None,
            min_free_bytes: Self::DEFAULT_MIN_FREE_BYTES,
            space_probe: None,
        }
    }
}

/// Decoded records by key, in front of the LSM tree.
///
/// Every write reads the key first (the replica protocol merges into what is stored), and
/// in fjall a read is a skip-list search through the memtable, then the block cache, then a
/// decode. Keeping decoded records answers both reads and those read-before-writes from
/// one hash lookup. The cache is filled only under the key's stripe lock, so a read that
/// misses cannot put back a record an update has just replaced.
type RecordCache = quick_cache::sync::Cache<Box<[u8]>, Arc<Record>, RecordWeight>;

#[derive(Debug, Clone, Copy)]
struct RecordWeight;

impl quick_cache::Weighter<Box<[u8]>, Arc<Record>> for RecordWeight {
    fn weight(&self, key: &Box<[u8]>, record: &Arc<Record>) -> u64 {
        // Approximate: the slot, the key, each version's fixed part and value, the context.
        let versions: usize =
            record.versions().iter().map(|v| 64 + v.value.as_ref().map_or(0, |b| b.len())).sum();
        (64 + key.len() + versions + 32 * record.context().iter().count()) as u64
    }
}

/// Stripes serialise read-modify-write per key; a power of two so the stripe is a mask.
const STRIPES: usize = 256;

struct Inner {
    db: Database,
    records: Keyspace,
    /// Hints for other nodes (see `hints`), keyed by owner then key.
    hints: Keyspace,
    /// Small facts about the store itself, such as the counter floor.
    meta: Keyspace,
    /// See [`Engine::counter_floor`]; raised (and written to `meta`) only under the
    /// removed key's stripe lock.
    floor: AtomicU64,
    cache: Option<RecordCache>,
    /// Our handle on fjall's newest journal; `None` falls back to fjall's own sync.
    /// Locked only by the one thread syncing at a time.
    journal: Mutex<Option<JournalFile>>,
    stripes: Box<[Mutex<()>]>,
    hasher: RandomState,
    sync: SyncPolicy,
    limits: Limits,
    /// Set after a failed journal write or fsync.
    poisoned: Mutex<Option<Poison>>,
    /// Writes inserted so far, the count handed to the OS by the last buffer flush, and
    /// the count covered by the last completed fsync.
    inserted: AtomicU64,
    flushed: AtomicU64,
    synced: AtomicU64,
    /// Whether a leader is fsyncing now; waiters sleep on `sync_done`.
    sync_state: Mutex<bool>,
    sync_done: Condvar,
    /// Test hook: make the next fsync fail.
    fail_next_sync: AtomicBool,
    /// Refuses writes while the disk is nearly full, before fjall poisons itself.
    space: SpaceGuard,
}

/// Why an engine refuses writes until it is reopened.
#[derive(Debug, Clone)]
struct Poison {
    reason: String,
    /// The disk was full (`ENOSPC`): the client hears "out of disk space".
    no_space: bool,
}

impl Poison {
    fn of_fjall(context: &str, e: &fjall::Error) -> Self {
        // The I/O error may sit under fjall's own or its LSM tree's.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut no_space = false;
        while let Some(error) = cause {
            no_space |= error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull);
            cause = error.source();
        }
        Self { reason: format!("{context}: {e}"), no_space }
    }

    fn of_io(context: &str, e: &std::io::Error) -> Self {
        Self {
            reason: format!("{context}: {e}"),
            no_space: e.kind() == std::io::ErrorKind::StorageFull,
        }
    }

    fn error(&self) -> StoreError {
        if self.no_space {
            StoreError::OutOfSpace(self.reason.clone())
        } else {
            StoreError::Poisoned(self.reason.clone())
        }
    }
}

impl Inner {
    /// Records the first failure that leaves what is on disk unknown (a failed journal
    /// write or fsync, or fjall poisoning itself); every write is refused from now on.
    fn poison(&self, failure: Poison) -> StoreError {
        tracing::error!(error = %failure.reason, "storage write failed; refusing further writes");
        self.poisoned.lock().get_or_insert(failure).error()
    }

    /// A failed insert or removal.
    fn write_failed(&self, e: &fjall::Error) -> StoreError {
        self.poison(Poison::of_fjall("writing to the store", e))
    }

    fn check_poison(&self) -> Result<(), StoreError> {
        match &*self.poisoned.lock() {
            Some(poison) => Err(poison.error()),
            None => Ok(()),
        }
    }

    /// Returns once write `seq` is in the OS: it survives this process being killed.
    fn flush_through(&self, seq: u64) -> Result<(), StoreError> {
        if self.flushed.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        self.check_poison()?;
        // Every write counted here has finished its insert, so its entry is in the buffer
        // this flush empties.
        let target = self.inserted.load(Ordering::SeqCst);
        if let Err(e) = self.db.persist(PersistMode::Buffer) {
            return Err(self.poison(Poison::of_fjall("writing the journal", &e)));
        }
        self.flushed.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    fn fsync(&self) -> Result<(), StoreError> {
        let result = if self.fail_next_sync.swap(false, Ordering::SeqCst) {
            Err(Poison { reason: "injected fsync failure".into(), no_space: false })
        } else {
            self.sync_journal()
        };
        result.map_err(|failure| self.poison(failure))
    }

    /// See the `journal` module: flush fjall's buffer, then sync outside its lock.
    fn sync_journal(&self) -> Result<(), Poison> {
        let mut journal = self.journal.lock();
        let Some(journal) = journal.as_mut() else {
            return self
                .db
                .persist(PersistMode::SyncData)
                .map_err(|e| Poison::of_fjall("syncing the journal", &e));
        };
        self.db
            .persist(PersistMode::Buffer)
            .map_err(|e| Poison::of_fjall("writing the journal", &e))?;
        journal.sync_data().map_err(|e| Poison::of_io("syncing the journal", &e))
    }

    /// Group commit: returns once an fsync that started after write `seq` completed.
    ///
    /// One waiter at a time leads: it fsyncs everything inserted so far while the others
    /// sleep on a condition variable, and wakes them all at once when it is done. Those it
    /// covered return; the rest elect the next leader. (Handing a mutex from waiter to
    /// waiter instead serialises dozens of thread wake-ups behind every fsync.)
    fn sync_through(&self, seq: u64) -> Result<(), StoreError> {
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let mut leading = self.sync_state.lock();
        loop {
            if self.synced.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            self.check_poison()?;
            if !*leading {
                break;
            }
            self.sync_done.wait(&mut leading);
        }
        *leading = true;
        drop(leading);
        let target = self.inserted.load(Ordering::SeqCst);
        let result = self.fsync();
        if result.is_ok() {
            self.flushed.fetch_max(target, Ordering::AcqRel);
            self.synced.fetch_max(target, Ordering::AcqRel);
        }
        *self.sync_state.lock() = false;
        self.sync_done.notify_all();
        result
    }
}

/// The keyspace of records, keyed by `layout::storage_key`.
const RECORDS: &str = "records-by-hash";

/// The keyspace of hints, keyed by `hint_key`.
const HINTS: &str = "hints-by-hash";

/// The keyspace of hints before they were laid out by hash: `[len][owner][key]`.
const HINTS_V1: &str = "hints";

/// The keyspace of facts about the store; see `FLOOR_KEY`.
const META: &str = "meta";

/// The [`Engine::counter_floor`], a big-endian u64. Written in the same journal as the
/// removals it covers and before them, so no removal is durable without it.
const FLOOR_KEY: &[u8] = b"counter-floor";

/// The keyspace of the first layout, keyed by the bare key.
const RECORDS_V1: &str = "records";

/// Moves the keyspace `old` of an earlier layout into `into`, each entry under the key
/// `rekey` gives it (which also checks the entry). Crash-safe: the old keyspace goes only
/// after the copy is synced, and a copy interrupted before that is simply redone (each
/// insert writes the same bytes again). Returns the entries moved, or `None` when there
/// was no such keyspace.
fn migrate(
    db: &Database,
    old: &str,
    into: &Keyspace,
    rekey: impl Fn(&[u8], &[u8]) -> Result<Vec<u8>, StoreError>,
) -> Result<Option<u64>, StoreError> {
    if !db.keyspace_exists(old) {
        return Ok(None);
    }
    let io = |e: fjall::Error| StoreError::Io(format!("migrating {old} to the hash layout: {e}"));
    let old = db.keyspace(old, KeyspaceCreateOptions::default).map_err(io)?;
    let mut moved = 0_u64;
    for guard in old.iter() {
        let (key, value) = guard.into_inner().map_err(io)?;
        into.insert(rekey(&key, &value)?, value).map_err(io)?;
        moved += 1;
    }
    db.persist(PersistMode::SyncAll).map_err(io)?;
    db.delete_keyspace(old).map_err(io)?;
    db.persist(PersistMode::SyncAll).map_err(io)?;
    Ok(Some(moved))
}

/// Moves records of the first layout (keyed by the bare key, so a partition was not a
/// range) to the hash layout.
fn migrate_v1(db: &Database, records: &Keyspace) -> Result<(), StoreError> {
    let moved = migrate(db, RECORDS_V1, records, |key, value| {
        // Decoding checks each record before it moves.
        decode_record(value)?;
        Ok(storage_key(key).to_vec())
    })?;
    if let Some(records) = moved {
        tracing::info!(records, "data directory migrated to the hash layout");
    }
    Ok(())
}

/// Moves hints of the first layout (`HINTS_V1`, keyed by owner and bare key) to the hash
/// layout.
fn migrate_hints_v1(db: &Database, hints: &Keyspace) -> Result<(), StoreError> {
    let moved = migrate(db, HINTS_V1, hints, |stored, value| {
        decode_hint(value)?;
        let (owner, key) = split_hint_key(stored)?;
        Ok(hint_key(&owner, key))
    })?;
    if let Some(hints) = moved {
        tracing::info!(hints, "hints migrated to the hash layout");
    }
    Ok(())
}

fn read_floor(meta: &Keyspace) -> Result<u64, StoreError> {
    let raw = meta.get(FLOOR_KEY).map_err(|e| StoreError::Io(e.to_string()))?;
    let Some(raw) = raw else { return Ok(0) };
    let bytes: [u8; 8] = (*raw)
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("counter floor of {} bytes", raw.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

/// A durable engine in a data directory.
pub struct FjallEngine {
    inner: Arc<Inner>,
    flusher: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl std::fmt::Debug for FjallEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallEngine")
            .field("path", &self.inner.records.path())
            .field("sync", &self.inner.sync)
            .finish_non_exhaustive()
    }
}

impl FjallEngine {
    /// Opens (or creates) the engine in `options.path`, recovering from the journal.
    ///
    /// # Errors
    /// The directory cannot be created or the data in it cannot be recovered.
    pub fn open(options: FjallOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&options.path).map_err(|e| {
            StoreError::Io(format!("cannot create data directory {}: {e}", options.path.display()))
        })?;
        let mut builder = Database::builder(&options.path);
        if let Some(threads) = options.background_threads {
            builder = builder.worker_threads(threads.max(1));
        }
        // fjall locks the directory (its `lock` file) for as long as the database is open:
        // two writers on one journal would corrupt it.
        let db = builder.open().map_err(|e| match e {
            fjall::Error::Locked => StoreError::InUse(options.path.display().to_string()),
            e => StoreError::Io(format!("opening {}: {e}", options.path.display())),
        })?;
        let records = db
            .keyspace(RECORDS, || KeyspaceCreateOptions::default().manual_journal_persist(true))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        migrate_v1(&db, &records)?;
        let hints = db
            .keyspace(HINTS, || KeyspaceCreateOptions::default().manual_journal_persist(true))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        migrate_hints_v1(&db, &hints)?;
        let meta = db
            .keyspace(META, || KeyspaceCreateOptions::default().manual_journal_persist(true))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        let floor = read_floor(&meta)?;
        let journal = JournalFile::newest(&options.path);
        if journal.is_none() {
            tracing::warn!(path = %options.path.display(), "fjall journal not found; fsyncs will hold fjall's journal lock");
        }
        let inner = Arc::new(Inner {
            db,
            records,
            hints,
            meta,
            floor: AtomicU64::new(floor),
            journal: Mutex::new(journal),
            cache: (options.cache_bytes > 0).then(|| {
                // quick_cache sizes its tables from an item estimate; ~200 bytes a record.
                let items = usize::try_from(options.cache_bytes / 200).unwrap_or(usize::MAX);
                RecordCache::with_weighter(items.max(16), options.cache_bytes, RecordWeight)
            }),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
            sync: options.sync,
            limits: options.limits,
            poisoned: Mutex::new(None),
            inserted: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            sync_state: Mutex::new(false),
            sync_done: Condvar::new(),
            fail_next_sync: AtomicBool::new(false),
            space: SpaceGuard::new(
                options.path.clone(),
                options.min_free_bytes,
                options.space_probe.clone().unwrap_or_else(|| Arc::new(free_bytes)),
            ),
        });
        let flusher = match options.sync {
            SyncPolicy::Always => None,
            SyncPolicy::Periodic { interval_ms } => Some(
                spawn_flusher(&inner, interval_ms)
                    .map_err(|e| StoreError::Io(format!("cannot start fsync thread: {e}")))?,
            ),
        };
        Ok(Self { inner, flusher })
    }

    /// Whether fsyncs go through the engine's own journal handle (see `journal`). Not for
    /// production use.
    #[doc(hidden)]
    #[must_use]
    pub fn syncs_journal_directly(&self) -> bool {
        self.inner.journal.lock().is_some()
    }

    /// The hint store in this engine's directory, sharing its journal: a hint is in the
    /// OS when `put` returns (it survives the process being killed) and on disk with the
    /// next fsync.
    ///
    /// # Errors
    /// The stored hints cannot be read (to count them).
    pub fn hints(&self, max_bytes_per_owner: u64) -> Result<Arc<dyn HintStore>, StoreError> {
        let mut ledgers: BTreeMap<NodeId, Ledger> = BTreeMap::new();
        for guard in self.inner.hints.iter() {
            let (stored, value) = guard.into_inner().map_err(|e| StoreError::Io(e.to_string()))?;
            let (owner, key) = hint_owner_and_key(&stored)?;
            let (record, kind) = decode_hint(&value)?;
            ledgers.entry(owner).or_default().add(key, &record, kind);
        }
        Ok(Arc::new(FjallHints {
            inner: Arc::clone(&self.inner),
            max_bytes_per_owner,
            ledgers: Mutex::new(ledgers),
        }))
    }

    /// Makes the next fsync fail, to test poisoning. Not for production use.
    #[doc(hidden)]
    pub fn inject_sync_failure(&self) {
        self.inner.fail_next_sync.store(true, Ordering::SeqCst);
    }
}

fn spawn_flusher(
    inner: &Arc<Inner>,
    interval_ms: u64,
) -> std::io::Result<(mpsc::Sender<()>, JoinHandle<()>)> {
    let (stop, stopped) = mpsc::channel::<()>();
    let inner = Arc::clone(inner);
    let interval = Duration::from_millis(interval_ms.max(1));
    let handle = std::thread::Builder::new().name("halka-fsync".into()).spawn(move || {
        // Runs until the engine drops its sender.
        while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
            if inner.poisoned.lock().is_some() {
                continue;
            }
            let seq = inner.inserted.load(Ordering::SeqCst);
            let _ = inner.sync_through(seq);
        }
    })?;
    Ok((stop, handle))
}

impl Drop for FjallEngine {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.flusher.take() {
            drop(stop);
            let _ = handle.join();
        }
        if self.inner.poisoned.lock().is_none() {
            let _ = self.inner.fsync();
        }
    }
}

impl FjallEngine {
    /// Under `Always`, a token for every write inserted but not yet fsynced, if any.
    fn unsynced(&self) -> Option<SyncToken> {
        let inner = &*self.inner;
        let inserted = inner.inserted.load(Ordering::SeqCst);
        (inner.sync == SyncPolicy::Always && inner.synced.load(Ordering::Acquire) < inserted)
            .then_some(SyncToken(inserted))
    }

    fn stripe(&self, key: &[u8]) -> &Mutex<()> {
        &self.inner.stripes[(self.inner.hasher.hash_one(key) as usize) & (STRIPES - 1)]
    }

    /// The stored record from the LSM tree, bypassing the cache.
    fn read_stored(&self, key: &[u8]) -> Result<Option<Arc<Record>>, StoreError> {
        let raw =
            self.inner.records.get(storage_key(key)).map_err(|e| StoreError::Io(e.to_string()))?;
        raw.map(|bytes| decode_record(&bytes).map(Arc::new)).transpose()
    }

    /// The stored record, through the cache. The caller holds the key's stripe lock, so
    /// what it caches is current.
    fn read_locked(&self, key: &[u8]) -> Result<Option<Arc<Record>>, StoreError> {
        let Some(cache) = &self.inner.cache else {
            return self.read_stored(key);
        };
        if let Some(record) = cache.get(key) {
            return Ok(Some(record));
        }
        let record = self.read_stored(key)?;
        if let Some(r) = &record {
            cache.insert(key.into(), Arc::clone(r));
        }
        Ok(record)
    }
}

/// `[owner length][owner][storage key]`: one owner's hints are one prefix, in placement
/// hash order like the records, so one owner's hints for one partition are one range
/// (what an owner handing a partition on will send).
fn hint_key(owner: &NodeId, key: &[u8]) -> Vec<u8> {
    let mut out = owner_prefix(owner);
    out.extend_from_slice(&storage_key(key));
    out
}

/// `[owner length][owner]`, the prefix of every hint kept for `owner`.
fn owner_prefix(owner: &NodeId) -> Vec<u8> {
    let owner = owner.as_str().as_bytes();
    let len = u8::try_from(owner.len()).unwrap_or(u8::MAX);
    let mut out = Vec::with_capacity(1 + usize::from(len) + 8 + 32);
    out.push(len);
    out.extend_from_slice(&owner[..usize::from(len)]);
    out
}

/// Marks a stored hint as [`HintKind::Extra`]; a hint without it is counted (which every
/// hint stored before extra ones existed was treated as). Records start with their
/// format byte, never this.
const EXTRA_HINT: u8 = 0xE7;

fn encode_hint(record: &Record, kind: HintKind) -> Result<Vec<u8>, StoreError> {
    let encoded = encode_record(record)?;
    Ok(match kind {
        HintKind::Counted => encoded,
        HintKind::Extra => [&[EXTRA_HINT][..], &encoded].concat(),
    })
}

fn decode_hint(stored: &[u8]) -> Result<(Record, HintKind), StoreError> {
    match stored.split_first() {
        Some((&EXTRA_HINT, record)) => Ok((decode_record(record)?, HintKind::Extra)),
        _ => Ok((decode_record(stored)?, HintKind::Counted)),
    }
}

/// The owner and the rest of a hint's stored key: its storage key (its bare key in the
/// first layout).
fn split_hint_key(stored: &[u8]) -> Result<(NodeId, &[u8]), StoreError> {
    let corrupt = || StoreError::Corrupt(format!("hint key {stored:?}"));
    let (&len, rest) = stored.split_first().ok_or_else(corrupt)?;
    let (owner, key) = rest.split_at_checked(usize::from(len)).ok_or_else(corrupt)?;
    Ok((NodeId::new(std::str::from_utf8(owner).map_err(|_| corrupt())?), key))
}

/// A hint's owner and bare key.
fn hint_owner_and_key(stored: &[u8]) -> Result<(NodeId, &[u8]), StoreError> {
    let (owner, rest) = split_hint_key(stored)?;
    let key = user_key(rest).ok_or_else(|| StoreError::Corrupt(format!("hint key {stored:?}")))?;
    Ok((owner, key))
}

struct FjallHints {
    inner: Arc<Inner>,
    max_bytes_per_owner: u64,
    /// Pending hints by owner; also serialises hint updates (they are rare).
    ledgers: Mutex<BTreeMap<NodeId, Ledger>>,
}

impl std::fmt::Debug for FjallHints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallHints").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl FjallHints {
    fn read(&self, stored_key: &[u8]) -> Result<Option<(Record, HintKind)>, StoreError> {
        let raw = self.inner.hints.get(stored_key).map_err(|e| StoreError::Io(e.to_string()))?;
        raw.map(|bytes| decode_hint(&bytes)).transpose()
    }
}

impl HintStore for FjallHints {
    fn put(
        &self,
        owner: &NodeId,
        key: &[u8],
        record: &Arc<Record>,
        kind: HintKind,
    ) -> Result<Stored, StoreError> {
        record.validate()?;
        self.inner.check_poison()?;
        let io = |e: fjall::Error| self.inner.write_failed(&e);
        let stored_key = hint_key(owner, key);
        let mut ledgers = self.ledgers.lock();
        let current = self.read(&stored_key)?;
        let ledger = ledgers.entry(owner.clone()).or_default();
        let current_ref = current.as_ref().map(|(r, k)| (r, *k));
        let Some(plan) = ledger.plan(key, current_ref, record, kind, self.max_bytes_per_owner)
        else {
            return Ok(Stored::Dropped);
        };
        let encoded = encode_hint(&plan.merged, plan.kind)?;
        self.inner.space.admit(stored_key.len() + encoded.len())?;
        for old in &plan.evict {
            let old_key = hint_key(owner, old);
            if let Some((evicted, _)) = self.read(&old_key)? {
                self.inner.hints.remove(old_key).map_err(io)?;
                ledger.remove(old, &evicted);
            }
        }
        self.inner.hints.insert(stored_key, encoded).map_err(io)?;
        if let Some((replaced, _)) = &current {
            ledger.remove(key, replaced);
        }
        ledger.add(key, &plan.merged, plan.kind);
        drop(ledgers);
        let seq = self.inner.inserted.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.flush_through(seq)?;
        Ok(Stored::Kept { evicted: plan.evict.len() as u64 })
    }

    fn batch(
        &self,
        owner: &NodeId,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Hint>, StoreError> {
        use std::ops::Bound;
        let prefix = owner_prefix(owner);
        let start = match after {
            Some(a) => Bound::Excluded(hint_key(owner, a)),
            None => Bound::Included(prefix.clone()),
        };
        let mut out = Vec::new();
        for guard in self.inner.hints.range((start, Bound::Unbounded)) {
            let (stored, value) = guard.into_inner().map_err(|e| StoreError::Io(e.to_string()))?;
            if !stored.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let key = user_key(&stored[prefix.len()..])
                .ok_or_else(|| StoreError::Corrupt(format!("hint key {stored:?}")))?;
            out.push(Hint {
                key: bytes::Bytes::copy_from_slice(key),
                record: Arc::new(decode_hint(&value)?.0),
            });
        }
        Ok(out)
    }

    fn remove_delivered(
        &self,
        owner: &NodeId,
        key: &[u8],
        delivered: &Record,
    ) -> Result<(), StoreError> {
        let stored_key = hint_key(owner, key);
        let mut ledgers = self.ledgers.lock();
        let Some((current, _)) = self.read(&stored_key)? else {
            return Ok(());
        };
        if !current.same_as(delivered) {
            return Ok(());
        }
        self.inner.hints.remove(stored_key).map_err(|e| self.inner.write_failed(&e))?;
        if let Some(ledger) = ledgers.get_mut(owner) {
            ledger.remove(key, &current);
            if ledger.is_empty() {
                ledgers.remove(owner);
            }
        }
        drop(ledgers);
        // The removal needs no fsync of its own: a hint that comes back after a crash
        // is delivered again, and merging it twice changes nothing.
        self.inner.inserted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn holds(&self, owner: &NodeId, key: &[u8]) -> Result<bool, StoreError> {
        self.inner
            .hints
            .contains_key(hint_key(owner, key))
            .map_err(|e| StoreError::Io(e.to_string()))
    }

    fn stats(&self) -> BTreeMap<NodeId, HintStats> {
        self.ledgers.lock().iter().map(|(owner, l)| (owner.clone(), l.stats())).collect()
    }
}

impl Engine for FjallEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Arc<Record>>, StoreError> {
        let Some(cache) = &self.inner.cache else {
            return self.read_stored(key);
        };
        if let Some(record) = cache.get(key) {
            return Ok(Some(record));
        }
        // A miss fills the cache, which only happens under the stripe lock.
        let _guard = self.stripe(key).lock();
        self.read_locked(key)
    }

    fn update(&self, key: &[u8], f: &mut Updater<'_>) -> Result<(), StoreError> {
        match self.update_deferred(key, f)? {
            Some(token) => self.wait_durable(token),
            None => Ok(()),
        }
    }

    fn update_deferred(
        &self,
        key: &[u8],
        f: &mut Updater<'_>,
    ) -> Result<Option<SyncToken>, StoreError> {
        let inner = &*self.inner;
        inner.check_poison()?;
        let seq = {
            let _guard = self.stripe(key).lock();
            let current = self.read_locked(key)?;
            let Some(next) = f(current.as_ref()) else {
                // Unchanged, but what the key holds may be a write whose fsync is still
                // running for another caller: under `Always`, an acknowledgement of
                // this call waits for it too.
                return Ok(self.unsynced());
            };
            let encoded = encode_record(&next)?;
            inner.space.admit(key.len() + encoded.len())?;
            inner
                .records
                .insert(&*storage_key(key), encoded)
                .map_err(|e| inner.write_failed(&e))?;
            if let Some(cache) = &inner.cache {
                cache.insert(key.into(), next);
            }
            inner.inserted.fetch_add(1, Ordering::SeqCst) + 1
        };
        Ok(Some(SyncToken(seq)))
    }

    fn poisoned(&self) -> Option<String> {
        self.inner.poisoned.lock().as_ref().map(|p| p.reason.clone())
    }

    fn wait_durable(&self, token: SyncToken) -> Result<(), StoreError> {
        match self.inner.sync {
            SyncPolicy::Always => self.inner.sync_through(token.0),
            SyncPolicy::Periodic { .. } => self.inner.flush_through(token.0),
        }
    }

    fn scan_range(&self, range: HashRange, f: &mut Visit<'_>) -> Result<(), StoreError> {
        use std::ops::Bound;
        let start = Bound::Included(range.first.to_be_bytes());
        // Storage keys are the hash and then the key: the range ends before the next hash.
        let end = match range.last.checked_add(1) {
            Some(next) => Bound::Excluded(next.to_be_bytes()),
            None => Bound::Unbounded,
        };
        for guard in self.inner.records.range((start, end)) {
            let (stored, value) = guard.into_inner().map_err(|e| StoreError::Io(e.to_string()))?;
            let key = user_key(&stored)
                .ok_or_else(|| StoreError::Corrupt(format!("storage key {stored:?}")))?;
            if f(key, Arc::new(decode_record(&value)?)).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn remove_if(
        &self,
        key: &[u8],
        pred: &mut dyn FnMut(&Record) -> bool,
    ) -> Result<bool, StoreError> {
        let inner = &*self.inner;
        inner.check_poison()?;
        let io = |e: fjall::Error| inner.write_failed(&e);
        let _guard = self.stripe(key).lock();
        let Some(current) = self.read_locked(key)? else { return Ok(false) };
        if !pred(&current) {
            return Ok(false);
        }
        let counter = current.max_counter();
        if counter > inner.floor.load(Ordering::SeqCst) {
            inner.meta.insert(FLOOR_KEY, counter.to_be_bytes()).map_err(io)?;
            inner.floor.store(counter, Ordering::SeqCst);
        }
        inner.records.remove(&*storage_key(key)).map_err(io)?;
        if let Some(cache) = &inner.cache {
            cache.remove(key);
        }
        inner.inserted.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    fn counter_floor(&self) -> u64 {
        self.inner.floor.load(Ordering::SeqCst)
    }

    fn key_count(&self) -> u64 {
        self.inner.records.approximate_len() as u64
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.check_poison()?;
        let seq = self.inner.inserted.load(Ordering::SeqCst);
        self.inner.sync_through(seq.max(1))
    }

    fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// With `Always`, waiting for durability is an fsync.
    fn is_blocking(&self) -> bool {
        self.inner.sync == SyncPolicy::Always
    }

    fn syncs_each_write(&self) -> bool {
        self.inner.sync == SyncPolicy::Always
    }
}
