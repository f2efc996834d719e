//! Sorted set range queries: `ZRANGE` in all its forms (by rank, `BYSCORE`, `BYLEX`,
//! `REV`, `LIMIT`), the older `ZRANGEBYSCORE`-style commands, `ZCOUNT`, `ZLEXCOUNT`,
//! `ZRANK`, the `ZREMRANGEBY…` commands and `ZRANGESTORE`. Each reads the whole set and
//! orders it (by score, then member): members are placed by hash, not by score, so no
//! replica holds them in order.

use super::zset::{ranked, remove, score};
use super::{Args, Session};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use halka_store::Score;

/// One end of a score range: `1.5` includes it, `(1.5` leaves it out.
#[derive(Debug, Clone, Copy)]
struct ScoreBound {
    value: f64,
    open: bool,
}

impl ScoreBound {
    fn parse(text: &[u8]) -> Result<Self, Frame> {
        let (open, number) = match text.strip_prefix(b"(") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let value = score(number).map_err(|_| Frame::error("ERR min or max is not a float"))?;
        Ok(Self { value: value.0, open })
    }
}

/// One end of a range of members (all of one score, for `BYLEX` to mean anything):
/// `-` and `+` are the ends, `[a` includes `a`, `(a` leaves it out.
#[derive(Debug, Clone)]
enum LexBound {
    Least,
    Most,
    Closed(Bytes),
    Open(Bytes),
}

impl LexBound {
    fn parse(text: &Bytes) -> Result<Self, Frame> {
        match text.first() {
            Some(b'-') if text.len() == 1 => Ok(Self::Least),
            Some(b'+') if text.len() == 1 => Ok(Self::Most),
            Some(b'[') => Ok(Self::Closed(text.slice(1..))),
            Some(b'(') => Ok(Self::Open(text.slice(1..))),
            _ => Err(Frame::error("ERR min or max not valid string range item")),
        }
    }

    fn below(&self, member: &[u8]) -> bool {
        match self {
            Self::Least => true,
            Self::Most => false,
            Self::Closed(b) => b.as_ref() <= member,
            Self::Open(b) => b.as_ref() < member,
        }
    }

    fn above(&self, member: &[u8]) -> bool {
        match self {
            Self::Least => false,
            Self::Most => true,
            Self::Closed(b) => member <= b.as_ref(),
            Self::Open(b) => member < b.as_ref(),
        }
    }
}

/// What a query selects.
#[derive(Debug, Clone)]
enum Range {
    /// Positions, negative from the end (in the query's direction).
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// A range query: what it selects, in which direction, and which part of that.
#[derive(Debug, Clone)]
pub(super) struct Query {
    range: Range,
    rev: bool,
    /// `LIMIT offset count`: a negative count is everything after the offset.
    limit: Option<(i64, i64)>,
    with_scores: bool,
}

/// The forms a range is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `ZRANGE`, `ZRANGESTORE`: by rank unless `BYSCORE` or `BYLEX` says otherwise.
    Any,
    /// `ZREVRANGE`.
    RevRank,
    /// `ZRANGEBYSCORE`, `ZREVRANGEBYSCORE`, `ZREMRANGEBYSCORE`, `ZCOUNT`.
    Score { rev: bool },
    /// `ZRANGEBYLEX`, `ZREVRANGEBYLEX`, `ZREMRANGEBYLEX`, `ZLEXCOUNT`.
    Lex { rev: bool },
    /// `ZREMRANGEBYRANK`.
    Rank,
}

