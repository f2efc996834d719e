//! Client writes as the coordinating replica applies them.
//!
//! A [`Write`] names a [`Change`] — store a value, delete, change an expiry, add to a
//! counter, append — and the coordinating replica works out the new version from the
//! record it holds, under the key's lock. Doing it there rather than at the node that took
//! the client's request is what makes `INCR`, `EXPIRE`, `APPEND` and conditional writes
//! (`SET NX`) read-modify-write steps that no concurrent write through the same replica can
//! slip between. The other replicas then receive the resulting record by merge, as for any
//! write.
//!
//! The coordinating replica decides with its own clock's view of "now": the write's
//! timestamp, taken by the coordinator.

use crate::LimitError;
use crate::counter::{Counter, CounterError, Float, parse_float, parse_integer};
use crate::record::{Record, Version};
use crate::validate::{InvalidRecord, MAX_NUMBERED};
use crate::{Dot, Head, Kind, NodeId, VersionVector};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use thiserror::Error;

/// What a write does to the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Store `value` (`SET`).
    Put { value: Bytes, expiry: Expiry },
    /// Write a tombstone (`DEL`).
    Delete,
    /// Keep the live value, give it a new expiry (`EXPIRE`, `PERSIST`, `GETEX`). Refused
    /// when the key holds no live value or `when` does not hold.
    Touch { expiry: Expiry, when: ExpireWhen },
    /// Add to the key's counter (`INCRBY`); a key holding an integer value starts a
    /// counter from it, an absent key from zero. The expiry is kept.
    Add(i64),
    /// Add to the key's counter in floating point (`INCRBYFLOAT`); a key holding a number
    /// starts a counter from it, an absent key from zero. The expiry is kept.
    AddFloat(Float),
    /// Append to the live value, or store it if there is none (`APPEND`). Expiry kept.
    Append(Bytes),
    /// Overwrite the live value from `offset`, padding with zero bytes (`SETRANGE`).
    /// Expiry kept.
    SetRange { offset: u64, bytes: Bytes },
    /// Make the key a collection of `kind` unless it is one (`HSET` and friends): a new
    /// head with a new lifetime when the key holds nothing live, nothing written when it
    /// holds such a collection already, refused when it holds anything else. The
    /// outcome's `head` names the collection either way.
    Create(Kind),
    /// Raise a HyperLogLog's registers (`PFADD`, `PFMERGE`): the value becomes the
    /// registers' maximum over every live version and these (see `hll::merged`). The
    /// outcome's number is 1 when a register grew (or the key was made), else 0. Expiry
    /// kept.
    Registers(Vec<(u16, u8)>),
}

impl Change {
    /// Whether applying the change twice leaves the same value as applying it once. A
    /// coordinator must not retry a change that is not on another replica after the first
    /// may have applied it: an `INCR` would count twice.
    #[must_use]
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Change::Put { .. } | Change::Delete | Change::Touch { .. } | Change::Registers(_)
        )
    }
}

/// The expiry a new version gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiry {
    /// None: the value lives until overwritten or deleted.
    Never,
    /// At this wall-clock time (microseconds).
    At(u64),
    /// Whatever the live value had (`KEEPTTL`).
    Keep,
}

/// When a [`Change::Touch`] applies, as `EXPIRE`'s `NX`, `XX`, `GT` and `LT` say. A value
/// without expiry counts as expiring at infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireWhen {
    Always,
    /// Only when the value has no expiry.
    NoExpiry,
    /// Only when it has one.
    HasExpiry,
    /// Only when the new expiry is later.
    Later,
    /// Only when the new expiry is earlier.
    Earlier,
    /// Only when it has one and the new one is earlier (`XX LT`).
    EarlierThanSet,
}

/// What must hold at the coordinating replica for a write to happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    Always,
    /// The key holds no live value (`NX`).
    Absent,
    /// The key holds a live value (`XX`).
    Present,
    /// The replica's record has seen exactly this context: nothing was written to the
    /// key since the client read it (HTTP `If-Match`, compare-and-set).
    Unchanged(VersionVector),
}

