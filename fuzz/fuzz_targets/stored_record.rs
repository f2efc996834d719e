//! Arbitrary bytes as a stored record (a corrupt disk, a hostile peer's merge): decoding
//! and validation never panic, and a record that validates merges and takes a write.
#![no_main]

use bytes::Bytes;
use halka_store::{NodeId, Record, Write, decode_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = decode_record(data) else { return };
    if record.validate().is_err() {
        return;
    }
    let merged = record.merge(&record);
    assert!(merged.same_as(&record), "merge is idempotent");
    let _ = record.value_at(u64::MAX / 2);
    let write = Write::value(Some(Bytes::from_static(b"v")), None, 1);
    let _ = Record::apply_write(Some(&record), &NodeId::new("fuzz"), &write);
});
