//! `[tls]`: certificates, and which listeners speak TLS.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Whether Redis and HTTPS clients must present a certificate (Redis's
/// `tls-auth-clients`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthClients {
    /// No client certificate is asked for.
    #[default]
    No,
    /// A client may present one (checked against `ca_file` when it does).
    Optional,
    /// Every client must present one signed by `ca_file`.
    Yes,
}

/// TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// This node's certificate chain (PEM), leaf first.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// The cluster's CA certificate (PEM): what peers' certificates, and clients' when
    /// `auth_clients` asks for them, must be signed by.
    pub ca_file: Option<PathBuf>,
    /// A Redis port speaking TLS, beside `redis_addr` (Redis's `tls-port`).
    pub redis_addr: Option<String>,
    /// HTTPS instead of HTTP on `http_addr`.
    pub http: bool,
    /// Mutual TLS on the peer port: every member must have it on.
    pub peers: bool,
    pub auth_clients: AuthClients,
    /// Milliseconds between checks of the files for changes (a change, or SIGHUP, reloads
    /// them without a restart).
    pub reload_interval_ms: u64,
}

impl TlsSettings {
    /// Whether any listener speaks TLS.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.redis_addr.is_some() || self.http || self.peers
    }

    /// What is wrong with these settings, if anything.
    pub(super) fn problem(&self) -> Option<String> {
        if !self.enabled() {
            return None;
        }
        if self.cert_file.is_none() || self.key_file.is_none() {
            return Some("cert_file and key_file are needed to speak TLS".into());
        }
        if self.ca_file.is_none() && self.peers {
            return Some("peers = true needs ca_file: the cluster's CA checks every peer".into());
        }
        if self.ca_file.is_none() && self.auth_clients != AuthClients::No {
            return Some(
                "auth_clients needs ca_file, which clients' certificates are checked against"
                    .into(),
            );
        }
        None
    }

    /// How often the files are checked (2 s unless set).
    #[must_use]
    pub fn reload_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(if self.reload_interval_ms == 0 {
            2000
        } else {
            self.reload_interval_ms
        })
    }
}
