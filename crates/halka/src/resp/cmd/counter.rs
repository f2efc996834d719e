//! `INCR`, `DECR`, `INCRBY`, `DECRBY`, `INCRBYFLOAT`: convergent counters.
//!
//! Each increment is added to the key's PN-counter at its coordinating replica (see
//! `halka_store::Counter`), so increments through different nodes, during a partition or
//! with a replica down, all count once the replicas meet. The reply is the counter's value
//! as that replica knows it when it applied the increment: an increment through another
//! node that it has not yet received is missing from it, so two clients can receive the
//! same number. It is not a cluster-wide sequence number (README, "Counters").

use super::{Args, Session, apply};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use halka_cluster::WriteRequest;
use halka_store::{Change, Float};

/// Adds `sign * amount` (the amount read from the arguments when `amount` is `None`).
pub async fn add(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    amount: Option<i64>,
    negate: bool,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let amount = match amount {
        Some(a) => a,
        None => args.next_i64()?,
    };
    args.finish()?;
    let delta = if negate {
        amount.checked_neg().ok_or_else(|| Frame::error("ERR decrement would overflow"))?
    } else {
        amount
    };
    let outcome = apply(state, s, key, WriteRequest::new(Change::Add(delta), None)).await?;
    let value = outcome
        .number
        .ok_or_else(|| Frame::error("ERR the coordinating replica reported no counter value"))?;
    Ok(Frame::Integer(value))
}

/// `INCRBYFLOAT key increment`: adds to the counter's floating-point side, replying with
/// the new value as Redis prints it (in 64-bit binary floating point, where Redis uses
/// `long double`: README, "Counters").
pub async fn add_float(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let delta = halka_store::parse_float(&args.next_bytes()?)
        .map_err(|_| Frame::error("ERR value is not a valid float"))?;
    args.finish()?;
    let change = Change::AddFloat(Float(delta));
    let outcome = apply(state, s, key, WriteRequest::new(change, None)).await?;
    let value = outcome
        .value
        .ok_or_else(|| Frame::error("ERR the coordinating replica reported no counter value"))?;
    Ok(Frame::Bulk(value))
}
