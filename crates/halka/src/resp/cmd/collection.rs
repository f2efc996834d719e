//! What the commands of every collection type share (`hash`, `set`): a head at the key
//! names the collection's kind and lifetimes, and each member is a record of its own
//! (`halka_store::collection`). Reading one member reads the head and that member's
//! record; reading the whole collection reads every member record from R owners.

use super::{Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::future::{join_all, try_join_all};
use halka_cluster::WriteRequest;
use halka_store::collection::member_key;
use halka_store::{Change, Condition, CounterError, Head, Kind, Outcome, Refusal};

/// The collection of `kind` at `key`: its head, or `None` when the key holds nothing.
/// `WRONGTYPE` when it holds something else.
pub(super) async fn read_head(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    kind: Kind,
) -> Result<Option<Head>, Frame> {
    let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    match got.head() {
        Some(head) if head.kind == kind => Ok(Some(head)),
        None if got.value().is_none() => Ok(None),
        _ => Err(wrong_type()),
    }
}

pub(super) fn wrong_type() -> Frame {
    Frame::error(Refusal::WrongType.to_string())
}

/// The collection of `kind` at `key`, made if the key holds nothing (the one write every
/// collection write begins with; it writes nothing when the collection exists).
pub(super) async fn make_head(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    kind: Kind,
) -> Result<Head, Frame> {
    let outcome =
        write(state, s, key.clone(), WriteRequest::new(Change::Create(kind), None)).await?;
    outcome.head.map(|h| *h).ok_or_else(|| Frame::error("ERR the collection's head was not made"))
}

/// Applies `request` at `key` as every command does (`super::apply`), with the errors
/// of counters in a field worded as Redis words them for hashes.
pub(super) async fn write(
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

/// The value of member `field`: the newest live one among the collection's lifetimes.
pub(super) async fn field_value(
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

/// Every live member of the collection with its value, in member order.
pub(super) async fn fields(
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
    Ok(read.live(head).into_iter().map(|(f, (_, v))| (f, v)).collect())
}

/// What a key holds, as the commands of every type see it.
#[derive(Debug, Clone)]
pub(super) enum Held {
    Nothing,
    String(Bytes),
    Collection(Head),
}

/// What the read `got` of `key` found. A head whose members were all removed holds
/// nothing, as Redis removes a collection with its last member: that takes a read of the
/// members, so only heads pay for it.
pub(super) async fn held(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    got: &halka_cluster::GetResult,
) -> Result<Held, Frame> {
    match got.head() {
        Some(head) if holds_fields(state, s, key, &head).await? => Ok(Held::Collection(head)),
        Some(_) => Ok(Held::Nothing),
        None => Ok(got.value().map_or(Held::Nothing, Held::String)),
    }
}

/// The string `got` read, `WRONGTYPE` for a collection with members.
pub(super) async fn string_value(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    got: &halka_cluster::GetResult,
) -> Result<Option<Bytes>, Frame> {
    match held(state, s, key, got).await? {
        Held::Nothing => Ok(None),
        Held::String(v) => Ok(Some(v)),
        Held::Collection(_) => Err(wrong_type()),
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
    if !read.live(head).is_empty() {
        return Ok(true);
    }
    // The first page held only removed fields: the rest may still hold live ones.
    Ok(count(state, s, key, head).await? > 0)
}

/// How many members the collection holds, read a page at a time (`HLEN`, `SCARD`).
pub(super) async fn count(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
) -> Result<u64, Frame> {
    state.coordinator.count_members(key, s.r, head).await.map_err(|e| cluster_error(&e))
}

/// Writes the members of the collection at `source` (with `head`) to `destination` under a head
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
        write(state, s, destination.clone(), delete_at_first_owner()).await?;
    }
    let lifetime = make_head(state, s, &destination, head.kind).await?.lifetimes[0];
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

/// `OBJECT ENCODING` of a collection: what Redis 7.0 would use for these members — for a
/// hash `listpack` up to 128 fields of at most 64 bytes each (names and values), else
/// `hashtable`; for a set `intset` up to 512 integers, else `hashtable` (7.2 added
/// `listpack` for small sets). Reads the whole collection.
pub(super) async fn encoding(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
) -> Result<&'static str, Frame> {
    let members = fields(state, s, key, head).await?;
    let short = |b: &Bytes| b.len() <= 64;
    let small = head.kind == Kind::Hash
        && members.len() <= 128
        && members.iter().all(|(f, v)| short(f) && short(v));
    let integers = head.kind == Kind::Set
        && members.len() <= 512
        && members.iter().all(|(m, _)| halka_store::parse_integer(m).is_ok());
    Ok(if integers {
        "intset"
    } else if small {
        "listpack"
    } else {
        "hashtable"
    })
}

/// A delete of what the key holds, coordinated by its first owner (a condition makes it
/// so) like the `Change::Create` that follows it: that replica then holds the delete
/// when it makes the new head, whatever the other owners had received.
pub(super) fn delete_at_first_owner() -> WriteRequest {
    WriteRequest { condition: Condition::Present, ..WriteRequest::new(Change::Delete, None) }
}
