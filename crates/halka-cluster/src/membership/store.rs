//! Where a node keeps its membership state across restarts: the layouts it has installed
//! (with whether it reads from the newest) and its votes on the next version.
//!
//! Both must survive a crash. A node that read from a new layout, or retired an old one,
//! must not go back to reading old owners that others may have stopped writing to; and an
//! acceptor that forgot a promise could let two layouts be chosen for one version.

use super::ballot::Votes;
use super::spec::LayoutSpec;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A node's membership state as kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The active layouts, oldest first.
    pub layouts: Vec<LayoutSpec>,
    /// Whether reads moved to the newest layout.
    pub reads_newest: bool,
    pub votes: Votes,
    /// The layout version this node took without its votes (a new or lost data
    /// directory): it does not vote on the next version until it has heard what the
    /// other members promised and accepted for it (see `Membership::recover_votes`).
    #[serde(default)]
    pub recovering: Option<u64>,
}

/// Keeps [`Saved`].
pub trait MembershipStore: Send + Sync + std::fmt::Debug {
    /// The state last saved, if any.
    ///
    /// # Errors
    /// The state cannot be read, or does not parse.
    fn load(&self) -> std::io::Result<Option<Saved>>;

    /// Replaces the state; durable when it returns.
    ///
    /// # Errors
    /// The state cannot be written.
    fn save(&self, saved: &Saved) -> std::io::Result<()>;

    /// Whether saving blocks the thread (a file and its fsync): answers are then given
    /// from the blocking pool. A store in memory answers inline, which keeps a simulated
    /// cluster deterministic.
    fn blocks(&self) -> bool {
        true
    }
}

/// State kept in memory: for nodes that keep nothing across restarts (the memory engine).
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<Option<Saved>>);

impl MembershipStore for MemoryStore {
    fn load(&self) -> std::io::Result<Option<Saved>> {
        Ok(self.0.lock().clone())
    }

    fn save(&self, saved: &Saved) -> std::io::Result<()> {
        *self.0.lock() = Some(saved.clone());
        Ok(())
    }

    fn blocks(&self) -> bool {
        false
    }
}

/// State kept in a JSON file (readable by an operator), replaced atomically: written
/// beside, fsynced, renamed over, and the directory fsynced.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    #[must_use]
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_path_buf() }
    }
}

impl MembershipStore for FileStore {
    fn load(&self) -> std::io::Result<Option<Saved>> {
        crate::durable_file::load(&self.path)
    }

    fn save(&self, saved: &Saved) -> std::io::Result<()> {
        crate::durable_file::save(&self.path, saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::ballot::Ballot;
    use crate::membership::spec::{Addresses, MemberSpec};

    #[test]
    fn a_saved_state_is_loaded_back_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(&dir.path().join("membership.json"));
        assert_eq!(store.load().unwrap(), None);
        let spec = LayoutSpec::new(1, 3, 16, vec![MemberSpec::active("a", Addresses::default())]);
        let saved = Saved {
            layouts: vec![spec],
            reads_newest: true,
            votes: Votes {
                version: 2,
                promised: Some(Ballot { round: 1, node: "a".into() }),
                accepted: None,
            },
            recovering: Some(1),
        };
        store.save(&saved).unwrap();
        assert_eq!(
            FileStore::new(&dir.path().join("membership.json")).load().unwrap(),
            Some(saved)
        );
    }

    #[test]
    fn a_file_kept_before_votes_could_be_lost_loads_as_not_recovering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("membership.json");
        let spec = LayoutSpec::new(1, 3, 16, vec![MemberSpec::active("a", Addresses::default())]);
        let old = serde_json::json!({ "layouts": [spec], "reads_newest": false, "votes": Votes::default() });
        std::fs::write(&path, old.to_string()).unwrap();
        let loaded = FileStore::new(&path).load().unwrap().unwrap();
        assert_eq!(loaded.recovering, None);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("membership.json");
        std::fs::write(&path, "{ not json").unwrap();
        let err = FileStore::new(&path).load().unwrap_err();
        assert!(err.to_string().contains("membership.json"), "{err}");
    }
}
