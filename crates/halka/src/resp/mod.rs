//! The Redis-protocol front end (RESP2, and RESP3 after `HELLO 3`).
//!
//! Each connection reads requests into a buffer, answers every complete request in order
//! (so pipelined requests are answered in one write), and closes on a protocol error after
//! saying why. Connections are capped by a semaphore; on shutdown each finishes the
//! command it is running and closes.

pub mod clients;
pub mod cmd;
pub mod command_stats;
pub mod frame;
mod inbound;
mod inline;
pub mod input_budget;
pub mod reader;
pub mod slowlog;

use crate::state::NodeState;
use bytes::{Bytes, BytesMut};
use cmd::{After, Session};
use frame::ParseLimits;
use inbound::{Inbound, Received};
use reader::RequestReader;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Pipelined requests answered per write.
const MAX_BATCH: usize = 256;

/// Single-key commands of a pipeline run at once at most: their replies are held
/// together until the last one is in.
const MAX_GROUP: usize = 32;

/// Replies queued for a client beyond this are written out before the pipeline goes on.
/// A client that does not read its replies then stalls its own pipeline (the write
/// waits), and nothing more is read from it: what it costs the node stays bounded.
const OUTPUT_BUDGET: usize = 256 * 1024;

/// Runs pipelined requests and appends their replies in order, writing them to `out`
/// whenever they pass [`OUTPUT_BUDGET`]. Consecutive single-key commands on distinct keys
/// run concurrently — their quorum round trips overlap — while anything else, or a second
/// command on a key already in the group, waits for the group before it, so a pipeline
/// behaves exactly as if its commands ran one by one.
async fn run_batch<W: AsyncWrite + Unpin>(
    state: &NodeState,
    session: &mut Session,
    batch: Vec<inbound::Request>,
    output: &mut BytesMut,
    out: &mut W,
) -> std::io::Result<After> {
    let mut group: Vec<Vec<Bytes>> = Vec::new();
    for request in batch {
        // Refused unread (an oversized argument): answered in its place among the others.
        let request = match request {
            Ok(request) => request,
            Err(refused) => {
                flush_group(state, session, &mut group, output).await;
                // Inside MULTI it fails the batch, as a command that cannot be queued does.
                let refused = match session.multi.as_mut() {
                    Some(queue) => queue.refuse(refused),
                    None => refused,
                };
                refused.encode(session.resp3, output);
                continue;
            }
        };
        if let (Some(client), Some(name)) = (&session.client, request.first()) {
            client.touch(name, session.resp3, session.multi.as_ref().map(|q| q.len()));
        }
        // Inside MULTI every command goes to the queue, in order.
        let single = cmd::single_key(&request).filter(|_| session.multi.is_none());
        let joins = single.is_some_and(|key| {
            group.len() < MAX_GROUP && !group.iter().any(|g| cmd::single_key(g) == Some(key))
        });
        if !joins {
            flush_group(state, session, &mut group, output).await;
            write_over_budget(output, out).await?;
        }
        if single.is_some() {
            group.push(request);
            continue;
        }
        let after = if cmd::is_exec(&request) {
            state.command_served();
            cmd::transaction::exec(state, session, request.len(), output, out).await?
        } else {
            let (reply, after) = cmd::execute(state, session, request).await;
            reply.encode(session.resp3, output);
            after
        };
        if after == After::Close {
            return Ok(After::Close);
        }
        write_over_budget(output, out).await?;
    }
    flush_group(state, session, &mut group, output).await;
    Ok(After::Continue)
}

/// Writes the queued replies out once they pass [`OUTPUT_BUDGET`].
pub(crate) async fn write_over_budget<W: AsyncWrite + Unpin>(
    output: &mut BytesMut,
    out: &mut W,
) -> std::io::Result<()> {
    if output.len() > OUTPUT_BUDGET {
        out.write_all(output).await?;
        output.clear();
    }
    Ok(())
}

async fn flush_group(
    state: &NodeState,
    session: &Session,
    group: &mut Vec<Vec<Bytes>>,
    output: &mut BytesMut,
) {
    match group.len() {
        0 => {}
        1 => {
            let request = group.pop().unwrap_or_default();
            cmd::execute_shared(state, session, request).await.encode(session.resp3, output);
        }
        _ => {
            let replies = futures::future::join_all(
                group.drain(..).map(|r| cmd::execute_shared(state, session, r)),
            )
            .await;
            for reply in replies {
                reply.encode(session.resp3, output);
            }
        }
    }
}

