//! `MULTI`/`EXEC`/`DISCARD`: ordered batches, as clients' transaction pipelines send them.
//!
//! Commands queue after `MULTI` and `EXEC` runs them in order, one reply each. A command
//! that is unknown or has the wrong number of arguments is refused while queueing and
//! makes `EXEC` discard the batch (`EXECABORT`), as in Redis. Unlike Redis, each queued
//! command is its own quorum operation: other clients' commands can interleave with them
//! and a failure midway leaves the earlier ones applied. Isolation would need agreement
//! between replicas that a Dynamo-style store does not have, which is also why `WATCH`
//! is refused.
//!
//! Both ends are bounded: the queue holds at most [`MAX_QUEUED`] commands and
//! `limits.max_request_bytes` of arguments (a batch is one request in effect), and EXEC
//! writes each reply out as its command finishes, under the connection's output budget,
//! rather than holding every reply until the last (900 GETs of a 1 MiB value would
//! otherwise hold 900 MiB).

use super::table;
use super::{After, Frame, NodeState, Session};
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;

/// Commands queued by an open `MULTI`, their bytes, and whether one was refused.
#[derive(Debug, Default)]
pub struct Queue {
    commands: Vec<Vec<Bytes>>,
    bytes: usize,
    refused: bool,
}

/// Commands one `MULTI` may queue; beyond, the batch is refused (it would otherwise grow
/// without bound on a client that never sends `EXEC`).
pub const MAX_QUEUED: usize = 10_000;

impl Queue {
    /// Commands queued so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

impl Queue {
    /// Refuses a command sent while the batch was open (with `error`): the batch is then
    /// discarded at EXEC, so what it queued can go now.
    pub fn refuse(&mut self, error: Frame) -> Frame {
        self.refused = true;
        self.commands = Vec::new();
        self.bytes = 0;
        error
    }

    /// Queues `request` (named `name`, upper case) if it is a valid command and the
    /// queue has room for it under `max_bytes`.
    pub fn push(&mut self, name: &str, request: Vec<Bytes>, max_bytes: usize) -> Frame {
        let size: usize = request.iter().map(Bytes::len).sum();
        let refusal = match table::lookup(name) {
            None => Some(super::unknown_command(&request[0], &request[1..])),
            Some(spec) if !spec.accepts(request.len()) => Some(super::wrong_arity(name)),
            Some(_) if self.commands.len() >= MAX_QUEUED => {
                Some(Frame::error(format!("ERR a MULTI batch holds at most {MAX_QUEUED} commands")))
            }
            Some(_) if self.bytes.saturating_add(size) > max_bytes => Some(Frame::error(format!(
                "ERR a MULTI batch holds at most {max_bytes} bytes of arguments \
                 (limits.max_request_bytes); this command would make it {}",
                self.bytes.saturating_add(size)
            ))),
            Some(_) => None,
        };
        if let Some(error) = refusal {
            return self.refuse(error);
        }
        self.bytes += size;
        self.commands.push(request);
        Frame::Simple("QUEUED".into())
    }
}

pub fn multi(session: &mut Session, words: usize) -> Frame {
    if words != 1 {
        return super::wrong_arity("MULTI");
    }
    if session.multi.is_some() {
        return Frame::error("ERR MULTI calls can not be nested");
    }
    session.multi = Some(Queue::default());
    Frame::ok()
}

pub fn discard(session: &mut Session, words: usize) -> Frame {
    if words != 1 {
        return super::wrong_arity("DISCARD");
    }
    match session.multi.take() {
        Some(_) => Frame::ok(),
        None => Frame::error("ERR DISCARD without MULTI"),
    }
}

/// `EXEC`: runs the queued commands in order and appends their replies to `output` as
/// one array, writing `output` to `out` whenever it passes the output budget.
///
/// # Errors
/// Writing to the client failed.
pub async fn exec<W: AsyncWrite + Unpin>(
    state: &NodeState,
    session: &mut Session,
    words: usize,
    output: &mut BytesMut,
    out: &mut W,
) -> std::io::Result<After> {
    let refusal = match session.multi.take() {
        queue if words != 1 => {
            session.multi = queue;
            super::wrong_arity("EXEC")
        }
        None => Frame::error("ERR EXEC without MULTI"),
        Some(queue) if queue.refused => {
            Frame::error("EXECABORT Transaction discarded because of previous errors.")
        }
        Some(queue) => return run(state, session, queue.commands, output, out).await,
    };
    refusal.encode(session.resp3, output);
    Ok(After::Continue)
}

async fn run<W: AsyncWrite + Unpin>(
    state: &NodeState,
    session: &mut Session,
    commands: Vec<Vec<Bytes>>,
    output: &mut BytesMut,
    out: &mut W,
) -> std::io::Result<After> {
    Frame::encode_array_header(commands.len(), output);
    let mut commands = commands.into_iter();
    while let Some(request) = commands.next() {
        let (reply, after) = super::dispatch(state, session, request).await;
        reply.encode(session.resp3, output);
        crate::resp::write_over_budget(output, out).await?;
        if after == After::Close {
            // The array was announced with every command: the rest are answered, not run.
            for _ in commands {
                Frame::error("ERR not run: the connection is closing")
                    .encode(session.resp3, output);
            }
            return Ok(After::Close);
        }
    }
    Ok(After::Continue)
}

pub fn watch(session: &Session) -> Frame {
    if session.multi.is_some() {
        return Frame::error("ERR WATCH inside MULTI is not allowed");
    }
    Frame::error(
        "ERR WATCH is not supported: halka replicates without consensus, so it cannot \
         promise that a watched key is unchanged at EXEC. MULTI/EXEC runs the queued \
         commands in order, each as its own operation",
    )
}
