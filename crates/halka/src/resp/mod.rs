//! The Redis-protocol front end (RESP2, and RESP3 after `HELLO 3`).
//!
//! Each connection reads requests into a buffer, answers every complete request in order
//! (so pipelined requests are answered in one write), and closes on a protocol error after
//! saying why. Connections are capped by a semaphore; on shutdown each finishes the
//! command it is running and closes.

pub mod cmd;
pub mod frame;

use crate::node::NodeState;
use bytes::{Buf, BytesMut};
use cmd::{After, Session};
use frame::{Frame, ParseLimits, parse_request};
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Accepts Redis-protocol clients until `shutdown` is cancelled, then waits for open
/// connections to finish their current command.
pub async fn serve(listener: TcpListener, state: Arc<NodeState>, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(state.config.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = Arc::clone(&limit).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, _) = tokio::select! {
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
        let (state, shutdown) = (Arc::clone(&state), shutdown.clone());
        tracker.spawn(async move {
            state.client_connected(1);
            if let Err(e) = connection(stream, &state, shutdown).await {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
            state.client_connected(-1);
            drop(permit);
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection(
    mut stream: TcpStream,
    state: &NodeState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = ParseLimits {
        // Values somewhat over the limit still parse, so they get a clear "value is N bytes;
        // the maximum is M" and the connection stays open; far bigger bulk strings are a
        // protocol error that closes it, as in Redis.
        max_bulk_bytes: state.config.limits.max_value_bytes.saturating_mul(2).max(1 << 20),
        max_array_len: 1024 * 1024,
        max_inline_bytes: 64 * 1024,
    };
    let mut session = Session {
        id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
        resp3: false,
        name: None,
        r: state.config.r,
        w: state.config.w,
    };
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    loop {
        // Answer every complete request already buffered, then write once.
        loop {
            let mut cursor = Cursor::new(&input[..]);
            let request = match parse_request(&mut cursor, &limits) {
                Ok(Some(req)) => req,
                Ok(None) => break,
                Err(e) => {
                    Frame::error(format!("ERR {e}")).encode(session.resp3, &mut output);
                    stream.write_all(&output).await?;
                    return Ok(());
                }
            };
            let consumed = cursor.position() as usize;
            input.advance(consumed);
            if request.is_empty() {
                continue;
            }
            let (reply, after) = cmd::execute(state, &mut session, request).await;
            reply.encode(session.resp3, &mut output);
            if after == After::Close {
                stream.write_all(&output).await?;
                return Ok(());
            }
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
        let read = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            read = stream.read_buf(&mut input) => read?,
        };
        if read == 0 {
            return Ok(());
        }
    }
}
