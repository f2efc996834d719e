//! Node configuration: a TOML file, with command-line flags layered on top.
//!
//! Every field has a default, so a single node runs with no file at all. Errors name the
//! file, the field and what is allowed.

mod gossip;
mod transfers;

pub use gossip::GossipSettings;
pub use transfers::TransferSettings;

use halka_cluster::{ClusterSecret, ReadFanout};
use halka_store::{FjallOptions, Limits, SyncPolicy};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One member of the static member list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Unique node id; placement hashes it, so it must not change.
    pub id: String,
    /// Address other nodes use for internal RPC.
    pub peer_addr: String,
    /// Failure domain; replicas spread over distinct zones when there are enough.
    #[serde(default)]
    pub zone: String,
    /// Relative capacity (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// The cluster secret as written in the config file; never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(pub String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(..)")
    }
}

/// Which storage engine the node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// Durable, on fjall, in `data_dir`.
    Fjall,
    /// Volatile; for experiments only.
    Memory,
}

/// When acknowledged writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncChoice {
    /// fsync before acknowledging (shared by concurrent writes).
    Always,
    /// fsync every `sync_interval_ms`.
    Periodic,
}

/// Which replicas a read asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFanoutChoice {
    /// R replicas (this node first), one more when one fails or after `read_hedge_ms`.
    Quorum,
    /// All N at once; every late answer is still compared and repaired.
    All,
}

impl ReadFanoutChoice {
    /// The name used in config files and status output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ReadFanoutChoice::Quorum => "quorum",
            ReadFanoutChoice::All => "all",
        }
    }
}

/// Most threads of either kind (async workers, storage background threads) accepted.
const MAX_WORKER_THREADS: usize = 1024;

/// Largest record cache accepted, in MiB.
const MAX_CACHE_MB: u64 = 1 << 20;

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

