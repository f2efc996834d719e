//! redis-py, the most used Redis client in Python, against a real cluster. `.ci/run`
//! installs it (`pip install redis`).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::TestCluster;
use std::process::Command;

#[test]
fn redis_py_expiry_pipelines_counters_locks_and_scan_work() {
    let c = TestCluster::start(3, "periodic");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/redis_py_check.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(c.nodes[1].redis_port.to_string())
        .output()
        .expect("python3 runs (see .ci/run)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'redis'"),
        "redis-py is not installed: python3 -m pip install redis (.ci/run does)"
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
