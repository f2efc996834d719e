//! Sorted set commands that write or read members one at a time (`ZADD`, `ZINCRBY`,
//! `ZSCORE`, `ZREM`, `ZPOPMIN`, …); the range queries are in `zrange`. Each member is a
//! member of a collection (see `collection`) whose value is its score as text. So
//! members added through different nodes during a partition all survive, a member
//! removed while another node adds it stays (add wins), and `ZINCRBY` on one member
//! through two nodes counts both increments, as `INCRBYFLOAT` does for a string.
//!
//! Where halka differs from Redis: `ZADD`'s `GT`, `LT`, `NX` and `XX` compare with the
//! score read just before the write. Two updates of one member through different nodes
//! at once are resolved as two `SET`s of a string are (the later by clock wins), so a
//! `GT` update may be replaced by a concurrent lower one.

use super::collection::{at, count, field_value, make_head, read_head};
use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::future::try_join_all;
use halka_cluster::WriteRequest;
use halka_store::{Change, Condition, Expiry, Float, Head, Kind, Score};

fn not_a_float() -> Frame {
    Frame::error("ERR value is not a valid float")
}

pub(super) fn score(text: &[u8]) -> Result<Score, Frame> {
    Score::parse(text).map_err(|_| not_a_float())
}

/// The sorted set at `key`: its head, `None` when the key holds nothing.
pub(super) async fn head(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
) -> Result<Option<Head>, Frame> {
    read_head(state, s, key, Kind::SortedSet).await
}

/// Every member of the sorted set at `key` in the set's order, with its score (none when
/// the key holds nothing). Reads the whole set, up to `limits.max_reply_bytes`.
pub(super) async fn ranked(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
) -> Result<Vec<(Bytes, Score)>, Frame> {
    let Some(head) = head(state, s, key).await? else { return Ok(Vec::new()) };
    let members = super::collection::fields(state, s, key, &head).await?;
    Ok(halka_store::score::ranked(members))
}

/// What `ZADD`'s options ask for.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

impl Flags {
    /// Whether a member whose score is `current` (`None`: not in the set) takes `new`.
    fn allow(self, current: Option<Score>, new: Score) -> bool {
        match current {
            None => !self.xx,
            Some(c) => !self.nx && (!self.gt || new.0 > c.0) && (!self.lt || new.0 < c.0),
        }
    }
}

