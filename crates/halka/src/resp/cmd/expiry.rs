//! Expiry: `EXPIRE` and friends, `TTL` and friends, `PERSIST`, `GETEX`, and the time
//! arithmetic `SET … EX` shares with them.
//!
//! An expiry is an absolute wall-clock time stored with the version, so every replica and
//! coordinator agrees on it; each judges "expired yet?" by its own clock, so nodes whose
//! clocks differ by d see a key vanish up to d apart (see DESIGN.md, "Expiry").

use super::{Args, Session, apply, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use halka_cluster::WriteRequest;
use halka_store::{Change, ExpireWhen, Expiry, Refusal};

/// The unit a command counts time in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    Seconds,
    Millis,
}

impl Unit {
    fn micros(self) -> i128 {
        match self {
            Unit::Seconds => 1_000_000,
            Unit::Millis => 1_000,
        }
    }
}

/// The absolute expiry (microseconds since the epoch) for `amount` of `unit`, relative to
/// the coordinator's clock or (`absolute`) since the epoch. A time already past gives 0:
/// the key then reads as missing at once, as Redis deletes it.
pub(super) fn expiry_at(
    state: &NodeState,
    amount: i64,
    unit: Unit,
    absolute: bool,
    command: &str,
) -> Result<u64, Frame> {
    let now_us = i128::from(state.coordinator.now_us());
    let base = if absolute { 0 } else { now_us };
    // Redis's bounds: seconds whose milliseconds overflow, or a relative time that
    // overflows once the current time is added. Anything else is taken: a time past
    // deletes the key, a time beyond what a microsecond clock holds keeps it for ever.
    let seconds_overflow = i128::from(amount).abs() > i128::from(i64::MAX) / 1_000;
    let ms = i128::from(amount) * unit.micros() / 1_000;
    let relative_overflow = !absolute && ms > i128::from(i64::MAX) - now_us / 1_000;
    if (unit == Unit::Seconds && seconds_overflow) || relative_overflow {
        return Err(invalid_expire_time(command));
    }
    let at = base + ms * 1_000;
    Ok(u64::try_from(at.clamp(0, i128::from(u64::MAX))).unwrap_or(u64::MAX))
}

pub(super) fn invalid_expire_time(command: &str) -> Frame {
    Frame::error(format!("ERR invalid expire time in '{}' command", command.to_lowercase()))
}

/// `EXPIRE`/`PEXPIRE`/`EXPIREAT`/`PEXPIREAT key time [NX|XX|GT|LT]`: 1 when the expiry
/// was set, 0 when the key is missing or the condition does not hold.
pub async fn expire(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    unit: Unit,
    absolute: bool,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let amount = args.next_i64()?;
    let when = expire_when(args.rest())?;
    let at = expiry_at(state, amount, unit, absolute, &args.name)?;
    let change = Change::Touch { expiry: Expiry::At(at), when };
    let outcome = apply(state, s, key, WriteRequest::new(change, None)).await?;
    Ok(Frame::Integer(i64::from(outcome.refused.is_none())))
}

/// The condition `NX`, `XX`, `GT` and `LT` make, combined as Redis 7 combines them: `XX`
/// goes with `GT` or `LT` (a key without an expiry counts as expiring never, so `GT`
/// already needs one), `NX` with none of them, `GT` not with `LT`.
fn expire_when(options: Vec<bytes::Bytes>) -> Result<ExpireWhen, Frame> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in options {
        match opt.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return Err(Frame::error(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(&opt)
                )));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Frame::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Frame::error("ERR GT and LT options at the same time are not compatible"));
    }
    Ok(match (nx, xx, gt, lt) {
        (true, ..) => ExpireWhen::NoExpiry,
        (_, _, true, _) => ExpireWhen::Later,
        (_, true, _, true) => ExpireWhen::EarlierThanSet,
        (_, _, _, true) => ExpireWhen::Earlier,
        (_, true, ..) => ExpireWhen::HasExpiry,
        _ => ExpireWhen::Always,
    })
}

/// `PERSIST key`: 1 when an expiry was removed, 0 when the key is missing or had none.
pub async fn persist(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let change = Change::Touch { expiry: Expiry::Never, when: ExpireWhen::HasExpiry };
    let outcome = apply(state, s, key, WriteRequest::new(change, None)).await?;
    Ok(Frame::Integer(i64::from(outcome.refused.is_none())))
}

/// What `TTL` and friends report.
#[derive(Debug, Clone, Copy)]
pub(super) enum Report {
    /// Time left (`TTL`, `PTTL`).
    Left(Unit),
    /// The absolute time (`EXPIRETIME`, `PEXPIRETIME`).
    At(Unit),
}

