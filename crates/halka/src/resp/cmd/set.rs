//! Set commands (`SADD`, `SREM`, `SMEMBERS`, `SINTER`, …): each member is a member of a
//! collection (see `collection`) with an empty value. An add-wins set: members added
//! through different nodes during a partition all survive, and a member removed through
//! one node while another adds it stays (the removal takes away only the additions its
//! node had seen).

use super::collection::{
    Held, at, field_value, fields, held, make_head, read_head, write, write_member,
};
use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::future::{join_all, try_join_all};
use halka_cluster::WriteRequest;
use halka_store::{Change, Expiry, Head, Kind};
use std::collections::BTreeSet;

fn nonempty(args: &mut Args) -> Result<Vec<Bytes>, Frame> {
    let rest = args.rest();
    if rest.is_empty() {
        return Err(super::wrong_arity(&args.name));
    }
    Ok(rest)
}

/// Adds `members` to the set at `key` (made if need be); how many were new.
async fn add(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    members: impl IntoIterator<Item = Bytes>,
) -> Result<i64, Frame> {
    let lifetime = make_head(state, s, key, Kind::Set).await?.lifetimes[0];
    let writes = members.into_iter().map(|member| async move {
        let change = Change::Put { value: Bytes::new(), expiry: Expiry::Never };
        let request = WriteRequest { want_previous: true, ..WriteRequest::new(change, None) };
        write_member(state, s, (key, lifetime), &member, request).await
    });
    let mut added = 0;
    for outcome in join_all(writes).await {
        added += i64::from(outcome?.previous.is_none());
    }
    Ok(added)
}

/// `SADD key member [member …]`: how many were not in the set.
pub async fn sadd(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let mut members = nonempty(args)?;
    members.sort_unstable();
    members.dedup();
    Ok(Frame::Integer(add(state, s, &key, members).await?))
}

/// Removes `member` from every lifetime of the set if it is there; whether it was.
async fn remove(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
    member: &[u8],
) -> Result<bool, Frame> {
    at(state, s, key).remove(head, member).await.map_err(|e| cluster_error(&e))
}

/// `SREM key member [member …]`: how many were in the set.
pub async fn srem(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let mut members = nonempty(args)?;
    members.sort_unstable();
    members.dedup();
    let Some(head) = read_head(state, s, &key, Kind::Set).await? else {
        return Ok(Frame::Integer(0));
    };
    let removals = members.iter().map(|m| remove(state, s, &key, &head, m));
    let removed = try_join_all(removals).await?;
    Ok(Frame::Integer(removed.into_iter().map(i64::from).sum()))
}

/// `SISMEMBER key member`.
pub async fn sismember(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, member) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let Some(head) = read_head(state, s, &key, Kind::Set).await? else {
        return Ok(Frame::Integer(0));
    };
    let found = field_value(state, s, &key, &head, &member).await?.is_some();
    Ok(Frame::Integer(i64::from(found)))
}

/// `SMISMEMBER key member [member …]`.
pub async fn smismember(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let members = nonempty(args)?;
    let Some(head) = read_head(state, s, &key, Kind::Set).await? else {
        return Ok(Frame::Array(vec![Frame::Integer(0); members.len()]));
    };
    let reads = members.iter().map(|m| field_value(state, s, &key, &head, m));
    let found = try_join_all(reads).await?;
    Ok(Frame::Array(found.into_iter().map(|v| Frame::Integer(i64::from(v.is_some()))).collect()))
}

/// The members of the set at `key` (none when the key holds nothing), in member order.
async fn members(state: &NodeState, s: &Session, key: &Bytes) -> Result<BTreeSet<Bytes>, Frame> {
    match read_head(state, s, key, Kind::Set).await? {
        Some(head) => Ok(fields(state, s, key, &head).await?.into_iter().map(|(m, _)| m).collect()),
        None => Ok(BTreeSet::new()),
    }
}

fn array(members: impl IntoIterator<Item = Bytes>) -> Frame {
    Frame::Array(members.into_iter().map(Frame::Bulk).collect())
}

