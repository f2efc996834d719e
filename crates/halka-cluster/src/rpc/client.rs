//! The RPC client: a replica on another node, reached over one multiplexed connection.

use super::handshake::{self, PeerAuth};
use super::link::Link;
use super::message::{Envelope, Request, Response, decode, encode};
use super::remote::{MessageReplica, Transport, unexpected};
use super::server::codec;
use crate::ReplicaError;
use bytes::Bytes;
use futures::FutureExt;
use futures::StreamExt;
use futures::future::BoxFuture;
use halka_store::NodeId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Client settings.
#[derive(Debug, Clone)]
pub struct RpcClientConfig {
    pub max_frame_bytes: usize,
    pub connect_timeout: Duration,
    /// First wait after a failed connect; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Requests queued for the connection's writer.
    pub queue: usize,
    /// How often a peer in backoff is dialled in the background.
    pub probe_interval: Duration,
    /// The least time between two dials of a peer that refused the last one. A request
    /// for such a peer asks for a dial at once instead of failing (a node that is
    /// starting refuses until it binds its port), and this bounds how often a dead
    /// peer's port is dialled however many requests ask.
    pub redial_min: Duration,
    /// This node's identity and the secret it proves to peers.
    pub auth: PeerAuth,
    /// Mutual TLS towards peers; `None`: plain TCP.
    pub tls: Option<Arc<super::tls::PeerTls>>,
}

impl RpcClientConfig {
    /// Defaults for a node identified by `auth`.
    #[must_use]
    pub fn new(auth: PeerAuth) -> Self {
        Self {
            auth,
            max_frame_bytes: super::DEFAULT_MAX_FRAME_BYTES,
            connect_timeout: Duration::from_millis(500),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            probe_interval: Duration::from_millis(50),
            redial_min: Duration::from_millis(5),
            queue: 4096,
            tls: None,
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

#[derive(Clone)]
struct Conn {
    tx: mpsc::Sender<Bytes>,
    pending: Pending,
    alive: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Backoff {
    retry_at: Option<Instant>,
    delay: Duration,
    last_error: String,
    /// The last dial was refused: the peer's host answered and nothing listens on the
    /// port yet (a node starting or restarting), so dialling again costs one round trip.
    refused: bool,
}

/// Why a dial failed.
#[derive(Debug)]
struct DialError {
    message: String,
    refused: bool,
}

impl DialError {
    fn other(message: impl Into<String>) -> Self {
        Self { message: message.into(), refused: false }
    }
}

struct Peer {
    id: NodeId,
    addr: String,
    config: RpcClientConfig,
    conn: Mutex<Option<Conn>>,
    backoff: Mutex<Backoff>,
    connecting: tokio::sync::Mutex<()>,
    /// Whether a probe task is dialling the peer.
    probing: AtomicBool,
    /// Wakes the probe for a dial now (a request is waiting on a refused peer).
    wake: Arc<tokio::sync::Notify>,
    /// Dials the probe has started and finished: a waiting request wants one that
    /// started after it asked.
    dials_started: AtomicU64,
    dials_done: tokio::sync::watch::Sender<u64>,
    next_id: AtomicU64,
    /// Cancels the connection tasks when the last handle goes.
    _stop: DropGuard,
    stop: CancellationToken,
}

/// The connection to one peer, shared by every handle to it.
#[derive(Clone)]
pub struct TcpPeer {
    peer: Arc<Peer>,
}

/// A replica on another node, reached over TCP.
pub type RemoteReplica = MessageReplica<TcpPeer>;

impl std::fmt::Debug for TcpPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpPeer").field("id", &self.peer.id).field("addr", &self.peer.addr).finish()
    }
}

/// Removes a request's slot if its caller gives up (deadline) before the answer comes.
struct PendingGuard {
    pending: Pending,
    id: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.id);
    }
}

