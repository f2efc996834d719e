//! The RPC server: answers peers' requests from this node's replica.

use super::admission::{Admission, Limits, Place};
use super::handshake::{self, PeerAuth, Standing};
use super::link::Link;
use super::message::{Envelope, Request, Response, WireError, decode, encode};
use super::rejections::{self, Rejections};
use crate::{RepairBudget, Replica};
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Server limits.
#[derive(Debug, Clone)]
pub struct RpcServerConfig {
    /// Frames larger than this close the connection.
    pub max_frame_bytes: usize,
    /// Requests one connection may have in flight; the reader waits beyond it
    /// (backpressure on the peer through TCP).
    pub max_in_flight: usize,
    /// Authenticated connections served at once.
    pub max_connections: usize,
    /// Connections still in their handshake at once. A new one is always let in: when
    /// these places are full, one from the source address holding the most gives way (see
    /// `Admission`), so strangers cannot keep members out.
    pub max_handshakes: usize,
    /// Of those, from one source address (an IPv6 /64 counts as one).
    pub max_handshakes_per_source: usize,
    /// How long a new connection has to complete the handshake.
    pub handshake_timeout: Duration,
    /// This node's identity, the members it accepts, and the secret they prove.
    pub auth: PeerAuth,
    /// A fingerprint of what this node computes placement from, told to peers that ask
    /// (`Request::Hello`): nodes of one cluster must agree on it.
    pub placement: u64,
    /// The node's repair budget (see `RepairBudget`): the repair work peers ask of this
    /// node — listing keys, reading and merging batches of records — waits its turn in
    /// it. `None` serves repairs at once.
    pub repair_budget: Option<Arc<RepairBudget>>,
    /// The node's transfer budget, in bytes: the pages of ranges new owners stream from
    /// this node (`ReadRange`) wait their turn in it. `None`: they spend the repair
    /// budget, by keys.
    pub transfer_budget: Option<Arc<RepairBudget>>,
    /// Mutual TLS with peers; `None`: plain TCP.
    pub tls: Option<Arc<super::tls::PeerTls>>,
}

impl RpcServerConfig {
    /// Defaults for a node identified by `auth`.
    #[must_use]
    pub fn new(auth: PeerAuth) -> Self {
        Self {
            max_frame_bytes: super::DEFAULT_MAX_FRAME_BYTES,
            max_in_flight: 1024,
            max_connections: 1024,
            max_handshakes: 64,
            max_handshakes_per_source: 16,
            handshake_timeout: Duration::from_secs(5),
            auth,
            placement: 0,
            repair_budget: None,
            transfer_budget: None,
            tls: None,
        }
    }
}

pub(crate) fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(max_frame_bytes).new_codec()
}

