//! `RENAME`, `RENAMENX` and `COPY`: a key's value (and expiry) moved or copied to another
//! key, which lives in another partition with other owners.
//!
//! Redis does these atomically; halka has no transaction across two keys' owners. So
//! each is done in an order in which an interruption loses nothing: read the source,
//! write the destination (with the source's expiry), and only once the destination is
//! acknowledged at W, delete the source with the causal context that was read (a write
//! to the source after the read survives the delete, as a concurrent write does). If
//! the delete is not acknowledged, the client is told that the source may still hold the
//! value: running the `RENAME` again finishes it (or finds the source gone). The value moved is the one `GET` reads (the last
//! writer's; a counter's total), not every sibling. A hash's fields are copied one by one
//! under a new head at the destination (see `collection::copy`).

use super::collection::Held;
use super::{Args, Session, apply, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use halka_cluster::{GetResult, WriteRequest};
use halka_store::{Change, Condition, Expiry};

/// `RENAME source destination`: `+OK`, or an error when the source does not exist.
pub async fn rename(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (source, destination) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    moved(state, s, source, destination, Condition::Always).await.map(|_| Frame::ok())
}

/// `RENAMENX source destination`: 1 when renamed, 0 when the destination exists.
pub async fn renamenx(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (source, destination) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let done = moved(state, s, source, destination, Condition::Absent).await?;
    Ok(Frame::Integer(i64::from(done)))
}

/// `COPY source destination [DB 0] [REPLACE]`: 1 when copied, 0 when the source does not
/// exist or the destination does (without `REPLACE`).
pub async fn copy(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (source, destination) = (args.next_bytes()?, args.next_bytes()?);
    let mut replace = false;
    while args.remaining() > 0 {
        match args.next_string()?.to_ascii_uppercase().as_str() {
            "REPLACE" => replace = true,
            "DB" if args.next_string()? == "0" => {}
            "DB" => return Err(Frame::error("ERR DB index is out of range")),
            _ => return Err(Frame::error("ERR syntax error")),
        }
    }
    // Redis refuses a copy onto itself before it looks at the key.
    if source == destination {
        return Err(same_keys());
    }
    let Some(read) = read_source(state, s, &source).await? else { return Ok(Frame::Integer(0)) };
    let condition = if replace { Condition::Always } else { Condition::Absent };
    let written = write_destination(state, s, &source, destination, &read, condition).await?;
    Ok(Frame::Integer(i64::from(written)))
}

/// Moves `source` to `destination` if `condition` holds there; whether it did.
async fn moved(
    state: &NodeState,
    s: &Session,
    source: Bytes,
    destination: Bytes,
    condition: Condition,
) -> Result<bool, Frame> {
    let Some(read) = read_source(state, s, &source).await? else {
        return Err(Frame::error("ERR no such key"));
    };
    if source == destination {
        // Redis: a key renamed to itself stays (RENAMENX answers 0: it exists).
        return Ok(condition == Condition::Always);
    }
    if !write_destination(state, s, &source, destination, &read, condition).await? {
        return Ok(false);
    }
    let context = Some(read.context().clone());
    if let Err(e) = state.coordinator.write(source, None, context, s.w).await {
        return Err(Frame::error(format!(
            "ERR the value was written to the destination, but deleting the source was not \
             acknowledged ({e}): the source may still hold it; run the command again once \
             its owners answer (\"no such key\" then means it is done)"
        )));
    }
    Ok(true)
}

/// The source as read at R, if it holds a value.
async fn read_source(
    state: &NodeState,
    s: &Session,
    source: &Bytes,
) -> Result<Option<GetResult>, Frame> {
    let read = state.coordinator.get(source.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    let holds = !matches!(super::collection::held(state, s, source, &read).await?, Held::Nothing);
    Ok(holds.then_some(read))
}

/// Writes the source's value and expiry to `destination` if `condition` holds there;
/// whether it did.
async fn write_destination(
    state: &NodeState,
    s: &Session,
    source: &Bytes,
    destination: Bytes,
    read: &GetResult,
    condition: Condition,
) -> Result<bool, Frame> {
    if let Some(head) = read.head() {
        let expires_at = read.expires_at_us();
        return super::collection::copy(
            state,
            s,
            (source, &head),
            destination,
            expires_at,
            condition,
        )
        .await;
    }
    let value = read.value().unwrap_or_default();
    let expiry = read.expires_at_us().map_or(Expiry::Never, Expiry::At);
    let request =
        WriteRequest { condition, ..WriteRequest::new(Change::Put { value, expiry }, None) };
    let outcome = apply(state, s, destination, request).await?;
    Ok(outcome.refused.is_none())
}

fn same_keys() -> Frame {
    Frame::error("ERR source and destination objects are the same")
}