/// A node's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's id; must appear in `members`.
    pub node_id: String,
    /// Where the engine keeps its files.
    pub data_dir: PathBuf,
    /// Redis-protocol listener.
    pub redis_addr: String,
    /// HTTP listener (API, metrics, health).
    pub http_addr: String,
    /// Internal RPC listener.
    pub peer_addr: String,
    /// Replication factor N. 0 (the default) means 3, or the member count if smaller.
    pub replication: usize,
    /// Default read quorum R. 0 (the default) means a majority of N.
    pub r: usize,
    /// Default write quorum W. 0 (the default) means a majority of N.
    pub w: usize,
    /// Deadline for each replica call.
    pub timeout_ms: u64,
    /// Which replicas a read asks: `quorum` (R of them) or `all` (N).
    pub read_fanout: ReadFanoutChoice,
    /// With `read_fanout = "quorum"`: how long to wait for the asked replicas before
    /// asking one more. Also how long a write, its W acknowledgements in, still waits for
    /// the key's first owner (which coordinates `INCR`, `SET NX` and the like, so they
    /// see the write) before passing that owner over until it answers.
    pub read_hedge_ms: u64,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace_ms: u64,
    /// Client connections served at once (Redis protocol); beyond, a new client gets
    /// "ERR max number of clients reached".
    pub max_connections: usize,
    /// Of those, from one source address (an IPv6 /64 counts as one): one host cannot
    /// take every place. 0: no limit.
    pub max_connections_per_source: usize,
    /// Seconds a Redis client may stay silent (idle, or halfway through a command) before
    /// its connection is closed; 0 (the default, as in Redis) never closes it.
    pub client_timeout_secs: u64,
    /// When every place is taken (`max_connections`), a new client displaces the client
    /// that has waited longest for its next command, once that wait passes this many
    /// seconds. Idle connections then cannot keep new clients out, yet none is closed
    /// while there is room. 0: any idle client may be displaced.
    pub displace_idle_clients_after_secs: u64,
    /// Seconds a Redis request may take to arrive in full once its first byte has; beyond,
    /// the connection is closed (a client trickling a request in a byte at a time cannot
    /// hold it open for ever). 0: no deadline.
    pub request_timeout_secs: u64,
    /// Redis commands slower than this (microseconds) go to `SLOWLOG`, as Redis's
    /// `slowlog-log-slower-than`: negative keeps none, 0 keeps every command.
    pub slowlog_log_slower_than_us: i64,
    /// Entries `SLOWLOG` keeps; the oldest go first.
    pub slowlog_max_len: usize,
    /// Async worker threads; 0 (the default) means one per CPU core. Nodes that share a
    /// host should split its cores rather than each take all of them.
    pub worker_threads: usize,
    pub storage: StorageConfig,
    pub limits: Limits,
    pub handoff: HandoffSettings,
    pub anti_entropy: AntiEntropySettings,
    pub tombstones: TombstoneSettings,
    pub transfers: TransferSettings,
    pub gossip: GossipSettings,
    pub http: HttpSettings,
    /// Shared by every member (at least 16 bytes; `halka secret` prints a random one):
    /// nodes prove they know it before serving each other, and it signs the causal-context
    /// tokens clients get. Required when `peer_addr` is not a loopback address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret: Option<SecretString>,
    /// Refuse to serve Redis and HTTP clients beyond loopback. halka has no client
    /// authentication yet, so turning this off exposes every key to whoever can connect.
    pub protected_mode: bool,
    /// The static member list. Every node must be given the same list. Once the
    /// cluster's layout changes (`halka cluster commit`), each node keeps the layout it
    /// installed in `data_dir/membership.json` and starts from that instead.
    pub members: Vec<MemberConfig>,
    /// Start outside any cluster, with no member list, and wait to be joined by a member
    /// (`halka cluster join PEER_ADDR`). Client requests are refused until then.
    pub join: bool,
    /// This node's zone and weight, told to the member that joins it.
    pub zone: String,
    pub weight: u32,
    /// Peer addresses of members to announce this node to by gossip. A node with seeds
    /// and no member list waits to be joined, under its id (`halka cluster join ID`).
    pub seeds: Vec<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            node_id: "node-1".into(),
            data_dir: PathBuf::from("halka-data/node-1"),
            redis_addr: "127.0.0.1:6380".into(),
            http_addr: "127.0.0.1:8080".into(),
            peer_addr: "127.0.0.1:7380".into(),
            replication: 0,
            r: 0,
            w: 0,
            timeout_ms: 1000,
            read_fanout: ReadFanoutChoice::Quorum,
            read_hedge_ms: 5,
            shutdown_grace_ms: 5000,
            max_connections: 10_000,
            max_connections_per_source: 2_500,
            client_timeout_secs: 0,
            displace_idle_clients_after_secs: 60,
            request_timeout_secs: 60,
            slowlog_log_slower_than_us: 10_000,
            slowlog_max_len: 128,
            worker_threads: 0,
            storage: StorageConfig::default(),
            limits: Limits::default(),
            handoff: HandoffSettings::default(),
            anti_entropy: AntiEntropySettings::default(),
            transfers: TransferSettings::default(),
            gossip: GossipSettings::default(),
            tombstones: TombstoneSettings::default(),
            http: HttpSettings::default(),
            cluster_secret: None,
            protected_mode: true,
            members: Vec::new(),
            join: false,
            zone: String::new(),
            weight: 1,
            seeds: Vec::new(),
        }
    }
}

impl NodeConfig {
    /// The cluster secret: configured, or for a node alone the one kept in its data
    /// directory (see `secret_file`); `None` before the node has loaded that one.
    #[must_use]
    pub fn secret(&self) -> Option<ClusterSecret> {
        self.cluster_secret.as_ref().and_then(|s| ClusterSecret::new(s.0.as_bytes()).ok())
    }

    /// The coordinator's read plan.
    #[must_use]
    pub fn read_fanout(&self) -> ReadFanout {
        match self.read_fanout {
            ReadFanoutChoice::All => ReadFanout::All,
            ReadFanoutChoice::Quorum => {
                ReadFanout::Quorum { hedge: Duration::from_millis(self.read_hedge_ms) }
            }
        }
    }
}

/// A configuration problem, naming where it is and what is allowed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{origin}: field `{field}`: {message}")]
    Invalid { origin: String, field: &'static str, message: String },
}

