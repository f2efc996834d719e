//! Command-line definitions for the `halka` binary.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "halka", version, about = "halka: a Dynamo-style distributed key-value store")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Placement simulator: load balance and data movement for every strategy.
    Sim(SimArgs),
    /// The seed project's example on an embedded cluster: quorums, siblings, hot spots.
    Demo,
    /// Benchmark: the seed's workload against an embedded cluster.
    Bench(BenchArgs),
    /// Run one node.
    Server(Box<ServerArgs>),
    /// Start a local cluster of `--nodes` server processes on loopback.
    Dev(DevArgs),
    /// Read a key from a node: the value byte for byte (each replica's answer with --json).
    Get(GetArgs),
    /// Write a key through a node.
    Put(PutArgs),
    /// Delete a key through a node.
    Del(DelArgs),
    /// A node's view of the cluster.
    Status(StatusArgs),
    /// Change the cluster's shape: stage joins, leaves and replaces, see the plan, commit.
    Cluster(ClusterArgs),
    /// Print a new random cluster secret (for `cluster_secret` in every member's config).
    Secret,
    /// Make TLS certificates: a cluster CA, and node certificates it signs.
    Cert(crate::cert_cli::CertArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// TOML configuration file; flags below override its fields.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub node_id: Option<String>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Redis-protocol listen address (default 127.0.0.1:6380).
    #[arg(long)]
    pub redis_addr: Option<String>,
    /// HTTP listen address (default 127.0.0.1:8080).
    #[arg(long)]
    pub http_addr: Option<String>,
    /// Internal RPC listen address (default 127.0.0.1:7380).
    #[arg(long)]
    pub peer_addr: Option<String>,
    /// Static members as `id=host:port` pairs, comma separated (overrides the file's list).
    #[arg(long, value_delimiter = ',')]
    pub members: Vec<String>,
    /// Start outside any cluster and wait to be joined by a member (`halka cluster join
    /// PEER_ADDR --addr MEMBER`); needs the cluster's secret.
    #[arg(long, conflicts_with = "members")]
    pub join: bool,
    /// A member's peer address to announce this node to by gossip (repeatable). Without
    /// `--members` the node waits to be joined under its id (`halka cluster join ID`).
    #[arg(long = "seed", conflicts_with = "members")]
    pub seeds: Vec<String>,
    /// Read the cluster secret from this file (`halka dev` keeps its cluster's in
    /// `DATA_DIR/cluster-secret`).
    #[arg(long)]
    pub cluster_secret_file: Option<PathBuf>,
    /// This node's zone (failure domain), told to the member that joins it.
    #[arg(long)]
    pub zone: Option<String>,
    /// This node's weight (relative capacity), told to the member that joins it.
    #[arg(long)]
    pub weight: Option<u32>,
    #[arg(long)]
    pub replication: Option<usize>,
    #[arg(long)]
    pub r: Option<usize>,
    #[arg(long)]
    pub w: Option<usize>,
    #[arg(long, value_enum)]
    pub sync: Option<SyncArg>,
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Async worker threads (default: one per CPU core).
    #[arg(long)]
    pub worker_threads: Option<usize>,
    /// Log filter, e.g. `info` or `halka=debug` (default: RUST_LOG, else info).
    #[arg(long)]
    pub log_level: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Redis-protocol port of the first node; node i uses port + i.
    #[arg(long, default_value_t = 6380)]
    pub port: u16,
    /// HTTP port of the first node; node i uses http-port + i.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Internal RPC port of the first node; node i uses peer-port + i.
    #[arg(long, default_value_t = 7380)]
    pub peer_port: u16,
    #[arg(long, default_value = "./halka-data")]
    pub data_dir: PathBuf,
    /// Keep data in a temporary directory, removed on exit.
    #[arg(long)]
    pub ephemeral: bool,
    #[arg(long, default_value_t = 3)]
    pub replication: usize,
    #[arg(long, value_enum, default_value_t = SyncArg::Periodic)]
    pub sync: SyncArg,
    /// TLS everywhere: a throwaway CA and node certificates in DATA_DIR/tls, a Redis TLS
    /// port beside each plain one, HTTPS, and mutual TLS between the nodes.
    #[arg(long)]
    pub tls: bool,
    /// Redis TLS port of the first node (with --tls); node i uses tls-port + i.
    #[arg(long, default_value_t = 6390)]
    pub tls_port: u16,
}

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// A node's Redis-protocol address.
    #[arg(long, default_value = "127.0.0.1:6380")]
    pub addr: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Log in as this user (with --pass).
    #[arg(long, env = "HALKA_USER", default_value = "default")]
    pub user: String,
    /// The user's password; HALKA_PASSWORD keeps it off the command line.
    #[arg(long = "pass", env = "HALKA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    pub key: String,
    /// Read quorum for this request (default: the node's).
    #[arg(long)]
    pub r: Option<usize>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct PutArgs {
    pub key: String,
    /// The value; read from standard input when omitted, byte for byte.
    pub value: Option<String>,
    /// Write quorum for this request (default: the node's).
    #[arg(long)]
    pub w: Option<usize>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct DelArgs {
    pub key: String,
    #[arg(long)]
    pub w: Option<usize>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    Memory,
    Fjall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncArg {
    Always,
    Periodic,
}

impl From<SyncArg> for crate::config::SyncChoice {
    fn from(arg: SyncArg) -> Self {
        match arg {
            SyncArg::Always => Self::Always,
            SyncArg::Periodic => Self::Periodic,
        }
    }
}

impl From<EngineArg> for crate::config::EngineChoice {
    fn from(arg: EngineArg) -> Self {
        match arg {
            EngineArg::Fjall => Self::Fjall,
            EngineArg::Memory => Self::Memory,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Run every node in this process (the only mode so far).
    #[arg(long, default_value_t = true)]
    pub embedded: bool,
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,
    /// Replication factor N.
    #[arg(long, default_value_t = 5)]
    pub replication: usize,
    /// Write quorum W.
    #[arg(long, default_value_t = 3)]
    pub w: usize,
    /// Read quorum R.
    #[arg(long, default_value_t = 3)]
    pub r: usize,
    #[arg(long, value_enum, default_value_t = EngineArg::Memory)]
    pub engine: EngineArg,
    /// Sync policy for `--engine fjall`.
    #[arg(long, value_enum, default_value_t = SyncArg::Periodic)]
    pub sync: SyncArg,
    /// Data directory for `--engine fjall` (default: a temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keys written before the measured run.
    #[arg(long, default_value_t = 100_000)]
    pub keyspace: u64,
    /// Operations in each measured run (50% put, 50% get).
    #[arg(long, default_value_t = 1_000_000)]
    pub ops: u64,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Concurrent client tasks, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,2,8")]
    pub clients: Vec<usize>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Number of keys to place.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: usize,
    /// Nodes in the cluster before the change.
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,
    /// Nodes that join, for the movement figures.
    #[arg(long, default_value_t = 1)]
    pub add: usize,
    /// Replication factor N (preference-list length).
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Virtual nodes per node for the vnode ring, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,256,1000")]
    pub vnodes: Vec<u32>,
    /// Partitions for the partitioned strategy (a power of two).
    #[arg(long, default_value_t = halka_ring::DEFAULT_PARTITIONS)]
    pub partitions: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write a plot (.svg or .png) of per-node load, CV against vnodes and keys moved on a join.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: ClusterAction,
    /// A member's Redis-protocol address: the node that stages and commits.
    #[arg(long, global = true, default_value = "127.0.0.1:6380")]
    pub addr: String,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    #[arg(long, global = true, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Log in as this user (with --pass).
    #[arg(long, global = true, env = "HALKA_USER", default_value = "default")]
    pub user: String,
    /// The user's password; HALKA_PASSWORD keeps it off the command line.
    #[arg(long = "pass", global = true, env = "HALKA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// The layout version, every member with its state and liveness, and the change under
    /// way.
    Status,
    /// Stage joining NODE: its peer address (a node started with `halka server --join`
    /// and the cluster's secret), or the id it announced by gossip (started with
    /// `--seed`; `halka cluster status` lists such nodes).
    Join {
        node: String,
        /// Its zone (default: what the node says).
        #[arg(long)]
        zone: Option<String>,
        /// Its weight (default: what the node says).
        #[arg(long)]
        weight: Option<u32>,
    },
    /// Stage member NODE leaving: it hands its partitions to the others.
    Leave { node: String },
    /// Stage NODE (a peer address, or an id announced by gossip) taking the place of
    /// member OLD, lost with its data (nothing is streamed from OLD, nobody waits for it;
    /// a machine you still have is swapped with `join` then `leave`).
    Replace { old: String, node: String },
    /// What the staged changes would move: partitions per node before and after.
    Plan,
    /// Make the staged changes the next layout version.
    Commit {
        /// Wait until every partition has moved, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Drop the staged changes.
    Clear,
}