/// `ZADD`'s options and its score-member pairs, refused as Redis refuses them.
fn add_arguments(args: &mut Args) -> Result<(Flags, Vec<(Score, Bytes)>), Frame> {
    let mut words = args.rest().into_iter().peekable();
    let mut flags = Flags::default();
    while let Some(word) = words.peek() {
        let flag = match word.to_ascii_uppercase().as_slice() {
            b"NX" => &mut flags.nx,
            b"XX" => &mut flags.xx,
            b"GT" => &mut flags.gt,
            b"LT" => &mut flags.lt,
            b"CH" => &mut flags.ch,
            b"INCR" => &mut flags.incr,
            _ => break,
        };
        *flag = true;
        words.next();
    }
    let rest: Vec<Bytes> = words.collect();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(Frame::error("ERR syntax error"));
    }
    if flags.nx && flags.xx {
        return Err(Frame::error("ERR XX and NX options at the same time are not compatible"));
    }
    if [flags.nx, flags.gt, flags.lt].iter().filter(|&&f| f).count() > 1 {
        return Err(Frame::error(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    let pairs = rest.chunks(2).map(|p| Ok((score(&p[0])?, p[1].clone())));
    let pairs = pairs.collect::<Result<Vec<_>, Frame>>()?;
    if flags.incr && pairs.len() > 1 {
        return Err(Frame::error("ERR INCR option supports a single increment-element pair"));
    }
    Ok((flags, pairs))
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member …]`: how many members
/// were added (with `CH`, added or changed); with `INCR`, the member's new score.
pub async fn zadd(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let (flags, mut pairs) = add_arguments(args)?;
    // XX adds nothing, so it makes no set either (an empty head would answer EXISTS).
    if flags.xx && head(state, s, &key).await?.is_none() {
        return Ok(if flags.incr { Frame::Null } else { Frame::Integer(0) });
    }
    if flags.incr {
        let (by, member) = pairs.remove(0);
        return increment(state, s, &key, &member, by, flags).await;
    }
    // The last score given for a member is the one it keeps, as in Redis.
    pairs.reverse();
    let mut seen = std::collections::HashSet::new();
    pairs.retain(|(_, m)| seen.insert(m.clone()));
    let head = make_head(state, s, &key, Kind::SortedSet).await?;
    let writes =
        pairs.iter().map(|(new, member)| set_score(state, s, (&key, &head), member, *new, flags));
    let mut counted = 0;
    for (added, changed) in try_join_all(writes).await? {
        counted += i64::from(added || (flags.ch && changed));
    }
    Ok(Frame::Integer(counted))
}

/// Writes `new` as `member`'s score if `flags` allow it; whether it was added, and
/// whether its score changed.
async fn set_score(
    state: &NodeState,
    s: &Session,
    (key, head): (&Bytes, &Head),
    member: &Bytes,
    new: Score,
    flags: Flags,
) -> Result<(bool, bool), Frame> {
    let compared = flags.gt || flags.lt;
    let current = if compared { member_score(state, s, key, head, member).await? } else { None };
    if compared && !flags.allow(current, new) {
        return Ok((false, false));
    }
    let condition = match (flags.nx, flags.xx || current.is_some()) {
        (true, _) => Condition::Absent,
        (false, true) => Condition::Present,
        (false, false) => Condition::Always,
    };
    let change = Change::Put { value: Bytes::from(new.stored()), expiry: Expiry::Never };
    let request =
        WriteRequest { want_previous: true, condition, ..WriteRequest::new(change, None) };
    let outcome =
        super::collection::write_member(state, s, (key, head.lifetimes[0]), member, request)
            .await?;
    if outcome.refused.is_some() {
        return Ok((false, false));
    }
    let before = outcome.previous.as_deref().and_then(|p| Score::parse(p).ok());
    Ok((before.is_none(), before.is_none_or(|b| b.0 != new.0)))
}

/// `member`'s score in the set with `head`, `None` when it is not there.
async fn member_score(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    head: &Head,
    member: &[u8],
) -> Result<Option<Score>, Frame> {
    let value = field_value(state, s, key, head, member).await?;
    Ok(value.and_then(|v| Score::parse(&v).ok()))
}

/// Adds `by` to `member`'s score (from 0 when it is not there), as `flags` allow: the new
/// score, or nil when they did not. A finite score gains a finite increment as a float
/// counter, so increments through different nodes all count; an infinite one is set.
async fn increment(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    member: &Bytes,
    by: Score,
    flags: Flags,
) -> Result<Frame, Frame> {
    let head = make_head(state, s, key, Kind::SortedSet).await?;
    let current = member_score(state, s, key, &head, member).await?;
    // A new member's score is the increment itself (`-0` stays `-0` in the reply).
    let new = Score(current.map_or(by.0, |c| c.0 + by.0));
    if new.0.is_nan() {
        return Err(Frame::error("ERR resulting score is not a number (NaN)"));
    }
    if !flags.allow(current, new) {
        return Ok(Frame::Null);
    }
    let condition = match (flags.nx, flags.xx) {
        (true, _) => Condition::Absent,
        (_, true) => Condition::Present,
        _ => Condition::Always,
    };
    let finite = by.0.is_finite() && current.is_none_or(|c| c.0.is_finite());
    let change = if finite {
        Change::AddFloat(Float(by.0))
    } else {
        Change::Put { value: Bytes::from(new.stored()), expiry: Expiry::Never }
    };
    let request = WriteRequest { condition, ..WriteRequest::new(change, None) };
    let lifetime = head.lifetimes[0];
    let member_key = Bytes::from(halka_store::collection::member_key(key, lifetime, member));
    let outcome = super::apply(state, s, member_key, request).await?;
    if outcome.refused.is_some() {
        return Ok(Frame::Null);
    }
    // The counter's value, which counts increments made through other nodes too; a zero
    // keeps the sign Redis gives it.
    let written = outcome.value.as_deref().and_then(|v| Score::parse(v).ok());
    let reply = written.filter(|w| w.0 != 0.0 || new.0 != 0.0).unwrap_or(new);
    Ok(Frame::Double(reply.0))
}

/// `ZINCRBY key increment member`: the new score.
pub async fn zincrby(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, by, member) = (args.next_bytes()?, args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    increment(state, s, &key, &member, score(&by)?, Flags::default()).await
}

/// `ZSCORE key member`.
pub async fn zscore(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (key, member) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let Some(head) = head(state, s, &key).await? else { return Ok(Frame::Null) };
    let found = member_score(state, s, &key, &head, &member).await?;
    Ok(found.map_or(Frame::Null, |f| Frame::Double(f.0)))
}

/// `ZMSCORE key member [member …]`.
pub async fn zmscore(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let members = args.rest();
    if members.is_empty() {
        return Err(super::wrong_arity(&args.name));
    }
    let Some(head) = head(state, s, &key).await? else {
        return Ok(Frame::Array(vec![Frame::Null; members.len()]));
    };
    let reads = members.iter().map(|m| member_score(state, s, &key, &head, m));
    let found = try_join_all(reads).await?;
    Ok(Frame::Array(
        found.into_iter().map(|f| f.map_or(Frame::Null, |f| Frame::Double(f.0))).collect(),
    ))
}

/// `ZCARD key`: how many members (counted a page at a time).
pub async fn zcard(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let n = match head(state, s, &key).await? {
        Some(head) => count(state, s, &key, &head).await?,
        None => 0,
    };
    Ok(Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// Removes `members` from the sorted set at `key`; how many were there.
pub(super) async fn remove(
    state: &NodeState,
    s: &Session,
    key: &Bytes,
    members: impl IntoIterator<Item = Bytes>,
) -> Result<i64, Frame> {
    let Some(head) = head(state, s, key).await? else { return Ok(0) };
    let set = at(state, s, key);
    let removals = members.into_iter().map(|m| {
        let (set, head) = (&set, &head);
        async move { set.remove(head, &m).await }
    });
    let removed = try_join_all(removals).await.map_err(|e| cluster_error(&e))?;
    Ok(removed.into_iter().map(i64::from).sum())
}

/// `ZREM key member [member …]`: how many were in the set.
pub async fn zrem(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let mut members = args.rest();
    if members.is_empty() {
        return Err(super::wrong_arity(&args.name));
    }
    members.sort_unstable();
    members.dedup();
    Ok(Frame::Integer(remove(state, s, &key, members).await?))
}

/// Which end `ZPOPMIN` and `ZPOPMAX` take from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Min,
    Max,
}

/// `ZPOPMIN`, `ZPOPMAX key [count]`: removes and answers the members with the lowest
/// (highest) scores. Each is removed on condition it is still there at the set's first
/// owner, so two clients popping at once get different members while it is reachable;
/// a member another client took first is skipped for the next.
pub async fn zpop(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    end: End,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let counted = args.remaining() > 0;
    let want = if counted {
        let n = args.next_i64()?;
        usize::try_from(n)
            .map_err(|_| Frame::error("ERR value is out of range, must be positive"))?
    } else {
        1
    };
    args.finish()?;
    let Some(head) = head(state, s, &key).await? else { return Ok(Frame::Array(Vec::new())) };
    let mut members =
        halka_store::score::ranked(super::collection::fields(state, s, &key, &head).await?);
    if end == End::Max {
        members.reverse();
    }
    let set = at(state, s, &key);
    let mut popped = Vec::new();
    for (member, score) in members {
        if popped.len() == want {
            break;
        }
        if set.pop(&head, &member).await.map_err(|e| cluster_error(&e))? {
            popped.push((member, score));
        }
    }
    Ok(super::zrange::with_scores(popped, s.resp3 && counted))
}

/// `OBJECT ENCODING` of a sorted set: as Redis 7.0 would have it, `listpack` up to 128
/// members of at most 64 bytes each, else `skiplist`.
pub(super) fn encoding(members: &[(Bytes, Bytes)]) -> &'static str {
    if members.len() <= 128 && members.iter().all(|(m, _)| m.len() <= 64) {
        "listpack"
    } else {
        "skiplist"
    }
}
