//! Syncing fjall's journal without holding fjall's journal lock.
//!
//! `Database::persist(SyncData)` flushes the journal's buffer and calls `fdatasync` while
//! it holds the journal writer's lock, so every insert on the node waits out the disk —
//! and inserts run inline on the async workers, so whole worker threads stall with them.
//! Instead the engine asks fjall only to hand its buffer to the OS
//! (`PersistMode::Buffer`, a brief `write`), then syncs the journal file through a handle
//! of its own, with inserts free to continue meanwhile.
//!
//! Why that covers every acknowledged write: fsync works on the file, not on the handle,
//! so syncing our handle persists every byte fjall has written to that file. fjall's
//! journals are `<id>.jnl` in the database directory with consecutive ids, and when it
//! moves to `<id+1>.jnl` it first syncs the old file (`Writer::rotate`, under its lock).
//! So after the buffer flush, the bytes of the writes being acknowledged are either in the
//! newest journal — which is the file synced here — or in an older one fjall has already
//! synced. If the layout is ever not what this expects, the engine falls back to
//! `persist(SyncData)`; a test fails if that happens on the fjall version in use.

use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(super) struct JournalFile {
    dir: PathBuf,
    id: u64,
    file: File,
}

impl JournalFile {
    /// The newest journal in `dir`, if the directory holds fjall journals as expected.
    pub(super) fn newest(dir: &Path) -> Option<Self> {
        let id = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".jnl")?.parse().ok())
            .max()?;
        let file = File::open(dir.join(format!("{id}.jnl"))).ok()?;
        Some(Self { dir: dir.to_path_buf(), id, file })
    }

    /// Syncs the newest journal's data, following any rotations since the last call.
    pub(super) fn sync_data(&mut self) -> std::io::Result<()> {
        loop {
            let next = self.dir.join(format!("{}.jnl", self.id + 1));
            match File::open(&next) {
                Ok(file) => {
                    self.id += 1;
                    self.file = file;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        self.file.sync_data()
    }
}
