//! The layouts earlier formats stored records in, and how each reads as today's
//! [`Record`]. Data directories written by any earlier release stay readable.

use crate::{
    Counter, CounterEntry, Dot, FloatEntry, FloatPart, NodeId, Record, Version, VersionVector,
};
use bytes::Bytes;
use serde::Deserialize;

/// A record as format 1 laid it out.
#[derive(Deserialize)]
pub(super) struct RecordV1 {
    context: VersionVector,
    versions: Vec<VersionV1>,
}

#[derive(Deserialize)]
struct VersionV1 {
    dot: Dot,
    timestamp_us: u64,
    value: Option<Bytes>,
}

impl From<RecordV1> for Record {
    fn from(old: RecordV1) -> Self {
        let versions =
            old.versions.into_iter().map(|v| Version::new(v.dot, v.timestamp_us, v.value));
        Record::from_parts(old.context, versions.collect())
    }
}

/// A record as format 2 laid it out: counters without a floating-point part, versions
/// without a content type.
#[derive(Deserialize)]
pub(super) struct RecordV2 {
    context: VersionVector,
    versions: Vec<VersionV2>,
}

#[derive(Deserialize)]
struct VersionV2 {
    dot: Dot,
    timestamp_us: u64,
    value: Option<Bytes>,
    expires_at_us: Option<u64>,
    counter: Option<Box<CounterV2>>,
}

#[derive(Deserialize)]
struct CounterV2 {
    origin: Option<Dot>,
    base: i64,
    entries: Vec<TotalsEntry>,
}

impl From<RecordV2> for Record {
    fn from(old: RecordV2) -> Self {
        let versions = old.versions.into_iter().map(|v| Version {
            content_type: None,
            counter: v.counter.map(|c| {
                Box::new(Counter {
                    origin: c.origin,
                    base: c.base,
                    entries: c.entries.into_iter().map(TotalsEntry::integer).collect(),
                    float: None,
                })
            }),
            expires_at_us: v.expires_at_us,
            ..Version::new(v.dot, v.timestamp_us, v.value)
        });
        Record::from_parts(old.context, versions.collect())
    }
}

/// A record as format 3 laid it out: counters as per-node totals (a PN-counter).
#[derive(Deserialize)]
pub(super) struct RecordV3 {
    context: VersionVector,
    versions: Vec<VersionV3>,
}

#[derive(Deserialize)]
struct VersionV3 {
    dot: Dot,
    timestamp_us: u64,
    value: Option<Bytes>,
    expires_at_us: Option<u64>,
    counter: Option<Box<CounterV3>>,
    content_type: Option<Box<str>>,
}

#[derive(Deserialize)]
pub(super) struct CounterV3 {
    origin: Option<Dot>,
    base: i64,
    entries: Vec<TotalsEntry>,
    float: Option<Box<FloatTotals>>,
}

/// Float totals as bits, per node.
#[derive(Deserialize)]
struct FloatTotals {
    base_bits: u64,
    entries: Vec<TotalsEntry>,
}

/// One node's totals: everything it added, everything it subtracted.
#[derive(Deserialize)]
struct TotalsEntry {
    node: NodeId,
    added: u64,
    subtracted: u64,
}

impl TotalsEntry {
    /// The entry as a net. Its epoch is the sum of the totals: both only grew, so a later
    /// state of the same node's entry always has the larger sum, and a replica's newer
    /// copy still wins the join after the upgrade. (Integer totals were at most 2^62 and
    /// the bits of finite non-negative floats are below 2^63, so the sum fits.)
    fn integer(self) -> CounterEntry {
        let net = i128::from(self.added) - i128::from(self.subtracted);
        CounterEntry { node: self.node, epoch: self.added.saturating_add(self.subtracted), net }
    }

    fn float(self) -> FloatEntry {
        let mut partials = Vec::new();
        let totals = [f64::from_bits(self.added), -f64::from_bits(self.subtracted)];
        for total in totals {
            // Two finite totals of opposite signs cannot overflow.
            let _ = crate::counter::exact::grow(&mut partials, total);
        }
        let partials = partials.into_iter().map(f64::to_bits).collect();
        FloatEntry { node: self.node, epoch: self.added.saturating_add(self.subtracted), partials }
    }
}

impl From<RecordV3> for Record {
    fn from(old: RecordV3) -> Self {
        let versions = old.versions.into_iter().map(|v| Version {
            content_type: v.content_type,
            counter: v.counter.map(|c| Box::new(c.into_counter())),
            expires_at_us: v.expires_at_us,
            ..Version::new(v.dot, v.timestamp_us, v.value)
        });
        Record::from_parts(old.context, versions.collect())
    }
}

impl CounterV3 {
    pub(super) fn into_counter(self) -> Counter {
        Counter {
            origin: self.origin,
            base: self.base,
            entries: self.entries.into_iter().map(TotalsEntry::integer).collect(),
            float: self.float.map(|f| {
                Box::new(FloatPart {
                    base_bits: f.base_bits,
                    entries: f.entries.into_iter().map(TotalsEntry::float).collect(),
                })
            }),
        }
    }
}

/// A record as format 4 laid it out: versions without a collection head.
#[derive(Deserialize)]
pub(super) struct RecordV4 {
    context: VersionVector,
    versions: Vec<VersionV4>,
}

#[derive(Deserialize)]
struct VersionV4 {
    dot: Dot,
    timestamp_us: u64,
    value: Option<Bytes>,
    expires_at_us: Option<u64>,
    counter: Option<Box<Counter>>,
    content_type: Option<Box<str>>,
}

impl From<RecordV4> for Record {
    fn from(old: RecordV4) -> Self {
        let versions = old.versions.into_iter().map(|v| Version {
            content_type: v.content_type,
            counter: v.counter,
            expires_at_us: v.expires_at_us,
            ..Version::new(v.dot, v.timestamp_us, v.value)
        });
        Record::from_parts(old.context, versions.collect())
    }
}
