//! TLS for test clusters: certificates made by `halka cert`, a `[tls]` section per node.

use super::{BIN, TestCluster};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a certificate for each of `n` nodes on 127.0.0.1, made by `halka cert`.
pub fn certificates(dir: &Path, n: usize) {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).arg("cert").args(args).arg("--dir").arg(dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["ca"]);
    for i in 1..=n {
        run(&["node", &format!("node-{i}"), "--host", "127.0.0.1", "--host", "localhost"]);
    }
}

/// Adds a `[tls]` section to node `i`'s config: its own certificate from `dir`, and
/// `more` settings.
pub fn tls_config(c: &TestCluster, i: usize, dir: &Path, more: &str) {
    let id = &c.nodes[i].id;
    let section = format!(
        "\n[tls]\ncert_file = \"{0}/{id}.crt\"\nkey_file = \"{0}/{id}.key\"\nca_file = \"{0}/ca.crt\"\n{more}\n",
        dir.display()
    );
    let mut config = std::fs::read_to_string(&c.nodes[i].config).unwrap();
    config.push_str(&section);
    std::fs::write(&c.nodes[i].config, config).unwrap();
}

/// Starts every node of `c` and waits until each serves and sees the others.
pub fn start_all(c: &mut TestCluster) {
    for i in 0..c.nodes.len() {
        c.spawn_process(i);
    }
    for i in 0..c.nodes.len() {
        c.wait_serving(i);
    }
    for i in 0..c.nodes.len() {
        c.wait_seen_up(i);
    }
}

pub fn cert_dir(c: &TestCluster) -> PathBuf {
    c.dir.path().join("certs")
}

/// One node with a TLS Redis port (returned) and HTTPS, `more` in its `[tls]` section.
pub fn tls_node(more: &str) -> (TestCluster, u16) {
    tls_node_with("", more)
}

/// As [`tls_node`], with `top` among the top-level settings.
pub fn tls_node_with(top: &str, more: &str) -> (TestCluster, u16) {
    let mut c = TestCluster::configure(&std::env::temp_dir(), 1, "periodic", top, "");
    certificates(&cert_dir(&c), 1);
    let port = super::free_port();
    let settings = format!("redis_addr = \"127.0.0.1:{port}\"\nhttp = true\n{more}");
    tls_config(&c, 0, &cert_dir(&c), &settings);
    c.spawn_process(0);
    c.wait_serving(0);
    (c, port)
}
