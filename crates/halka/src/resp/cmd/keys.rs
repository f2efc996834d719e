//! Walking the cluster's keys: `SCAN`, `KEYS`, `RANDOMKEY`, `FLUSHDB`/`FLUSHALL`.
//!
//! A cursor is a position in the placement-hash space (see `halka_cluster::listing`):
//! any node continues a walk any other started, and a walk survives a node failure. A
//! step fails (`NOQUORUM`) when more members are silent than W leaves room for, since a
//! key written at W might then be held only by them; retry with the same cursor.

use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::StreamExt;
use halka_cluster::Glob;

/// Keys per step when walking the whole space (`KEYS`, `FLUSHDB`).
const WALK_STEP: usize = 1000;

/// Members that may be silent during a step: a key acknowledged by W of its N replicas
/// is still held by one that answers.
fn max_missing(state: &NodeState, s: &Session) -> usize {
    state.config.replication.saturating_sub(s.w)
}

/// About how many keys the cluster holds: this node's count spread over the members.
fn estimate(state: &NodeState) -> u64 {
    let members = state.coordinator.view().width() as u64;
    let n = state.config.replication.max(1) as u64;
    state.local_keys().saturating_mul(members) / n
}

/// A MATCH or KEYS pattern, compiled once for the whole command.
fn compile(pattern: &[u8]) -> Result<Glob, Frame> {
    Glob::new(pattern).map_err(|e| Frame::error(format!("ERR {e}")))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: one step of a walk.
pub async fn scan(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let cursor: u64 =
        args.next_string()?.parse().map_err(|_| Frame::error("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut only_type) = (None, 10_usize, None);
    while args.remaining() > 0 {
        match args.next_string()?.to_ascii_uppercase().as_str() {
            "MATCH" => pattern = Some(compile(&args.next_bytes()?)?),
            "COUNT" => {
                count = args.next_usize()?;
                if count == 0 {
                    return Err(Frame::error("ERR syntax error"));
                }
            }
            "TYPE" => only_type = Some(args.next_string()?.to_ascii_lowercase()),
            _ => return Err(Frame::error("ERR syntax error")),
        }
    }
    let page = state
        .coordinator
        .scan(cursor, count, estimate(state), max_missing(state, s))
        .await
        .map_err(|e| cluster_error(&e))?;
    let now = state.coordinator.now_us();
    let type_of = |r: &halka_store::Record| r.head_at(now).map_or("string", |h| h.kind.name());
    let keys = page
        .keys
        .into_iter()
        .filter(|(_, r)| only_type.as_deref().is_none_or(|t| t == type_of(r)))
        .map(|(k, _)| k)
        .filter(|k| pattern.as_ref().is_none_or(|p| p.matches(k)))
        .map(Frame::Bulk)
        .collect();
    let next = page.next.unwrap_or(0);
    Ok(Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(keys)]))
}

/// A walk over the whole hash space, a step at a time.
struct Walk {
    cursor: Option<u64>,
    max_missing: usize,
}

impl Walk {
    fn new(max_missing: usize) -> Self {
        Self { cursor: Some(0), max_missing }
    }

    /// The next step's live keys and records; `None` once the walk is over.
    async fn next(
        &mut self,
        state: &NodeState,
    ) -> Result<Option<Vec<(Bytes, std::sync::Arc<halka_store::Record>)>>, Frame> {
        let Some(at) = self.cursor else { return Ok(None) };
        let page = state
            .coordinator
            .scan(at, WALK_STEP, estimate(state), self.max_missing)
            .await
            .map_err(|e| cluster_error(&e))?;
        self.cursor = page.next;
        Ok(Some(page.keys))
    }
}

/// `KEYS pattern`: every live key in the cluster that matches, within the reply budget.
pub async fn keys(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let pattern = compile(&args.next_bytes()?)?;
    args.finish()?;
    let budget = state.config.limits.max_reply_bytes;
    let mut found = Vec::new();
    let mut used = 0_usize;
    let mut walk = Walk::new(max_missing(state, s));
    while let Some(keys) = walk.next(state).await? {
        for (key, _) in keys {
            if pattern.matches(&key) {
                used = used.saturating_add(key.len() + 16);
                if used > budget {
                    return Err(Frame::error(format!(
                        "ERR the reply would exceed {budget} bytes (limits.max_reply_bytes); \
                         use SCAN with MATCH instead"
                    )));
                }
                found.push(Frame::Bulk(key));
            }
        }
    }
    Ok(Frame::Array(found))
}

/// `RANDOMKEY`: a live key from a random place in the hash space; nil when there is none.
pub async fn randomkey(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    args.finish()?;
    let start: u64 = rand::random();
    let mut cursor = start;
    let mut wrapped = false;
    loop {
        let page = state
            .coordinator
            .scan(cursor, 10, estimate(state), max_missing(state, s))
            .await
            .map_err(|e| cluster_error(&e))?;
        let keys: Vec<Bytes> = page
            .keys
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !wrapped || halka_store::layout::key_hash(k) < start)
            .collect();
        if !keys.is_empty() {
            let pick = rand::random_range(0..keys.len());
            return Ok(Frame::Bulk(keys[pick].clone()));
        }
        match page.next {
            Some(next) if !wrapped || next < start => cursor = next,
            None if !wrapped => {
                wrapped = true;
                cursor = 0;
            }
            _ => return Ok(Frame::Null),
        }
    }
}

/// Deletes in flight at once while flushing.
const FLUSH_IN_FLIGHT: usize = 64;

/// `FLUSHDB`/`FLUSHALL [ASYNC|SYNC]`: deletes every key in the cluster. Only with every
/// member answering: a silent one could hold keys that would then survive. Each key's
/// tombstone replaces exactly the versions listed, so a write racing the flush is kept.
pub async fn flush(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    if args.remaining() > 0 {
        let mode = args.next_string()?.to_ascii_uppercase();
        if mode != "ASYNC" && mode != "SYNC" {
            return Err(Frame::error("ERR syntax error"));
        }
    }
    args.finish()?;
    let mut walk = Walk::new(0);
    loop {
        let keys = match walk.next(state).await {
            Ok(Some(keys)) => keys,
            Ok(None) => break,
            Err(Frame::Error(m)) if m.starts_with("NOQUORUM") => {
                return Err(Frame::Error(format!(
                    "{m}; FLUSHDB needs every member to answer, so that no key survives on \
                     one that did not"
                )));
            }
            Err(other) => return Err(other),
        };
        let deletes = futures::stream::iter(keys)
            .map(|(key, record)| {
                let context = record.context().clone();
                state.coordinator.write(key, None, Some(context), s.w)
            })
            .buffer_unordered(FLUSH_IN_FLIGHT);
        let results: Vec<_> = deletes.collect().await;
        for r in results {
            r.map_err(|e| cluster_error(&e))?;
        }
    }
    Ok(Frame::ok())
}
