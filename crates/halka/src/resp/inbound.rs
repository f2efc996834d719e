//! What a Redis connection has received and not yet run: the input buffer, the request
//! being parsed, the connection's share of the node's input budget, and when the request
//! now arriving began (its deadline runs from there).

use super::input_budget::Share;
use super::reader::RequestReader;
use crate::resp::frame::{Frame, ParseError};
use crate::state::NodeState;
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

pub(super) struct Inbound {
    pub input: BytesMut,
    reader: RequestReader,
    share: Share,
    started: Option<Instant>,
}

/// How waiting for more input ended.
pub(super) enum Received {
    More,
    /// The client closed, or was idle past `client_timeout_secs`.
    Closed,
    /// The connection must close, after telling the client why.
    Refused(Frame),
}

/// A request read off the connection, or the error it is answered with unread.
pub type Request = Result<Vec<Bytes>, Frame>;

impl Inbound {
    pub fn new(reader: RequestReader, share: Share) -> Self {
        Self { input: BytesMut::with_capacity(16 * 1024), reader, share, started: None }
    }

    /// The complete requests buffered, at most `max` (a request refused whole, for an
    /// oversized argument, as its error), and the protocol error that ends the connection
    /// if one came.
    pub fn requests(&mut self, max: usize) -> (Vec<Request>, Option<Frame>) {
        let mut batch = Vec::new();
        let mut closing = None;
        while batch.len() < max {
            match self.reader.next(&mut self.input) {
                Ok(Some(req)) if req.is_empty() => {}
                Ok(Some(req)) => batch.push(Ok(req)),
                Ok(None) => break,
                Err(e @ ParseError::TooLarge { .. }) => {
                    batch.push(Err(Frame::error(format!("ERR {e}"))));
                }
                Err(e) => {
                    closing = Some(Frame::error(format!("ERR {e}")));
                    break;
                }
            }
        }
        // A completed request ends the wait for one; the next has a deadline of its own.
        if !batch.is_empty() {
            self.started = None;
        }
        (batch, closing)
    }

    /// Returns the budget of what has run (shrinking a share always succeeds).
    pub fn settle(&mut self) {
        self.share.cover(self.held());
    }

    /// Waits for more input from `read`, within the connection's deadlines and the
    /// node's input budget.
    ///
    /// # Errors
    /// Reading failed.
    pub async fn receive<R: AsyncRead + Unpin>(
        &mut self,
        read: &mut R,
        state: &NodeState,
    ) -> std::io::Result<Received> {
        let under_way = self.reader.in_progress() || !self.input.is_empty();
        self.started = self.started.or_else(|| under_way.then(Instant::now));
        let read = tokio::select! {
            why = wait_too_long(state, self.started) => {
                return Ok(why.map_or(Received::Closed, |why| Received::Refused(Frame::error(why))));
            }
            read = read.read_buf(&mut self.input) => read?,
        };
        if read == 0 {
            return Ok(Received::Closed);
        }
        if !self.share.cover(self.held()) {
            return Ok(Received::Refused(Frame::error(format!(
                "ERR the node holds too many request bytes for its clients \
                 (limits.max_buffered_bytes = {}); closing this connection",
                state.input_budget.max_bytes()
            ))));
        }
        Ok(Received::More)
    }

    /// Whether nothing of a next request has arrived: the client is idle.
    pub fn is_idle(&self) -> bool {
        self.held() == 0
    }

    fn held(&self) -> usize {
        self.input.len() + self.reader.held()
    }
}

/// Completes when a client waiting for input has waited too long: `None` when it was
/// idle past `client_timeout_secs`, the reason when a request under way (begun at
/// `started`) missed `request_timeout_secs`.
async fn wait_too_long(state: &NodeState, started: Option<Instant>) -> Option<String> {
    let idle = async {
        match state.config.client_timeout_secs {
            0 => std::future::pending().await,
            secs => tokio::time::sleep(Duration::from_secs(secs)).await,
        }
    };
    let whole = async {
        match (started, state.config.request_timeout_secs) {
            (Some(at), secs) if secs > 0 => {
                tokio::time::sleep_until(at + Duration::from_secs(secs)).await;
            }
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        () = idle => None,
        () = whole => Some(format!(
            "ERR the request did not arrive in full within {} s (request_timeout_secs); \
             closing this connection",
            state.config.request_timeout_secs
        )),
    }
}
