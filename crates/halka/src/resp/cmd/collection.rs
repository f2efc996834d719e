//! What the commands of every collection type share (`hash`, `set`): a head at the key
//! names the collection's kind and lifetimes, and each member is a record of its own
//! (`halka_store::collection`). Reading one member reads the head and that member's
//! record; reading the whole collection reads every member record from R owners.

use super::{Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::future::join_all;
use halka_cluster::collection::Collection;
use halka_cluster::{WriteQuorum, WriteRequest};
use halka_store::{Change, Condition, CounterError, Head, Kind, Outcome, Refusal};

/// The collection at `key` with this connection's quorums.
pub(super) fn at<'a>(state: &'a NodeState, s: &Session, key: &Bytes) -> Collection<'a> {
    Collection::new(&state.coordinator, key.clone(), s.r, WriteQuorum { w: s.w, pw: 0 })
}

/// The collection of `kind` at `key`: its head, or `None` when the key holds nothing.
/// `WRONGTYPE` when it holds something else.
pub(super) async fn read_head(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    kind: Kind,
) -> Result<Option<Head>, Frame> {
    at(state, s, key).head(kind).await.map_err(|e| cluster_error(&e))
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
    at(state, s, key).make(kind).await.map_err(|e| cluster_error(&e))
}

/// Applies `request` at `key` as every command does (`super::apply`), with the errors
/// of counters in a field worded as Redis words them for hashes.
pub(super) async fn write(
    state: &NodeState,
    s: &Session,
    key: Bytes,
    request: WriteRequest,
) -> Result<Outcome, Frame> {
    super::apply(state, s, key, request).await.map_err(hash_words)
}

/// Writes `request` to `member` of the collection at `key` in `lifetime`, its refusals
/// worded as `write` words them.
pub(super) async fn write_member(
    state: &NodeState,
    s: &Session,
    (key, lifetime): (&Bytes, u64),
    member: &[u8],
    request: WriteRequest,
) -> Result<Outcome, Frame> {
    let member = Bytes::from(halka_store::collection::member_key(key, lifetime, member));
    write(state, s, member, request).await
}

fn hash_words(error: Frame) -> Frame {
    let hashed = |words: &str| error == Frame::error(format!("ERR {words}"));
    if hashed(&CounterError::NotAnInteger.to_string()) {
        Frame::error("ERR hash value is not an integer")
    } else if hashed(&CounterError::NotAFloat.to_string()) {
        Frame::error("ERR hash value is not a float")
    } else {
        error
    }
}

/// The value of member `field`: the newest live one among the collection's lifetimes.
pub(super) async fn field_value(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
    field: &[u8],
) -> Result<Option<Bytes>, Frame> {
    at(state, s, key).value(head, field).await.map_err(|e| cluster_error(&e))
}

/// Every live member of the collection with its value, in member order.
pub(super) async fn fields(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
) -> Result<Vec<(Bytes, Bytes)>, Frame> {
    let budget = state.config.limits.max_reply_bytes;
    at(state, s, key).members(head, budget).await.map_err(|e| cluster_error(&e))
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

/// Whether the collection holds any member: a head alone (its members all removed) is
/// none.
async fn holds_fields(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
) -> Result<bool, Frame> {
    let budget = state.config.limits.max_reply_bytes;
    at(state, s, key).holds_any(head, budget).await.map_err(|e| cluster_error(&e))
}

/// How many members the collection holds, read a page at a time (`HLEN`, `SCARD`).
pub(super) async fn count(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
) -> Result<u64, Frame> {
    at(state, s, key).count(head).await.map_err(|e| cluster_error(&e))
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
        let delete = halka_cluster::collection::delete_at_first_owner();
        write(state, s, destination.clone(), delete).await?;
    }
    let lifetime = make_head(state, s, &destination, head.kind).await?.lifetimes[0];
    let to = &destination;
    let writes = fields.into_iter().map(|(field, value)| async move {
        let change = Change::Put { value, expiry: halka_store::Expiry::Never };
        let request = WriteRequest::new(change, None);
        write_member(state, s, (to, lifetime), &field, request).await
    });
    for written in join_all(writes).await {
        written?;
    }
    if let Some(when) = expires_at {
        let change = Change::Touch {
            expiry: halka_store::Expiry::At(when),
            when: halka_store::ExpireWhen::Always,
        };
        write(state, s, destination, WriteRequest::new(change, None)).await?;
    }
    Ok(true)
}

/// `OBJECT ENCODING` of a collection: what Redis 7.0 would use for these members — for a
/// hash `listpack` up to 128 fields of at most 64 bytes each (names and values), else
/// `hashtable`; for a set `intset` up to 512 integers, else `hashtable` (7.2 added
/// `listpack` for small sets); for a sorted set see `zset::encoding`. Reads the whole
/// collection.
pub(super) async fn encoding(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
) -> Result<&'static str, Frame> {
    let members = fields(state, s, key, head).await?;
    if head.kind == Kind::SortedSet {
        return Ok(super::zset::encoding(&members));
    }
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

/// `HSCAN key cursor [MATCH pattern] [COUNT n] [NOVALUES]`, `SSCAN` and `ZSCAN key cursor
/// [MATCH pattern] [COUNT n]`: one step of a walk over a collection's members. The cursor is a
/// position in the collection's hashes, so any node continues a walk any other began;
/// a step gives one page of R owners whatever `COUNT` says (a hint, as in Redis).
pub(super) async fn scan(
    state: &NodeState,
    s: &Session,
    args: &mut super::Args,
    kind: Kind,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let cursor: u32 =
        args.next_string()?.parse().map_err(|_| Frame::error("ERR invalid cursor"))?;
    let (mut pattern, mut values) = (None, kind == Kind::Hash);
    while args.remaining() > 0 {
        match args.next_string()?.to_ascii_uppercase().as_str() {
            "MATCH" => {
                let glob = halka_cluster::Glob::new(&args.next_bytes()?);
                pattern = Some(glob.map_err(|e| Frame::error(format!("ERR {e}")))?);
            }
            "COUNT" if args.next_usize()? > 0 => {}
            "NOVALUES" if kind == Kind::Hash => values = false,
            _ => return Err(Frame::error("ERR syntax error")),
        }
    }
    let Some(head) = read_head(state, s, &key, kind).await? else {
        return Ok(Frame::Array(vec![Frame::bulk("0"), Frame::Array(Vec::new())]));
    };
    let (found, next) =
        at(state, s, &key).scan(&head, cursor).await.map_err(|e| cluster_error(&e))?;
    let mut items = Vec::new();
    for (member, value) in found {
        if pattern.as_ref().is_none_or(|p| p.matches(&member)) {
            items.push(Frame::Bulk(member));
            if kind == Kind::SortedSet {
                // Scores as Redis writes them, whatever spelling the record holds.
                let score = halka_store::Score::parse(&value);
                items.push(score.map_or(Frame::Null, |x| Frame::Bulk(x.to_string().into())));
            } else if values {
                items.push(Frame::Bulk(value));
            }
        }
    }
    Ok(Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(items)]))
}
