//! Certificates and keys from PEM files, with errors that name the file.

use anyhow::Context as _;
use std::path::Path;
use tokio_rustls::rustls::RootCertStore;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in `path`, in order.
///
/// # Errors
/// The file cannot be read or holds no certificate.
pub fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
    Ok(certs)
}

/// The private key in `path`.
///
/// # Errors
/// The file cannot be read or holds no key.
pub fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading a private key (PEM) from {}", path.display()))
}

/// The certificates in `path` as trust roots.
///
/// # Errors
/// The file cannot be read, holds no certificate, or one is not a valid CA.
pub fn roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).with_context(|| format!("{} is not a usable CA", path.display()))?;
    }
    Ok(store)
}
