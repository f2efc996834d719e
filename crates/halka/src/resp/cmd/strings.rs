//! Read-modify-write string commands, each applied at the key's coordinating replica under
//! its lock: `SETNX`, `GETSET`, `GETDEL`, `APPEND`, `SETRANGE`.

use super::{Args, Session, apply};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use halka_cluster::WriteRequest;
use halka_store::{Change, Condition, Expiry};

/// `SETNX key value`: 1 when set, 0 when the key held a value. Checked at the key's first
/// answering owner, so concurrent `SETNX` through any nodes have one winner while it is up.
pub async fn setnx(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    args.finish()?;
    let request = WriteRequest {
        condition: Condition::Absent,
        ..WriteRequest::new(Change::Put { value, expiry: Expiry::Never }, None)
    };
    let outcome = super::kv::put_over_empty_hash(state, s, key, request).await?;
    Ok(Frame::Integer(i64::from(outcome.refused.is_none())))
}

/// `MSETNX key value [key value ...]` naming one key (repeated or not): `SETNX` with the
/// last value given, as Redis sets it. Several distinct keys are refused with Redis
/// Cluster's `CROSSSLOT`: in halka every key is placed on its own, and setting several
/// only if none exists needs one decision across all their owners (consensus).
pub async fn msetnx(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    if args.remaining() == 0 || !args.remaining().is_multiple_of(2) {
        return Err(Frame::error("ERR wrong number of arguments for 'msetnx' command"));
    }
    let key = args.next_bytes()?;
    let mut value = args.next_bytes()?;
    while args.remaining() > 0 {
        if args.next_bytes()? != key {
            return Err(Frame::error(
                "CROSSSLOT MSETNX over several keys is not supported: each key is placed on \
                 its own, and all-or-none across keys needs one decision among all their \
                 owners (consensus), which halka does not have; use SET key value NX per key",
            ));
        }
        value = args.next_bytes()?;
    }
    let request = WriteRequest {
        condition: Condition::Absent,
        ..WriteRequest::new(Change::Put { value, expiry: Expiry::Never }, None)
    };
    let outcome = apply(state, s, key, request).await?;
    Ok(Frame::Integer(i64::from(outcome.refused.is_none())))
}

/// `GETSET key value`: stores the value and returns the one it replaced.
pub async fn getset(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    args.finish()?;
    let request = WriteRequest {
        want_previous: true,
        ..WriteRequest::new(Change::Put { value, expiry: Expiry::Never }, None)
    };
    let outcome = apply(state, s, key, request).await?;
    Ok(outcome.previous.map_or(Frame::Null, Frame::Bulk))
}

/// `GETDEL key`: deletes the key and returns the value it held (nil, and no write, when
/// it held none).
pub async fn getdel(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let request = WriteRequest {
        condition: Condition::Present,
        want_previous: true,
        ..WriteRequest::new(Change::Delete, None)
    };
    let outcome = apply(state, s, key, request).await?;
    Ok(outcome.previous.map_or(Frame::Null, Frame::Bulk))
}

/// `APPEND key value`: the length after appending. The expiry is kept.
pub async fn append(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    args.finish()?;
    let outcome = apply(state, s, key, WriteRequest::new(Change::Append(value), None)).await?;
    Ok(Frame::Integer(outcome.number.unwrap_or(0)))
}

/// `SETRANGE key offset value`: overwrites from `offset`, padding with zero bytes; the
/// length afterwards. The expiry is kept.
pub async fn setrange(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let offset = args.next_i64()?;
    let bytes = args.next_bytes()?;
    args.finish()?;
    let offset = u64::try_from(offset).map_err(|_| Frame::error("ERR offset is out of range"))?;
    if bytes.is_empty() {
        // Nothing to write: Redis reports the current length.
        let got =
            state.coordinator.get(key.clone(), s.r).await.map_err(|e| super::cluster_error(&e))?;
        let value = super::collection::string_value(state, s, &key, &got).await?;
        return Ok(Frame::Integer(value.map_or(0, |v| i64::try_from(v.len()).unwrap_or(0))));
    }
    let change = Change::SetRange { offset, bytes };
    let outcome = apply(state, s, key, WriteRequest::new(change, None)).await?;
    Ok(Frame::Integer(outcome.number.unwrap_or(0)))
}
