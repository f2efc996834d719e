//! Where a node keeps the cluster's settings across restarts. A change a node acknowledged
//! must survive its crash: restarted before the change spread, it would otherwise serve
//! the older settings (an old password, a removed user), and the change would be lost.

use super::table::SettingsTable;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};

/// Keeps a [`SettingsTable`].
pub trait SettingsStore: Send + Sync + std::fmt::Debug {
    /// The table last saved, if any.
    ///
    /// # Errors
    /// The table cannot be read, or does not parse.
    fn load(&self) -> std::io::Result<Option<SettingsTable>>;

    /// Replaces the table; durable when it returns.
    ///
    /// # Errors
    /// The table cannot be written.
    fn save(&self, table: &SettingsTable) -> std::io::Result<()>;

    /// Whether saving blocks the thread (a file and its fsync).
    fn blocks(&self) -> bool {
        true
    }
}

/// Settings kept in memory: for nodes that keep nothing across restarts.
#[derive(Debug, Default)]
pub struct MemorySettings(Mutex<Option<SettingsTable>>);

impl SettingsStore for MemorySettings {
    fn load(&self) -> std::io::Result<Option<SettingsTable>> {
        Ok(self.0.lock().clone())
    }

    fn save(&self, table: &SettingsTable) -> std::io::Result<()> {
        *self.0.lock() = Some(table.clone());
        Ok(())
    }

    fn blocks(&self) -> bool {
        false
    }
}

/// Settings kept in a JSON file, replaced atomically.
#[derive(Debug)]
pub struct FileSettings {
    path: PathBuf,
}

impl FileSettings {
    #[must_use]
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf() }
    }
}

impl SettingsStore for FileSettings {
    fn load(&self) -> std::io::Result<Option<SettingsTable>> {
        crate::durable_file::load(&self.path)
    }

    fn save(&self, table: &SettingsTable) -> std::io::Result<()> {
        crate::durable_file::save(&self.path, table)
    }
}
