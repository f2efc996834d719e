//! TLS as users meet it: `halka cert` makes the certificates, `redis-cli --tls` and
//! `curl --cacert` reach a node, nodes speak mutual TLS to each other and refuse a peer
//! whose certificate is from another CA, expired, or missing, and a certificate rotated
//! on disk is used without a restart.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::tls::{cert_dir, certificates, start_all, tls_config, tls_node, tls_node_with};
use common::{Raw, TestCluster};
use halka::tls::certs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn redis_cli_tls(c: &TestCluster, port: u16, args: &[&str]) -> String {
    let ca = cert_dir(c).join("ca.crt");
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--tls", "--cacert"])
        .arg(&ca)
        .args(args)
        .output()
        .expect("redis-cli runs (see .ci/run)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
        + String::from_utf8_lossy(&out.stderr).trim()
}

#[test]
fn redis_cli_and_curl_reach_a_node_over_tls_with_the_cluster_ca() {
    let (c, port) = tls_node("");
    assert_eq!(redis_cli_tls(&c, port, &["SET", "k", "over-tls"]), "OK");
    assert_eq!(redis_cli_tls(&c, port, &["GET", "k"]), "over-tls");
    let url = format!("https://127.0.0.1:{}/v1/kv/k?raw=true", c.nodes[0].http_port);
    let ca = cert_dir(&c).join("ca.crt");
    let out = Command::new("curl").args(["-s", "--cacert"]).arg(&ca).arg(&url).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over-tls");
    let plain = Command::new("curl").args(["-s", "-k"]).arg(url.replace("https", "http")).output();
    let plain = String::from_utf8_lossy(&plain.unwrap().stdout).into_owned();
    assert!(plain.contains("this port speaks HTTPS"), "{plain}");
}

#[test]
fn plain_resp_sent_to_the_tls_port_is_told_to_use_tls() {
    let (_c, port) = tls_node("");
    let mut conn = Raw::connect(&format!("127.0.0.1:{port}"));
    let reply = conn.cmd(&["PING"]);
    assert!(reply.starts_with("-ERR this port speaks TLS"), "{reply}");
    assert!(conn.closed());
}

/// A cluster of `n` nodes with mutual TLS between them, started.
fn mtls_cluster(n: usize) -> TestCluster {
    let mut c = TestCluster::configure(&std::env::temp_dir(), n, "periodic", "", "");
    certificates(&cert_dir(&c), n);
    for i in 0..n {
        tls_config(&c, i, &cert_dir(&c), "peers = true");
    }
    start_all(&mut c);
    c
}

#[test]
fn nodes_with_mutual_tls_replicate_a_write_to_every_owner() {
    let c = mtls_cluster(3);
    let (status, body) = common::http("PUT", &c.http_url(0, "/v1/kv/k?w=3"), b"v", &[]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = common::http("GET", &c.http_url(2, "/v1/kv/k?r=3"), b"", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"value\":\"v\""), "{body}");
}

#[test]
fn a_plain_connection_to_a_tls_peer_port_is_refused_and_counted() {
    let c = mtls_cluster(1);
    let mut conn = Raw::connect(&c.peer_addr(0));
    let _ = conn.send(b"not a TLS client hello at all\r\n");
    assert!(conn.closed());
    c.wait_logged_lately(0, "TLS handshake failed");
    let rejected = common::metric(&c, 0, "halka_peer_connections_rejected_total{reason=\"tls\"}");
    assert!(rejected >= 1.0, "{rejected}");
}

/// A two-node cluster whose second node has the certificate `second` (written over the
/// one `halka cert` made), started without waiting for the nodes to meet.
fn cluster_with_second_certificate(second: &certs::Issued) -> TestCluster {
    let mut c = TestCluster::configure(&std::env::temp_dir(), 2, "periodic", "", "");
    let dir = cert_dir(&c);
    certificates(&dir, 2);
    certs::write(&dir, "node-2", second).unwrap();
    for i in 0..2 {
        tls_config(&c, i, &dir, "peers = true");
    }
    c.spawn_process(0);
    c.spawn_process(1);
    c
}

#[test]
fn a_peer_with_a_certificate_from_another_ca_is_refused_and_both_logs_say_why() {
    let other = certs::authority("another CA", 30).unwrap();
    let hosts = ["127.0.0.1".to_string()];
    let foreign = certs::node(&other, "node-2", &hosts, time::OffsetDateTime::now_utc(), 30);
    let c = cluster_with_second_certificate(&foreign.unwrap());
    // node-1 refuses node-2's certificate, and says why; node-2 hears the refusal.
    c.wait_logged_lately(0, "TLS handshake failed: invalid peer certificate: UnknownIssuer");
    c.wait_logged_lately(1, "the peer refused this node's certificate");
}

#[test]
fn a_peer_with_an_expired_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), 0);
    let ca = certs::read_authority(dir.path()).unwrap();
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    let hosts = ["127.0.0.1".to_string()];
    let expired = certs::node(&ca, "node-2", &hosts, long_ago, 30).unwrap();
    let mut c = TestCluster::configure(&std::env::temp_dir(), 2, "periodic", "", "");
    let certs_dir = cert_dir(&c);
    std::fs::create_dir_all(&certs_dir).unwrap();
    for f in ["ca.crt", "ca.key"] {
        std::fs::copy(dir.path().join(f), certs_dir.join(f)).unwrap();
    }
    let fresh = certs::node(&ca, "node-1", &hosts, time::OffsetDateTime::now_utc(), 30).unwrap();
    certs::write(&certs_dir, "node-1", &fresh).unwrap();
    certs::write(&certs_dir, "node-2", &expired).unwrap();
    for i in 0..2 {
        tls_config(&c, i, &certs_dir, "peers = true");
    }
    c.spawn_process(0);
    c.spawn_process(1);
    // node-1 finds node-2's certificate expired both when it dials node-2 and when
    // node-2 dials it.
    c.wait_logged_lately(0, "certificate expired");
    c.wait_logged_lately(1, "the peer refused this node's certificate");
}