/// A write as the coordinating replica applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    pub change: Change,
    /// The causal context the client read (empty for a blind write). Versions it covers
    /// are replaced; others remain as siblings.
    pub context: VersionVector,
    /// See [`Version::timestamp_us`]. Also the coordinator's "now" for expiry.
    pub timestamp_us: u64,
    /// Replace every version the coordinating replica holds, as if the client had read
    /// them: the semantics of a plain `SET`/`DEL` from a client that keeps no context.
    /// Versions the coordinating replica has not seen still survive as siblings. Changes
    /// other than `Put` and `Delete` always replace: they are derived from what the
    /// replica holds.
    pub overwrite: bool,
    pub condition: Condition,
    /// Report the value the key held before ([`Outcome::previous`]): `SET … GET`,
    /// `GETSET`, `GETDEL`, `GETEX`.
    pub want_previous: bool,
    /// The media type a `Put` stores with its value (HTTP `Content-Type`). Changes that
    /// edit a live value keep its type.
    pub content_type: Option<Box<str>>,
}

impl Write {
    /// A write of `change` with the client's `context` (`None`: replace what the
    /// coordinating replica holds), unconditional.
    #[must_use]
    pub fn new(change: Change, context: Option<VersionVector>, timestamp_us: u64) -> Self {
        Self {
            change,
            overwrite: context.is_none(),
            context: context.unwrap_or_default(),
            timestamp_us,
            condition: Condition::Always,
            want_previous: false,
            content_type: None,
        }
    }

    /// A plain store (`Some`) or delete (`None`), as most callers make.
    #[must_use]
    pub fn value(value: Option<Bytes>, context: Option<VersionVector>, timestamp_us: u64) -> Self {
        let change = match value {
            Some(value) => Change::Put { value, expiry: Expiry::Never },
            None => Change::Delete,
        };
        Self::new(change, context, timestamp_us)
    }

    /// The bytes the write itself carries, which size limits apply to.
    #[must_use]
    pub fn payload(&self) -> Option<&Bytes> {
        match &self.change {
            Change::Put { value, .. } | Change::Append(value) => Some(value),
            Change::SetRange { bytes, .. } => Some(bytes),
            Change::Delete
            | Change::Touch { .. }
            | Change::Add(_)
            | Change::AddFloat(_)
            | Change::Create(_)
            | Change::Registers(_) => None,
        }
    }
}

/// Why the coordinating replica did not apply a write. Nothing was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Refusal {
    #[error("the write's condition does not hold")]
    ConditionNotMet,
    #[error("no such key")]
    NoSuchKey,
    #[error(transparent)]
    Counter(#[from] CounterError),
    #[error("string exceeds maximum allowed size")]
    TooLarge,
    /// The key holds another type than the change works on.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// The key holds a string that is not a HyperLogLog (Redis's words).
    #[error("WRONGTYPE Key is not a valid HyperLogLog string value.")]
    NotAnHll,
    /// This node has numbered [`MAX_NUMBERED`] writes to the key and can number no more.
    /// Only a forged record from a peer gets a key there; another owner can still
    /// coordinate writes to it.
    #[error("{}", self.limit_error().map(|e| e.to_string()).unwrap_or_default())]
    CounterExhausted,
    /// The write would make the key's record larger than `limits.max_record_bytes`.
    #[error("{}", self.limit_error().map(|e| e.to_string()).unwrap_or_default())]
    RecordTooLarge { size: u64, versions: u32, max: u64 },
}

impl Refusal {
    /// The limit a refusal enforces, for refusals that are the client's error whatever the
    /// command: the coordinator reports them as [`LimitError`]s.
    #[must_use]
    pub fn limit_error(&self) -> Option<LimitError> {
        let to = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        match *self {
            Refusal::RecordTooLarge { size, versions, max } => Some(LimitError::RecordTooLarge {
                size: to(size),
                versions: versions as usize,
                max: to(max),
            }),
            Refusal::CounterExhausted => Some(LimitError::CounterExhausted),
            _ => None,
        }
    }
}

/// What the coordinating replica reports about a write besides the record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Why nothing was written, if nothing was.
    pub refused: Option<Refusal>,
    /// The key's value before the write, when the write asked for it.
    pub previous: Option<Bytes>,
    /// A counter's new value (`INCR`), or the new length of the value (`APPEND`,
    /// `SETRANGE`).
    pub number: Option<i64>,
    /// The value the write made, when that is its reply (`INCRBYFLOAT`).
    pub value: Option<Bytes>,
    /// The collection the key holds after a [`Change::Create`].
    pub head: Option<Box<Head>>,
}

