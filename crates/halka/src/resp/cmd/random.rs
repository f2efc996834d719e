//! Random members: `SRANDMEMBER`, `SPOP`, `HRANDFIELD` and `ZRANDMEMBER`. Members are drawn from a
//! random place in the collection's hashes (`Collection::sample`), reading a page or so
//! rather than the whole collection. `SPOP` removes what it draws at the collection's
//! first owner on condition that the member is still there, so two clients popping
//! through different nodes get different members while that owner is reachable.

use super::collection::{at, read_head};
use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use halka_store::{Head, Kind};
use rand::Rng;

/// Rounds of `SPOP` in which other clients took every member drawn before it gives up.
const POP_ROUNDS: usize = 4;

/// How many members a command with a count wants: `Distinct(n)` for a positive count,
/// `Repeating(n)` for a negative one (members may repeat, as in Redis).
#[derive(Debug, Clone, Copy)]
enum Want {
    Distinct(usize),
    Repeating(usize),
}

fn count(args: &mut Args) -> Result<Option<Want>, Frame> {
    if args.remaining() == 0 {
        return Ok(None);
    }
    let n = args.next_i64()?;
    let size = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
    Ok(Some(if n < 0 { Want::Repeating(size) } else { Want::Distinct(size) }))
}

/// Up to `want`'s members of the collection at `key` (with `head`), from a random place.
async fn draw(
    state: &NodeState,
    s: &Session,
    (key, head): (&Bytes, &Head),
    want: Want,
) -> Result<Vec<(Bytes, Bytes)>, Frame> {
    let collection = at(state, s, key);
    let start = rand::random::<u32>();
    let budget = state.config.limits.max_reply_bytes;
    match want {
        Want::Distinct(n) => {
            collection.sample(head, start, n, budget).await.map_err(|e| cluster_error(&e))
        }
        // Independent draws from a pool of distinct members gathered from one place.
        Want::Repeating(n) => {
            let pool = collection.sample(head, start, n, budget).await;
            let pool = pool.map_err(|e| cluster_error(&e))?;
            if pool.is_empty() {
                return Ok(pool);
            }
            let weight = pool.iter().map(|(m, v)| m.len() + v.len() + 16).max().unwrap_or(16);
            if n.saturating_mul(weight) > budget {
                return Err(too_large(budget));
            }
            let mut rng = rand::rng();
            Ok((0..n).map(|_| pool[rng.random_range(0..pool.len())].clone()).collect())
        }
    }
}

fn too_large(budget: usize) -> Frame {
    Frame::error(format!(
        "ERR the reply would exceed {budget} bytes (limits.max_reply_bytes); ask for fewer"
    ))
}

/// `SRANDMEMBER key [count]`.
pub async fn srandmember(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let want = count(args)?;
    args.finish()?;
    let Some(head) = read_head(state, s, &key, Kind::Set).await? else {
        return Ok(want.map_or(Frame::Null, |_| Frame::Array(Vec::new())));
    };
    let drawn = draw(state, s, (&key, &head), want.unwrap_or(Want::Distinct(1))).await?;
    let mut members = drawn.into_iter().map(|(m, _)| Frame::Bulk(m));
    Ok(match want {
        None => members.next().unwrap_or(Frame::Null),
        Some(_) => Frame::Array(members.collect()),
    })
}

/// `SPOP key [count]`: removes and answers members drawn at random. A member another
/// client popped first is skipped, and another drawn in its place.
pub async fn spop(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let want = count(args)?;
    args.finish()?;
    if let Some(Want::Repeating(_)) = want {
        return Err(Frame::error("ERR value is out of range, must be positive"));
    }
    let Some(head) = read_head(state, s, &key, Kind::Set).await? else {
        return Ok(want.map_or(Frame::Null, |_| Frame::Array(Vec::new())));
    };
    let n = match want {
        Some(Want::Distinct(n)) => n,
        _ => 1,
    };
    let set = at(state, s, &key);
    let (mut popped, mut missed) = (Vec::new(), 0);
    // Each round draws afresh, from a new place, what is still missing. A round that
    // draws nothing found the set empty; rounds whose every member another client took
    // first are given up after a few, answering what was popped.
    while popped.len() < n && missed < POP_ROUNDS {
        let drawn = draw(state, s, (&key, &head), Want::Distinct(n - popped.len())).await?;
        if drawn.is_empty() {
            break;
        }
        let before = popped.len();
        for (member, _) in drawn {
            if set.pop(&head, &member).await.map_err(|e| cluster_error(&e))? {
                popped.push(Frame::Bulk(member));
            }
        }
        missed += usize::from(popped.len() == before);
    }
    Ok(match want {
        None => popped.pop().unwrap_or(Frame::Null),
        Some(_) => Frame::Array(popped),
    })
}

/// `HRANDFIELD key [count [WITHVALUES]]`.
pub async fn hrandfield(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    random_members(state, s, args, Kind::Hash).await
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`.
pub async fn zrandmember(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    random_members(state, s, args, Kind::SortedSet).await
}

/// Members of a hash or sorted set drawn at random, with their values (a hash's) or
/// scores (a sorted set's) when asked for.
async fn random_members(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    kind: Kind,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let want = count(args)?;
    let word = if kind == Kind::Hash { "WITHVALUES" } else { "WITHSCORES" };
    let values = match args.remaining() {
        0 => false,
        1 if want.is_some() && args.next_string()?.eq_ignore_ascii_case(word) => true,
        _ => return Err(Frame::error("ERR syntax error")),
    };
    let Some(head) = read_head(state, s, &key, kind).await? else {
        return Ok(want.map_or(Frame::Null, |_| Frame::Array(Vec::new())));
    };
    let drawn = draw(state, s, (&key, &head), want.unwrap_or(Want::Distinct(1))).await?;
    if want.is_none() {
        return Ok(drawn.into_iter().next().map_or(Frame::Null, |(f, _)| Frame::Bulk(f)));
    }
    let value = |v: Bytes| match kind {
        Kind::SortedSet => {
            halka_store::Score::parse(&v).map_or(Frame::Null, |x| Frame::Double(x.0))
        }
        _ => Frame::Bulk(v),
    };
    let items = drawn.into_iter().flat_map(|(f, v)| {
        let pair = if values { vec![Frame::Bulk(f), value(v)] } else { vec![Frame::Bulk(f)] };
        if s.resp3 && values { vec![Frame::Array(pair)] } else { pair }
    });
    Ok(Frame::Array(items.collect()))
}
