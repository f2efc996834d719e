//! Shared by the tests that open data directories written by earlier layouts.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of `tests/fixtures/<name>` in a temporary directory, with each of fjall's
/// keyspaces given the `tables` directory git does not keep when it is empty.
pub fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    copy_dir(&source, dir.path());
    for keyspace in std::fs::read_dir(dir.path().join("keyspaces")).unwrap() {
        std::fs::create_dir_all(keyspace.unwrap().path().join("tables")).unwrap();
    }
    dir
}
