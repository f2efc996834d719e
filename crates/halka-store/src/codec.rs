//! On-disk encoding of records: one format byte, then postcard. Postcard uses varints and no
//! host-endian or `usize` fields, so the bytes are the same on every platform. A new layout
//! gets a new format byte; old ones stay readable.

use crate::{Dot, Record, StoreError, Version, VersionVector};
use bytes::Bytes;
use serde::Deserialize;

/// Versions without expiry or counters.
const FORMAT_V1: u8 = 1;
/// Versions carry `expires_at_us` and `counter`.
const FORMAT_V2: u8 = 2;

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

/// Encodes a record for storage.
///
/// # Errors
/// Only if the serializer fails, which for these plain structs it does not.
pub fn encode_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(record, vec![FORMAT_V2]).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Decodes a stored record.
///
/// # Errors
/// An unknown format byte or bytes that do not decode.
pub fn decode_record(bytes: &[u8]) -> Result<Record, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V2, body)) => {
            postcard::from_bytes(body).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
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

    /// The v2 layout, pinned: a change here breaks every existing data directory.
    #[test]
    fn v2_format_is_pinned() {
        let record = written(b"Ozer");
        let bytes = encode_record(&record).unwrap();
        assert_eq!(
            bytes,
            [
                2, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 4, b'O', b'z', b'e', b'r',
                0, 0
            ]
        );
        assert_eq!(decode_record(&bytes).unwrap(), record);
        assert!(decode_record(&[9, 0]).is_err());
        assert!(decode_record(&[]).is_err());
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