impl Query {
    /// Reads `start stop` and the options `form` allows, refused as Redis refuses them.
    fn parse(args: &mut Args, form: Form) -> Result<Self, Frame> {
        let (start, stop) = (args.next_bytes()?, args.next_bytes()?);
        let (mut by, mut rev) = match form {
            Form::Any | Form::Rank => ("RANK", false),
            Form::RevRank => ("RANK", true),
            Form::Score { rev } => ("BYSCORE", rev),
            Form::Lex { rev } => ("BYLEX", rev),
        };
        let (mut limit, mut with_scores) = (None, false);
        while args.remaining() > 0 {
            let word = args.next_string()?.to_ascii_uppercase();
            match word.as_str() {
                "BYSCORE" | "BYLEX" if form == Form::Any => {
                    by = if word == "BYSCORE" { "BYSCORE" } else { "BYLEX" }
                }
                "REV" if form == Form::Any => rev = true,
                "LIMIT" if !matches!(form, Form::RevRank | Form::Rank) => {
                    limit = Some((args.next_i64()?, args.next_i64()?));
                }
                "WITHSCORES" if !matches!(form, Form::Lex { .. } | Form::Rank) => {
                    with_scores = true;
                }
                _ => return Err(Frame::error("ERR syntax error")),
            }
        }
        if limit.is_some() && by == "RANK" {
            return Err(Frame::error(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if with_scores && by == "BYLEX" {
            return Err(Frame::error(
                "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
            ));
        }
        // Reversed score and member ranges are written from the high end.
        let (low, high) = if rev && by != "RANK" { (stop, start) } else { (start, stop) };
        let range = match by {
            "BYSCORE" => Range::Score(ScoreBound::parse(&low)?, ScoreBound::parse(&high)?),
            "BYLEX" => Range::Lex(LexBound::parse(&low)?, LexBound::parse(&high)?),
            _ => Range::Rank(super::integer(&low)?, super::integer(&high)?),
        };
        Ok(Self { range, rev, limit, with_scores })
    }

    /// The members of `ranked` (in the set's order) this query selects, in the order it
    /// answers them.
    fn select(&self, mut ranked: Vec<(Bytes, Score)>) -> Vec<(Bytes, Score)> {
        if self.rev {
            ranked.reverse();
        }
        let picked: Vec<(Bytes, Score)> = match &self.range {
            Range::Rank(start, stop) => {
                let len = i64::try_from(ranked.len()).unwrap_or(i64::MAX);
                let from_end = |i: i64| if i < 0 { i + len } else { i };
                let (start, stop) = (from_end(*start).max(0), from_end(*stop).min(len - 1));
                if start > stop {
                    return Vec::new();
                }
                let (start, stop) = (start as usize, stop as usize);
                ranked.drain(start..=stop).collect()
            }
            Range::Score(min, max) => {
                let inside = |s: f64| {
                    (if min.open { s > min.value } else { s >= min.value })
                        && (if max.open { s < max.value } else { s <= max.value })
                };
                ranked.into_iter().filter(|(_, s)| inside(s.0)).collect()
            }
            Range::Lex(min, max) => {
                ranked.into_iter().filter(|(m, _)| min.below(m) && max.above(m)).collect()
            }
        };
        match self.limit {
            None => picked,
            Some((offset, _)) if offset < 0 => Vec::new(),
            Some((offset, count)) => {
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                picked.into_iter().skip(offset as usize).take(count).collect()
            }
        }
    }
}

/// Members, with their scores when `scores`: under RESP3 each pair an array of its own
/// when `nested` (as Redis answers `WITHSCORES`), else one flat array.
pub(super) fn with_scores(items: Vec<(Bytes, Score)>, nested: bool) -> Frame {
    let pairs = items.into_iter().map(|(m, s)| (Frame::Bulk(m), Frame::Double(s.0)));
    if nested {
        Frame::Array(pairs.map(|(m, s)| Frame::Array(vec![m, s])).collect())
    } else {
        Frame::Array(pairs.flat_map(|(m, s)| [m, s]).collect())
    }
}

fn reply(items: Vec<(Bytes, Score)>, query: &Query, s: &Session) -> Frame {
    if query.with_scores {
        with_scores(items, s.resp3)
    } else {
        Frame::Array(items.into_iter().map(|(m, _)| Frame::Bulk(m)).collect())
    }
}

/// `ZRANGE`, `ZREVRANGE`, `ZRANGEBYSCORE`, `ZREVRANGEBYSCORE`, `ZRANGEBYLEX`,
/// `ZREVRANGEBYLEX`: the members selected, in order.
pub async fn zrange(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    form: Form,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let query = Query::parse(args, form)?;
    let items = query.select(ranked(state, s, &key).await?);
    Ok(reply(items, &query, s))
}

/// `ZCOUNT key min max`, `ZLEXCOUNT key min max`: how many members the range holds.
pub async fn zcount(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    form: Form,
) -> Result<Frame, Frame> {
    let (_, selected) = plain_range(state, s, args, form).await?;
    Ok(Frame::Integer(i64::try_from(selected.len()).unwrap_or(i64::MAX)))
}

/// `ZREMRANGEBYRANK`, `ZREMRANGEBYSCORE`, `ZREMRANGEBYLEX key start stop`: removes the
/// members of the range (as `ZREM` removes each); how many were removed.
pub async fn zremrange(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    form: Form,
) -> Result<Frame, Frame> {
    let (key, selected) = plain_range(state, s, args, form).await?;
    Ok(Frame::Integer(remove(state, s, &key, selected.into_iter().map(|(m, _)| m)).await?))
}

/// `key start stop` without `WITHSCORES` or `LIMIT` (`ZCOUNT`, `ZREMRANGEBY…`): the key
/// and the members the range selects.
async fn plain_range(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    form: Form,
) -> Result<(Bytes, Vec<(Bytes, Score)>), Frame> {
    let key = args.next_bytes()?;
    let query = Query::parse(args, form)?;
    if query.with_scores || query.limit.is_some() {
        return Err(Frame::error("ERR syntax error"));
    }
    let selected = query.select(ranked(state, s, &key).await?);
    Ok((key, selected))
}

/// `ZRANK`, `ZREVRANK key member`: the member's position in the set's order, nil when it
/// is not there.
pub async fn zrank(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    rev: bool,
) -> Result<Frame, Frame> {
    let (key, member) = (args.next_bytes()?, args.next_bytes()?);
    args.finish()?;
    let mut members = ranked(state, s, &key).await?;
    if rev {
        members.reverse();
    }
    let at = members.iter().position(|(m, _)| *m == member);
    Ok(at.map_or(Frame::Null, |i| Frame::Integer(i64::try_from(i).unwrap_or(i64::MAX))))
}

/// `ZRANGESTORE destination source min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`:
/// the selected members and scores replace whatever `destination` held; how many.
pub async fn zrangestore(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let (destination, source) = (args.next_bytes()?, args.next_bytes()?);
    let query = Query::parse(args, Form::Any)?;
    if query.with_scores {
        return Err(Frame::error("ERR syntax error"));
    }
    let items = query.select(ranked(state, s, &source).await?);
    store(state, s, destination, items).await
}

/// Writes `items` as a new sorted set at `destination`, replacing what it held (nothing
/// when `items` is empty); how many members it holds.
pub(super) async fn store(
    state: &NodeState,
    s: &Session,
    destination: Bytes,
    items: Vec<(Bytes, Score)>,
) -> Result<Frame, Frame> {
    let n = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let delete = halka_cluster::collection::delete_at_first_owner();
    super::collection::write(state, s, destination.clone(), delete).await?;
    if items.is_empty() {
        return Ok(Frame::Integer(0));
    }
    let kind = halka_store::Kind::SortedSet;
    let lifetime = super::collection::make_head(state, s, &destination, kind).await?.lifetimes[0];
    let to = &destination;
    let writes = items.into_iter().map(|(member, score)| async move {
        let value = Bytes::from(score.stored());
        let change = halka_store::Change::Put { value, expiry: halka_store::Expiry::Never };
        let request = halka_cluster::WriteRequest::new(change, None);
        super::collection::write_member(state, s, (to, lifetime), &member, request).await
    });
    futures::future::try_join_all(writes).await?;
    Ok(Frame::Integer(n))
}