impl NodeConfig {
    /// Reads a TOML file. Unknown fields are errors, so typos do not pass silently.
    ///
    /// # Errors
    /// The file cannot be read or does not parse.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Fills in the member list when none is given (a single-node cluster of this node),
    /// then checks every field. `origin` names where the config came from, for errors.
    ///
    /// # Errors
    /// The first invalid field.
    pub fn finish(mut self, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |field, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            field,
            message,
        };
        if self.node_id.is_empty() {
            return Err(invalid("node_id", "must not be empty".into()));
        }
        if let Some(problem) = self.gossip.problem() {
            return Err(invalid("gossip", problem));
        }
        if let Some(seed) = self.seeds.iter().find(|s| s.parse::<SocketAddr>().is_err()) {
            return Err(invalid(
                "seeds",
                format!("{seed:?} is not a peer address like 127.0.0.1:7380"),
            ));
        }
        // Seeds and no member list: a node that comes to be joined.
        if self.join || (!self.seeds.is_empty() && self.members.is_empty()) {
            self.join = true;
            return self.finish_joining(origin);
        }
        if self.members.is_empty() {
            // A node alone: the defaults need no file at all.
            self.members.push(MemberConfig {
                id: self.node_id.clone(),
                peer_addr: self.peer_addr.clone(),
                zone: String::new(),
                weight: 1,
            });
        }
        if self.replication == 0 {
            self.replication = self.members.len().min(3);
        }
        if self.r == 0 {
            self.r = self.replication / 2 + 1;
        }
        if self.w == 0 {
            self.w = self.replication / 2 + 1;
        }
        for (field, addr) in [
            ("redis_addr", &self.redis_addr),
            ("http_addr", &self.http_addr),
            ("peer_addr", &self.peer_addr),
        ] {
            addr.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    field,
                    format!("{addr:?} is not a socket address like 127.0.0.1:6380 ({e})"),
                )
            })?;
        }
        self.check_exposure(&invalid)?;
        let mut ids: Vec<&str> = self.members.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        if let Some(dup) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(
                "members",
                format!("member id {:?} appears more than once", dup[0]),
            ));
        }
        if let Some(m) = self.members.iter().find(|m| m.weight == 0 || m.id.is_empty()) {
            return Err(invalid(
                "members",
                format!("member {:?}: ids must be non-empty and weights at least 1", m.id),
            ));
        }
        if !self.members.iter().any(|m| m.id == self.node_id) {
            return Err(invalid(
                "node_id",
                format!("{:?} is not in the member list ({})", self.node_id, ids.join(", ")),
            ));
        }
        let max = halka_ring::MAX_REPLICAS.min(self.members.len());
        if !(1..=max).contains(&self.replication) {
            return Err(invalid(
                "replication",
                format!(
                    "{} is outside 1..={max} (at most the member count, {})",
                    self.replication,
                    self.members.len()
                ),
            ));
        }
        for (field, q) in [("r", self.r), ("w", self.w)] {
            if q == 0 || q > self.replication {
                return Err(invalid(
                    field,
                    format!("{q} is outside 1..={} (the replication factor)", self.replication),
                ));
            }
        }
        if self.timeout_ms == 0 {
            return Err(invalid("timeout_ms", "must be at least 1".into()));
        }
        for (field, threads, zero) in [
            ("worker_threads", self.worker_threads, "one per CPU core"),
            ("storage.background_threads", self.storage.background_threads, "fjall's default"),
        ] {
            if threads > MAX_WORKER_THREADS {
                return Err(invalid(
                    field,
                    format!("{threads} is more than {MAX_WORKER_THREADS} (0 means {zero})"),
                ));
            }
        }
        if self.read_hedge_ms == 0 || self.read_hedge_ms > self.timeout_ms {
            return Err(invalid(
                "read_hedge_ms",
                format!("{} is outside 1..={} (timeout_ms)", self.read_hedge_ms, self.timeout_ms),
            ));
        }
        if self.limits.max_key_bytes == 0 || self.limits.max_value_bytes == 0 {
            return Err(invalid(
                "limits",
                "max_key_bytes and max_value_bytes must be at least 1".into(),
            ));
        }
        if self.limits.max_record_bytes < self.limits.max_value_bytes {
            return Err(invalid(
                "limits.max_record_bytes",
                format!(
                    "{} is below max_value_bytes ({}): a key must hold at least one value",
                    self.limits.max_record_bytes, self.limits.max_value_bytes
                ),
            ));
        }
        if self.handoff.max_per_second == 0 {
            return Err(invalid(
                "handoff.max_per_second",
                "must be at least 1 (set handoff.enabled = false to keep no hints)".into(),
            ));
        }
        if self.anti_entropy.max_keys_per_second == 0
            || self.anti_entropy.busy_keys_per_second == 0
            || self.anti_entropy.interval_ms == 0
        {
            return Err(invalid(
                "anti_entropy",
                "interval_ms, max_keys_per_second and busy_keys_per_second must be at least 1 (set \
                 anti_entropy.enabled = false to switch it off)"
                    .into(),
            ));
        }
        if let Some(problem) = self.transfers.problem() {
            return Err(invalid("transfers", problem));
        }
        if self.tombstones.grace_secs == 0 || self.tombstones.interval_ms == 0 {
            return Err(invalid(
                "tombstones",
                "grace_secs and interval_ms must be at least 1 (set tombstones.enabled = false \
                 to keep every tombstone)"
                    .into(),
            ));
        }
        if self.http.max_connections == 0
            || self.http.header_timeout_ms == 0
            || self.http.request_timeout_ms == 0
        {
            return Err(invalid(
                "http",
                "max_connections, header_timeout_ms and request_timeout_ms must be at least 1"
                    .into(),
            ));
        }
        if self.storage.cache_mb > MAX_CACHE_MB {
            return Err(invalid(
                "storage.cache_mb",
                format!("must be at most {MAX_CACHE_MB} (1 TiB)"),
            ));
        }
        if self.storage.sync == SyncChoice::Periodic && self.storage.sync_interval_ms == 0 {
            return Err(invalid(
                "storage.sync_interval_ms",
                "must be at least 1 with sync = \"periodic\"".into(),
            ));
        }
        Ok(self)
    }
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback())
}

