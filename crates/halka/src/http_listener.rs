//! The HTTP listener: accepts connections up to a cap, bounds how long a client may take
//! to send its headers and its whole request, and drains connections on shutdown.
//!
//! Without these, a client that trickles headers or streams an endless body holds a
//! connection and a task for as long as it likes, and enough of them exhaust the node.

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Limits on HTTP connections.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_connections: usize,
    /// Of those, from one source address.
    pub max_connections_per_source: usize,
    /// From a connection's first byte (or the end of its last request) to the end of the
    /// request's headers.
    pub header_timeout: Duration,
    /// For the whole of one request, body included, and its answer.
    pub request_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown`, then waits for the open connections'
/// requests in flight. Returns the listener.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
    tls: Option<Arc<crate::tls::Tls>>,
) -> TcpListener {
    let app = app.layer(axum::middleware::from_fn_with_state(limits, request_deadline));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_source = crate::per_source::PerSource::new(limits.max_connections_per_source);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(place) = per_source.enter(peer.ip()) else {
            tracing::debug!(%peer, "http connection refused: its address holds its share");
            let why = format!(
                "your address already has {} HTTP connections to this node \
                 (http.max_connections_per_source); close some or retry later\n",
                limits.max_connections_per_source
            );
            tokio::spawn(refuse(stream, why));
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(%peer, "http connection refused: at max_connections");
            let why = format!(
                "this node already serves {} HTTP connections (http.max_connections); retry \
                 later\n",
                limits.max_connections
            );
            tokio::spawn(refuse(stream, why));
            continue;
        };
        // The client's address travels with each request (`ConnectInfo`): the auth
        // throttle is per source address.
        let with_peer = app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let service = TowerToHyperService::new(with_peer);
        let Some(tls) = &tls else {
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%peer, error = %e, "http connection ended");
                }
                drop((slot, place));
            });
            continue;
        };
        // The TLS handshake runs in the connection's own task, so a slow one holds up no
        // other client; the connection is watched for shutdown once it is up.
        let (acceptor, http, watcher) = (tls.acceptor(), http.clone(), graceful.watcher());
        tokio::spawn(async move {
            https_connection(stream, peer, acceptor, (http, service), watcher).await;
            drop((slot, place));
        });
    }
    graceful.shutdown().await;
    listener
}

/// Serves one HTTPS connection, once its TLS handshake is done. A client that speaks
/// plain HTTP to the port is told so.
async fn https_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    (http, service): (hyper::server::conn::http1::Builder, TowerToHyperService<Router>),
    watcher: hyper_util::server::graceful::Watcher,
) {
    let handshake = async {
        if crate::tls::speaks_plain_text(&stream).await {
            let why = "this port speaks HTTPS: use https:// (curl --cacert CA_FILE)\n";
            refuse_with(stream, "400 Bad Request", why.to_string()).await;
            return None;
        }
        Some(acceptor.accept(stream).await)
    };
    match tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Some(Ok(stream))) => {
            let connection = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "https connection ended");
            }
        }
        Ok(Some(Err(e))) => {
            metrics::counter!("halka_tls_handshake_failures_total", "listener" => "http")
                .increment(1);
            tracing::debug!(%peer, error = %e, "HTTPS handshake failed");
        }
        Ok(None) => {}
        Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
    }
}

/// Answers a connection over a cap with 503 and `body`, and closes it.
async fn refuse(stream: TcpStream, body: String) {
    refuse_with(stream, "503 Service Unavailable", body).await;
}

/// Answers with `status` and `body`, and closes the connection.
async fn refuse_with(mut stream: TcpStream, status: &str, body: String) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent before closing: closing with unread input resets the
        // connection, and the client may lose the answer.
        let mut sink = [0_u8; 4096];
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => read += n,
            }
        }
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// Ends a request that takes longer than `request_timeout` (a body that never ends, a
/// client that stopped sending) with 408.
async fn request_deadline(
    axum::extract::State(limits): axum::extract::State<HttpLimits>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request took longer than {} ms (http.request_timeout_ms)\n",
                limits.request_timeout.as_millis()
            ),
        )
            .into_response(),
    }
}
