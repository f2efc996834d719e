//! Node configuration: a TOML file, with command-line flags layered on top.
//!
//! Every field has a default, so a single node runs with no file at all. Errors name the
//! file, the field and what is allowed.

mod gossip;
mod sections;
mod tls;
mod transfers;

pub use gossip::GossipSettings;
pub use sections::{
    AntiEntropySettings, HandoffSettings, HttpSettings, StorageConfig, TombstoneSettings,
};
pub use tls::{AuthClients, TlsSettings};
pub use transfers::TransferSettings;

use halka_cluster::{ClusterSecret, ReadFanout};
use halka_store::Limits;
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
    pub tls: TlsSettings,
    pub http: HttpSettings,
    /// Shared by every member (at least 16 bytes; `halka secret` prints a random one):
    /// nodes prove they know it before serving each other, and it signs the causal-context
    /// tokens clients get. Required when `peer_addr` is not a loopback address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret: Option<SecretString>,
    /// Refuse to serve Redis and HTTP clients beyond loopback while a client that never
    /// authenticates could run commands (the default user needs no password). Off, every
    /// key is exposed to whoever can connect unless users are set up.
    pub protected_mode: bool,
    /// The default user's password, as Redis's `requirepass`: seeds the cluster's users
    /// at its first start (afterwards `ACL SETUSER default …` changes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requirepass: Option<SecretString>,
    /// A file of users in Redis's ACL file format (`user NAME rule …`), seeding the
    /// cluster's users at its first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aclfile: Option<PathBuf>,
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
            tls: TlsSettings::default(),
            tombstones: TombstoneSettings::default(),
            http: HttpSettings::default(),
            cluster_secret: None,
            protected_mode: true,
            requirepass: None,
            aclfile: None,
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
        if let Some(problem) = self.tls.problem() {
            return Err(invalid("tls", problem));
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
        if self.redis_addr.is_empty() && self.tls.redis_addr.is_none() {
            return Err(invalid(
                "redis_addr",
                "is empty (no plain Redis port), so tls.redis_addr must give the TLS one: \
                 clients would have no Redis port at all"
                    .into(),
            ));
        }
        let plain_redis = (!self.redis_addr.is_empty()).then_some(("redis_addr", &self.redis_addr));
        let addrs = [("http_addr", &self.http_addr), ("peer_addr", &self.peer_addr)];
        for (field, addr) in plain_redis.into_iter().chain(addrs) {
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

pub(crate) fn is_loopback(addr: &str) -> bool {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests;