impl MessageReplica<TcpPeer> {
    /// A replica for node `id` at `addr` (`host:port`). Connects on first use.
    #[must_use]
    pub fn new(id: NodeId, addr: String, config: RpcClientConfig) -> Self {
        let stop = CancellationToken::new();
        let backoff = Backoff {
            retry_at: None,
            delay: config.backoff_min,
            last_error: String::new(),
            refused: false,
        };
        MessageReplica::with_transport(TcpPeer {
            peer: Arc::new(Peer {
                id,
                addr,
                config,
                conn: Mutex::new(None),
                backoff: Mutex::new(backoff),
                connecting: tokio::sync::Mutex::new(()),
                probing: AtomicBool::new(false),
                wake: Arc::new(tokio::sync::Notify::new()),
                dials_started: AtomicU64::new(0),
                dials_done: tokio::sync::watch::channel(0).0,
                next_id: AtomicU64::new(1),
                _stop: stop.clone().drop_guard(),
                stop,
            }),
        })
    }

    /// Round trip to the peer, for liveness checks.
    ///
    /// # Errors
    /// The peer is unreachable.
    pub async fn ping(&self) -> Result<(), ReplicaError> {
        match call(&self.transport().peer, Request::Ping).await? {
            Response::Pong => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The peer's placement fingerprint (`RpcServerConfig::placement`).
    ///
    /// # Errors
    /// The peer is unreachable.
    pub async fn hello(&self) -> Result<u64, ReplicaError> {
        match call(&self.transport().peer, Request::Hello).await? {
            Response::Hello { placement } => Ok(placement),
            other => Err(unexpected(&other)),
        }
    }

    /// Whether a connection is open now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.transport().peer.conn.lock().as_ref().is_some_and(|c| c.alive.load(Ordering::Acquire))
    }

    #[must_use]
    pub fn addr(&self) -> &str {
        &self.transport().peer.addr
    }
}

fn live(peer: &Peer) -> Option<Conn> {
    peer.conn.lock().as_ref().filter(|c| c.alive.load(Ordering::Acquire)).cloned()
}

async fn connection(peer: &Arc<Peer>) -> Result<Conn, ReplicaError> {
    if let Some(conn) = live(peer) {
        return Ok(conn);
    }
    // In backoff: fail at once, without queueing behind a connect attempt, unless the
    // peer only refused (see `redial`).
    if let Err(e) = in_backoff(peer) {
        return if peer.backoff.lock().refused { redial(peer, e).await } else { Err(e) };
    }
    // One connect attempt at a time; the others wait for its outcome.
    let _connecting = peer.connecting.lock().await;
    if let Some(conn) = live(peer) {
        return Ok(conn);
    }
    in_backoff(peer)?;
    match dial(peer).await {
        Ok(stream) => Ok(install(peer, stream)),
        Err(error) => {
            let e = failed(peer, error);
            probe(peer);
            Err(e)
        }
    }
}

/// A request for a peer whose last dial was refused waits for the probe's next dial,
/// which it asks for at once, instead of failing: a node that binds its port a moment
/// after its peers first dialled it is used by the first request that needs it, not after
/// the next probe tick. A peer that still refuses fails the request within one round trip
/// plus `redial_min`; one that stopped answering SYNs fails it within a connect timeout
/// (and the next request fails at once, as the dial was not refused).
async fn redial(peer: &Arc<Peer>, backoff: ReplicaError) -> Result<Conn, ReplicaError> {
    let mut done = peer.dials_done.subscribe();
    let wanted = peer.dials_started.load(Ordering::Acquire) + 1;
    probe(peer);
    peer.wake.notify_one();
    let bound = peer.config.redial_min + peer.config.connect_timeout * 2;
    let dialled = done.wait_for(|&n| n >= wanted || live(peer).is_some());
    let finished = tokio::time::timeout(bound, dialled).await;
    match (finished, live(peer)) {
        (_, Some(conn)) => Ok(conn),
        (Ok(Ok(_)), None) => Err(ReplicaError::Unavailable(format!(
            "{}: {}",
            peer.addr,
            peer.backoff.lock().last_error
        ))),
        _ => Err(backoff),
    }
}

fn in_backoff(peer: &Peer) -> Result<(), ReplicaError> {
    let backoff = peer.backoff.lock();
    match backoff.retry_at {
        Some(at) if Instant::now() < at => Err(ReplicaError::Unavailable(format!(
            "{}: {} (retrying in {} ms)",
            peer.addr,
            backoff.last_error,
            at.saturating_duration_since(Instant::now()).as_millis()
        ))),
        _ => Ok(()),
    }
}

/// Connects and runs the handshake.
async fn dial(peer: &Peer) -> Result<Link, DialError> {
    let attempt =
        tokio::time::timeout(peer.config.connect_timeout, TcpStream::connect(&peer.addr)).await;
    let stream = match attempt {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return Err(DialError {
                message: format!("connect failed: {e}"),
                refused: e.kind() == std::io::ErrorKind::ConnectionRefused,
            });
        }
        Err(_) => return Err(DialError::other("connect timed out")),
    };
    let _ = stream.set_nodelay(true);
    let mut stream = secure(peer, stream).await?;
    let shaken = tokio::time::timeout(
        peer.config.connect_timeout,
        handshake::client(&mut stream, &peer.config.auth, &peer.id),
    )
    .await;
    match shaken {
        Ok(Ok(())) => Ok(stream),
        Ok(Err(e)) => {
            if !matches!(e, handshake::HandshakeError::Io(_)) {
                tracing::warn!(peer = %peer.id, addr = %peer.addr, error = %e, "peer handshake failed");
            }
            Err(DialError::other(format!("handshake failed: {e}")))
        }
        Err(_) => Err(DialError::other("handshake timed out")),
    }
}

