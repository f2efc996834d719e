//! Key-value commands: GET, SET [NX|XX], DEL, EXISTS, MGET, MSET.

use super::collection::{Held, held, string_value};
use super::expiry::{self, Unit};
use super::{Args, Session, apply, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::future::join_all;
use halka_cluster::{GetResult, WriteRequest};
use halka_store::{Change, Condition, Expiry};

pub async fn get(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    if got.head().is_some() {
        return Ok(string_value(state, s, &key, &got).await?.map_or(Frame::Null, Frame::Bulk));
    }
    Ok(got.value().map_or(Frame::Null, Frame::Bulk))
}

/// `STRLEN key`: the length of the value, 0 for a missing key.
pub async fn strlen(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    let value = string_value(state, s, &key, &got).await?;
    Ok(Frame::Integer(value.map_or(0, |v| i64::try_from(v.len()).unwrap_or(i64::MAX))))
}

/// `GETRANGE key start end`: bytes `start..=end` of the value, with negative offsets
/// counted from the end, as Redis does.
pub async fn getrange(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let start = args.next_i64()?;
    let end = args.next_i64()?;
    args.finish()?;
    let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    let Some(value) = string_value(state, s, &key, &got).await? else {
        return Ok(Frame::Bulk(Bytes::new()));
    };
    Ok(Frame::Bulk(byte_range(&value, start, end)))
}

/// Redis's `GETRANGE` arithmetic: negative offsets from the end, clamped to the value.
fn byte_range(value: &Bytes, start: i64, end: i64) -> Bytes {
    let len = i64::try_from(value.len()).unwrap_or(i64::MAX);
    let from_end = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (from_end(start), from_end(end).min(len - 1));
    if len == 0 || start > end || start >= len {
        return Bytes::new();
    }
    // Both lie in 0..len here.
    value.slice(usize::try_from(start).unwrap_or(0)..=usize::try_from(end).unwrap_or(0))
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]`. NX and XX are checked
/// at the key's first answering owner under its lock, so concurrent conditional writes
/// through any nodes have one winner while that replica is up.
pub async fn set(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    let mut condition = Condition::Always;
    let mut expiry = None;
    let mut get = false;
    let mut options = args.rest().into_iter();
    while let Some(opt) = options.next() {
        let upper = opt.to_ascii_uppercase();
        match upper.as_slice() {
            b"NX" if condition == Condition::Always => condition = Condition::Absent,
            b"XX" if condition == Condition::Always => condition = Condition::Present,
            b"GET" if !get => get = true,
            b"KEEPTTL" if expiry.is_none() => expiry = Some(Expiry::Keep),
            flag if expiry.is_none() && expiry::time_flag(flag).is_some() => {
                let (unit, absolute) = expiry::time_flag(flag).unwrap_or((Unit::Seconds, false));
                // A flag without its amount is a syntax error, as in Redis.
                let amount = options.next().ok_or_else(|| Frame::error("ERR syntax error"))?;
                let amount = super::integer(&amount)?;
                if amount <= 0 {
                    return Err(expiry::invalid_expire_time("set"));
                }
                expiry = Some(Expiry::At(expiry::expiry_at(state, amount, unit, absolute, "set")?));
            }
            _ => return Err(Frame::error("ERR syntax error")),
        }
    }
    let change = Change::Put { value, expiry: expiry.unwrap_or(Expiry::Never) };
    let request = WriteRequest { condition, want_previous: get, ..WriteRequest::new(change, None) };
    let outcome = put_over_empty_hash(state, s, key, request).await?;
    if get {
        return Ok(outcome.previous.map_or(Frame::Null, Frame::Bulk));
    }
    Ok(if outcome.refused.is_some() { Frame::Null } else { Frame::ok() })
}

/// Applies `request` (a `SET`); when `NX` was refused because the key holds a hash
/// whose fields were all removed — no key for Redis — applies it again over that head,
/// on condition that the key's record is still the one read.
pub(super) async fn put_over_empty_hash(
    state: &NodeState,
    s: &Session,
    key: Bytes,
    request: WriteRequest,
) -> Result<halka_store::Outcome, Frame> {
    let retry = (request.condition == Condition::Absent).then(|| request.clone());
    let outcome = apply(state, s, key.clone(), request).await?;
    let Some(mut request) = retry.filter(|_| outcome.refused.is_some()) else {
        return Ok(outcome);
    };
    let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    if got.head().is_none() || !matches!(held(state, s, &key, &got).await?, Held::Nothing) {
        return Ok(outcome);
    }
    request.condition = Condition::Unchanged(got.context().clone());
    request.context = Some(got.context().clone());
    apply(state, s, key, request).await
}

/// `DEL key...`: counts keys that had a value, as Redis does, so it reads before deleting.
/// The read is a quorum read rather than a condition at one replica: a key that replica
/// missed is still deleted.
pub async fn del(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let mut keys = nonempty(args)?;
    // A key named twice is deleted, and counted, once (EXISTS counts every mention).
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    let results = join_all(keys.into_iter().map(|k| async move {
        let got = state.coordinator.get(k.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
        let existed = !matches!(held(state, s, &k, &got).await?, Held::Nothing);
        // A head without fields goes too, though it counts as no key.
        if got.value().is_some() {
            state.coordinator.write(k, None, None, s.w).await.map_err(|e| cluster_error(&e))?;
        }
        Ok::<_, Frame>(existed)
    }))
    .await;
    let mut count = 0;
    for r in results {
        count += i64::from(r?);
    }
    Ok(Frame::Integer(count))
}

/// Keys a multi-key command reads from the cluster at once: the rest wait, so one command
/// holds at most this many records (times R answers) in memory.
const KEYS_IN_FLIGHT: usize = 64;

/// Reads each distinct key of `keys` once, `KEYS_IN_FLIGHT` at a time, keeping what
/// `extract` takes from each answer (with its size in bytes: over `budget` in total, the
/// command fails at once), and returns it for every key in the order given — a key named
/// twice is read once and reported twice.
async fn read_keys<T: Clone>(
    state: &NodeState,
    s: &Session,
    keys: &[Bytes],
    budget: usize,
    extract: impl Fn(&GetResult) -> (T, usize),
) -> Result<Vec<T>, Frame> {
    use futures::StreamExt;
    let mut distinct: Vec<Bytes> = keys.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut reads = futures::stream::iter(distinct)
        .map(|k| async move { (k.clone(), state.coordinator.get(k, s.r).await) })
        .buffer_unordered(KEYS_IN_FLIGHT);
    let mut found = std::collections::HashMap::new();
    let mut used = 0_usize;
    while let Some((k, r)) = reads.next().await {
        let (kept, size) = extract(&r.map_err(|e| cluster_error(&e))?);
        used = used.saturating_add(size);
        if used > budget {
            return Err(over_budget(budget));
        }
        found.insert(k, kept);
    }
    Ok(keys.iter().filter_map(|k| found.get(k).cloned()).collect())
}

fn over_budget(max: usize) -> Frame {
    Frame::error(format!(
        "ERR the reply would exceed {max} bytes (limits.max_reply_bytes); ask for fewer keys \
         at a time"
    ))
}

pub async fn exists(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let keys = nonempty(args)?;
    let found = read_keys(state, s, &keys, usize::MAX, |got| (got.clone(), 1)).await?;
    // As in Redis, a key named twice counts twice.
    let mut count = 0;
    for (key, got) in keys.iter().zip(&found) {
        count += i64::from(!matches!(held(state, s, key, got).await?, Held::Nothing));
    }
    Ok(Frame::Integer(count))
}

pub async fn mget(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let keys = nonempty(args)?;
    let max = state.config.limits.max_reply_bytes;
    let values = read_keys(state, s, &keys, max, |got| {
        // As in Redis, a key of another type reads as missing.
        let v = if got.head().is_some() { None } else { got.value() };
        let size = v.as_ref().map_or(5, |v| v.len() + 16);
        (v, size)
    })
    .await?;
    // Repeated keys share their bytes here, but the encoded reply repeats them.
    let reply: usize = values.iter().map(|v| v.as_ref().map_or(5, |v| v.len() + 16)).sum();
    if reply > max {
        return Err(over_budget(max));
    }
    Ok(Frame::Array(values.into_iter().map(|v| v.map_or(Frame::Null, Frame::Bulk)).collect()))
}

/// `MSET k v [k v ...]`: all pairs are validated before any is written.
pub async fn mset(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let pairs = args.rest();
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(super::wrong_arity("mset"));
    }
    let limits = &state.config.limits;
    for pair in pairs.chunks(2) {
        limits.check_key(&pair[0]).map_err(|e| Frame::error(format!("ERR {e}")))?;
        limits.check_value(&pair[1]).map_err(|e| Frame::error(format!("ERR {e}")))?;
    }
    let writes = pairs
        .chunks(2)
        .map(|p| state.coordinator.write(p[0].clone(), Some(p[1].clone()), None, s.w));
    for r in join_all(writes).await {
        r.map_err(|e| cluster_error(&e))?;
    }
    Ok(Frame::ok())
}

/// `TYPE key`: `string`, `hash` or `none`.
pub async fn type_of(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    let name = match held(state, s, &key, &got).await? {
        Held::Nothing => "none",
        Held::String(_) => "string",
        Held::Collection(head) => head.kind.name(),
    };
    Ok(Frame::Simple(name.into()))
}

fn nonempty(args: &mut Args) -> Result<Vec<Bytes>, Frame> {
    if args.remaining() == 0 {
        return Err(super::wrong_arity(&args.name));
    }
    Ok(args.rest())
}

#[cfg(test)]
mod tests {
    use super::byte_range;
    use bytes::Bytes;

    #[test]
    fn getrange_counts_like_redis() {
        let v = Bytes::from_static(b"This is a string");
        assert_eq!(byte_range(&v, 0, 3), "This");
        assert_eq!(byte_range(&v, -3, -1), "ing");
        assert_eq!(byte_range(&v, 0, -1), "This is a string");
        assert_eq!(byte_range(&v, 10, 100), "string");
        assert_eq!(byte_range(&v, 5, 2), "");
        assert_eq!(byte_range(&v, 100, 200), "");
        assert_eq!(byte_range(&v, -100, 3), "This");
        assert_eq!(byte_range(&Bytes::new(), 0, -1), "");
    }
}
