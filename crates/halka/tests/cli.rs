//! The `halka get|put|del|status` client commands, run as a user runs them.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use base64::Engine as _;
use common::{BIN, TestCluster};
use serde_json::Value;

/// Runs `halka <args>`; returns (success, stdout, stderr).
fn halka(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(BIN).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim_end().to_string();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn ok(args: &[&str]) -> String {
    let (success, out, err) = halka(args);
    assert!(success, "halka {args:?} failed: {err}");
    out
}

fn json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("halka {args:?}: {e}: {out}"))
}

fn fails(args: &[&str]) -> String {
    let (success, out, err) = halka(args);
    assert!(!success, "halka {args:?} succeeded: {out}");
    err
}

#[test]
fn client_commands_against_any_node() {
    let mut c = TestCluster::start(3, "periodic");
    let (a, b) = (c.redis_addr(0), c.redis_addr(2));
    let (a, b) = (a.as_str(), b.as_str());

    assert_eq!(ok(&["put", "Mahmut", "Ozer", "--addr", a]), "OK");
    assert_eq!(ok(&["get", "Mahmut", "--addr", b]), "Ozer");
    let got = json(&["get", "Mahmut", "--json", "--addr", b]);
    assert_eq!((&got["value"], &got["encoding"]), (&"Ozer".into(), &"utf8".into()));
    assert_eq!(got["replicas"].as_object().unwrap().len(), 2, "R=2 answers: {got}");
    let got = json(&["get", "Mahmut", "--r", "3", "--json", "--addr", b]);
    let replicas = got["replicas"].as_object().unwrap();
    assert_eq!(replicas.len(), 3, "{got}");
    assert!(replicas.values().all(|v| v == "Ozer"), "{got}");

    assert_eq!(json(&["put", "k", "v", "--w", "3", "--json", "--addr", a])["ok"], true);
    assert_eq!(json(&["del", "k", "--json", "--addr", b])["deleted"], true);
    assert_eq!(ok(&["del", "k", "--addr", b]), "(integer) 0");
    assert!(fails(&["get", "k", "--addr", a]).contains("key \"k\" not found"));

    // Bad quorums and unreachable nodes: an error that says what was wrong.
    let err = fails(&["get", "Mahmut", "--r", "4", "--addr", a]);
    assert!(err.contains("r=4 exceeds replication factor n=3"), "{err}");
    let err = fails(&["put", "k", "v", "--w", "0", "--addr", a]);
    assert!(err.contains("w=0 is invalid"), "{err}");
    let err = fails(&["get", "k", "--addr", "127.0.0.1:1"]);
    assert!(err.contains("connecting to 127.0.0.1:1"), "{err}");

    // Values are bytes: from standard input when VALUE is omitted, out exactly as stored,
    // base64 in JSON when they are not text.
    let binary: Vec<u8> = (0..=255).rev().collect();
    let mut put = std::process::Command::new(BIN)
        .args(["put", "bin", "--addr", a])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut put.stdin.take().unwrap(), &binary).unwrap();
    assert!(put.wait_with_output().unwrap().status.success());
    let out = std::process::Command::new(BIN).args(["get", "bin", "--addr", b]).output().unwrap();
    assert_eq!(out.stdout, [&binary[..], b"\n"].concat());
    let got = json(&["get", "bin", "--json", "--addr", b]);
    assert_eq!(got["encoding"], "base64");
    let decoded = base64::engine::general_purpose::STANDARD.decode(got["value"].as_str().unwrap());
    assert_eq!(decoded.unwrap(), binary);

    let status = ok(&["status", "--addr", a]);
    // Each peer with its failure detector's phi, once gossip watches it.
    assert!(status.contains("members: node-1 (this node), node-2 up"), "{status}");
    assert!(status.contains(", node-3 up"), "{status}");
    assert!(status.contains("replication N=3 R=2 W=2"), "{status}");
    assert_eq!(json(&["status", "--json", "--addr", a])["node"], "node-1");

    // A dead node: status says so, and W=2 writes still go through.
    c.kill(1);
    let status = ok(&["status", "--addr", a]);
    assert!(status.contains("node-2 down") && status.contains(", node-3 up"), "{status}");
    assert_eq!(ok(&["put", "after", "v", "--addr", a]), "OK");
    let err = fails(&["put", "after", "v", "--w", "3", "--addr", a]);
    assert!(err.contains("w=3 of 3 replicas") && err.contains("node-2"), "{err}");
}

/// `halka sim | head`: the reader goes away before the output is written. The command
/// ends quietly and successfully instead of panicking on the broken pipe.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::process::{Command, Stdio};
    for args in [&["sim", "--keys", "2000"][..], &["secret"][..]] {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "halka {args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_second_server_on_a_data_directory_in_use_is_refused() {
    let c = TestCluster::start(1, "periodic");
    let node = &c.nodes[0];
    // The same node's config on other ports: only the data directory is shared.
    let mut text = std::fs::read_to_string(&node.config).unwrap();
    for port in [node.redis_port, node.http_port, node.peer_port] {
        text = text.replace(&format!(":{port}\""), &format!(":{}\"", common::free_port()));
    }
    let second = c.dir.path().join("second.toml");
    std::fs::write(&second, text).unwrap();
    let err = fails(&["server", "--config", second.to_str().unwrap()]);
    assert!(err.contains("is in use by another halka process"), "{err}");
    // The first keeps serving.
    assert_eq!(ok(&["put", "k", "v", "--addr", &c.redis_addr(0)]), "OK");
}