/// Wraps `tcp` in TLS when the node speaks it to peers.
async fn secure(peer: &Peer, tcp: TcpStream) -> Result<Link, DialError> {
    let Some(tls) = &peer.config.tls else { return Ok(Link::Plain(tcp)) };
    match tokio::time::timeout(peer.config.connect_timeout, tls.connect(&peer.addr, tcp)).await {
        Ok(Ok(link)) => Ok(link),
        Ok(Err(e)) => {
            tracing::warn!(peer = %peer.id, addr = %peer.addr, error = %e, "peer TLS handshake failed");
            Err(DialError::other(format!("TLS handshake failed: {e}")))
        }
        Err(_) => Err(DialError::other("TLS handshake timed out")),
    }
}

/// Makes `stream` the peer's connection and ends its backoff.
fn install(peer: &Peer, stream: Link) -> Conn {
    let conn = start(stream, &peer.config, peer.stop.child_token());
    *peer.conn.lock() = Some(conn.clone());
    let mut backoff = peer.backoff.lock();
    backoff.retry_at = None;
    backoff.delay = peer.config.backoff_min;
    backoff.refused = false;
    drop(backoff);
    // Requests waiting in `redial` for the probe's dial take this connection.
    peer.dials_done.send_modify(|_| {});
    tracing::debug!(peer = %peer.id, addr = %peer.addr, "rpc connected");
    conn
}

/// While requests fail fast during a backoff, one task per peer dials it every
/// `probe_interval` (or at once when a request asks, see `redial`, but never twice within
/// `redial_min`), so a peer that restarts is used as soon as it accepts connections rather
/// than when the backoff (up to `backoff_max`) ends. The task holds the peer weakly and
/// ends with it, or once a connection is up.
fn probe(peer: &Arc<Peer>) {
    if peer.probing.swap(true, Ordering::AcqRel) {
        return;
    }
    let (weak, stop, wake) = (Arc::downgrade(peer), peer.stop.clone(), Arc::clone(&peer.wake));
    let (every, spacing) = (peer.config.probe_interval, peer.config.redial_min);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
                () = wake.notified() => {}
            }
            let Some(peer) = weak.upgrade() else { return };
            if live(&peer).is_some() {
                break;
            }
            let connected = probe_once(&peer).await;
            drop(peer);
            if connected {
                break;
            }
            // Spaced even when woken: a dead peer is not dialled once per request.
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(spacing) => {}
            }
        }
        if let Some(peer) = weak.upgrade() {
            peer.probing.store(false, Ordering::Release);
        }
    });
}

