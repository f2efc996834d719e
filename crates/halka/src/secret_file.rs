//! Cluster secrets kept in a data directory, for nodes whose configuration names none.
//!
//! A node never falls back to a key anyone can derive. A node alone (no other member)
//! without `cluster_secret` makes one the first time it starts and keeps it in
//! `data_dir/cluster-secret` (0600), so the causal-context tokens it hands out stay valid
//! across restarts; `halka dev` does the same in its base directory and gives the one
//! secret to all its nodes. A cluster of several members must be configured with a shared
//! secret (see `NodeConfig::finish`).

use crate::config::{NodeConfig, SecretString};
use anyhow::Context;
use std::path::Path;

/// A new random cluster secret: 32 bytes from the OS, as hex.
#[must_use]
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret kept in `dir/cluster-secret`, created (mode 0600) on first use.
///
/// # Errors
/// The file cannot be read or written.
pub fn load_or_create(dir: &Path) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join("cluster-secret");
    match std::fs::read_to_string(&path) {
        Ok(secret) => return Ok(secret.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let secret = new_secret();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

/// `config` with a secret: its own, or (a node alone) the one in its data directory.
///
/// # Errors
/// The data directory's secret cannot be read or created.
pub fn with_secret(mut config: NodeConfig) -> anyhow::Result<NodeConfig> {
    if config.cluster_secret.is_none() {
        let secret = load_or_create(&config.data_dir)
            .context("this node has no cluster_secret and keeps its own in data_dir")?;
        config.cluster_secret = Some(SecretString(secret));
    }
    Ok(config)
}