/// Serves RPC on `listener` until `shutdown` completes, then stops accepting, lets requests
/// in flight finish and returns the listener (a node reopening its storage serves on it
/// again).
pub async fn serve(
    listener: TcpListener,
    replica: Arc<dyn Replica>,
    config: RpcServerConfig,
    shutdown: impl Future<Output = ()>,
) -> TcpListener {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let door = Arc::new(Door {
        admission: Admission::new(Limits {
            waiting: config.max_handshakes,
            per_source: config.max_handshakes_per_source,
        }),
        connections: Arc::new(Semaphore::new(config.max_connections)),
        rejections: Rejections::new(rejections::INTERVAL),
    });
    let mut summary = tokio::time::interval(rejections::INTERVAL);
    summary.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            _ = summary.tick() => {
                door.rejections.summarise();
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "rpc accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Every connection gets a place to shake hands in, if need be another's: see
        // `Admission` for who gives way.
        let place = door.admission.enter(peer.ip());
        let (replica, config, cancel, door) =
            (Arc::clone(&replica), config.clone(), cancel.child_token(), Arc::clone(&door));
        tracker.spawn(async move {
            let shaken = tokio::select! {
                () = cancel.cancelled() => return,
                shaken = door.shake_hands(stream, peer, place, &config) => shaken,
            };
            let Some((stream, node, standing)) = shaken else { return };
            let Ok(permit) = Arc::clone(&door.connections).try_acquire_owned() else {
                door.rejections.reject(
                    peer,
                    "busy",
                    format_args!(
                        "{node} is over the limit of {} peer connections",
                        config.max_connections
                    ),
                );
                return;
            };
            let guest = (standing == Standing::Guest).then(|| node.clone());
            connection(stream, replica, config, guest, cancel).await;
            tracing::debug!(%peer, %node, "rpc connection closed");
            drop(permit);
        });
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    listener
}

/// What every connection passes on its way in.
struct Door {
    admission: Arc<Admission>,
    /// Authenticated connections served at once.
    connections: Arc<Semaphore>,
    rejections: Rejections,
}

impl Door {
    /// Runs TLS (when configured) and the handshake in `place`; the connection and the
    /// member it authenticated, or `None` once the connection is turned away (counted, and
    /// logged sparingly, before the stream closes, so whoever sees the close sees the
    /// count).
    async fn shake_hands(
        &self,
        tcp: TcpStream,
        peer: std::net::SocketAddr,
        place: Place,
        config: &RpcServerConfig,
    ) -> Option<(Link, halka_store::NodeId, Standing)> {
        let work = async {
            let mut link = match &config.tls {
                Some(tls) => tls.accept(tcp).await.map_err(|e| (Refused::Tls(e), None))?,
                None => Link::Plain(tcp),
            };
            match handshake::server(&mut link, &config.auth, || place.greeted()).await {
                Ok((node, standing)) => Ok((link, node, standing)),
                // The connection stays open until the refusal is counted: a peer that
                // sees it closed and then reads the metric finds it there.
                Err(e) => Err((Refused::Handshake(e), Some(link))),
            }
        };
        let shaken = tokio::select! {
            () = place.displaced() => {
                self.rejections.reject(peer, "displaced", "a newer connection took its place in the handshake queue");
                return None;
            }
            shaken = tokio::time::timeout(config.handshake_timeout, work) => shaken,
        };
        match shaken {
            Ok(Ok(shaken)) => Some(shaken),
            Ok(Err((Refused::Tls(e), _))) => {
                self.rejections.reject(peer, "tls", format_args!("TLS handshake failed: {e}"));
                None
            }
            Ok(Err((Refused::Handshake(e), link))) => {
                self.rejections.reject(peer, e.reason(), e);
                drop(link);
                None
            }
            Err(_) => {
                self.rejections.reject(peer, "timeout", "no handshake in time");
                None
            }
        }
    }
}

/// Why a connection was turned away in its handshake.
enum Refused {
    Tls(std::io::Error),
    Handshake(handshake::HandshakeError),
}

async fn connection(
    stream: Link,
    replica: Arc<dyn Replica>,
    config: RpcServerConfig,
    guest: Option<halka_store::NodeId>,
    cancel: CancellationToken,
) {
    let peer = stream.peer_addr();
    let (read, write) = stream.split();
    let mut frames = FramedRead::new(read, codec(config.max_frame_bytes));
    let mut sink = FramedWrite::new(write, codec(config.max_frame_bytes));
    let (tx, mut rx) = mpsc::channel::<Bytes>(config.max_in_flight);
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight));
    let handlers = TaskTracker::new();

    let writer = async move {
        while let Some(frame) = rx.recv().await {
            if let Err(e) = write_batch(&mut sink, frame, &mut rx).await {
                tracing::debug!(error = %e, "rpc write failed");
                break;
            }
        }
    };
    // Requests applied but not yet answered hold permits; keeping them to half the limit
    // leaves room for the next frame's permit, which only spawned handlers then hold.
    let batch_limit = (config.max_in_flight / 2).clamp(1, 64);
    let placement = config.placement;
    let auth = config.auth.clone();
    let max_frame = config.max_frame_bytes;
    let budget = config
        .repair_budget
        .clone()
        .map(|repair| Budgets { repair, transfer: config.transfer_budget.clone() });
    let reader = async move {
        let mut started = Vec::with_capacity(batch_limit);
        let mut open = true;
        while open {
            let mut frame = tokio::select! {
                () = cancel.cancelled() => break,
                frame = frames.next() => Some(frame),
            };
            // Start every request already received before answering any: replica writes
            // that arrived together then share one journal flush (see `LocalReplica`).
            while let Some(next) = frame.take() {
                let Some(envelope) = decode_frame(next, peer) else {
                    open = false;
                    break;
                };
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                    open = false;
                    break;
                };
                // A guest is asked again at each request: it may have been joined since
                // it connected (its connection then serves it as the member it is).
                let refused = guest
                    .as_ref()
                    .is_some_and(|node| !guests_may_ask(&envelope.body) && !auth.is_member(node));
                let answer = match &budget {
                    _ if refused => futures::future::ready(not_a_member()).boxed(),
                    Some(budget) => paced(budget, &replica, placement, envelope.body),
                    None => handle(replica.as_ref(), placement, envelope.body),
                };
                started.push((envelope.id, answer, permit));
                if started.len() < batch_limit {
                    frame = frames.next().now_or_never();
                }
            }
            for (id, mut answer, permit) in started.drain(..) {
                // Replicas in this process usually answer at once: reply inline, no task.
                if let Some(body) = (&mut answer).now_or_never() {
                    if send(&tx, id, body, max_frame).await.is_err() {
                        open = false;
                    }
                    drop(permit);
                    continue;
                }
                let tx = tx.clone();
                handlers.spawn(async move {
                    let _ = send(&tx, id, answer.await, max_frame).await;
                    drop(permit);
                });
            }
        }
        // Dropping our sender lets the writer finish once in-flight handlers have replied.
        drop(tx);
        handlers.close();
        handlers.wait().await;
    };
    tokio::join!(reader, writer);
}