/// The result of [`Record::apply_write`].
#[derive(Debug, Clone)]
pub struct Applied {
    /// The record to store and the new version's dot; `None` when refused.
    pub written: Option<(Record, Dot)>,
    pub outcome: Outcome,
}

impl Applied {
    /// The record to store.
    ///
    /// # Panics
    /// When the write was refused: for callers whose writes cannot be (plain stores and
    /// deletes without a condition), such as tests.
    #[must_use]
    pub fn into_record(self) -> Record {
        self.written.expect("an unconditional write is never refused").0
    }
}

/// The version a change makes, given the replica's current record; `Err` to refuse.
struct Made {
    value: Option<Bytes>,
    expires_at_us: Option<u64>,
    counter: Option<Box<Counter>>,
    number: Option<i64>,
    /// Report the new value in the outcome.
    reply_value: bool,
    /// The head a collection's version carries.
    collection: Option<Box<Head>>,
}

impl Record {
    /// Applies a client write at the coordinating replica `node`. `current` is the
    /// replica's stored record.
    ///
    /// The new dot's counter is one past every write of `node` to this key that the
    /// replica or the client has seen, so a node numbers its writes to a key contiguously
    /// — which is what lets a version vector summarise them.
    ///
    /// When the counter would pass [`MAX_NUMBERED`] the write is refused
    /// ([`Refusal::CounterExhausted`]): a wrapped counter would make every later write to
    /// the key count as already seen.
    ///
    /// # Errors
    /// None yet: the signature leaves room for refusals that are not outcomes.
    pub fn apply_write(
        current: Option<&Record>,
        node: &NodeId,
        write: &Write,
    ) -> Result<Applied, InvalidRecord> {
        Self::apply_write_above(current, node, write, 0, usize::MAX)
    }

    /// [`Record::apply_write`] with the new dot's counter above `floor` as well: the
    /// highest counter in any record the replica has removed (see `Engine::remove_if`).
    /// A collected tombstone takes its dots out of the replica's record, but other
    /// replicas may still hold it; numbering past the floor keeps the next write from
    /// reusing one of those dots, which they would drop as already seen. A value the
    /// change builds (`APPEND`) may be at most `max_value` bytes.
    ///
    /// # Errors
    /// As [`Record::apply_write`].
    pub fn apply_write_above(
        current: Option<&Record>,
        node: &NodeId,
        write: &Write,
        floor: u64,
        max_value: usize,
    ) -> Result<Applied, InvalidRecord> {
        let empty = Record::default();
        let base = current.unwrap_or(&empty);
        let now = write.timestamp_us;
        let live = base.live_winner(now);
        let previous = write.want_previous.then(|| base.value_at(now)).flatten();
        let refuse = |refusal: Refusal, previous: Option<Bytes>| Applied {
            written: None,
            outcome: Outcome { refused: Some(refusal), previous, ..Outcome::default() },
        };
        let holds = match &write.condition {
            Condition::Always => true,
            Condition::Absent => live.is_none(),
            Condition::Present => live.is_some(),
            Condition::Unchanged(seen) => base.context == *seen,
        };
        if !holds {
            return Ok(refuse(Refusal::ConditionNotMet, previous));
        }
        if let Some(refused) = on_collection(base, write) {
            return Ok(refused);
        }
        let Some(counter) = base
            .context
            .get(node)
            .max(write.context.get(node))
            .max(floor)
            .checked_add(1)
            .filter(|c| *c <= MAX_NUMBERED)
        else {
            return Ok(refuse(Refusal::CounterExhausted, previous));
        };
        let dot = Dot { node: node.clone(), counter };
        let made = match make(base, &dot, &write.change, now, max_value) {
            Ok(made) => made,
            Err(refusal) => return Ok(refuse(refusal, previous)),
        };
        let content_type = match &write.change {
            Change::Put { .. } => write.content_type.clone(),
            Change::Touch { .. } | Change::Append(_) | Change::SetRange { .. } => {
                live.and_then(|v| v.content_type.clone())
            }
            Change::Delete
            | Change::Add(_)
            | Change::AddFloat(_)
            | Change::Create(_)
            | Change::Registers(_) => None,
        };
        let replace_all =
            write.overwrite || !matches!(write.change, Change::Put { .. } | Change::Delete);
        let mut versions: SmallVec<[Version; 1]> = if replace_all {
            SmallVec::new()
        } else {
            base.versions.iter().filter(|v| !write.context.covers(&v.dot)).cloned().collect()
        };
        // Only `INCRBYFLOAT` replies with the value it made: no clone for other writes.
        let reply = if made.reply_value { made.value.clone() } else { None };
        let head = matches!(write.change, Change::Create(_)).then(|| made.collection.clone());
        let at = versions.partition_point(|v| v.dot < dot);
        versions.insert(
            at,
            Version {
                dot: dot.clone(),
                timestamp_us: write.timestamp_us,
                value: made.value,
                expires_at_us: made.expires_at_us,
                counter: made.counter,
                content_type,
                collection: made.collection,
            },
        );
        let mut context = base.context.clone();
        context.join(&write.context);
        context.observe(node, counter);
        let mut record = Record { context, versions };
        record.prune();
        Ok(Applied {
            written: Some((record, dot)),
            outcome: Outcome {
                refused: None,
                previous,
                number: made.number,
                value: reply,
                head: head.flatten(),
            },
        })
    }
}

