//! On-disk encoding of records: one format byte, then postcard. Postcard uses varints and no
//! host-endian or `usize` fields, so the bytes are the same on every platform. A new layout
//! gets a new format byte; old ones stay readable.

use crate::{Counter, CounterEntry, Dot, Record, StoreError, Version, VersionVector};
use bytes::Bytes;
use serde::Deserialize;

/// Versions without expiry or counters.
const FORMAT_V1: u8 = 1;
/// Versions carry `expires_at_us` and `counter`.
const FORMAT_V2: u8 = 2;
/// Counters carry a floating-point part (`INCRBYFLOAT`); versions a content type.
const FORMAT_V3: u8 = 3;

/// A record as format 1 laid it out.
#[derive(Deserialize)]
struct RecordV1 {
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
struct RecordV2 {
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
    entries: Vec<CounterEntry>,
}

impl From<RecordV2> for Record {
    fn from(old: RecordV2) -> Self {
        let versions = old.versions.into_iter().map(|v| Version {
            content_type: None,
            counter: v.counter.map(|c| {
                Box::new(Counter {
                    origin: c.origin,
                    base: c.base,
                    entries: c.entries,
                    float: None,
                })
            }),
            expires_at_us: v.expires_at_us,
            ..Version::new(v.dot, v.timestamp_us, v.value)
        });
        Record::from_parts(old.context, versions.collect())
    }
}

/// Encodes a record for storage.
///
/// # Errors
/// Only if the serializer fails, which for these plain structs it does not.
pub fn encode_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(record, vec![FORMAT_V3]).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Decodes a stored record.
///
/// # Errors
/// An unknown format byte or bytes that do not decode.
pub fn decode_record(bytes: &[u8]) -> Result<Record, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V3, body)) => {
            postcard::from_bytes(body).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Some((&FORMAT_V2, body)) => postcard::from_bytes::<RecordV2>(body)
            .map(Record::from)
            .map_err(|e| StoreError::Corrupt(e.to_string())),
        Some((&FORMAT_V1, body)) => postcard::from_bytes::<RecordV1>(body)
            .map(Record::from)
            .map_err(|e| StoreError::Corrupt(e.to_string())),
        Some((other, _)) => Err(StoreError::Corrupt(format!("unknown record format {other}"))),
        None => Err(StoreError::Corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeId, Write};
    use bytes::Bytes;

    fn written(value: &'static [u8]) -> Record {
        Record::apply_write(
            None,
            &NodeId::new("n1"),
            &Write::value(Some(Bytes::from_static(value)), None, 1000),
        )
        .unwrap()
        .into_record()
    }

    fn counted(delta: i64) -> Record {
        let write = Write { change: crate::Change::Add(delta), ..Write::value(None, None, 1000) };
        Record::apply_write(None, &NodeId::new("n1"), &write).unwrap().into_record()
    }

    /// The v3 layout, pinned: a change here breaks every existing data directory.
    #[test]
    fn v3_format_is_pinned() {
        let record = written(b"Ozer");
        let bytes = encode_record(&record).unwrap();
        assert_eq!(
            bytes,
            [
                3, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 4, b'O', b'z', b'e', b'r',
                0, 0, 0
            ]
        );
        assert_eq!(decode_record(&bytes).unwrap(), record);
        let counter = counted(5);
        let bytes = encode_record(&counter).unwrap();
        assert_eq!(
            bytes,
            [
                3, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 1, b'5', 0, 1, 0, 0, 1, 2,
                b'n', b'1', 5, 0, 0, 0
            ]
        );
        assert_eq!(decode_record(&bytes).unwrap(), counter);
        let typed = Write {
            content_type: Some("text/plain".into()),
            ..Write::value(Some(Bytes::from_static(b"x")), None, 1000)
        };
        let typed = Record::apply_write(None, &NodeId::new("n1"), &typed).unwrap().into_record();
        let bytes = encode_record(&typed).unwrap();
        assert!(bytes.ends_with(b"\x01\x0atext/plain"), "{bytes:?}");
        assert_eq!(decode_record(&bytes).unwrap(), typed);
        assert!(decode_record(&[9, 0]).is_err());
        assert!(decode_record(&[]).is_err());
        assert!(decode_record(&[3, 200]).is_err());
    }

    /// Data written in the v2 layout still reads, counters included.
    #[test]
    fn v2_records_still_decode() {
        let v2 = [
            2, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 4, b'O', b'z', b'e', b'r', 0, 0,
        ];
        assert_eq!(decode_record(&v2).unwrap(), written(b"Ozer"));
        let v2_counter = [
            2, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 1, b'5', 0, 1, 0, 0, 1, 2,
            b'n', b'1', 5, 0,
        ];
        assert_eq!(decode_record(&v2_counter).unwrap(), counted(5));
        assert!(decode_record(&[2, 200]).is_err());
    }

    /// Data written in the v1 layout still reads, as values that never expire.
    #[test]
    fn v1_records_still_decode() {
        let v1 =
            [1, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 4, b'O', b'z', b'e', b'r'];
        assert_eq!(decode_record(&v1).unwrap(), written(b"Ozer"));
        assert!(decode_record(&[1, 200]).is_err());
    }
}