impl NodeConfig {
    /// Protected defaults: nothing listens beyond this host unless the file says so, and
    /// never the peer port without a secret.
    /// Checks a node that waits to be joined: no member list; the replication factor
    /// must be the cluster's (3 unless given).
    fn finish_joining(mut self, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |field, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            field,
            message,
        };
        if !self.members.is_empty() {
            return Err(invalid(
                "join",
                "a node that waits to be joined has no member list: leave `members` out \
                 (the member that joins it sends the layout)"
                    .into(),
            ));
        }
        if self.cluster_secret.is_none() {
            return Err(invalid(
                "cluster_secret",
                "a node that waits to be joined needs the cluster's secret".into(),
            ));
        }
        if self.weight == 0 {
            return Err(invalid("weight", "must be at least 1".into()));
        }
        if self.replication == 0 {
            self.replication = 3;
        }
        for (field, q) in [("r", &mut self.r), ("w", &mut self.w)] {
            if *q == 0 {
                *q = self.replication / 2 + 1;
            }
            if *q > self.replication {
                return Err(invalid(field, format!("{q} is outside 1..={}", self.replication)));
            }
        }
        self.check_exposure(&invalid)?;
        Ok(self)
    }

    fn check_exposure(
        &self,
        invalid: &impl Fn(&'static str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        if let Some(secret) = &self.cluster_secret {
            ClusterSecret::new(secret.0.as_bytes())
                .map_err(|e| invalid("cluster_secret", e.to_string()))?;
        }
        if self.cluster_secret.is_none() && self.members.len() > 1 {
            return Err(invalid(
                "cluster_secret",
                format!(
                    "a cluster of {} members needs one, the same on every member (`halka \
                     secret` prints one): without it peers would prove membership with a key \
                     anyone can derive",
                    self.members.len()
                ),
            ));
        }
        if self.cluster_secret.is_none() && !self.protected_mode {
            return Err(invalid(
                "protected_mode",
                "false needs a configured cluster_secret (`halka secret` prints one): it \
                 signs the causal contexts that remote clients would then hand back"
                    .into(),
            ));
        }
        if self.cluster_secret.is_none() && !is_loopback(&self.peer_addr) {
            return Err(invalid(
                "peer_addr",
                format!(
                    "{} is reachable beyond this host, so the peer port needs a \
                     `cluster_secret` (the same on every member; `halka secret` prints one)",
                    self.peer_addr
                ),
            ));
        }
        if self.protected_mode {
            for (field, addr) in [("redis_addr", &self.redis_addr), ("http_addr", &self.http_addr)]
            {
                if !is_loopback(addr) {
                    return Err(invalid(
                        field,
                        format!(
                            "{addr} is reachable beyond this host, and halka does not \
                             authenticate clients yet; set `protected_mode = false` to serve \
                             it anyway (behind a firewall that admits only your clients)"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        NodeConfig::from_file(&path).and_then(|c| c.finish(&path.display().to_string()))
    }

    #[test]
    fn the_readme_example_configuration_is_valid_and_names_every_section() {
        let readme = include_str!("../../../../README.md");
        let start = readme.find("```toml\n").expect("a toml block in the README") + 8;
        let text = &readme[start..start + readme[start..].find("```").unwrap()];
        let config = parse(text).unwrap();
        let defaults = NodeConfig::default();
        assert_eq!(config.handoff, defaults.handoff);
        assert_eq!(config.anti_entropy, defaults.anti_entropy, "the README shows the defaults");
        assert_eq!(config.http, defaults.http, "the README shows the defaults");
        assert_eq!(config.tombstones, defaults.tombstones, "the README shows the defaults");
        assert_eq!(config.transfers, defaults.transfers, "the README shows the defaults");
        assert_eq!(config.gossip, defaults.gossip, "the README shows the defaults");
        for section in [
            "[storage]",
            "[handoff]",
            "[anti_entropy]",
            "[tombstones]",
            "[transfers]",
            "[gossip]",
            "[http]",
            "[limits]",
            "[[members]]",
        ] {
            assert!(text.contains(section), "the README example lacks {section}");
        }
    }

    #[test]
    fn full_file_parses() {
        let c = parse(
            r#"
            node_id = "a"
            cluster_secret = "0123456789abcdef-full-file"
            replication = 3
            r = 2
            w = 2
            read_fanout = "all"
            read_hedge_ms = 10
            worker_threads = 2
            [storage]
            sync = "always"
            background_threads = 1
            [limits]
            max_value_bytes = 4096
            [[members]]
            id = "a"
            peer_addr = "127.0.0.1:7001"
            zone = "z1"
            [[members]]
            id = "b"
            peer_addr = "127.0.0.1:7002"
            [[members]]
            id = "c"
            peer_addr = "127.0.0.1:7003"
            weight = 2
            "#,
        )
        .unwrap();
        assert_eq!(c.members.len(), 3);
        assert_eq!(c.storage.sync_policy(), SyncPolicy::Always);
        assert_eq!(c.limits.max_value_bytes, 4096);
        assert_eq!(c.limits.max_key_bytes, 1024);
        assert_eq!(c.read_fanout(), ReadFanout::All);
        assert_eq!(c.worker_threads, 2);
        assert_eq!(c.storage.background_threads, 1);
        let defaults = parse("").unwrap();
        assert_eq!(defaults.read_fanout(), ReadFanout::Quorum { hedge: Duration::from_millis(5) });
    }

    #[test]
    fn a_transfer_rate_out_of_range_is_refused_saying_what_is_allowed() {
        for bad in ["max_mb_per_second = 0", "busy_mb_per_second = 5000", "concurrency = 0"] {
            let e = parse(&format!("[transfers]\n{bad}\n")).unwrap_err().to_string();
            assert!(e.contains("transfers") && e.contains("from 1 to 4000"), "{bad}: {e}");
        }
        let c = parse("[transfers]\nmax_mb_per_second = 100\n").unwrap();
        let applied = c.transfers.apply(halka_cluster::TransferConfig::default());
        assert_eq!(applied.max_bytes_per_second, 100 << 20);
    }

    #[test]
    fn errors_name_file_field_and_allowed_values() {
        let e = parse("node_id = \"a\"\nreplicaton = 3\n").unwrap_err().to_string();
        assert!(e.contains("node.toml") && e.contains("replicaton"), "{e}");
        let e = parse("node_id = \"a\"\nreplication = 1\nw = 2\n").unwrap_err().to_string();
        assert!(e.contains("field `w`") && e.contains("1..=1"), "{e}");
        let e = parse("node_id = \"a\"\nredis_addr = \"nowhere\"\n").unwrap_err().to_string();
        assert!(e.contains("redis_addr") && e.contains("socket address"), "{e}");
        let e = parse("node_id = \"x\"\n[[members]]\nid = \"a\"\npeer_addr = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in the member list"), "{e}");
        let e = parse("[storage]\nsync = \"sometimes\"\n").unwrap_err().to_string();
        assert!(e.contains("sometimes") && e.contains("always"), "{e}");
        let e = parse("[storage]\nbackground_threads = 5000\n").unwrap_err().to_string();
        assert!(e.contains("storage.background_threads"), "{e}");
        let e = parse("worker_threads = 5000\n").unwrap_err().to_string();
        assert!(e.contains("worker_threads") && e.contains("1024"), "{e}");
        let e = parse("read_fanout = \"some\"\n").unwrap_err().to_string();
        assert!(e.contains("some") && e.contains("quorum"), "{e}");
        let e = parse("read_hedge_ms = 5000\n").unwrap_err().to_string();
        assert!(e.contains("read_hedge_ms") && e.contains("1..=1000"), "{e}");
        let e = parse("[storage]\ncache_mb = 99999999999\n").unwrap_err().to_string();
        assert!(e.contains("storage.cache_mb") && e.contains("at most"), "{e}");
        let e = parse("[tombstones]\ngrace_secs = 0\n").unwrap_err().to_string();
        assert!(e.contains("tombstones") && e.contains("enabled = false"), "{e}");
        assert_eq!(parse("").unwrap().replication, 1, "a lone node needs no file");
    }

    #[test]
    fn the_peer_port_beyond_loopback_needs_a_secret() {
        let e = parse("peer_addr = \"0.0.0.0:7380\"\n").unwrap_err().to_string();
        assert!(e.contains("peer_addr") && e.contains("cluster_secret"), "{e}");
        let ok = parse("peer_addr = \"0.0.0.0:7380\"\ncluster_secret = \"0123456789abcdef0123\"\n");
        assert!(ok.unwrap().secret().is_some());
        let e = parse("cluster_secret = \"short\"\n").unwrap_err().to_string();
        assert!(e.contains("cluster_secret") && e.contains("at least 16"), "{e}");
        let e = parse("cluster_secret = \"aaaaaaaaaaaaaaaaaaaaaaaa\"\n").unwrap_err().to_string();
        assert!(e.contains("cluster_secret") && e.contains("1 distinct"), "{e}");
    }

    #[test]
    fn clients_beyond_loopback_need_protected_mode_off() {
        let e = parse("redis_addr = \"0.0.0.0:6380\"\n").unwrap_err().to_string();
        assert!(e.contains("redis_addr") && e.contains("protected_mode = false"), "{e}");
        let e = parse("http_addr = \"[::]:8080\"\n").unwrap_err().to_string();
        assert!(e.contains("http_addr"), "{e}");
        let open = "redis_addr = \"0.0.0.0:6380\"\nprotected_mode = false\n";
        assert!(parse(&format!("{open}cluster_secret = \"0123456789abcdef0123\"\n")).is_ok());
    }

    #[test]
    fn protected_mode_off_needs_a_configured_secret() {
        let e = parse("protected_mode = false\n").unwrap_err().to_string();
        assert!(e.contains("protected_mode") && e.contains("cluster_secret"), "{e}");
    }

    #[test]
    fn a_cluster_of_several_members_needs_a_secret() {
        let members = "node_id = \"a\"\n[[members]]\nid = \"a\"\npeer_addr = \"127.0.0.1:1\"\n\
                       [[members]]\nid = \"b\"\npeer_addr = \"127.0.0.1:2\"\n";
        let e = parse(members).unwrap_err().to_string();
        assert!(e.contains("cluster_secret") && e.contains("2 members"), "{e}");
        let secret = "cluster_secret = \"0123456789abcdef0123\"\n";
        assert!(parse(&format!("{secret}{members}")).is_ok());
    }

    #[test]
    fn the_secret_is_never_printed() {
        let c = parse("cluster_secret = \"0123456789abcdef-very-secret\"\n").unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
