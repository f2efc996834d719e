//! A data directory written by the first on-disk layout (records keyed by the bare key,
//! `tests/fixtures/layout-v1`, made by the engine before the hash layout) opens with the
//! current engine: every record is moved to the hash layout, and reads as before.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use halka_store::layout::key_hash;
use halka_store::{Engine, FjallEngine, FjallOptions, HashRange};

#[test]
fn a_v1_data_directory_is_migrated_on_open() {
    let dir = common::fixture("layout-v1");
    let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    let value = |k: &[u8]| engine.get(k).unwrap().unwrap().lww_value().cloned();
    assert_eq!(value(b"Mahmut").as_deref(), Some(&b"Ozer"[..]));
    assert_eq!(value(b"alpha").as_deref(), Some(&b"1"[..]));
    assert_eq!(value(b"beta").as_deref(), Some(&b"2"[..]));
    // The tombstone came along: the deleted key still reads as deleted, not missing.
    let deleted = engine.get(b"deleted").unwrap().unwrap();
    assert_eq!((deleted.versions().len(), deleted.lww_value()), (1, None));
    // Each key is now in its partition's range.
    let bits = 12;
    let partition = key_hash(b"Mahmut") >> (64 - bits);
    let mut found = Vec::new();
    engine
        .scan_range(HashRange::partition(partition, bits), &mut |k, _| {
            found.push(k.to_vec());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(found, [b"Mahmut".to_vec()]);
}

#[test]
fn a_migrated_directory_reopens_unchanged() {
    let dir = common::fixture("layout-v1");
    drop(FjallEngine::open(FjallOptions::new(dir.path())).unwrap());
    let engine = FjallEngine::open(FjallOptions::new(dir.path())).unwrap();
    let mut keys = Vec::new();
    engine.scan(&mut |k, _| keys.push(String::from_utf8_lossy(k).into_owned())).unwrap();
    keys.sort();
    assert_eq!(keys, ["Mahmut", "alpha", "beta", "deleted"]);
}