/// Accepts Redis-protocol clients until `shutdown` is cancelled, then waits for open
/// connections to finish their current command. Returns the listener, for the next
/// generation of the node's state (see `node::run`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<NodeState>,
    shutdown: CancellationToken,
    tls: Option<Arc<crate::tls::Tls>>,
) -> TcpListener {
    let limit = Arc::new(Semaphore::new(state.config.max_connections));
    let per_source = crate::per_source::PerSource::new(state.config.max_connections_per_source);
    let displace_after = Duration::from_secs(state.config.displace_idle_clients_after_secs);
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if exposed(&state, peer.ip()) {
            tracker.spawn(refuse(stream, DENIED));
            continue;
        }
        let Some(place) = per_source.enter(peer.ip()) else {
            tracing::debug!(%peer, "refusing a client: its address holds its share");
            state.client_rejected();
            let reply = "-ERR too many connections from your address \
                         (max_connections_per_source in halka's config)\r\n";
            tracker.spawn(refuse(stream, reply));
            continue;
        };
        let permit = match Arc::clone(&limit).try_acquire_owned() {
            Ok(permit) => Place::Taken(permit),
            Err(_) if state.client_list.displace_idle(displace_after) => {
                Place::Freeing(Arc::clone(&limit))
            }
            Err(_) => {
                // As Redis does: say why at once rather than leave the client hanging.
                tracing::warn!(%peer, max = state.config.max_connections, "refusing a client: max_connections reached");
                state.client_rejected();
                let reply = "-ERR max number of clients reached (max_connections in halka's \
                             config)\r\n";
                tracker.spawn(refuse(stream, reply));
                continue;
            }
        };
        let (state, shutdown, tls) = (Arc::clone(&state), shutdown.clone(), tls.clone());
        tracker.spawn(async move {
            let Some(permit) = permit.take().await else {
                state.client_rejected();
                refuse(stream, "-ERR max number of clients reached (max_connections)\r\n").await;
                return;
            };
            state.client_connected(1);
            serve_client(stream, &state, shutdown, tls.as_deref()).await;
            state.client_connected(-1);
            drop((permit, place));
        });
    }
    tracker.close();
    tracker.wait().await;
    listener
}

/// Redis's reply, in its words, to a client beyond loopback while protected mode finds
/// no password needed.
const DENIED: &str = "-DENIED halka is running in protected mode because the default user \
    needs no password, and this client connects from beyond loopback. Set a password for \
    the default user from a loopback client (ACL SETUSER default on >PASSWORD, or \
    requirepass in the config file), add users and turn the default user off, or set \
    protected_mode = false\r\n";

/// Whether protected mode turns away a client from `ip`.
pub(crate) fn exposed(state: &NodeState, ip: std::net::IpAddr) -> bool {
    state.config.protected_mode && !ip.is_loopback() && state.acl.default_needs_no_password()
}

/// A new client's place among `max_connections`.
enum Place {
    Taken(OwnedSemaphorePermit),
    /// An idle client was told to close to make room; its place is awaited.
    Freeing(Arc<Semaphore>),
}

impl Place {
    /// The place, once free. A displaced client closes as soon as it sees the request to
    /// (it was waiting for input), so this waits briefly; `None` if another newcomer took
    /// the freed place first and none came free in time.
    async fn take(self) -> Option<OwnedSemaphorePermit> {
        match self {
            Place::Taken(permit) => Some(permit),
            Place::Freeing(limit) => {
                tokio::time::timeout(Duration::from_secs(5), limit.acquire_owned()).await.ok()?.ok()
            }
        }
    }
}

/// Completes when the client closes its side while a walk runs for it. What it sends
/// meanwhile (a pipeline's next requests) is kept in `input`, up to 64 KiB; beyond, it is
/// left in the socket until the walk is over.
async fn client_gone<R: tokio::io::AsyncRead + Unpin>(read: &mut R, input: &mut BytesMut) {
    const KEEP: usize = 64 * 1024;
    while input.len() < KEEP {
        match read.read_buf(input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    std::future::pending::<()>().await;
}

/// Tells a client over a connection cap why it is closed (bounded by a deadline, so a
/// client that does not read cannot hold the task).
async fn refuse(mut stream: TcpStream, reply: &'static str) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(reply.as_bytes())).await;
}

/// Serves one client, over TLS when `tls` is given, until it leaves.
async fn serve_client(
    stream: TcpStream,
    state: &NodeState,
    shutdown: CancellationToken,
    tls: Option<&crate::tls::Tls>,
) {
    let ended = match tls {
        None => connection(stream, state, shutdown).await,
        Some(tls) => match secure(tls, stream).await {
            Some(stream) => connection(stream, state, shutdown).await,
            None => Ok(()),
        },
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}

/// Runs the TLS handshake with a client; `None` (the connection closed) when it fails or
/// takes too long. A client that speaks plain RESP to the TLS port is told so first.
async fn secure(
    tls: &crate::tls::Tls,
    mut stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let peer = stream.peer_addr().ok();
    let handshake = async {
        if crate::tls::speaks_plain_text(&stream).await {
            let _ = stream.write_all(PLAIN_ON_TLS.as_bytes()).await;
            return None;
        }
        tls.acceptor()
            .accept(stream)
            .await
            .map_err(|e| {
                metrics::counter!("halka_tls_handshake_failures_total", "listener" => "redis")
                    .increment(1);
                tracing::debug!(?peer, error = %e, "Redis TLS handshake failed");
            })
            .ok()
    };
    tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake).await.ok().flatten()
}

/// What a client that sends plain RESP to the TLS port reads before it is closed.
const PLAIN_ON_TLS: &str =
    "-ERR this port speaks TLS: connect with TLS (redis-cli --tls --cacert CA_FILE)\r\n";

/// A client's connection: TCP, or TLS over it.
trait ClientStream: tokio::io::AsyncRead + AsyncWrite + Unpin + Send {
    fn addresses(&self) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>);
}

impl ClientStream for TcpStream {
    fn addresses(&self) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
        (self.peer_addr().ok(), self.local_addr().ok())
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    fn addresses(&self) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
        self.get_ref().0.addresses()
    }
}

