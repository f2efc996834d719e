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

/// ioredis over TLS, logged in as a user: allowed, refused a key, refused a wrong password.
const IOREDIS_TLS: &str = r#"
const assert = require("node:assert/strict");
const fs = require("node:fs");
const Redis = require("ioredis");
const [port, ca] = [Number(process.argv[1]), process.argv[2]];
const client = (password) => new Redis({
  port, username: "app", password, lazyConnect: true, maxRetriesPerRequest: 0,
  retryStrategy: () => null, tls: { ca: fs.readFileSync(ca), servername: "localhost" },
});
async function main() {
  const r = client("app-pw");
  await r.connect();
  assert.equal(await r.set("app:1", "v"), "OK");
  assert.equal(await r.get("app:1"), "v");
  await assert.rejects(r.set("other", "x"), /NOPERM/);
  await r.quit();
  // A refused login reaches ioredis as an error event; connect() then fails.
  const bad = client("wrong");
  const refused = new Promise((resolve) => bad.on("error", (e) => resolve(String(e))));
  await bad.connect().catch(() => {});
  assert.match(await refused, /WRONGPASS/);
  bad.disconnect();
  console.log("ok");
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
"#;

#[test]
fn ioredis_over_tls_with_a_username_and_password_is_allowed_and_refused_as_its_rules_say() {
    let modules = node_modules();
    assert!(modules.join("ioredis").is_dir(), "ioredis is not installed (.ci/run does)");
    let (c, port) = common::tls::tls_node("");
    let mut admin = common::Raw::connect(&c.redis_addr(0));
    let made = admin.cmd(&["ACL", "SETUSER", "app", "on", ">app-pw", "~app:*", "+@all"]);
    assert_eq!(made, "+OK\r\n");
    let out = Command::new("node")
        .args(["-e", IOREDIS_TLS, &port.to_string()])
        .arg(common::tls::cert_dir(&c).join("ca.crt"))
        .env("NODE_PATH", &modules)
        .output()
        .expect("node runs (see .ci/run)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{stderr}");
}
