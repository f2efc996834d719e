//! `MULTI`/`EXEC`/`DISCARD`: ordered batches, as clients' transaction pipelines send them.
//!
//! Commands queue after `MULTI` and `EXEC` runs them in order, one reply each. A command
//! that is unknown or has the wrong number of arguments is refused while queueing and
//! makes `EXEC` discard the batch (`EXECABORT`), as in Redis. Unlike Redis, each queued
//! command is its own quorum operation: other clients' commands can interleave with them
//! and a failure midway leaves the earlier ones applied. Isolation would need agreement
//! between replicas that a Dynamo-style store does not have, which is also why `WATCH`
//! is refused.

use super::table;
use super::{After, Frame, NodeState, Session};
use bytes::Bytes;

/// Commands queued by an open `MULTI`, and whether one was refused.
#[derive(Debug, Default)]
pub struct Queue {
    commands: Vec<Vec<Bytes>>,
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
    /// Queues `request` (named `name`, upper case) if it is a valid command.
    pub fn push(&mut self, name: &str, request: Vec<Bytes>) -> Frame {
        let refusal = match table::lookup(name) {
            None => Some(super::unknown_command(name, &request[1..])),
            Some(spec) if !spec.accepts(request.len()) => Some(super::wrong_arity(name)),
            Some(_) if self.commands.len() >= MAX_QUEUED => {
                Some(Frame::error(format!("ERR a MULTI batch holds at most {MAX_QUEUED} commands")))
            }
            Some(_) => None,
        };
        if let Some(error) = refusal {
            self.refused = true;
            return error;
        }
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

/// Runs the queued commands in order and answers with all their replies.
pub async fn exec(state: &NodeState, session: &mut Session, words: usize) -> Frame {
    if words != 1 {
        return super::wrong_arity("EXEC");
    }
    let Some(queue) = session.multi.take() else {
        return Frame::error("ERR EXEC without MULTI");
    };
    if queue.refused {
        return Frame::error("EXECABORT Transaction discarded because of previous errors.");
    }
    let mut replies = Vec::with_capacity(queue.commands.len());
    for request in queue.commands {
        let (reply, after) = super::dispatch(state, session, request).await;
        replies.push(reply);
        if after == After::Close {
            break;
        }
    }
    Frame::Array(replies)
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