async fn connection<S: ClientStream>(
    mut stream: S,
    state: &NodeState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = ParseLimits {
        // No argument may be longer than the largest value or key: a longer one is read
        // and dropped as it arrives, and its request refused with the sizes (see
        // `RequestReader`); the connection goes on.
        max_bulk_bytes: state.config.limits.max_value_bytes.max(state.config.limits.max_key_bytes),
        max_array_len: 1024 * 1024,
        max_inline_bytes: 64 * 1024,
    };
    let reader = RequestReader::new(limits, state.config.limits.max_request_bytes);
    let mut session = Session::new(NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed), state);
    let (peer, local) = stream.addresses();
    let registration = peer.map(|addr| state.client_list.register(session.id, addr, local));
    session.client = registration.as_ref().map(|r| Arc::clone(&r.client));
    let killed = session.client.as_ref().map(|c| c.kill.clone()).unwrap_or_default();
    let mut inbound = Inbound::new(reader, state.input_budget.share());
    let mut output = BytesMut::with_capacity(16 * 1024);
    loop {
        // Answer every complete request already buffered, then write once.
        let (batch, closing) = inbound.requests(MAX_BATCH);
        let more_buffered = batch.len() == MAX_BATCH;
        let walks = batch.iter().all(|r| r.as_ref().is_ok_and(|r| cmd::is_walk(r)));
        let after = if !batch.is_empty() && walks {
            let (mut read, mut write) = tokio::io::split(&mut stream);
            tokio::select! {
                after = run_batch(state, &mut session, batch, &mut output, &mut write) => after?,
                () = client_gone(&mut read, &mut inbound.input) => return Ok(()),
            }
        } else {
            run_batch(state, &mut session, batch, &mut output, &mut stream).await?
        };
        let ends = after == After::Close || closing.is_some();
        if let Some(error) = closing.filter(|_| after == After::Continue) {
            error.encode(session.resp3, &mut output);
        }
        // Marked before the replies go out, so a client that has read them is already
        // known to be idle; a displacement takes effect once they are written.
        let idle = !ends && !more_buffered && inbound.is_idle();
        if let Some(client) = session.client.as_ref().filter(|_| idle) {
            client.set_waiting(true);
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
        if ends {
            return Ok(());
        }
        inbound.settle();
        if more_buffered {
            continue;
        }
        let received = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = killed.cancelled() => return Ok(()),
            received = inbound.receive(&mut stream, state) => received?,
        };
        if let Some(client) = &session.client {
            client.set_waiting(false);
        }
        match received {
            Received::More => {}
            Received::Closed => return Ok(()),
            Received::Refused(why) => {
                why.encode(session.resp3, &mut output);
                let _ = stream.write_all(&output).await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EngineChoice, NodeConfig};
    use crate::resp::frame::Frame;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A client socket that records the size of every write the node makes.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<usize>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.writes.push(buf.len());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A node alone, built as `node::run` builds it and caught up as it is before serving.
    async fn state() -> Arc<NodeState> {
        let mut config = NodeConfig::default();
        config.storage.engine = EngineChoice::Memory;
        config.cluster_secret =
            Some(crate::config::SecretString("a secret for this test only".into()));
        let config = config.finish("test").expect("a valid config");
        let state = crate::node::build(config, 0).expect("a node");
        state.membership.catch_up_at_start().await;
        state
    }

    #[tokio::test]
    async fn a_long_pipeline_writes_its_replies_out_as_they_pass_the_budget() {
        let state = state().await;
        let mut session = Session::new(1, &state);
        let value = Bytes::from(vec![b'x'; 100_000]);
        let set = vec![Bytes::from("SET"), Bytes::from("big"), value];
        let (reply, _) = cmd::execute(&state, &mut session, set).await;
        assert_eq!(reply, Frame::ok());
        // 200 GETs: 20 MB of replies.
        let batch = vec![Ok(vec![Bytes::from("GET"), Bytes::from("big")]); 200];
        let (mut output, mut client) = (BytesMut::new(), Recorder::default());
        let after = run_batch(&state, &mut session, batch, &mut output, &mut client).await;
        assert_eq!(after.unwrap(), After::Continue);
        let written: usize = client.writes.iter().sum::<usize>() + output.len();
        assert!(written > 200 * 100_000, "every reply is there: {written}");
        let largest = client.writes.iter().copied().max().unwrap_or(0).max(output.len());
        assert!(
            largest <= OUTPUT_BUDGET + MAX_GROUP * 100_100,
            "replies were held until {largest} bytes had piled up"
        );
    }
}
