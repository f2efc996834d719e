//! Hostile input on the peer port and around the cluster secret, through real processes:
//! strangers and impostors, a stranger's flood that must not keep members out, and nodes
//! that must not start without a secret they can trust.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, SECRET, TestCluster, http, metric};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Reads the peer port's answer to `bytes` until it closes the connection.
fn peer_port_answer(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

#[test]
fn a_stranger_on_the_peer_port_reads_and_writes_nothing() {
    let c = TestCluster::start(3, "periodic");
    assert!(Raw::connect(&c.redis_addr(0)).cmd(&["SET", "private", "data"]).starts_with("+OK"));
    let peer = c.peer_addr(0);
    // `Get { key: "private" }` as the peer protocol frames it, sent without a handshake.
    let body = halka_cluster::rpc::encode(&halka_cluster::rpc::Envelope {
        id: 1,
        body: halka_cluster::rpc::Request::Get { key: "private".into() },
    })
    .unwrap();
    let mut get = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    get.extend_from_slice(&body);
    let answer = peer_port_answer(&peer, &get);
    assert!(answer.is_empty(), "a stranger got an answer: {answer:?}");
    let garbage = peer_port_answer(&peer, b"GET / HTTP/1.1\r\n\r\n");
    assert!(garbage.is_empty(), "{garbage:?}");
    assert!(metric(&c, 0, "halka_peer_connections_rejected_total{reason=\"not_a_peer\"}") >= 2.0);
    // The node keeps serving clients and peers.
    assert!(Raw::connect(&c.redis_addr(0)).cmd(&["GET", "private"]).contains("data"));
    let (status, _) = http("PUT", &c.http_url(0, "/v1/kv/after?w=3"), b"v", &[]);
    assert_eq!(status, 200);
}

#[test]
fn a_node_with_another_secret_is_shut_out() {
    let mut c = TestCluster::start(3, "periodic");
    c.kill(2);
    let config = std::fs::read_to_string(&c.nodes[2].config).unwrap();
    std::fs::write(&c.nodes[2].config, config.replace(SECRET, "an-impostor-s-own-secret")).unwrap();
    // Started without waiting for the members to reach it: they never will.
    c.start_process(2);
    // The impostor's writes reach no member: it has only itself, so W=2 fails.
    let reply = Raw::connect(&c.redis_addr(2)).cmd(&["SET", "k", "evil"]);
    assert!(reply.starts_with("-"), "{reply}");
    assert!(metric(&c, 0, "halka_peer_connections_rejected_total{reason=\"wrong_secret\"}") >= 1.0);
    // The members do not accept it as a replica either.
    let (status, body) = http("PUT", &c.http_url(0, "/v1/kv/k?w=3"), b"good", &[]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("node-3"), "{body}");
    let (status, body) = http("GET", &c.http_url(1, "/v1/kv/k?r=2"), b"", &[]);
    assert_eq!((status, json(&body)["value"].as_str()), (200, Some("good")), "{body}");
}

/// A stranger on the peer port, as the flood in the report: `n` connections from `source`
/// that send nothing, each reopened the moment the server closes it.
struct Flood {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    closed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(source: &str, addr: &str, n: usize) -> Self {
        let (source, addr): (std::net::IpAddr, std::net::SocketAddr) =
            (source.parse().unwrap(), addr.parse().unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads = (0..n)
            .map(|_| {
                let (stop, closed) = (std::sync::Arc::clone(&stop), std::sync::Arc::clone(&closed));
                std::thread::spawn(move || Self::hold(source, addr, &stop, &closed))
            })
            .collect();
        Self { stop, closed, threads }
    }

    fn hold(
        source: std::net::IpAddr,
        addr: std::net::SocketAddr,
        stop: &std::sync::atomic::AtomicBool,
        closed: &std::sync::atomic::AtomicUsize,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        while !stop.load(Relaxed) {
            let Ok(mut s) = Self::connect(source, addr) else {
                // The attacker's own pacing while the port is closed.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let mut buf = [0u8; 64];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if stop.load(Relaxed) {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            closed.fetch_add(1, Relaxed);
        }
    }

    fn connect(source: std::net::IpAddr, addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        s.bind(&std::net::SocketAddr::new(source, 0).into())?;
        s.connect(&addr.into())?;
        Ok(s.into())
    }

    /// Waits until the server has closed `n` of the flood's connections: its handshake
    /// places are full and the flood is reopening what it loses.
    fn wait_closed(&self, n: usize) {
        while self.closed.load(std::sync::atomic::Ordering::Relaxed) < n {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn a_member_gets_in_at_its_first_dial_through_a_flood_from_another_host() {
    let mut c = TestCluster::start_with(3, "periodic", "timeout_ms = 60000");
    // More connections than the port's 64 handshake places, from another host's address.
    let flood = Flood::start("127.0.0.2", &c.peer_addr(0), 80);
    flood.wait_closed(500);
    // node-2 comes back, and its first write needs node-1: the dial made for it is the
    // only chance, as a failed one would put node-1 in backoff and fail the write.
    c.kill(1);
    c.start_process(1);
    let (status, body) = http("PUT", &c.http_url(1, "/v1/kv/k?w=3"), b"v", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(metric(&c, 0, "halka_peer_connections_rejected_total{reason=\"displaced\"}") > 0.0);
    drop(flood);
}

#[test]
fn a_member_gets_through_a_stranger_flooding_its_peers_port_from_the_same_host() {
    let mut c = TestCluster::start(3, "periodic");
    // The report's flood, from the members' own address: a member's connection must
    // finish its handshake before 16 newer ones arrive from that address.
    let flood = Flood::start("127.0.0.1", &c.peer_addr(0), 80);
    flood.wait_closed(500);
    c.kill(1);
    c.start_process(1);
    c.wait_sees(1, 0, &["up"]);
    let (status, body) = http("PUT", &c.http_url(1, "/v1/kv/k?w=3"), b"v", &[]);
    assert_eq!(status, 200, "{body}");
    // node-1 keeps serving its clients all along.
    assert!(Raw::connect(&c.redis_addr(0)).cmd(&["GET", "k"]).contains('v'));
    drop(flood);
}

#[test]
fn a_flood_of_strangers_on_the_peer_port_logs_a_few_lines_not_one_each() {
    let c = TestCluster::start(1, "periodic");
    let before = c.log_lines(0);
    let flood = Flood::start("127.0.0.1", &c.peer_addr(0), 80);
    flood.wait_closed(5_000);
    drop(flood);
    let logged = c.log_lines(0) - before;
    assert!(logged < 50, "{logged} log lines for 5,000 turned-away connections");
}

/// Runs `halka server` on `config` until it exits; its stderr.
fn server_refuses(config: &std::path::Path) -> String {
    let out = std::process::Command::new(common::BIN)
        .args(["server", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the node started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_node_with_other_members_and_no_secret_refuses_to_start() {
    let c = TestCluster::configure(&std::env::temp_dir(), 3, "periodic", "", "");
    let text = std::fs::read_to_string(&c.nodes[0].config).unwrap();
    let without: String =
        text.lines().filter(|l| !l.starts_with("cluster_secret")).collect::<Vec<_>>().join("\n");
    std::fs::write(&c.nodes[0].config, without).unwrap();
    let err = server_refuses(&c.nodes[0].config);
    assert!(err.contains("cluster_secret") && err.contains("3 members"), "{err}");
}

#[test]
fn a_lone_node_without_a_secret_keeps_its_own_across_restarts() {
    let mut c = TestCluster::configure(&std::env::temp_dir(), 1, "periodic", "", "");
    let text = std::fs::read_to_string(&c.nodes[0].config).unwrap();
    let without: String =
        text.lines().filter(|l| !l.starts_with("cluster_secret")).collect::<Vec<_>>().join("\n");
    std::fs::write(&c.nodes[0].config, without).unwrap();
    c.start_process(0);
    let (_, body) = http("PUT", &c.http_url(0, "/v1/kv/doc"), b"v1", &[]);
    let token = json(&body)["context"].as_str().unwrap().to_string();
    let file = c.dir.path().join("node-1").join("cluster-secret");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // After a restart the node signs with the same key: its old token is still accepted.
    c.kill(0);
    c.start_process(0);
    let (status, body) =
        http("PUT", &c.http_url(0, "/v1/kv/doc"), b"v2", &[("X-Halka-Context", &token)]);
    assert_eq!(status, 200, "{body}");
}
