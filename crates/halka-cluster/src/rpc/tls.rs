//! Mutual TLS between nodes: every node presents a certificate signed by the cluster's
//! CA and checks its peer's, before (and beside) the cluster-secret handshake. The
//! configurations are swapped whole when certificates are reloaded: connections already
//! open keep the one they began with, new ones take the new.

use super::link::Link;
use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A node's TLS towards its peers: as a server, requiring a client certificate from the
/// cluster's CA; as a client, checking the server's against it.
#[derive(Debug)]
pub struct PeerTls {
    server: ArcSwap<ServerConfig>,
    client: ArcSwap<ClientConfig>,
}

impl PeerTls {
    #[must_use]
    pub fn new(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Self {
        Self { server: ArcSwap::new(server), client: ArcSwap::new(client) }
    }

    /// Uses `server` and `client` for connections from now on.
    pub fn replace(&self, server: Arc<ServerConfig>, client: Arc<ClientConfig>) {
        self.server.store(server);
        self.client.store(client);
    }

    /// Runs the server side of the TLS handshake on `tcp`.
    ///
    /// # Errors
    /// The handshake failed: the peer sent no certificate, one from another CA, an
    /// expired one, or not TLS at all.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Link> {
        let stream = TlsAcceptor::from(self.server.load_full()).accept(tcp).await?;
        Ok(Link::Tls(Box::new(stream.into())))
    }

    /// Runs the client side of the TLS handshake on `tcp`, connected to `addr`
    /// (`host:port`): the server's certificate must name `host`.
    ///
    /// # Errors
    /// The address has no host a certificate could name, or the handshake failed.
    pub async fn connect(&self, addr: &str, tcp: TcpStream) -> std::io::Result<Link> {
        let name = server_name(addr)?;
        let stream = TlsConnector::from(self.client.load_full()).connect(name, tcp).await?;
        Ok(Link::Tls(Box::new(stream.into())))
    }
}

/// The host of `addr` (`host:port`, `[v6]:port`) as a certificate names it.
fn server_name(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} has no host name a certificate could carry: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        assert_eq!(
            format!("{:?}", server_name("10.0.0.1:7380").unwrap()),
            "IpAddress(V4(Ipv4Addr([10, 0, 0, 1])))"
        );
        assert!(matches!(server_name("node-1.example:7380").unwrap(), ServerName::DnsName(_)));
        assert!(matches!(server_name("[::1]:7380").unwrap(), ServerName::IpAddress(_)));
    }
}
