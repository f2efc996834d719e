//! On-disk encoding of records: one format byte, then postcard. Postcard uses varints and no
//! host-endian or `usize` fields, so the bytes are the same on every platform. A new layout
//! gets a new format byte; old ones stay readable.

mod legacy;

use crate::{Record, StoreError};
use legacy::{RecordV1, RecordV2, RecordV3, RecordV4};

/// Versions without expiry or counters.
const FORMAT_V1: u8 = 1;
/// Versions carry `expires_at_us` and `counter`.
const FORMAT_V2: u8 = 2;
/// Counters carry a floating-point part (`INCRBYFLOAT`); versions a content type.
const FORMAT_V3: u8 = 3;
/// Counters hold a net per node with an epoch, not ever-growing totals.
const FORMAT_V4: u8 = 4;
/// Versions may be a collection's head (`collection`).
const FORMAT_V5: u8 = 5;

/// Encodes a record for storage.
///
/// # Errors
/// Only if the serializer fails, which for these plain structs it does not.
pub fn encode_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(record, vec![FORMAT_V5]).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Decodes a stored record.
///
/// # Errors
/// An unknown format byte or bytes that do not decode.
pub fn decode_record(bytes: &[u8]) -> Result<Record, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V5, body)) => {
            postcard::from_bytes(body).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Some((&FORMAT_V4, body)) => postcard::from_bytes::<RecordV4>(body)
            .map(Record::from)
            .map_err(|e| StoreError::Corrupt(e.to_string())),
        Some((&FORMAT_V3, body)) => postcard::from_bytes::<RecordV3>(body)
            .map(Record::from)
            .map_err(|e| StoreError::Corrupt(e.to_string())),
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

    /// A counter decoded from an earlier format: the same value, `n1`'s entry at the epoch
    /// its totals summed to.
    fn counted_before_v4(delta: i64, epoch: u64) -> Record {
        let record = counted(delta);
        let mut versions = record.versions().to_vec();
        versions[0].counter.as_mut().unwrap().entries[0].epoch = epoch;
        Record::from_parts(record.context().clone(), versions)
    }

    /// The v5 layout, pinned: a change here breaks every existing data directory.
    #[test]
    fn v5_format_is_pinned() {
        let record = written(b"Ozer");
        let bytes = encode_record(&record).unwrap();
        assert_eq!(
            bytes,
            [
                5, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 4, b'O', b'z', b'e', b'r',
                0, 0, 0, 0
            ]
        );
        assert_eq!(decode_record(&bytes).unwrap(), record);
        let counter = counted(5);
        let bytes = encode_record(&counter).unwrap();
        assert_eq!(
            bytes,
            [
                5, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 1, b'5', 0, 1, 0, 0, 1, 2,
                b'n', b'1', 1, 10, 0, 0, 0
            ]
        );
        assert_eq!(decode_record(&bytes).unwrap(), counter);
        let typed = Write {
            content_type: Some("text/plain".into()),
            ..Write::value(Some(Bytes::from_static(b"x")), None, 1000)
        };
        let typed = Record::apply_write(None, &NodeId::new("n1"), &typed).unwrap().into_record();
        let bytes = encode_record(&typed).unwrap();
        assert!(bytes.ends_with(b"\x01\x0atext/plain\x00"), "{bytes:?}");
        assert_eq!(decode_record(&bytes).unwrap(), typed);
        let create = Write::new(crate::Change::Create(crate::Kind::Hash), None, 1000);
        let head = Record::apply_write(None, &NodeId::new("n1"), &create).unwrap().into_record();
        let bytes = encode_record(&head).unwrap();
        // An empty value, no expiry, counter or type; a head: kind 0, one lifetime.
        assert_eq!(bytes[13..21], [1, 0, 0, 0, 0, 1, 0, 1], "{bytes:?}");
        assert_eq!(decode_record(&bytes).unwrap(), head);
        assert!(decode_record(&[9, 0]).is_err());
        assert!(decode_record(&[]).is_err());
        assert!(decode_record(&[5, 200]).is_err());
    }

    /// Data written in the v4 layout still reads.
    #[test]
    fn v4_records_still_decode() {
        let v4 = [
            4, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 4, b'O', b'z', b'e', b'r', 0,
            0, 0,
        ];
        assert_eq!(decode_record(&v4).unwrap(), written(b"Ozer"));
        let v4_counter = [
            4, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 1, b'5', 0, 1, 0, 0, 1, 2,
            b'n', b'1', 1, 10, 0, 0,
        ];
        assert_eq!(decode_record(&v4_counter).unwrap(), counted(5));
        assert!(decode_record(&[4, 200]).is_err());
    }

    /// Data written in the v3 layout still reads: counters' totals become nets.
    #[test]
    fn v3_records_still_decode() {
        let v3 = [
            3, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 4, b'O', b'z', b'e', b'r', 0,
            0, 0,
        ];
        assert_eq!(decode_record(&v3).unwrap(), written(b"Ozer"));
        let v3_counter = [
            3, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 1, b'5', 0, 1, 0, 0, 1, 2,
            b'n', b'1', 5, 0, 0, 0,
        ];
        assert_eq!(decode_record(&v3_counter).unwrap(), counted_before_v4(5, 5));
        assert!(decode_record(&[3, 200]).is_err());
    }

    /// A float counter from v3 keeps its value, its totals folded into exact partials.
    #[test]
    fn v3_float_totals_become_partials() {
        let mut c = crate::Counter::starting(None, 0);
        c.add_float(&NodeId::new("n1"), 2.5).unwrap();
        #[derive(serde::Serialize)]
        struct Totals {
            node: NodeId,
            added: u64,
            subtracted: u64,
        }
        #[derive(serde::Serialize)]
        struct Float {
            base_bits: u64,
            entries: Vec<Totals>,
        }
        let entry = Totals {
            node: NodeId::new("n1"),
            added: 4.0f64.to_bits(),
            subtracted: 1.5f64.to_bits(),
        };
        let old = (
            Option::<crate::Dot>::None,
            0i64,
            Vec::<Totals>::new(),
            Some(Float { base_bits: 0, entries: vec![entry] }),
        );
        let counter: legacy::CounterV3 =
            postcard::from_bytes(&postcard::to_allocvec(&old).unwrap()).unwrap();
        let counter = counter.into_counter();
        assert_eq!(counter.value(), Ok(crate::Number::Float(2.5)));
        assert_eq!(counter.float.unwrap().entries[0].partials, [2.5f64.to_bits()]);
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
        assert_eq!(decode_record(&v2_counter).unwrap(), counted_before_v4(5, 5));
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
