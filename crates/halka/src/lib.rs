//! halka, the product: the `halka` command's subcommands as library functions, so the binary
//! stays thin and tests call the same code.

pub mod acl;
pub mod bench;
pub mod cert_cli;
pub mod cli;
pub mod client;
pub mod cluster_admin;
pub mod cluster_cli;
pub mod commands;
pub mod config;
pub mod context_token;
pub mod demo;
pub mod dev;
pub mod http;
pub mod http_auth;
pub mod http_cluster;
pub mod http_listener;
pub mod incarnation;
pub mod membership;
pub mod node;
pub mod output;
pub mod per_source;
pub mod resp;
pub mod secret_file;
pub mod sim;
pub mod startup_checks;
pub mod state;
pub mod status;
mod storage_watch;
pub mod telemetry;
pub mod tls;
