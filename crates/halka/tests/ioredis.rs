//! ioredis, a widely used Node client, against a real cluster. `.ci/run` installs it
//! under `target/node-clients` (`npm install ioredis@5`); the test points `NODE_PATH`
//! there.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::TestCluster;
use std::path::PathBuf;
use std::process::Command;

/// Where `.ci/run` installs the Node clients: `target/node-clients/node_modules`.
fn node_modules() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or(workspace.join("target"), PathBuf::from);
    target.join("node-clients/node_modules")
}

#[test]
fn ioredis_expiry_multi_exec_counters_locks_and_scan_work() {
    let modules = node_modules();
    assert!(
        modules.join("ioredis").is_dir(),
        "ioredis is not installed under {}: npm install --prefix target/node-clients ioredis@5 \
         (.ci/run does)",
        modules.display()
    );
    let c = TestCluster::start(3, "periodic");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/ioredis_check.js");
    let out = Command::new("node")
        .arg(script)
        .arg(c.nodes[2].redis_port.to_string())
        .env("NODE_PATH", &modules)
        .output()
        .expect("node runs (see .ci/run)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