/// Writes `first` and every frame already queued behind it with one flush: under load many
/// answers share a system call instead of paying one each.
pub(crate) async fn write_batch<W>(
    sink: &mut FramedWrite<W, LengthDelimitedCodec>,
    first: Bytes,
    rx: &mut mpsc::Receiver<Bytes>,
) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    const MAX_BATCH: usize = 256;
    sink.feed(first).await?;
    // Let the tasks that are ready now run first: they are mostly requests about to queue
    // frames for this same connection, and without the pause the writer (woken on another
    // worker by the first frame) sends nearly every frame in a system call of its own.
    tokio::task::yield_now().await;
    for _ in 1..MAX_BATCH {
        match rx.try_recv() {
            Ok(frame) => sink.feed(frame).await?,
            Err(_) => break,
        }
    }
    SinkExt::<Bytes>::flush(sink).await
}

/// The request in a frame from the stream, or `None` when the connection is done: closed
/// by the peer, failed, or sent a frame that is too large or does not decode.
fn decode_frame(
    frame: Option<std::io::Result<bytes::BytesMut>>,
    peer: Option<std::net::SocketAddr>,
) -> Option<Envelope<Request>> {
    let bytes = match frame? {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(?peer, error = %e, "closing rpc connection: bad frame");
            return None;
        }
    };
    decode::<Request>(&bytes)
        .map_err(|e| {
            tracing::warn!(?peer, error = %e, "closing rpc connection: undecodable frame");
        })
        .ok()
}

/// Queues the answer to request `id`. An answer over `max_frame_bytes` (a record grown
/// past the limit by merges from several nodes) becomes an error for that request: the
/// codec would otherwise fail the connection and every request in flight on it.
async fn send(
    tx: &mpsc::Sender<Bytes>,
    id: u64,
    body: Response,
    max_frame_bytes: usize,
) -> Result<(), ()> {
    let mut frame = encode(&Envelope { id, body }).map_err(|e| {
        tracing::error!(error = %e, "cannot encode rpc response");
    })?;
    if frame.len() > max_frame_bytes {
        tracing::warn!(id, bytes = frame.len(), max_frame_bytes, "rpc answer too large to send");
        let error = WireError::Rejected(format!(
            "answer of {} bytes is over the {max_frame_bytes}-byte limit of a message between \
             nodes",
            frame.len()
        ));
        frame = encode(&Envelope { id, body: Response::Error(error) }).map_err(|_| ())?;
    }
    tx.send(frame).await.map_err(|_| ())
}

/// What the repair work peers ask of a node spends.
#[derive(Clone)]
struct Budgets {
    repair: Arc<RepairBudget>,
    transfer: Option<Arc<RepairBudget>>,
}

/// [`handle`], with the repair work a peer asks for spent from `budgets`: batches of
/// records before they are read or merged (repair budget, by keys), key listings and
/// streamed pages once their size is known (transfer budget, by bytes; the wait then
/// falls on the next one). Everything else is answered at once.
fn paced(
    budgets: &Budgets,
    replica: &Arc<dyn Replica>,
    placement: u64,
    request: Request,
) -> futures::future::BoxFuture<'static, Response> {
    let before = match &request {
        Request::GetMany { keys } => keys.len(),
        Request::MergeMany { entries } => entries.len(),
        Request::KeyDigests { .. } | Request::ReadRange { .. } => 0,
        _ => return handle(replica.as_ref(), placement, request),
    };
    let (budgets, replica) = (budgets.clone(), Arc::clone(replica));
    async move {
        budgets.repair.take(before as u64).await;
        let response = handle(replica.as_ref(), placement, request).await;
        // Bulk reads of a range (streamed pages, key listings) spend the transfer budget
        // by their size: a listing of a partition's keys costs what its bytes cost, not
        // what repairing every key would.
        match (&response, &budgets.transfer) {
            (Response::KeyDigests(listed), Some(transfer)) => {
                let bytes: usize = listed.iter().map(|(k, _)| k.len() + 8).sum();
                transfer.take(bytes as u64).await;
            }
            (Response::KeyDigests(listed), None) => budgets.repair.take(listed.len() as u64).await,
            (Response::Listed(page), Some(transfer)) => transfer.take(page.bytes() as u64).await,
            (Response::Listed(page), None) => budgets.repair.take(page.keys.len() as u64).await,
            _ => {}
        }
        response
    }
    .boxed()
}

