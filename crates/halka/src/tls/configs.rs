//! The rustls configurations a node serves and dials with, built from its `[tls]` files.
//! TLS 1.2 and 1.3 only (rustls speaks nothing older), on the ring provider.

use super::pem;
use crate::config::{AuthClients, TlsSettings};
use anyhow::Context as _;
use std::sync::Arc;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};

/// ring, not aws-lc-rs: it builds from Rust and C alone (no cmake) in a fraction of the
/// time. rustls marks ring's provider deprecated because it lacks post-quantum key
/// exchange; moving to aws-lc-rs is a one-line change here when that matters.
#[allow(deprecated, reason = "see above: ring until post-quantum key exchange is wanted")]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn files(settings: &TlsSettings) -> anyhow::Result<(&std::path::Path, &std::path::Path)> {
    let cert = settings.cert_file.as_deref().context("tls.cert_file is not set")?;
    let key = settings.key_file.as_deref().context("tls.key_file is not set")?;
    Ok((cert, key))
}

/// What Redis and HTTPS clients meet: the node's certificate, and a client certificate
/// asked for as `auth_clients` says.
///
/// # Errors
/// A file is missing or unusable, or the key does not match the certificate.
pub fn for_clients(settings: &TlsSettings) -> anyhow::Result<Arc<ServerConfig>> {
    let (cert, key) = files(settings)?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match (settings.auth_clients, &settings.ca_file) {
        (AuthClients::No, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(pem::roots(ca)?), provider());
            let verifier = if auth == AuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let config =
        builder.with_single_cert(pem::certificates(cert)?, pem::private_key(key)?).with_context(
            || format!("{} and {} do not make a key pair", cert.display(), key.display()),
        )?;
    Ok(Arc::new(config))
}

/// The peer port's server side: a certificate of the cluster's CA is required.
///
/// # Errors
/// A file is missing or unusable.
pub fn for_peers_in(settings: &TlsSettings) -> anyhow::Result<Arc<ServerConfig>> {
    let (cert, key) = files(settings)?;
    let ca = settings.ca_file.as_deref().context("tls.ca_file is not set")?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(pem::roots(ca)?), provider())
            .build()?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem::certificates(cert)?, pem::private_key(key)?)
        .with_context(|| {
            format!("{} and {} do not make a key pair", cert.display(), key.display())
        })?;
    Ok(Arc::new(config))
}

/// The peer port's client side: presents the node's certificate, and checks the peer's
/// against the cluster's CA.
///
/// # Errors
/// A file is missing or unusable.
pub fn for_peers_out(settings: &TlsSettings) -> anyhow::Result<Arc<ClientConfig>> {
    let (cert, key) = files(settings)?;
    let ca = settings.ca_file.as_deref().context("tls.ca_file is not set")?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(pem::roots(ca)?)
        .with_client_auth_cert(pem::certificates(cert)?, pem::private_key(key)?)
        .with_context(|| {
            format!("{} and {} do not make a key pair", cert.display(), key.display())
        })?;
    Ok(Arc::new(config))
}
