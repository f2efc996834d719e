//! A disk that fills up: writes are refused before it is full, reads go on, and writes
//! resume by themselves once space is freed — no restart.
//!
//! Needs a small filesystem of its own: the test mounts a tmpfs, which takes root (as
//! `.ci/run` has). Elsewhere it says so and passes without running.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster, http};
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

/// Fills the filesystem holding `dir` until `leave` bytes are free.
fn fill_leaving(dir: &Path, leave: u64) -> PathBuf {
    let stat = nix::sys::statvfs::statvfs(dir).unwrap();
    let free = stat.blocks_available() * stat.fragment_size();
    let path = dir.join("filler");
    std::fs::write(&path, vec![7_u8; usize::try_from(free.saturating_sub(leave)).unwrap()])
        .unwrap();
    path
}

/// `len` bytes of random hex: the journal compresses, and a repeated byte would take no
/// room at all.
fn incompressible(len: usize) -> String {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from_digit((state % 16) as u32, 16).unwrap()
        })
        .collect()
}

/// The value of `field` in `INFO` on a new connection.
fn info_field(addr: &str, field: &str) -> String {
    let mut conn = Raw::connect(addr);
    let head = conn.cmd(&["INFO", "everything"]);
    // `$<len>\r\n<len bytes>\r\n`, maybe over several reads.
    let len: usize = head[1..head.find('\r').unwrap()].parse().unwrap();
    let mut info = head.into_bytes();
    let total = len + len.to_string().len() + 5;
    let mut buf = vec![0_u8; 64 * 1024];
    while info.len() < total {
        let n = std::io::Read::read(&mut conn.0, &mut buf).unwrap();
        assert!(n > 0, "INFO cut short");
        info.extend_from_slice(&buf[..n]);
    }
    let info = String::from_utf8(info).unwrap();
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .to_string()
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
    let value = incompressible(100 << 10);
    let mut refused = None;
    for i in 0..200 {
        let reply = conn.cmd(&["SET", &format!("k{i}"), &value]);
        if reply != "+OK\r\n" {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("some write was refused before the disk filled");
    assert!(refused.starts_with("-NOSPACE "), "{refused}");
    assert!(refused.contains("disk nearly full"), "{refused}");
    assert!(refused.contains("storage.min_free_mb"), "{refused}");
    assert_eq!(conn.cmd(&["GET", "kept"]), "$1\r\nv\r\n", "reads go on");
    let (status, body) = http("PUT", &c.http_url(0, "/v1/kv/over-http"), value.as_bytes(), &[]);
    assert_eq!(status, 507, "{body}");
    assert!(body.contains("disk nearly full"), "{body}");
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

#[test]
fn a_failed_journal_write_heals_by_itself_once_space_is_freed() {
    let Some(fs) = Tmpfs::mount(48) else {
        eprintln!("not run: mounting a tmpfs needs root");
        return;
    };
    // No reserve: the journal itself runs into the full disk, which poisons the engine.
    let c = TestCluster::start_in(&fs.0, 1, "always", "", "min_free_mb = 0");
    let addr = c.redis_addr(0);
    let mut conn = Raw::connect(&addr);
    assert_eq!(conn.cmd(&["SET", "kept", "v"]), "+OK\r\n");
    let actor = info_field(&addr, "actor");
    let filler = fill_leaving(&fs.0, 4 << 20);
    let value = incompressible(100 << 10);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let key = format!("k{i}");
        let reply = conn.cmd(&["SET", &key, &value]);
        if reply != "+OK\r\n" {
            refused = Some(reply);
            break;
        }
        acknowledged.push(key);
    }
    let refused = refused.expect("a write met the full disk");
    assert!(refused.starts_with("-NOSPACE "), "{refused}");
    assert!(refused.contains("out of disk space"), "{refused}");
    // Still full: writes stay refused, reads go on, and the status says why.
    assert!(conn.cmd(&["SET", "again", "v"]).contains("reopens its storage by itself"));
    assert_eq!(conn.cmd(&["GET", "kept"]), "$1\r\nv\r\n", "reads go on");
    assert_eq!(info_field(&addr, "storage_refusing_writes"), "1");
    std::fs::remove_file(&filler).unwrap();
    // The node reopens its engine by itself and closes connections as it does; a client
    // reconnects. Polled: how soon the reopen comes is not what this test is about.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = Raw::connect(&addr).cmd(&["SET", "after", "v"]);
        if reply == "+OK\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume: {reply}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut conn = Raw::connect(&addr);
    assert_eq!(conn.cmd(&["GET", "kept"]), "$1\r\nv\r\n");
    for key in &acknowledged {
        assert_eq!(conn.cmd(&["STRLEN", key]), format!(":{}\r\n", 100 << 10), "{key} lost");
    }
    // The same process, reopened under a new incarnation (its journal's end was unclean).
    assert_eq!(info_field(&addr, "process_id"), c.pid(0).to_string());
    assert_eq!(info_field(&addr, "storage_reopens"), "1");
    assert_eq!(info_field(&addr, "storage_refusing_writes"), "0");
    assert_ne!(info_field(&addr, "actor"), actor);
    drop(c);
}
