//! Making certificates: a CA for a cluster, and node certificates it signs. What
//! `halka cert` writes for a real deployment and `halka dev --tls` for a throwaway one.
//!
//! Keys are ECDSA P-256 (rcgen's default): small, fast to verify, and spoken by every TLS
//! client in use. A node certificate names the node's id and its hosts (IP addresses or
//! DNS names), and serves both as a server's and a client's, since nodes are both to each
//! other.

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, as PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A new CA, valid for `days` from now.
///
/// # Errors
/// The key or certificate cannot be made.
pub fn authority(name: &str, days: i64) -> anyhow::Result<Issued> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    valid_for(&mut params, OffsetDateTime::now_utc(), days);
    let cert = params.self_signed(&key)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// A certificate for node `id` reached at `hosts`, signed by `ca`, valid from `from` for
/// `days`.
///
/// # Errors
/// The CA does not parse, or a host is not a valid name.
pub fn node(
    ca: &Issued,
    id: &str,
    hosts: &[String],
    from: OffsetDateTime,
    days: i64,
) -> anyhow::Result<Issued> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).context("the CA key does not parse")?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)
        .context("the CA certificate does not parse")?;
    let mut names = vec![id.to_string()];
    names.extend(hosts.iter().cloned());
    let mut params = CertificateParams::new(names).context("a host is not a valid name")?;
    params.distinguished_name.push(DnType::CommonName, id);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    valid_for(&mut params, from, days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

fn valid_for(params: &mut CertificateParams, from: OffsetDateTime, days: i64) {
    // An hour's slack for clocks a little behind.
    params.not_before = from - Duration::hours(1);
    params.not_after = from + Duration::days(days);
}

/// Certificates for a throwaway local cluster (`halka dev --tls`) in `dir`: a CA, made
/// once, and a certificate for each of `ids` on 127.0.0.1 and localhost, made again at
/// every start.
///
/// # Errors
/// A file cannot be read or written.
pub fn throwaway(dir: &Path, ids: &[String]) -> anyhow::Result<()> {
    let ca = match read_authority(dir) {
        Ok(ca) => ca,
        Err(_) => {
            let ca = authority("halka dev CA (throwaway)", 365)?;
            write(dir, "ca", &ca)?;
            ca
        }
    };
    let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
    for id in ids {
        write(dir, id, &node(&ca, id, &hosts, OffsetDateTime::now_utc(), 30)?)?;
    }
    Ok(())
}

/// Reads a CA written by [`write`] from `dir` (`ca.crt`, `ca.key`).
///
/// # Errors
/// A file is missing.
pub fn read_authority(dir: &Path) -> anyhow::Result<Issued> {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .with_context(|| format!("reading {}", dir.join(f).display()))
    };
    Ok(Issued { cert_pem: read("ca.crt")?, key_pem: read("ca.key")? })
}

/// Writes `issued` as `dir/NAME.crt` and `dir/NAME.key` (the key readable by its owner
/// only).
///
/// # Errors
/// A file cannot be written.
pub fn write(dir: &Path, name: &str, issued: &Issued) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(format!("{name}.crt")), &issued.cert_pem)?;
    let key_path = dir.join(format!("{name}.key"));
    let mut key = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("writing {}", key_path.display()))?;
    key.write_all(issued.key_pem.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TlsSettings;

    #[test]
    fn a_node_certificate_signed_by_the_ca_makes_every_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let ca = authority("test CA", 30).unwrap();
        write(dir.path(), "ca", &ca).unwrap();
        let hosts = vec!["127.0.0.1".to_string()];
        let issued = node(&ca, "node-1", &hosts, OffsetDateTime::now_utc(), 30).unwrap();
        write(dir.path(), "node-1", &issued).unwrap();
        let settings = TlsSettings {
            cert_file: Some(dir.path().join("node-1.crt")),
            key_file: Some(dir.path().join("node-1.key")),
            ca_file: Some(dir.path().join("ca.crt")),
            peers: true,
            ..TlsSettings::default()
        };
        super::super::configs::for_clients(&settings).unwrap();
        super::super::configs::for_peers_in(&settings).unwrap();
        super::super::configs::for_peers_out(&settings).unwrap();
    }

    #[test]
    fn a_key_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ca", &authority("t", 1).unwrap()).unwrap();
        let mode = std::fs::metadata(dir.path().join("ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
}