/// What a guest (a node that knows the secret but is not a member) may ask: to swap
/// gossip tables, who this node is, the layouts it installed (a node replaced while it
/// was away learns it is no longer a member), and whether it answers.
fn guests_may_ask(request: &Request) -> bool {
    use crate::membership::MembershipRequest as M;
    match request {
        Request::Ping => true,
        Request::Membership(m) => matches!(**m, M::Gossip(_) | M::Describe | M::Current),
        _ => false,
    }
}

fn not_a_member() -> Response {
    Response::Error(WireError::Rejected(
        "this node is not a member of the cluster's layout: it may only gossip until it is \
         joined (`halka cluster join`)"
            .into(),
    ))
}

/// Answers one request from `replica`: what a node does with each request a peer sends.
pub fn handle(
    replica: &dyn Replica,
    placement: u64,
    request: Request,
) -> futures::future::BoxFuture<'static, Response> {
    fn answer<T>(r: Result<T, crate::ReplicaError>, ok: impl FnOnce(T) -> Response) -> Response {
        match r {
            Ok(v) => ok(v),
            Err(e) => Response::Error(WireError::from(e)),
        }
    }
    match request {
        Request::CoordinateWrite { key, write } => {
            let call = replica.coordinate_write_deferred(&key, &write);
            async move {
                match call.await {
                    Ok((coordinated, durable)) => match durable.await {
                        Ok(d) => Response::Coordinated(coordinated, d),
                        Err(e) => {
                            Response::CoordinatedNotDurable(Box::new((coordinated, e.into())))
                        }
                    },
                    Err(e) => Response::Error(e.into()),
                }
            }
            .boxed()
        }
        Request::Merge { key, record } => {
            replica.merge(&key, &record).map(|r| answer(r, Response::Stored)).boxed()
        }
        Request::Get { key } => replica.get(&key).map(|r| answer(r, Response::MaybeRecord)).boxed(),
        Request::Ping => futures::future::ready(Response::Pong).boxed(),
        Request::Hello => futures::future::ready(Response::Hello { placement }).boxed(),
        Request::Digests { range, bits } => {
            replica.digests(range, bits).map(|r| answer(r, Response::Digests)).boxed()
        }
        Request::ReadRange { range } => {
            replica.read_range(range).map(|r| answer(r, Response::Listed)).boxed()
        }
        Request::TransferStatus { version } => {
            replica.transfer_status(version).map(|r| answer(r, Response::Phase)).boxed()
        }
        Request::TransferProgress => {
            replica.transfer_progress().map(|r| answer(r, Response::Progress)).boxed()
        }
        Request::Membership(request) => {
            let call = replica.membership(*request);
            call.map(|r| answer(r, |m| Response::Membership(Box::new(m)))).boxed()
        }
        Request::ListKeys { range } => {
            replica.list_keys(range).map(|r| answer(r, Response::Listed)).boxed()
        }
        Request::KeyDigests { range } => {
            replica.key_digests(range).map(|r| answer(r, Response::KeyDigests)).boxed()
        }
        Request::GetMany { keys } => {
            replica.get_many(keys).map(|r| answer(r, Response::Records)).boxed()
        }
        Request::MergeMany { entries } => {
            replica.merge_many(entries).map(|r| answer(r, |()| Response::Ack)).boxed()
        }
        Request::Hinted { keys } => {
            replica.hinted(keys).map(|r| answer(r, Response::Flags)).boxed()
        }
        Request::KeepHint { owner, key, record } => {
            replica.keep_hint(&owner, &key, &record).map(|r| answer(r, Response::Stored)).boxed()
        }
    }
}

#[cfg(test)]
mod tests;