#[test]
fn a_node_without_tls_cannot_reach_a_member_that_requires_it() {
    let mut c = TestCluster::configure(&std::env::temp_dir(), 2, "periodic", "", "");
    certificates(&cert_dir(&c), 2);
    tls_config(&c, 0, &cert_dir(&c), "peers = true");
    c.spawn_process(0);
    c.spawn_process(1);
    c.wait_logged_lately(0, "TLS handshake failed");
}

/// The serial number of the certificate a TLS server at `port` presents now.
fn served_serial(ca: &Path, port: u16) -> String {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} -CAfile {} </dev/null 2>/dev/null | openssl x509 -noout -serial",
        ca.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes a new certificate for node-1 over its files (same CA).
fn rotate(c: &TestCluster) {
    let dir = cert_dir(c);
    let ca = certs::read_authority(&dir).unwrap();
    let hosts = ["127.0.0.1".to_string()];
    let issued = certs::node(&ca, "node-1", &hosts, time::OffsetDateTime::now_utc(), 30).unwrap();
    certs::write(&dir, "node-1", &issued).unwrap();
}

fn wait_serial_changes(c: &TestCluster, port: u16, before: &str) {
    let ca = cert_dir(c).join("ca.crt");
    let deadline = Instant::now() + Duration::from_secs(60);
    while served_serial(&ca, port) == before {
        assert!(Instant::now() < deadline, "the new certificate was never served");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_certificate_rotated_on_disk_is_served_to_new_connections_without_a_restart() {
    let (c, port) = tls_node("reload_interval_ms = 100");
    let ca = cert_dir(&c).join("ca.crt");
    let before = served_serial(&ca, port);
    assert!(before.starts_with("serial="), "{before}");
    rotate(&c);
    wait_serial_changes(&c, port, &before);
    assert_eq!(redis_cli_tls(&c, port, &["PING"]), "PONG");
}

#[test]
fn sighup_reloads_the_certificates() {
    let (c, port) = tls_node("reload_interval_ms = 3600000");
    let before = served_serial(&cert_dir(&c).join("ca.crt"), port);
    rotate(&c);
    c.signal(0, nix::sys::signal::Signal::SIGHUP);
    wait_serial_changes(&c, port, &before);
}

#[test]
fn a_client_without_a_certificate_is_refused_when_auth_clients_is_yes() {
    let (c, port) = tls_node("auth_clients = \"yes\"");
    assert_ne!(redis_cli_tls(&c, port, &["PING"]), "PONG");
    let dir = cert_dir(&c);
    let (cert, key) = (dir.join("node-1.crt"), dir.join("node-1.key"));
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    assert_eq!(redis_cli_tls(&c, port, &["--cert", cert, "--key", key, "PING"]), "PONG");
}

#[test]
fn curl_over_https_needs_credentials_once_the_default_user_has_a_password() {
    let (c, _) = tls_node_with("requirepass = \"https-pw\"", "");
    let ca = cert_dir(&c).join("ca.crt");
    let url = format!("https://127.0.0.1:{}/v1/kv/k", c.nodes[0].http_port);
    let curl = |extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .args(extra)
            .arg(&url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(&[]), "401");
    assert_eq!(curl(&["-u", "default:wrong"]), "401");
    assert_eq!(curl(&["-u", "default:https-pw", "-X", "PUT", "--data", "v"]), "200");
    assert_eq!(curl(&["-u", "default:https-pw"]), "200");
}

/// redis-py over TLS with a user and password: allowed, refused a key, wrong password.
const REDIS_PY_TLS: &str = r#"
import sys, redis
port, ca = int(sys.argv[1]), sys.argv[2]
def client(password):
    return redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca,
                       username="app", password=password)
r = client("app-pw")
r.set("app:1", "v")
assert r.get("app:1") == b"v"
try:
    r.set("other", "x")
    raise SystemExit("NOPERM expected")
except redis.exceptions.NoPermissionError:
    pass
try:
    client("wrong").ping()
    raise SystemExit("WRONGPASS expected")
except redis.exceptions.AuthenticationError:
    pass
print("ok")
"#;

#[test]
fn redis_py_over_tls_with_a_username_and_password_is_allowed_and_refused_as_its_rules_say() {
    let (c, port) = tls_node("");
    let mut admin = Raw::connect(&c.redis_addr(0));
    let made = admin.cmd(&["ACL", "SETUSER", "app", "on", ">app-pw", "~app:*", "+@all"]);
    assert_eq!(made, "+OK\r\n");
    let out = Command::new("python3")
        .args(["-c", REDIS_PY_TLS, &port.to_string()])
        .arg(cert_dir(&c).join("ca.crt"))
        .output()
        .expect("python3 runs (see .ci/run)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{stderr}");
}

#[test]
fn a_node_with_no_plain_redis_port_serves_redis_over_tls_only() {
    let mut c = TestCluster::configure(&std::env::temp_dir(), 1, "periodic", "", "");
    certificates(&cert_dir(&c), 1);
    let port = common::free_port();
    let config = std::fs::read_to_string(&c.nodes[0].config).unwrap();
    let plain = format!("redis_addr = \"127.0.0.1:{}\"", c.nodes[0].redis_port);
    std::fs::write(&c.nodes[0].config, config.replace(&plain, "redis_addr = \"\"")).unwrap();
    tls_config(&c, 0, &cert_dir(&c), &format!("redis_addr = \"127.0.0.1:{port}\""));
    c.spawn_process(0);
    c.wait_serving(0);
    assert_eq!(redis_cli_tls(&c, port, &["SET", "k", "v"]), "OK");
    let refused = std::net::TcpStream::connect(c.redis_addr(0));
    assert!(refused.is_err(), "the plain Redis port answers");
}

#[test]
fn no_redis_port_at_all_is_refused_saying_which_to_give() {
    let out = Command::new(common::BIN)
        .args(["server", "--redis-addr", "", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tls.redis_addr"), "{stderr}");
}