/// `SMEMBERS key`: every member, in member order (reads the whole set).
pub async fn smembers(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    Ok(array(members(state, s, &key).await?))
}

/// `SCARD key`: how many members (reads the whole set a page at a time).
pub async fn scard(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let n = match read_head(state, s, &key, Kind::Set).await? {
        Some(head) => super::collection::count(state, s, &key, &head).await?,
        None => 0,
    };
    Ok(Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// How `SINTER`, `SUNION` and `SDIFF` combine sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    Inter,
    Union,
    Diff,
}

/// The sets at `keys` combined, each read whole (a missing key is an empty set).
async fn combined(
    state: &NodeState,
    s: &Session,
    keys: &[Bytes],
    how: Combine,
) -> Result<BTreeSet<Bytes>, Frame> {
    let sets = try_join_all(keys.iter().map(|k| members(state, s, k))).await?;
    let mut sets = sets.into_iter();
    let first = sets.next().unwrap_or_default();
    Ok(sets.fold(first, |acc, set| match how {
        Combine::Inter => acc.intersection(&set).cloned().collect(),
        Combine::Union => acc.union(&set).cloned().collect(),
        Combine::Diff => acc.difference(&set).cloned().collect(),
    }))
}

/// `SINTER`, `SUNION`, `SDIFF key [key …]`.
pub async fn combine(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    how: Combine,
) -> Result<Frame, Frame> {
    let keys = nonempty(args)?;
    Ok(array(combined(state, s, &keys, how).await?))
}

/// `SINTERSTORE`, `SUNIONSTORE`, `SDIFFSTORE destination key [key …]`: the result
/// replaces whatever `destination` held (nothing when it is empty); its size.
pub async fn combine_store(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    how: Combine,
) -> Result<Frame, Frame> {
    let destination = args.next_bytes()?;
    let keys = nonempty(args)?;
    let result = combined(state, s, &keys, how).await?;
    let n = i64::try_from(result.len()).unwrap_or(i64::MAX);
    // As a new key: what the destination held goes first, fields and all.
    let delete = halka_cluster::collection::delete_at_first_owner();
    write(state, s, destination.clone(), delete).await?;
    if !result.is_empty() {
        add(state, s, &destination, result).await?;
    }
    Ok(Frame::Integer(n))
}

/// `SINTERCARD numkeys key [key …] [LIMIT limit]`.
pub async fn sintercard(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let numkeys = args.next_i64()?;
    let numkeys = usize::try_from(numkeys)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Frame::error("ERR numkeys should be greater than 0"))?;
    let rest = args.rest();
    if rest.len() < numkeys {
        return Err(Frame::error("ERR Number of keys can't be greater than number of args"));
    }
    let (keys, options) = rest.split_at(numkeys);
    let limit = match options {
        [] => 0,
        [word, n] if word.eq_ignore_ascii_case(b"LIMIT") => super::integer(n)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| Frame::error("ERR LIMIT can't be negative"))?,
        _ => return Err(Frame::error("ERR syntax error")),
    };
    let n = combined(state, s, keys, Combine::Inter).await?.len();
    let n = if limit > 0 { n.min(limit) } else { n };
    Ok(Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// `SMOVE source destination member`: 1 when moved. Adds to the destination first, then
/// removes from the source, so an interruption leaves the member in both, never in
/// neither.
pub async fn smove(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (source, destination, member) =
        (args.next_bytes()?, args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let Some(head) = read_head(state, s, &source, Kind::Set).await? else {
        return Ok(Frame::Integer(0));
    };
    // Redis checks the destination's type before it moves anything.
    let got =
        state.coordinator.get(destination.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    if let Held::String(_) = held(state, s, &destination, &got).await? {
        return Err(super::collection::wrong_type());
    }
    if got.head().is_some_and(|h| h.kind != Kind::Set) {
        return Err(super::collection::wrong_type());
    }
    if field_value(state, s, &source, &head, &member).await?.is_none() {
        return Ok(Frame::Integer(0));
    }
    if source != destination {
        add(state, s, &destination, [member.clone()]).await?;
        remove(state, s, &source, &head, &member).await?;
    }
    Ok(Frame::Integer(1))
}
