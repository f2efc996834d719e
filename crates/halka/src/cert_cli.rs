//! `halka cert`: a CA for a cluster and the node certificates it signs, as PEM files for
//! the `[tls]` section.

use crate::tls::certs;
use anyhow::Context as _;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CertArgs {
    #[command(subcommand)]
    pub what: CertCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Make a cluster CA: DIR/ca.crt (give it to every node and client) and DIR/ca.key
    /// (keep it offline; it signs node certificates).
    Ca {
        #[arg(long, default_value = "halka-certs")]
        dir: PathBuf,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        days: i64,
    },
    /// Make a certificate for a node, signed by the CA in DIR: DIR/NODE_ID.crt and
    /// DIR/NODE_ID.key.
    Node {
        /// The node's id (`node_id`), named in the certificate.
        node_id: String,
        /// A host name or IP address the node is reached at (repeatable): clients and
        /// peers check that the certificate names the host they dialled.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value = "halka-certs")]
        dir: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
}

/// Runs `halka cert`; what it wrote, to print.
///
/// # Errors
/// A file cannot be read or written, or a host is not a valid name.
pub fn run(args: &CertArgs) -> anyhow::Result<String> {
    match &args.what {
        CertCommand::Ca { dir, days } => {
            anyhow::ensure!(*days > 0, "--days must be positive");
            anyhow::ensure!(
                !dir.join("ca.key").exists(),
                "{} already holds a CA (ca.key); remove it first or choose another --dir",
                dir.display()
            );
            let ca = certs::authority("halka cluster CA", *days)?;
            certs::write(dir, "ca", &ca)?;
            Ok(format!("wrote {0}/ca.crt and {0}/ca.key", dir.display()))
        }
        CertCommand::Node { node_id, hosts, dir, days } => {
            anyhow::ensure!(*days > 0, "--days must be positive");
            let ca = certs::read_authority(dir).context("run `halka cert ca` first")?;
            let now = time::OffsetDateTime::now_utc();
            let issued = certs::node(&ca, node_id, hosts, now, *days)?;
            certs::write(dir, node_id, &issued)?;
            Ok(format!("wrote {0}/{node_id}.crt and {0}/{node_id}.key", dir.display()))
        }
    }
}
