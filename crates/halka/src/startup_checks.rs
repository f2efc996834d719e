//! Warnings a node logs once as it starts, about settings that are allowed but that an
//! operator should know are risky.

use crate::config::NodeConfig;
use std::path::Path;

/// Logs a warning for each risky setting in `config`.
pub fn warn_about(config: &NodeConfig) {
    if !config.protected_mode {
        tracing::warn!(
            "protected_mode = false: clients beyond loopback are served even while the \
             default user needs no password; unless users are set up (requirepass, aclfile, \
             ACL SETUSER), clients are not authenticated and anyone who reaches redis_addr \
             or http_addr can read and write every key"
        );
    }
    let reserve = config.storage.min_free_mb << 20;
    if let Some(size) = disk_size(&config.data_dir)
        && size < reserve
    {
        tracing::warn!(
            disk_mb = size >> 20,
            min_free_mb = config.storage.min_free_mb,
            "the data disk is smaller than storage.min_free_mb: every write will be refused \
             (NOSPACE); lower min_free_mb or give the node a larger disk"
        );
    }
}

/// The size of the filesystem holding `dir` (or its nearest existing ancestor).
fn disk_size(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    Some(stat.blocks().saturating_mul(stat.fragment_size()))
}
