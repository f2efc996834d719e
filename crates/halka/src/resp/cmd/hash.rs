//! Hash commands (`HSET`, `HGET`, `HGETALL`, …) over halka's collections: a head at the
//! key names the hash's lifetimes, and each field is a record of its own
//! (`halka_store::collection`). So concurrent writes to different fields through
//! different nodes all survive, a field removed while another node writes it keeps the
//! write (the remove takes away only the versions it saw), and `HINCRBY` fields are
//! convergent counters like `INCR`'s.
//!
//! Commands that read one field read the head and that field's record; commands that
//! read the whole hash (`HGETALL`, `HLEN`, …) read every member record from R owners.

use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::future::{join_all, try_join_all};
use halka_cluster::{MemberRecords, WriteRequest};
use halka_store::collection::{member_key, split_member_key};
use halka_store::{Change, Condition, CounterError, Float, Head, Kind, Outcome, Refusal};
use std::collections::BTreeMap;

/// The hash at `key`: its head, or `None` when the key holds nothing. `WRONGTYPE` when it
/// holds something else.
pub(super) async fn read_head(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
) -> Result<Option<Head>, Frame> {
    let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    match got.head() {
        Some(head) if head.kind == Kind::Hash => Ok(Some(head)),
        None if got.value().is_none() => Ok(None),
        _ => Err(wrong_type()),
    }
}

pub(super) fn wrong_type() -> Frame {
    Frame::error(Refusal::WrongType.to_string())
}

/// The hash at `key`, made if the key holds nothing (the one write every hash write
/// begins with; it writes nothing when the hash exists).
async fn make_head(state: &NodeState, s: &Session, key: &Bytes) -> Result<Head, Frame> {
    let outcome =
        write(state, s, key.clone(), WriteRequest::new(Change::Create(Kind::Hash), None)).await?;
    outcome.head.map(|h| *h).ok_or_else(|| Frame::error("ERR the hash's head was not made"))
}

/// Applies `request` at `key` as every command does (`super::apply`), with the errors
/// of counters in a field worded as Redis words them for hashes.
async fn write(
    state: &NodeState,
    s: &Session,
    key: Bytes,
    request: WriteRequest,
) -> Result<Outcome, Frame> {
    super::apply(state, s, key, request).await.map_err(|error| {
        let hashed = |words: &str| error == Frame::error(format!("ERR {words}"));
        if hashed(&CounterError::NotAnInteger.to_string()) {
            Frame::error("ERR hash value is not an integer")
        } else if hashed(&CounterError::NotAFloat.to_string()) {
            Frame::error("ERR hash value is not a float")
        } else {
            error
        }
    })
}

/// The value of `field`: the newest live one among the hash's lifetimes.
async fn field_value(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
    field: &[u8],
) -> Result<Option<Bytes>, Frame> {
    let reads = head.lifetimes.iter().map(|&l| {
        let member = Bytes::from(member_key(key, l, field));
        state.coordinator.get(member, s.r)
    });
    let got = try_join_all(reads).await.map_err(|e| cluster_error(&e))?;
    let newest = got.iter().filter_map(|g| g.record.member_at(g.now_us)).max_by_key(|(at, _)| *at);
    Ok(newest.map(|(_, v)| v))
}

/// Every live field of the hash with its value, in field order.
async fn fields(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
) -> Result<Vec<(Bytes, Bytes)>, Frame> {
    let budget = state.config.limits.max_reply_bytes;
    let read = state
        .coordinator
        .read_members(key, s.r, budget, false)
        .await
        .map_err(|e| cluster_error(&e))?;
    Ok(live_fields(&read, head).into_iter().map(|(f, (_, v))| (f, v)).collect())
}