/// One dial by the probe; true once the peer is connected. Dialled without the connect
/// lock: a peer that does not answer SYNs would otherwise hold every caller for a connect
/// timeout.
async fn probe_once(peer: &Arc<Peer>) -> bool {
    peer.dials_started.fetch_add(1, Ordering::AcqRel);
    let connected = match dial(peer).await {
        Ok(stream) => {
            let _connecting = peer.connecting.lock().await;
            if live(peer).is_none() {
                install(peer, stream);
            }
            true
        }
        Err(error) => {
            let mut backoff = peer.backoff.lock();
            backoff.refused = error.refused;
            backoff.last_error = error.message;
            false
        }
    };
    peer.dials_done.send_modify(|n| *n += 1);
    connected
}

fn failed(peer: &Peer, error: DialError) -> ReplicaError {
    let mut backoff = peer.backoff.lock();
    backoff.retry_at = Some(Instant::now() + backoff.delay);
    backoff.delay = (backoff.delay * 2).min(peer.config.backoff_max);
    backoff.refused = error.refused;
    backoff.last_error.clone_from(&error.message);
    ReplicaError::Unavailable(format!("{}: {}", peer.addr, error.message))
}

/// Spawns the connection's writer and reader. Both end when the socket fails, the peer
/// closes it, or `stop` is cancelled; pending requests then fail at once.
fn start(stream: Link, config: &RpcClientConfig, stop: CancellationToken) -> Conn {
    let (read, write) = stream.split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(config.queue);
    let pending: Pending = Arc::default();
    let alive = Arc::new(AtomicBool::new(true));
    let mut sink = FramedWrite::new(write, codec(config.max_frame_bytes));
    let mut frames = FramedRead::new(read, codec(config.max_frame_bytes));

    let (w_stop, w_alive) = (stop.clone(), Arc::clone(&alive));
    tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                () = w_stop.cancelled() => break,
                frame = rx.recv() => match frame { Some(f) => f, None => break },
            };
            if super::server::write_batch(&mut sink, frame, &mut rx).await.is_err() {
                break;
            }
        }
        w_alive.store(false, Ordering::Release);
        w_stop.cancel();
    });
    let (r_pending, r_alive) = (Arc::clone(&pending), Arc::clone(&alive));
    tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                () = stop.cancelled() => break,
                frame = frames.next() => frame,
            };
            let Some(Ok(bytes)) = frame else { break };
            match decode::<Response>(&bytes) {
                Ok(env) => {
                    if let Some(waiter) = r_pending.lock().remove(&env.id) {
                        let _ = waiter.send(env.body);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "closing rpc connection: undecodable response");
                    break;
                }
            }
        }
        r_alive.store(false, Ordering::Release);
        stop.cancel();
        // Waiters see their sender dropped: "connection closed".
        r_pending.lock().clear();
    });
    Conn { tx, pending, alive }
}

async fn call(peer: &Arc<Peer>, request: Request) -> Result<Response, ReplicaError> {
    let conn = connection(peer).await?;
    let id = peer.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    conn.pending.lock().insert(id, tx);
    let _guard = PendingGuard { pending: Arc::clone(&conn.pending), id };
    let frame = encode(&Envelope { id, body: request })
        .map_err(|e| ReplicaError::Rejected(format!("cannot encode request: {e}")))?;
    // The codec would fail the whole connection on an oversized frame, and with it every
    // other request in flight on it: this one alone fails instead.
    if frame.len() > peer.config.max_frame_bytes {
        return Err(ReplicaError::Rejected(format!(
            "request of {} bytes is over the {}-byte limit of a message between nodes",
            frame.len(),
            peer.config.max_frame_bytes
        )));
    }
    if conn.tx.send(frame).await.is_err() {
        return Err(ReplicaError::Unavailable(format!("{}: connection closed", peer.addr)));
    }
    rx.await.map_err(|_| ReplicaError::Lost(format!("{}: connection closed", peer.addr)))
}

impl Transport for TcpPeer {
    fn id(&self) -> &NodeId {
        &self.peer.id
    }

    fn call(&self, request: Request) -> BoxFuture<'static, Result<Response, ReplicaError>> {
        let peer = Arc::clone(&self.peer);
        async move { call(&peer, request).await }.boxed()
    }
}
