//! What a node computes placement from: fingerprinted for peers to compare, and noted in
//! the data directory to compare with the last run.
//!
//! Placement follows from the member ids, zones and weights and from N. Data does not yet
//! move between processes when those change, so after a change the keys whose replicas
//! moved read as missing (or as older versions) until they are written again. Nothing
//! breaks loudly on its own, so each node keeps a note of its placement inputs in its data
//! directory and warns at startup when they differ from the last run.

use crate::config::{EngineChoice, NodeConfig};
use std::path::Path;

/// The note's file name, beside fjall's files (fjall only reads its own names there).
pub const FILE: &str = "halka-placement.txt";

/// The placement inputs as text: `replication = N`, then `member id zone=… weight=…`
/// lines sorted by id.
#[must_use]
pub fn describe(config: &NodeConfig) -> String {
    let mut members: Vec<String> = config
        .members
        .iter()
        .map(|m| format!("member {} zone={} weight={}", m.id, m.zone, m.weight))
        .collect();
    members.sort();
    format!("replication = {}\n{}\n", config.replication, members.join("\n"))
}

/// A stable hash of [`describe`]: what nodes compare to check that they agree.
#[must_use]
pub fn fingerprint(config: &NodeConfig) -> u64 {
    halka_ring::key_hash(describe(config).as_bytes())
}

/// Compares the note in `data_dir` with `current` and writes `current` in its place.
/// Returns the previous placement when it differs.
///
/// # Errors
/// The note cannot be read (other than not existing) or written.
pub fn check_and_record(data_dir: &Path, current: &str) -> std::io::Result<Option<String>> {
    let path = data_dir.join(FILE);
    let previous = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if previous.as_deref() == Some(current) {
        return Ok(None);
    }
    // Write then rename, so a crash leaves the old note or the new one, never half of one.
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, current)?;
    std::fs::rename(&tmp, &path)?;
    Ok(previous)
}

/// Logs a warning when a durable node's placement inputs changed since its data directory
/// was last served, since no data moves to match.
pub fn warn_on_change(config: &NodeConfig) {
    if config.storage.engine != EngineChoice::Fjall {
        return;
    }
    let current = describe(config);
    match check_and_record(&config.data_dir, &current) {
        Ok(None) => {}
        Ok(Some(previous)) => tracing::warn!(
            data_dir = %config.data_dir.display(),
            previous = %previous.trim_end().replace('\n', "; "),
            now = %current.trim_end().replace('\n', "; "),
            "placement changed since this data directory was last served: halka does not \
             move data between nodes yet, so keys whose replicas moved read as missing or \
             old until written again; start from empty data directories to avoid this"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot record this node's placement inputs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_placement_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let before = "replication = 3\nmember a zone= weight=1\n";
        let after = "replication = 3\nmember a zone= weight=1\nmember b zone= weight=1\n";
        assert_eq!(check_and_record(dir.path(), before).unwrap(), None, "first run");
        assert_eq!(check_and_record(dir.path(), before).unwrap(), None, "unchanged");
        assert_eq!(check_and_record(dir.path(), after).unwrap().as_deref(), Some(before));
        assert_eq!(check_and_record(dir.path(), after).unwrap(), None, "recorded");
    }
}
