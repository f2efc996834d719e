//! `[transfers]`: how fast partitions move to their new owners when the layout changes.

use serde::{Deserialize, Serialize};

/// Global limits on the partitions a layout change moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferSettings {
    /// Partitions this node streams in at once.
    pub concurrency: usize,
    /// Megabytes a second this node serves, at most, to new owners streaming from it.
    pub max_mb_per_second: u32,
    /// The same while it serves clients (100 or more operations a second): streams then
    /// give way to their requests.
    pub busy_mb_per_second: u32,
}

impl Default for TransferSettings {
    fn default() -> Self {
        Self { concurrency: 4, max_mb_per_second: 256, busy_mb_per_second: 24 }
    }
}

/// The largest rate, in megabytes a second, that the budget's byte count can hold.
const MAX_MB_PER_SECOND: u32 = 4_000;

impl TransferSettings {
    /// What is wrong with these settings, if anything.
    pub(super) fn problem(&self) -> Option<String> {
        let rates = [self.max_mb_per_second, self.busy_mb_per_second];
        if self.concurrency == 0 || rates.iter().any(|&r| r == 0 || r > MAX_MB_PER_SECOND) {
            return Some(format!(
                "concurrency must be at least 1, and max_mb_per_second and busy_mb_per_second \
                 from 1 to {MAX_MB_PER_SECOND}"
            ));
        }
        None
    }

    /// The transfers' configuration with these limits and `base`'s timings.
    #[must_use]
    pub fn apply(&self, base: halka_cluster::TransferConfig) -> halka_cluster::TransferConfig {
        halka_cluster::TransferConfig {
            concurrency: self.concurrency,
            max_bytes_per_second: self.max_mb_per_second << 20,
            busy_bytes_per_second: self.busy_mb_per_second << 20,
            ..base
        }
    }
}
