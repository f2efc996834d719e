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
    let raw = args.next_bytes()?;
    let delta = halka_store::parse_float(&raw).map_err(|_| not_a_float(&raw))?;
    args.finish()?;
    let change = Change::AddFloat(Float(delta));
    let outcome = apply(state, s, key, WriteRequest::new(change, None)).await?;
    let value = outcome
        .value
        .ok_or_else(|| Frame::error("ERR the coordinating replica reported no counter value"))?;
    Ok(Frame::Bulk(value))
}

/// Why an increment did not parse, as Redis says it: an infinite one (`inf`, `-1e999`)
/// would make the counter infinite; anything else (`nan` too) is not a float.
fn not_a_float(raw: &[u8]) -> Frame {
    let text = std::str::from_utf8(raw).ok();
    if text.and_then(|t| t.parse::<f64>().ok()).is_some_and(f64::is_infinite) {
        Frame::error("ERR increment would produce NaN or Infinity")
    } else {
        Frame::error("ERR value is not a valid float")
    }
}
