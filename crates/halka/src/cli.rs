//! Command-line definitions for the `halka` binary.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "halka",
    version,
    about = "halka: a Dynamo-style distributed key-value store"
)]
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
    /// Write an SVG plot of per-node load and CV against vnodes.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}