/// The live fields of `read` in `head`'s lifetimes: the newest value of each field.
fn live_fields(read: &MemberRecords, head: &Head) -> BTreeMap<Bytes, (u64, Bytes)> {
    let mut out: BTreeMap<Bytes, (u64, Bytes)> = BTreeMap::new();
    for (k, record) in &read.records {
        let Some((_, lifetime, field)) = split_member_key(k) else { continue };
        if head.lifetimes.binary_search(&lifetime).is_err() {
            continue;
        }
        let Some(found) = record.member_at(read.now_us) else { continue };
        let slot = out.entry(Bytes::copy_from_slice(field)).or_insert_with(|| found.clone());
        if found.0 > slot.0 {
            *slot = found;
        }
    }
    out
}

/// What a key holds, as the commands of every type see it.
#[derive(Debug, Clone)]
pub(super) enum Held {
    Nothing,
    String(Bytes),
    Hash(Head),
}

/// What the read `got` of `key` found. A head whose fields were all removed holds
/// nothing, as Redis removes a hash with its last field: that takes a read of the
/// fields, so only heads pay for it.
pub(super) async fn held(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    got: &halka_cluster::GetResult,
) -> Result<Held, Frame> {
    match got.head() {
        Some(head) if holds_fields(state, s, key, &head).await? => Ok(Held::Hash(head)),
        Some(_) => Ok(Held::Nothing),
        None => Ok(got.value().map_or(Held::Nothing, Held::String)),
    }
}

/// The string `got` read, `WRONGTYPE` for a hash with fields.
pub(super) async fn string_value(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    got: &halka_cluster::GetResult,
) -> Result<Option<Bytes>, Frame> {
    match held(state, s, key, got).await? {
        Held::Nothing => Ok(None),
        Held::String(v) => Ok(Some(v)),
        Held::Hash(_) => Err(wrong_type()),
    }
}

