//! HyperLogLog commands (`PFADD`, `PFCOUNT`, `PFMERGE`) over `halka_store::hll`: a
//! HyperLogLog is a string holding Redis's encoding, and every write raises registers to
//! the maximum of what the replica holds and what the write brings, so concurrent adds
//! through different nodes all count once the replicas meet.

use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::future::try_join_all;
use halka_cluster::WriteRequest;
use halka_store::hll::{Registers, live, observe};
use halka_store::{Change, Refusal};
use std::collections::BTreeMap;

/// The registers the HyperLogLog at `key` holds (empty when the key holds nothing).
async fn read(state: &NodeState, s: &Session, key: &Bytes) -> Result<Registers, Frame> {
    let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    match live(&got.record, got.now_us) {
        Ok(registers) => Ok(registers.unwrap_or_default()),
        Err(refusal @ (Refusal::WrongType | Refusal::NotAnHll)) => {
            Err(Frame::error(refusal.to_string()))
        }
        Err(other) => Err(Frame::error(format!("ERR {other}"))),
    }
}

/// Raises the registers of the HyperLogLog at `key` (made if the key holds nothing);
/// whether any grew or the key was made.
async fn raise(
    state: &NodeState,
    s: &Session,
    key: Bytes,
    registers: Vec<(u16, u8)>,
) -> Result<bool, Frame> {
    let request = WriteRequest::new(Change::Registers(registers), None);
    let outcome = super::apply(state, s, key, request).await?;
    Ok(outcome.number == Some(1))
}

/// `PFADD key [element …]`: 1 when the estimate may have changed (a register grew, or the
/// key was made), else 0.
pub async fn pfadd(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    // One register per index, the highest value any element offers it.
    let mut offered: BTreeMap<u16, u8> = BTreeMap::new();
    for element in args.rest() {
        let (index, value) = observe(&element);
        let at = offered.entry(index).or_default();
        *at = (*at).max(value);
    }
    let grew = raise(state, s, key, offered.into_iter().collect()).await?;
    Ok(Frame::Integer(i64::from(grew)))
}

/// `PFCOUNT key [key …]`: the estimated number of distinct elements added to any of them.
pub async fn pfcount(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let keys = args.rest();
    if keys.is_empty() {
        return Err(super::wrong_arity(&args.name));
    }
    let all = try_join_all(keys.iter().map(|k| read(state, s, k))).await?;
    let mut union = Registers::default();
    for registers in &all {
        union.merge(registers);
    }
    Ok(Frame::Integer(i64::try_from(union.count()).unwrap_or(i64::MAX)))
}

/// `PFMERGE destination [source …]`: the destination's registers raised to every
/// source's (the destination counts as a source, and is made if need be).
pub async fn pfmerge(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let destination = args.next_bytes()?;
    let sources = args.rest();
    // Read first so a source of the wrong type refuses before anything is written.
    let mut union = read(state, s, &destination).await?;
    for registers in try_join_all(sources.iter().map(|k| read(state, s, k))).await? {
        union.merge(&registers);
    }
    raise(state, s, destination, union.set()).await?;
    Ok(Frame::ok())
}