/// What a write meets when the key holds a collection, or when it makes one: a change
/// that reads or edits a string's value is refused on a collection's head (`WRONGTYPE`,
/// as Redis), a [`Change::Create`] on a string too; a create on a collection of its kind
/// writes nothing and names the collection. `None` when the write goes ahead.
fn on_collection(base: &Record, write: &Write) -> Option<Applied> {
    let now = write.timestamp_us;
    let live = base.live_winner(now);
    let wrong = || Applied {
        written: None,
        outcome: Outcome { refused: Some(Refusal::WrongType), ..Outcome::default() },
    };
    match (&write.change, live) {
        (Change::Create(kind), Some(v)) => match base.head_at(now) {
            Some(head) if head.kind == *kind => Some(Applied {
                written: None,
                outcome: Outcome {
                    refused: Some(Refusal::ConditionNotMet),
                    head: Some(Box::new(head)),
                    ..Outcome::default()
                },
            }),
            _ => {
                debug_assert!(v.is_live(now));
                Some(wrong())
            }
        },
        (Change::Create(_), None) => None,
        (_, Some(v)) if v.is_head() => {
            let edits = matches!(
                write.change,
                Change::Add(_)
                    | Change::AddFloat(_)
                    | Change::Append(_)
                    | Change::SetRange { .. }
                    | Change::Registers(_)
            );
            (edits || write.want_previous).then(wrong)
        }
        _ => None,
    }
}

