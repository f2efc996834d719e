//! The simpler sections of a node's configuration: `[storage]`, `[handoff]`, `[http]`,
//! `[anti_entropy]` and `[tombstones]`, each with its defaults.

use super::{EngineChoice, NodeConfig, SyncChoice};
use halka_store::{FjallOptions, SyncPolicy};
use serde::{Deserialize, Serialize};

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub engine: EngineChoice,
    pub sync: SyncChoice,
    pub sync_interval_ms: u64,
    /// Mebibytes of decoded records cached in memory by the fjall engine; 0 turns it off.
    pub cache_mb: u64,
    /// fjall's background threads (memtable flushes, compaction); 0 (the default) means
    /// one per core, up to four.
    pub background_threads: usize,
    /// Writes are refused (with an error naming this setting) while less than this many
    /// mebibytes are free on the data directory's filesystem, so the disk never fills:
    /// reads go on, and writes resume by themselves once space is freed. 0: never.
    pub min_free_mb: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            engine: EngineChoice::Fjall,
            sync: SyncChoice::Periodic,
            sync_interval_ms: 100,
            cache_mb: FjallOptions::DEFAULT_CACHE_BYTES >> 20,
            background_threads: 0,
            min_free_mb: FjallOptions::DEFAULT_MIN_FREE_BYTES >> 20,
        }
    }
}

impl StorageConfig {
    #[must_use]
    pub fn sync_policy(&self) -> SyncPolicy {
        match self.sync {
            SyncChoice::Always => SyncPolicy::Always,
            SyncChoice::Periodic => SyncPolicy::Periodic { interval_ms: self.sync_interval_ms },
        }
    }
}

/// Hinted handoff: writes an owner missed, kept and delivered when it answers again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandoffSettings {
    /// Keep hints at all (anti-entropy alone repairs missed writes when off).
    pub enabled: bool,
    /// Mebibytes of hints kept per owner; beyond, new hints are dropped and counted.
    pub max_mb_per_owner: u64,
    /// Hints delivered per second at most.
    pub max_per_second: u32,
}

impl Default for HandoffSettings {
    fn default() -> Self {
        Self { enabled: true, max_mb_per_owner: 256, max_per_second: 10_000 }
    }
}

/// The HTTP front end's connection limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Connections at once; beyond, a new one is answered 503 and closed.
    pub max_connections: usize,
    /// Of those, from one source address (an IPv6 /64 counts as one); 0: no limit.
    pub max_connections_per_source: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout_ms: u64,
    /// Time one request may take, its body included; beyond, 408.
    pub request_timeout_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_source: 256,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
        }
    }
}

/// Anti-entropy: replicas compare digest trees and exchange what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AntiEntropySettings {
    /// Keep digest trees and compare them. Off, a replica that missed writes catches up
    /// only through hints and read repair, and a lost disk is never refilled.
    pub enabled: bool,
    /// Milliseconds between exchanges (one exchange compares 1/64 of the hash space with
    /// one other replica).
    pub interval_ms: u64,
    /// Records repaired per second at most.
    pub max_keys_per_second: u32,
    /// Records repaired per second at most while this node serves clients (100 or more
    /// single-key operations a second): repairs then give way to their requests.
    pub busy_keys_per_second: u32,
}

impl Default for AntiEntropySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 100,
            max_keys_per_second: 50_000,
            busy_keys_per_second: 1_500,
        }
    }
}

/// Tombstone collection: when a deleted key's record may be removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TombstoneSettings {
    /// Remove tombstones at all. Off, every deleted key keeps a small record for ever.
    pub enabled: bool,
    /// Seconds a tombstone is kept at least after its delete; it goes only once every
    /// owner holds it and no node keeps a hint for the key. A hint whose owner stays away
    /// a quarter of this is handed to the key's other owners. Must exceed the clock skew
    /// between nodes.
    pub grace_secs: u64,
    /// Milliseconds between collection rounds.
    pub interval_ms: u64,
}

impl NodeConfig {
    /// The tombstone grace, when tombstones are collected.
    #[must_use]
    pub fn tombstone_grace(&self) -> Option<std::time::Duration> {
        self.tombstones.enabled.then(|| std::time::Duration::from_secs(self.tombstones.grace_secs))
    }
}

impl Default for TombstoneSettings {
    fn default() -> Self {
        Self { enabled: true, grace_secs: 3600, interval_ms: 1000 }
    }
}