/// `TTL`/`PTTL`/`EXPIRETIME`/`PEXPIRETIME key`: -2 for a missing key, -1 for one without
/// expiry, otherwise the time left (rounded as Redis rounds it) or the expiry time.
pub async fn ttl(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    report: Report,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    args.finish()?;
    let got = state.coordinator.get(key, s.r).await.map_err(|e| cluster_error(&e))?;
    if got.value().is_none() {
        return Ok(Frame::Integer(-2));
    }
    let Some(at) = got.expires_at_us() else { return Ok(Frame::Integer(-1)) };
    let at = i128::from(at);
    let n = match report {
        // Redis rounds the seconds left to the nearest one.
        Report::Left(Unit::Seconds) => (at - i128::from(got.now_us) + 500_000) / 1_000_000,
        Report::Left(Unit::Millis) => (at - i128::from(got.now_us) + 500) / 1_000,
        Report::At(unit) => at / unit.micros(),
    };
    Ok(Frame::Integer(i64::try_from(n.max(0)).unwrap_or(i64::MAX)))
}

/// `GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST]`: the value, after changing its expiry
/// when an option says so.
pub async fn getex(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let options = args.rest();
    let expiry = match options.as_slice() {
        [] => Ok(None),
        [flag] if flag.eq_ignore_ascii_case(b"PERSIST") => Ok(Some(Expiry::Never)),
        [flag, amount] => {
            let (unit, absolute) =
                time_flag(flag).ok_or_else(|| Frame::error("ERR syntax error"))?;
            getex_expiry(state, amount, unit, absolute).map(Some)
        }
        _ => return Err(Frame::error("ERR syntax error")),
    };
    // As Redis: a missing key answers nil before its time is judged.
    let Ok(Some(expiry)) = expiry else {
        let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
        // A hash is the wrong type before its time is judged, too.
        let value = super::collection::string_value(state, s, &key, &got).await?;
        let value = value.map_or(Frame::Null, Frame::Bulk);
        return match expiry {
            Err(refused) if value != Frame::Null => Err(refused),
            _ => Ok(value),
        };
    };
    let request = WriteRequest {
        want_previous: true,
        ..WriteRequest::new(Change::Touch { expiry, when: ExpireWhen::Always }, None)
    };
    let outcome = apply(state, s, key, request).await?;
    Ok(outcome.previous.map_or(Frame::Null, Frame::Bulk))
}

/// `GETEX`'s new expiry from its amount, or Redis's error for it.
fn getex_expiry(
    state: &NodeState,
    amount: &[u8],
    unit: Unit,
    absolute: bool,
) -> Result<Expiry, Frame> {
    let amount = super::integer(amount)?;
    if amount <= 0 {
        return Err(invalid_expire_time("getex"));
    }
    Ok(Expiry::At(expiry_at(state, amount, unit, absolute, "getex")?))
}

/// `EX`, `PX`, `EXAT`, `PXAT`: the unit and whether the time is absolute.
pub(super) fn time_flag(flag: &[u8]) -> Option<(Unit, bool)> {
    match flag.to_ascii_uppercase().as_slice() {
        b"EX" => Some((Unit::Seconds, false)),
        b"PX" => Some((Unit::Millis, false)),
        b"EXAT" => Some((Unit::Seconds, true)),
        b"PXAT" => Some((Unit::Millis, true)),
        _ => None,
    }
}

/// `SETEX key seconds value` / `PSETEX key ms value`.
pub async fn setex(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    unit: Unit,
) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let amount = args.next_i64()?;
    let value: Bytes = args.next_bytes()?;
    args.finish()?;
    if amount <= 0 {
        return Err(invalid_expire_time(&args.name));
    }
    let at = expiry_at(state, amount, unit, false, &args.name)?;
    let change = Change::Put { value, expiry: Expiry::At(at) };
    apply(state, s, key, WriteRequest::new(change, None)).await?;
    Ok(Frame::ok())
}

/// A refusal the client must hear about as an error (not a condition that did not hold).
pub(super) fn refusal_error(refusal: Refusal, limit: usize) -> Option<Frame> {
    match refusal {
        Refusal::ConditionNotMet | Refusal::NoSuchKey => None,
        Refusal::Counter(e) => Some(Frame::error(format!("ERR {e}"))),
        Refusal::TooLarge => Some(Frame::error(format!(
            "ERR string exceeds maximum allowed size ({limit} bytes, limits.max_value_bytes)"
        ))),
        Refusal::RecordTooLarge { .. } | Refusal::CounterExhausted => {
            Some(Frame::error(format!("ERR {refusal}")))
        }
        // Redis's own words, which carry their own prefix.
        Refusal::WrongType | Refusal::NotAnHll => Some(Frame::error(refusal.to_string())),
    }
}
