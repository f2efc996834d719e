//! On-disk encoding of records: one format byte, then postcard. Postcard uses varints and no
//! host-endian or `usize` fields, so the bytes are the same on every platform. A new layout
//! gets a new format byte; old ones stay readable.

use crate::{Record, StoreError};

const FORMAT_V1: u8 = 1;

/// Encodes a record for storage.
///
/// # Errors
/// Only if the serializer fails, which for these plain structs it does not.
pub fn encode_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(record, vec![FORMAT_V1]).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Decodes a stored record.
///
/// # Errors
/// An unknown format byte or bytes that do not decode.
pub fn decode_record(bytes: &[u8]) -> Result<Record, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            postcard::from_bytes(body).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Some((other, _)) => Err(StoreError::Corrupt(format!("unknown record format {other}"))),
        None => Err(StoreError::Corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeId, VersionVector, Write};
    use bytes::Bytes;

    /// The v1 layout, pinned: a change here breaks every existing data directory.
    #[test]
    fn v1_format_is_pinned() {
        let (record, _) = Record::apply_write(
            None,
            &NodeId::new("n1"),
            &Write {
                value: Some(Bytes::from_static(b"Ozer")),
                context: VersionVector::new(),
                timestamp_us: 1000,
                overwrite: false,
            },
        )
        .unwrap();
        let bytes = encode_record(&record).unwrap();
        assert_eq!(
            bytes,
            [1, 1, 2, b'n', b'1', 1, 1, 2, b'n', b'1', 1, 232, 7, 1, 4, b'O', b'z', b'e', b'r']
        );
        assert_eq!(decode_record(&bytes).unwrap(), record);
        assert!(decode_record(&[9, 0]).is_err());
        assert!(decode_record(&[]).is_err());
        assert!(decode_record(&[1, 200]).is_err());
    }
}
