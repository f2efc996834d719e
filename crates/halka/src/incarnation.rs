//! The actor id under which this node numbers the writes it coordinates.
//!
//! A dot `(actor, n)` must name one write only. An actor numbers its next write to a key
//! one past the dots of its own that its stored record holds, so that stays true only
//! while the store holds every dot the actor ever issued. It does not after the disk was
//! lost or replaced, nor after a crash that lost the journal's unsynced tail — yet other
//! replicas may hold those dots. Reusing one makes them drop the new write as already
//! seen (Riak's "KV679"): an acknowledged write vanishes.
//!
//! So a node takes a fresh actor id (`<node id>#<48 random bits>`) whenever it cannot
//! prove that its store holds everything its actor issued. The proof is a marker written
//! after the final flush of a clean shutdown; starting consumes it (durably, before any
//! write is numbered), so a crash after that start cannot reuse the actor. Memory
//! engines keep nothing, so they always start a fresh actor.
//!
//! The cost: causal contexts gain one entry per unclean restart for the keys written
//! through the node afterwards.

use crate::config::{EngineChoice, NodeConfig};
use anyhow::Context;
use halka_store::NodeId;
use std::path::{Path, PathBuf};

const ACTOR_FILE: &str = "halka-actor";
const CLEAN_FILE: &str = "halka-clean-shutdown";

/// This run's actor id, and where to record a clean shutdown.
#[derive(Debug)]
pub struct Incarnation {
    pub actor: NodeId,
    /// Whether this run continues the previous run's actor (after a clean shutdown).
    pub resumed: bool,
    dir: Option<PathBuf>,
}

impl Incarnation {
    /// Starts this run's incarnation: resumes the previous actor after a clean shutdown,
    /// otherwise takes and records a new one.
    ///
    /// # Errors
    /// The data directory's files cannot be read or written durably.
    pub fn begin(config: &NodeConfig) -> anyhow::Result<Self> {
        if config.storage.engine != EngineChoice::Fjall {
            return Ok(Self { actor: fresh(&config.node_id), resumed: false, dir: None });
        }
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let clean = dir.join(CLEAN_FILE);
        let previous = read_actor(&dir, &config.node_id)?;
        if clean.exists()
            && let Some(actor) = previous
        {
            // Consumed before any write is numbered: a crash from here on must not find it.
            std::fs::remove_file(&clean)
                .with_context(|| format!("removing {}", clean.display()))?;
            sync_dir(&dir)?;
            return Ok(Self { actor, resumed: true, dir: Some(dir) });
        }
        let actor = fresh(&config.node_id);
        write_durably(&dir, ACTOR_FILE, actor.as_str())?;
        if clean.exists() {
            std::fs::remove_file(&clean)
                .with_context(|| format!("removing {}", clean.display()))?;
            sync_dir(&dir)?;
        }
        Ok(Self { actor, resumed: false, dir: Some(dir) })
    }

    /// Records that everything this actor issued is durable in the store. Call only after
    /// the engine's final flush succeeded and no write can follow.
    ///
    /// # Errors
    /// The marker cannot be written durably; the next start then takes a new actor.
    pub fn end_cleanly(&self) -> anyhow::Result<()> {
        match &self.dir {
            Some(dir) => write_durably(dir, CLEAN_FILE, ""),
            None => Ok(()),
        }
    }
}

fn fresh(node_id: &str) -> NodeId {
    let bits: u64 = rand::random::<u64>() >> 16;
    NodeId::new(&format!("{node_id}#{bits:012x}"))
}

/// The recorded actor, if it belongs to this node id (a directory reused under another id
/// must not lend its actor).
fn read_actor(dir: &Path, node_id: &str) -> anyhow::Result<Option<NodeId>> {
    let path = dir.join(ACTOR_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim();
            let ours = text.strip_prefix(node_id).is_some_and(|rest| rest.starts_with('#'));
            Ok(ours.then(|| NodeId::new(text)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `name` in `dir` so that after a crash it is either absent or complete.
fn write_durably(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let (tmp, path) = (dir.join(format!("{name}.tmp")), dir.join(name));
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> NodeConfig {
        NodeConfig { node_id: "n1".into(), data_dir: dir.to_path_buf(), ..NodeConfig::default() }
    }

    #[test]
    fn a_clean_shutdown_keeps_the_actor() {
        let dir = tempfile::tempdir().unwrap();
        let first = Incarnation::begin(&config(dir.path())).unwrap();
        assert!(first.actor.as_str().starts_with("n1#") && !first.resumed);
        first.end_cleanly().unwrap();
        let second = Incarnation::begin(&config(dir.path())).unwrap();
        assert_eq!((second.actor, second.resumed), (first.actor, true));
    }

    #[test]
    fn a_start_without_a_clean_shutdown_takes_a_new_actor() {
        let dir = tempfile::tempdir().unwrap();
        let first = Incarnation::begin(&config(dir.path())).unwrap();
        first.end_cleanly().unwrap();
        let resumed = Incarnation::begin(&config(dir.path())).unwrap();
        // Crash: no end_cleanly. The marker was consumed, so this start cannot resume.
        let after_crash = Incarnation::begin(&config(dir.path())).unwrap();
        assert_eq!(resumed.actor, first.actor);
        assert_ne!(after_crash.actor, first.actor);
        assert!(!after_crash.resumed);
    }

    #[test]
    fn a_lost_directory_takes_a_new_actor() {
        let dir = tempfile::tempdir().unwrap();
        let first = Incarnation::begin(&config(dir.path())).unwrap();
        first.end_cleanly().unwrap();
        std::fs::remove_dir_all(dir.path()).unwrap();
        let second = Incarnation::begin(&config(dir.path())).unwrap();
        assert_ne!(second.actor, first.actor);
    }

    #[test]
    fn a_directory_of_another_node_lends_no_actor() {
        let dir = tempfile::tempdir().unwrap();
        Incarnation::begin(&config(dir.path())).unwrap().end_cleanly().unwrap();
        let other = NodeConfig { node_id: "n2".into(), ..config(dir.path()) };
        let second = Incarnation::begin(&other).unwrap();
        assert!(second.actor.as_str().starts_with("n2#") && !second.resumed);
    }
}
