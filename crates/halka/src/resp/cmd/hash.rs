//! Hash commands (`HSET`, `HGET`, `HGETALL`, …): each field is a member of a collection
//! (see `collection`). So concurrent writes to different fields through different nodes
//! all survive, a field removed while another node writes it keeps the write (the
//! removal takes away only the versions it saw), and `HINCRBY` fields are convergent
//! counters like `INCR`'s.

use super::collection::{at, field_value, fields, make_head, read_head, write_member};
use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::future::{join_all, try_join_all};
use halka_cluster::WriteRequest;
use halka_store::{Change, Condition, Float, Kind, Outcome};

fn pairs(args: &mut Args) -> Result<Vec<(Bytes, Bytes)>, Frame> {
    let rest = args.rest();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(super::wrong_arity(&args.name));
    }
    Ok(rest.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
}

/// `HSET key field value [field value …]`: how many fields are new. `HMSET` answers OK.
pub async fn hset(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let pairs = pairs(args)?;
    let lifetime = make_head(state, s, &key, Kind::Hash).await?.lifetimes[0];
    let key = &key;
    let writes = pairs.into_iter().map(|(field, value)| async move {
        let change = Change::Put { value, expiry: halka_store::Expiry::Never };
        let request = WriteRequest { want_previous: true, ..WriteRequest::new(change, None) };
        write_member(state, s, (key, lifetime), &field, request).await
    });
    let mut added = 0;
    for outcome in join_all(writes).await {
        added += i64::from(outcome?.previous.is_none());
    }
    Ok(if args.name == "HMSET" { Frame::ok() } else { Frame::Integer(added) })
}

/// `HSETNX key field value`: 1 if the field was new and is now set.
pub async fn hsetnx(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, field, value) = (args.next_bytes()?, args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let lifetime = make_head(state, s, &key, Kind::Hash).await?.lifetimes[0];
    let change = Change::Put { value, expiry: halka_store::Expiry::Never };
    let request = WriteRequest { condition: Condition::Absent, ..WriteRequest::new(change, None) };
    let outcome = write_member(state, s, (&key, lifetime), &field, request).await?;
    Ok(Frame::Integer(i64::from(outcome.refused.is_none())))
}

/// `HGET key field`.
pub async fn hget(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let Some(head) = read_head(state, s, &key, Kind::Hash).await? else { return Ok(Frame::Null) };
    Ok(field_value(state, s, &key, &head, &field).await?.map_or(Frame::Null, Frame::Bulk))
}

/// `HMGET key field [field …]`.
pub async fn hmget(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let wanted = args.rest();
    let Some(head) = read_head(state, s, &key, Kind::Hash).await? else {
        return Ok(Frame::Array(vec![Frame::Null; wanted.len()]));
    };
    let reads = wanted.iter().map(|f| field_value(state, s, &key, &head, f));
    let values = try_join_all(reads).await?;
    Ok(Frame::Array(values.into_iter().map(|v| v.map_or(Frame::Null, Frame::Bulk)).collect()))
}

/// `HEXISTS key field`.
pub async fn hexists(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let Some(head) = read_head(state, s, &key, Kind::Hash).await? else {
        return Ok(Frame::Integer(0));
    };
    let found = field_value(state, s, &key, &head, &field).await?.is_some();
    Ok(Frame::Integer(i64::from(found)))
}

/// `HSTRLEN key field`.
pub async fn hstrlen(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let Some(head) = read_head(state, s, &key, Kind::Hash).await? else {
        return Ok(Frame::Integer(0));
    };
    let value = field_value(state, s, &key, &head, &field).await?;
    Ok(Frame::Integer(value.map_or(0, |v| i64::try_from(v.len()).unwrap_or(i64::MAX))))
}

/// `HDEL key field [field …]`: how many of the fields existed. Each removal replaces only
/// the versions of the field its coordinating replica held: a concurrent write to the
/// field through another node survives it.
pub async fn hdel(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let mut fields = args.rest();
    if fields.is_empty() {
        return Err(super::wrong_arity(&args.name));
    }
    fields.sort_unstable();
    fields.dedup();
    let Some(head) = read_head(state, s, &key, Kind::Hash).await? else {
        return Ok(Frame::Integer(0));
    };
    let hash = at(state, s, &key);
    let removals = fields.iter().map(|field| hash.remove(&head, field));
    let mut count = 0;
    for removed in join_all(removals).await {
        count += i64::from(removed.map_err(|e| cluster_error(&e))?);
    }
    Ok(Frame::Integer(count))
}

/// What `HGETALL`, `HKEYS` and `HVALS` answer.
#[derive(Debug, Clone, Copy)]
pub enum Whole {
    All,
    Keys,
    Values,
}

/// `HLEN key`: counts the fields a page at a time, holding none of them.
pub async fn hlen(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let n = match read_head(state, s, &key, Kind::Hash).await? {
        Some(head) => super::collection::count(state, s, &key, &head).await?,
        None => 0,
    };
    Ok(Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// `HGETALL`, `HKEYS`, `HVALS key`: read every field.
pub async fn whole(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    what: Whole,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let fields = match read_head(state, s, &key, Kind::Hash).await? {
        Some(head) => fields(state, s, &key, &head).await?,
        None => Vec::new(),
    };
    Ok(match what {
        Whole::Keys => Frame::Array(fields.into_iter().map(|(f, _)| Frame::Bulk(f)).collect()),
        Whole::Values => Frame::Array(fields.into_iter().map(|(_, v)| Frame::Bulk(v)).collect()),
        Whole::All => {
            Frame::Map(fields.into_iter().map(|(f, v)| (Frame::Bulk(f), Frame::Bulk(v))).collect())
        }
    })
}

/// `HINCRBY key field delta`: the field is a convergent counter, so increments through
/// any nodes all count once the replicas meet.
pub async fn hincrby(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    let delta = args.next_i64()?;
    args.finish()?;
    let outcome = add(state, s, &key, &field, Change::Add(delta)).await?;
    Ok(Frame::Integer(outcome.number.unwrap_or(0)))
}

/// `HINCRBYFLOAT key field delta`.
pub async fn hincrbyfloat(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, field, delta) = (args.next_bytes()?, args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let delta = halka_store::parse_float(&delta)
        .ok()
        .filter(|d| d.is_finite())
        .ok_or_else(|| Frame::error("ERR value is not a valid float"))?;
    let outcome = add(state, s, &key, &field, Change::AddFloat(Float(delta))).await?;
    Ok(outcome.value.map_or(Frame::Null, Frame::Bulk))
}

async fn add(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    field: &[u8],
    change: Change,
) -> Result<Outcome, Frame> {
    let lifetime = make_head(state, s, key, Kind::Hash).await?.lifetimes[0];
    write_member(state, s, (key, lifetime), field, WriteRequest::new(change, None)).await
}
