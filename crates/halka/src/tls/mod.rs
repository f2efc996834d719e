//! TLS on a node's listeners (rustls): Redis clients on `tls.redis_addr`, HTTPS on
//! `http_addr`, and mutual TLS between nodes on the peer port.
//!
//! - [`pem`]: reading certificates and keys.
//! - [`configs`]: the rustls configurations built from them.
//! - [`certs`]: making a CA and node certificates (`halka cert`, `halka dev --tls`).
//! - [`Tls`]: the configurations in use, reloaded without a restart when the files
//!   change or on SIGHUP: connections already open keep theirs, new ones take the new.

pub mod certs;
pub mod configs;
pub mod pem;

use crate::config::TlsSettings;
use arc_swap::ArcSwap;
use halka_cluster::rpc::PeerTls;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

/// How long a client has to finish its TLS handshake: one that sends nothing, or plain
/// text, is closed rather than left hanging.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A node's TLS.
#[derive(Debug)]
pub struct Tls {
    settings: TlsSettings,
    clients: ArcSwap<ServerConfig>,
    /// Mutual TLS towards peers, when `tls.peers` is on.
    pub peers: Option<Arc<PeerTls>>,
    /// When each file was last changed, as of the last load.
    changed: Mutex<Vec<Option<SystemTime>>>,
}

impl Tls {
    /// The node's TLS, or `None` when no listener speaks it.
    ///
    /// # Errors
    /// A file is missing or unusable (the error names it).
    pub fn load(settings: &TlsSettings) -> anyhow::Result<Option<Arc<Self>>> {
        if !settings.enabled() {
            return Ok(None);
        }
        let changed = Mutex::new(changed(settings));
        let clients = ArcSwap::new(configs::for_clients(settings)?);
        let peers = if settings.peers {
            let (inbound, outbound) =
                (configs::for_peers_in(settings)?, configs::for_peers_out(settings)?);
            Some(Arc::new(PeerTls::new(inbound, outbound)))
        } else {
            None
        };
        Ok(Some(Arc::new(Self { settings: settings.clone(), clients, peers, changed })))
    }

    /// Accepts Redis and HTTPS clients with the configuration in use now.
    #[must_use]
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.clients.load_full())
    }

    /// Reads the files again and uses them from now on; on any error nothing changes.
    ///
    /// # Errors
    /// A file is missing or unusable.
    pub fn reload(&self) -> anyhow::Result<()> {
        let stamps = changed(&self.settings);
        let clients = configs::for_clients(&self.settings)?;
        let peers = match &self.peers {
            Some(_) => Some((
                configs::for_peers_in(&self.settings)?,
                configs::for_peers_out(&self.settings)?,
            )),
            None => None,
        };
        self.clients.store(clients);
        if let (Some(tls), Some((inbound, outbound))) = (&self.peers, peers) {
            tls.replace(inbound, outbound);
        }
        *self.changed.lock() = stamps;
        Ok(())
    }

    /// Reloads on SIGHUP, and when a file's modification time changes (checked every
    /// `tls.reload_interval_ms`), until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut checks = tokio::time::interval(self.settings.reload_interval());
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                () = stop.cancelled() => return,
                Some(()) = async { hangups.as_mut()?.recv().await } => "SIGHUP",
                _ = checks.tick() => {
                    if changed(&self.settings) == *self.changed.lock() { continue }
                    "a file changed"
                }
            };
            match self.reload() {
                Ok(()) => {
                    metrics::counter!("halka_tls_reloads_total", "result" => "ok").increment(1);
                    tracing::info!(why, "TLS certificates reloaded");
                }
                Err(e) => {
                    metrics::counter!("halka_tls_reloads_total", "result" => "error").increment(1);
                    tracing::warn!(
                        why,
                        error = format!("{e:#}"),
                        "TLS certificates not reloaded; the ones in use stay"
                    );
                }
            }
        }
    }
}

/// Whether a client's first byte shows it speaks plain text: a TLS client starts with a
/// handshake record (0x16), never with a printable character.
pub async fn speaks_plain_text(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_graphic())
}

/// The modification times of the TLS files.
fn changed(settings: &TlsSettings) -> Vec<Option<SystemTime>> {
    [&settings.cert_file, &settings.key_file, &settings.ca_file]
        .into_iter()
        .map(|f| f.as_ref().and_then(|p| std::fs::metadata(p).ok()?.modified().ok()))
        .collect()
}
