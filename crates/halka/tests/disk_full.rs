//! A disk that fills up: writes are refused before it is full, reads go on, and writes
//! resume by themselves once space is freed — no restart.
//!
//! Needs a small filesystem of its own: the test mounts a tmpfs, which takes root (as
//! `.ci/run` has). Elsewhere it says so and passes without running.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `mb` MiB, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(mb: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn fill(path: &Path, mb: usize) {
    std::fs::write(path, vec![7_u8; mb << 20]).unwrap();
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_recovers_once_space_is_freed() {
    let Some(fs) = Tmpfs::mount(48) else {
        eprintln!("not run: mounting a tmpfs needs root");
        return;
    };
    let c = TestCluster::start_in(&fs.0, 1, "always", "", "min_free_mb = 8");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["SET", "kept", "v"]), "+OK\r\n");
    // Another tenant of the disk takes most of it.
    let filler = fs.0.join("filler");
    fill(&filler, 30);
    // Random hex: the journal compresses, and a repeated byte would take no room at all.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let value: String = (0..100 << 10)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from_digit((state % 16) as u32, 16).unwrap()
        })
        .collect();
    let mut refused = None;
    for i in 0..200 {
        let reply = conn.cmd(&["SET", &format!("k{i}"), &value]);
        if reply != "+OK\r\n" {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("some write was refused before the disk filled");
    assert!(refused.contains("disk nearly full"), "{refused}");
    assert!(refused.contains("min_free_bytes"), "{refused}");
    assert_eq!(conn.cmd(&["GET", "kept"]), "$1\r\nv\r\n", "reads go on");
    std::fs::remove_file(&filler).unwrap();
    // Resumes on the next write after the space is back (a write while refusing
    // measures again); a second's grace covers the filesystem's own accounting.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = conn.cmd(&["SET", "after", &value]);
        if reply == "+OK\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume: {reply}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(conn.cmd(&["STRLEN", "after"]), format!(":{}\r\n", 100 << 10));
    drop(c);
}