/// Whether the hash holds any field: a head alone (its fields all removed) is no hash.
async fn holds_fields(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
) -> Result<bool, Frame> {
    let budget = state.config.limits.max_reply_bytes;
    let read = state
        .coordinator
        .read_members(key, s.r, budget, true)
        .await
        .map_err(|e| cluster_error(&e))?;
    if !live_fields(&read, head).is_empty() {
        return Ok(true);
    }
    // The first page held only removed fields: the rest may still hold live ones.
    let read = state
        .coordinator
        .read_members(key, s.r, budget, false)
        .await
        .map_err(|e| cluster_error(&e))?;
    Ok(!live_fields(&read, head).is_empty())
}

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
    let lifetime = make_head(state, s, &key).await?.lifetimes[0];
    let writes = pairs.into_iter().map(|(field, value)| {
        let member = Bytes::from(member_key(&key, lifetime, &field));
        let change = Change::Put { value, expiry: halka_store::Expiry::Never };
        let request = WriteRequest { want_previous: true, ..WriteRequest::new(change, None) };
        write(state, s, member, request)
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
    let lifetime = make_head(state, s, &key).await?.lifetimes[0];
    let member = Bytes::from(member_key(&key, lifetime, &field));
    let change = Change::Put { value, expiry: halka_store::Expiry::Never };
    let request = WriteRequest { condition: Condition::Absent, ..WriteRequest::new(change, None) };
    let outcome = write(state, s, member, request).await?;
    Ok(Frame::Integer(i64::from(outcome.refused.is_none())))
}

/// `HGET key field`.
pub async fn hget(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let Some(head) = read_head(state, s, &key).await? else { return Ok(Frame::Null) };
    Ok(field_value(state, s, &key, &head, &field).await?.map_or(Frame::Null, Frame::Bulk))
}

/// `HMGET key field [field …]`.
pub async fn hmget(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let wanted = args.rest();
    let Some(head) = read_head(state, s, &key).await? else {
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
    let Some(head) = read_head(state, s, &key).await? else { return Ok(Frame::Integer(0)) };
    let found = field_value(state, s, &key, &head, &field).await?.is_some();
    Ok(Frame::Integer(i64::from(found)))
}

/// `HSTRLEN key field`.
pub async fn hstrlen(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, field) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let Some(head) = read_head(state, s, &key).await? else { return Ok(Frame::Integer(0)) };
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
    let Some(head) = read_head(state, s, &key).await? else { return Ok(Frame::Integer(0)) };
    let removals = fields.iter().map(|field| {
        let (state, key, head) = (state, &key, &head);
        async move {
            // Read first: a field whose removal lost to a concurrent write holds a value
            // though its newest version is a removal, which a condition at the
            // coordinating replica would take for absent.
            if field_value(state, s, key, head, field).await?.is_none() {
                return Ok::<_, Frame>(false);
            }
            for &l in &head.lifetimes {
                let member = Bytes::from(member_key(key, l, field));
                write(state, s, member, WriteRequest::new(Change::Delete, None)).await?;
            }
            Ok(true)
        }
    });
    let mut count = 0;
    for removed in join_all(removals).await {
        count += i64::from(removed?);
    }
    Ok(Frame::Integer(count))
}

/// What `HGETALL`, `HKEYS`, `HVALS` and `HLEN` answer.
#[derive(Debug, Clone, Copy)]
pub enum Whole {
    All,
    Keys,
    Values,
    Len,
}

/// `HGETALL`, `HKEYS`, `HVALS`, `HLEN key`: read every field.
pub async fn whole(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    what: Whole,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let fields = match read_head(state, s, &key).await? {
        Some(head) => fields(state, s, &key, &head).await?,
        None => Vec::new(),
    };
    Ok(match what {
        Whole::Len => Frame::Integer(i64::try_from(fields.len()).unwrap_or(i64::MAX)),
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
    let lifetime = make_head(state, s, key).await?.lifetimes[0];
    let member = Bytes::from(member_key(key, lifetime, field));
    write(state, s, member, WriteRequest::new(change, None)).await
}

/// Writes the fields of the hash at `source` (with `head`) to `destination` under a head
/// of its own, expiring at `expires_at` (`RENAME`, `COPY`); whether it did. With
/// `Condition::Absent`, only if the destination holds nothing (read first: not checked
/// at one replica under a lock as a string's copy is). Whatever the destination held is
/// deleted first, so none of its old fields mix in. Interrupted, the destination holds
/// part of the fields and the source all of them: running the command again redoes it.
pub(super) async fn copy(
    state: &NodeState,
    s: &Session,
    (source, head): (&Bytes, &Head),
    destination: Bytes,
    expires_at: Option<u64>,
    condition: Condition,
) -> Result<bool, Frame> {
    let fields = fields(state, s, source, head).await?;
    let got =
        state.coordinator.get(destination.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    if condition == Condition::Absent
        && !matches!(held(state, s, &destination, &got).await?, Held::Nothing)
    {
        return Ok(false);
    }
    if got.value().is_some() {
        write(state, s, destination.clone(), WriteRequest::new(Change::Delete, None)).await?;
    }
    let lifetime = make_head(state, s, &destination).await?.lifetimes[0];
    let writes = fields.into_iter().map(|(field, value)| {
        let member = Bytes::from(member_key(&destination, lifetime, &field));
        let change = Change::Put { value, expiry: halka_store::Expiry::Never };
        write(state, s, member, WriteRequest::new(change, None))
    });
    for written in join_all(writes).await {
        written?;
    }
    if let Some(at) = expires_at {
        let change = Change::Touch {
            expiry: halka_store::Expiry::At(at),
            when: halka_store::ExpireWhen::Always,
        };
        write(state, s, destination, WriteRequest::new(change, None)).await?;
    }
    Ok(true)
}

/// `OBJECT ENCODING` of a hash: what Redis would use for these fields (`listpack` up to
/// 128 fields of at most 64 bytes each, names and values, else `hashtable`). Reads the
/// whole hash.
pub(super) async fn encoding(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
) -> Result<&'static str, Frame> {
    let fields = fields(state, s, key, head).await?;
    let small = fields.len() <= 128 && fields.iter().all(|(f, v)| f.len() <= 64 && v.len() <= 64);
    Ok(if small { "listpack" } else { "hashtable" })
}