/// Works out the new version's contents from the replica's record; `dot` is the new
/// version's.
fn make(
    base: &Record,
    dot: &Dot,
    change: &Change,
    now: u64,
    max_value: usize,
) -> Result<Made, Refusal> {
    let live = base.live_winner(now);
    let kept_expiry = live.and_then(|v| v.expires_at_us);
    let node = &dot.node;
    let plain = |value: Bytes, expires_at_us| Made {
        value: Some(value),
        expires_at_us,
        counter: None,
        number: None,
        reply_value: false,
        collection: None,
    };
    match change {
        Change::Put { value, expiry } => {
            let expires_at_us = match expiry {
                Expiry::Never => None,
                Expiry::At(at) => Some(*at),
                Expiry::Keep => kept_expiry,
            };
            Ok(plain(value.clone(), expires_at_us))
        }
        Change::Delete => Ok(Made { value: None, ..plain(Bytes::new(), None) }),
        Change::Create(kind) => Ok(Made {
            collection: Some(Box::new(Head::created(*kind, dot))),
            ..plain(Bytes::new(), None)
        }),
        Change::Touch { expiry, when } => {
            let winner = live.ok_or(Refusal::NoSuchKey)?;
            let new = match expiry {
                Expiry::Never => None,
                Expiry::At(at) => Some(*at),
                Expiry::Keep => kept_expiry,
            };
            let holds = match when {
                ExpireWhen::Always => true,
                ExpireWhen::NoExpiry => kept_expiry.is_none(),
                ExpireWhen::HasExpiry => kept_expiry.is_some(),
                // No expiry counts as infinitely far away.
                ExpireWhen::Later => kept_expiry.is_some_and(|old| new.is_none_or(|new| new > old)),
                ExpireWhen::Earlier => {
                    new.is_some_and(|new| kept_expiry.is_none_or(|old| new < old))
                }
                ExpireWhen::EarlierThanSet => {
                    new.is_some_and(|new| kept_expiry.is_some_and(|old| new < old))
                }
            };
            if !holds {
                return Err(Refusal::ConditionNotMet);
            }
            // The value stays as it is: a counter keeps its whole joined state.
            let counter = match &winner.counter {
                Some(_) => base.joined_counter(winner).map(Box::new),
                None => None,
            };
            let value = match &counter {
                Some(c) => Bytes::from(c.value()?.to_string()),
                None => winner.value.clone().unwrap_or_default(),
            };
            // A collection keeps every lifetime its live heads name.
            let collection = base.head_at(now).map(Box::new);
            Ok(Made { value: Some(value), counter, collection, ..plain(Bytes::new(), new) })
        }
        Change::Add(delta) => {
            let mut state = match live {
                Some(winner) if winner.counter.is_some() => {
                    base.joined_counter(winner).ok_or(CounterError::Overflow)?
                }
                // An integer value becomes the base of a new history that begins at it.
                Some(winner) => Counter::starting(
                    Some(winner.dot.clone()),
                    parse_integer(winner.value.as_deref().unwrap_or_default())?,
                ),
                // After a delete or expiry the history begins at that version, so
                // concurrent first increments through different nodes share it; on a key
                // that never held anything, at nothing.
                None => Counter::starting(base.lww().map(|v| v.dot.clone()), 0),
            };
            state.add(node, *delta)?;
            let value = state.value()?;
            Ok(Made {
                counter: Some(Box::new(state)),
                number: Some(value.as_integer()?),
                ..plain(Bytes::from(value.to_string()), kept_expiry)
            })
        }
        Change::AddFloat(Float(delta)) => {
            let mut state = match live {
                Some(winner) if winner.counter.is_some() => {
                    base.joined_counter(winner).ok_or(CounterError::Overflow)?
                }
                // A number the key holds becomes the base of a new history (see `Add`).
                Some(winner) => {
                    let held = winner.value.as_deref().unwrap_or_default();
                    let origin = Some(winner.dot.clone());
                    match parse_integer(held) {
                        Ok(int) => Counter::starting(origin, int),
                        Err(_) => Counter::starting_float(origin, parse_float(held)?),
                    }
                }
                None => Counter::starting(base.lww().map(|v| v.dot.clone()), 0),
            };
            let value = state.add_float(node, *delta)?;
            Ok(Made {
                counter: Some(Box::new(state)),
                reply_value: true,
                ..plain(Bytes::from(value.to_string()), kept_expiry)
            })
        }
        // Written even when nothing grew: the reply promises W copies of these
        // registers, and only a write replicates them.
        Change::Registers(raise) => {
            let (value, grew) = crate::hll::merged(base, now, raise)?;
            Ok(Made { number: Some(i64::from(grew)), ..plain(value, kept_expiry) })
        }
        Change::Append(suffix) => {
            let old = base.value_at(now).unwrap_or_default();
            if old.len().saturating_add(suffix.len()) > max_value {
                return Err(Refusal::TooLarge);
            }
            let mut value = BytesMut::with_capacity(old.len() + suffix.len());
            value.extend_from_slice(&old);
            value.extend_from_slice(suffix);
            let number = i64::try_from(value.len()).ok();
            Ok(Made { number, ..plain(value.freeze(), kept_expiry) })
        }
        Change::SetRange { offset, bytes } => {
            let old = base.value_at(now).unwrap_or_default();
            let offset = usize::try_from(*offset).map_err(|_| Refusal::TooLarge)?;
            let end = offset.checked_add(bytes.len()).ok_or(Refusal::TooLarge)?;
            if bytes.is_empty() {
                // Redis: an empty SETRANGE changes nothing and reports the length.
                return Err(Refusal::ConditionNotMet);
            }
            if end.max(old.len()) > max_value {
                return Err(Refusal::TooLarge);
            }
            let mut value = BytesMut::from(&old[..]);
            if value.len() < end {
                value.resize(end, 0);
            }
            value[offset..end].copy_from_slice(bytes);
            let number = i64::try_from(value.len()).ok();
            Ok(Made { number, ..plain(value.freeze(), kept_expiry) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s)
    }

    fn put(value: &str, expiry: Expiry, now: u64) -> Write {
        Write::new(Change::Put { value: Bytes::from(value.to_owned()), expiry }, None, now)
    }

    fn apply(current: Option<&Record>, node: &str, write: &Write) -> Applied {
        Record::apply_write(current, &n(node), write).unwrap()
    }

    fn at(now: u64, change: Change) -> Write {
        Write::new(change, None, now)
    }

    #[test]
    fn an_expired_value_reads_as_missing() {
        let r = apply(None, "a", &put("v", Expiry::At(100), 10)).into_record();
        assert_eq!(r.value_at(99), Some(Bytes::from_static(b"v")));
        assert_eq!(r.value_at(100), None);
        assert_eq!(r.values_at(100).count(), 0);
        assert_eq!(r.deleted_at(), Some(100), "collected by the tombstone rules after expiry");
    }

    #[test]
    fn keepttl_keeps_the_live_values_expiry_and_a_plain_set_clears_it() {
        let r = apply(None, "a", &put("v", Expiry::At(100), 10)).into_record();
        let kept = apply(Some(&r), "a", &put("w", Expiry::Keep, 20)).into_record();
        assert_eq!(kept.live_winner(20).unwrap().expires_at_us, Some(100));
        let cleared = apply(Some(&r), "a", &put("w", Expiry::Never, 20)).into_record();
        assert_eq!(cleared.live_winner(20).unwrap().expires_at_us, None);
    }

    #[test]
    fn set_nx_is_refused_while_a_live_value_exists_and_allowed_after_it_expired() {
        let r = apply(None, "a", &put("v", Expiry::At(100), 10)).into_record();
        let nx = |now| Write { condition: Condition::Absent, ..put("mine", Expiry::Never, now) };
        let refused = apply(Some(&r), "a", &nx(50));
        assert!(refused.written.is_none());
        assert_eq!(refused.outcome.refused, Some(Refusal::ConditionNotMet));
        assert!(apply(Some(&r), "a", &nx(150)).written.is_some());
        let xx = Write { condition: Condition::Present, ..put("w", Expiry::Never, 150) };
        assert!(apply(Some(&r), "a", &xx).written.is_none(), "XX on an expired key");
    }

    #[test]
    fn the_previous_value_is_reported_when_asked() {
        let r = apply(None, "a", &put("old", Expiry::Never, 10)).into_record();
        let getset = Write { want_previous: true, ..put("new", Expiry::Never, 20) };
        let applied = apply(Some(&r), "a", &getset);
        assert_eq!(applied.outcome.previous, Some(Bytes::from_static(b"old")));
    }

    #[test]
    fn expire_conditions_follow_redis() {
        let plain = apply(None, "a", &put("v", Expiry::Never, 10)).into_record();
        let expiring = apply(None, "a", &put("v", Expiry::At(100), 10)).into_record();
        let touch = |at, when| at_touch(at, when);
        let ok = |r: &Record, w: &Write| apply(Some(r), "a", w).written.is_some();
        assert!(ok(&plain, &touch(50, ExpireWhen::NoExpiry)));
        assert!(!ok(&expiring, &touch(50, ExpireWhen::NoExpiry)));
        assert!(ok(&expiring, &touch(50, ExpireWhen::HasExpiry)));
        assert!(!ok(&plain, &touch(50, ExpireWhen::HasExpiry)));
        assert!(ok(&expiring, &touch(200, ExpireWhen::Later)));
        assert!(!ok(&expiring, &touch(50, ExpireWhen::Later)));
        assert!(!ok(&plain, &touch(200, ExpireWhen::Later)), "no expiry is infinitely late");
        assert!(ok(&plain, &touch(200, ExpireWhen::Earlier)));
        assert!(ok(&expiring, &touch(50, ExpireWhen::Earlier)));
        let missing = apply(None, "a", &touch(50, ExpireWhen::Always));
        assert_eq!(missing.outcome.refused, Some(Refusal::NoSuchKey));
        let r = apply(Some(&expiring), "a", &touch(500, ExpireWhen::Always)).into_record();
        assert_eq!(r.value_at(300), Some(Bytes::from_static(b"v")), "the value is kept");
    }

    fn at_touch(expires: u64, when: ExpireWhen) -> Write {
        at(20, Change::Touch { expiry: Expiry::At(expires), when })
    }

    #[test]
    fn increments_through_two_nodes_both_count() {
        let a = apply(None, "a", &at(10, Change::Add(3))).into_record();
        let b = apply(None, "b", &at(11, Change::Add(4))).into_record();
        let both = a.merge(&b);
        assert_eq!(both.value_at(20), Some(Bytes::from_static(b"7")));
        let next = apply(Some(&both), "a", &at(30, Change::Add(1)));
        assert_eq!(next.outcome.number, Some(8));
        // The older state arriving again changes nothing.
        let r = next.into_record();
        assert_eq!(r.merge(&b).value_at(40), Some(Bytes::from_static(b"8")));
    }

    #[test]
    fn incr_starts_from_an_integer_value_and_refuses_anything_else() {
        let ten = apply(None, "a", &put("10", Expiry::Never, 10)).into_record();
        assert_eq!(apply(Some(&ten), "b", &at(20, Change::Add(5))).outcome.number, Some(15));
        let text = apply(None, "a", &put("ten", Expiry::Never, 10)).into_record();
        let refused = apply(Some(&text), "b", &at(20, Change::Add(5)));
        assert_eq!(refused.outcome.refused, Some(Refusal::Counter(CounterError::NotAnInteger)));
    }

    #[test]
    fn increments_made_before_a_delete_do_not_count_after_it() {
        let c = apply(None, "a", &at(10, Change::Add(5))).into_record();
        let deleted = apply(Some(&c), "a", &Write::value(None, None, 20)).into_record();
        let again = apply(Some(&deleted), "a", &at(30, Change::Add(1)));
        assert_eq!(again.outcome.number, Some(1));
        // The old history, merged in from a replica that missed the delete, stays out.
        let r = again.into_record().merge(&c);
        assert_eq!(r.value_at(40), Some(Bytes::from_static(b"1")));
    }

    #[test]
    fn a_counter_keeps_its_expiry() {
        let r = apply(None, "a", &put("1", Expiry::At(100), 10)).into_record();
        let r = apply(Some(&r), "a", &at(20, Change::Add(1))).into_record();
        assert_eq!(r.value_at(99), Some(Bytes::from_static(b"2")));
        assert_eq!(r.value_at(100), None);
    }

    #[test]
    fn append_and_setrange_build_on_the_live_value() {
        let r =
            apply(None, "a", &at(10, Change::Append(Bytes::from_static(b"Hello")))).into_record();
        let app = apply(Some(&r), "a", &at(20, Change::Append(Bytes::from_static(b" World"))));
        assert_eq!(app.outcome.number, Some(11));
        let r = app.into_record();
        let set = at(30, Change::SetRange { offset: 6, bytes: Bytes::from_static(b"Redis") });
        assert_eq!(apply(Some(&r), "a", &set).into_record().value_at(40).unwrap(), "Hello Redis");
        let pad = at(30, Change::SetRange { offset: 3, bytes: Bytes::from_static(b"x") });
        assert_eq!(apply(None, "a", &pad).into_record().value_at(40).unwrap(), &b"\0\0\0x"[..]);
    }

    #[test]
    fn a_value_built_past_the_limit_is_refused() {
        let r = apply(None, "a", &put("12345", Expiry::Never, 10)).into_record();
        let w = at(20, Change::Append(Bytes::from_static(b"678")));
        let refused = Record::apply_write_above(Some(&r), &n("a"), &w, 0, 6).unwrap();
        assert_eq!(refused.outcome.refused, Some(Refusal::TooLarge));
    }
}
