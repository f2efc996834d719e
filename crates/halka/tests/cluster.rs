//! Real `halka server` processes: replication, quorums under SIGKILL, durability across
//! restarts, bad input, graceful shutdown.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster, http};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

#[test]
fn writes_replicate_across_processes() {
    let c = TestCluster::start(3, "periodic");
    let mut a = Raw::connect(&c.redis_addr(0));
    assert_eq!(a.cmd(&["SET", "Mahmut", "Ozer"]), "+OK\r\n");
    // Every node can read it, and with r=3 every replica answers with it.
    for i in 0..3 {
        let mut n = Raw::connect(&c.redis_addr(i));
        assert_eq!(n.cmd(&["GET", "Mahmut"]), "$4\r\nOzer\r\n");
    }
    let all = Raw::connect(&c.redis_addr(1)).cmd(&["HALKA.GETALL", "Mahmut", "3"]);
    for id in ["node-1", "node-2", "node-3"] {
        assert!(all.contains(id), "{all}");
    }
    assert_eq!(all.matches("Ozer").count(), 4, "three replicas and the resolved value: {all}");
}

/// The window a busy machine used to open: the first nodes dialled the last one before it
/// bound its peer port, and their links were still in reconnect backoff when the first
/// request needing every replica came.
#[test]
fn a_write_needing_every_replica_succeeds_as_soon_as_the_last_node_serves() {
    let mut c = TestCluster::configure(&std::env::temp_dir(), 3, "periodic", "", "");
    // The first two together: a node that kept no layout waits for a majority to answer.
    c.spawn_process(0);
    c.spawn_process(1);
    c.wait_serving(0);
    c.wait_serving(1);
    let mut a = Raw::connect(&c.redis_addr(0));
    // Replicated to node-3 too: its refused connection puts node-1's link in backoff.
    assert_eq!(a.cmd(&["SET", "before", "v"]), "+OK\r\n");
    c.start_process(2);
    assert_eq!(a.cmd(&["HALKA.SET", "first", "v", "3"]), "+OK\r\n", "W=3");
}

#[test]
fn quorums_with_one_node_killed_and_durability_after_restart() {
    let mut c = TestCluster::start(3, "always");
    let mut a = Raw::connect(&c.redis_addr(0));
    for i in 0..50 {
        assert_eq!(a.cmd(&["HALKA.CONSISTENCY", "2", "3"]), "+OK\r\n");
        assert_eq!(a.cmd(&["SET", &format!("before-{i}"), "v"]), "+OK\r\n");
    }
    c.kill(2);
    // w=2 still succeeds; w=3 fails, naming the dead node.
    assert_eq!(a.cmd(&["HALKA.CONSISTENCY", "2", "2"]), "+OK\r\n");
    assert_eq!(a.cmd(&["SET", "during", "v"]), "+OK\r\n");
    assert_eq!(a.cmd(&["HALKA.CONSISTENCY", "2", "3"]), "+OK\r\n");
    let reply = a.cmd(&["SET", "k3", "v"]);
    // It returns as soon as success is impossible, so the count is of answers so far.
    assert!(reply.starts_with("-NOQUORUM write quorum not reached"), "{reply}");
    assert!(reply.contains("w=3 of 3 replicas"), "{reply}");
    // At once: on the refused connection, not at the replica call's deadline.
    assert!(reply.contains("node-3 (unreachable") && reply.contains("refused"), "{reply}");
    assert!(!reply.contains("timed out"), "{reply}");
    assert_eq!(a.cmd(&["HALKA.CONSISTENCY", "3", "2"]), "+OK\r\n");
    assert!(a.cmd(&["GET", "before-1"]).starts_with("-NOQUORUM read quorum not reached"));

    // Restarted with the same data directory, node-3 has everything it acknowledged.
    c.launch(2);
    let mut b = Raw::connect(&c.redis_addr(1));
    for i in 0..50 {
        let all = b.cmd(&["HALKA.GETALL", &format!("before-{i}"), "3"]);
        let node3 = all.split("node-3\r\n").nth(1).unwrap_or_default();
        assert!(node3.starts_with("$1\r\nv"), "node-3 lost before-{i}: {all}");
    }
}

#[test]
fn a_hung_node_slows_neither_reads_nor_writes() {
    // A hung node is the hard case: its connections stay open and calls to it only end at
    // their deadline, here ten minutes away. Reads ask another replica after the hedge
    // delay, writes need only W = 2 of the three acknowledgements; a request that waited
    // for the hung node would outlast the client's read timeout and read nothing.
    let c = TestCluster::start_with(3, "periodic", "read_hedge_ms = 5\ntimeout_ms = 600000");
    let mut a = Raw::connect(&c.redis_addr(0));
    for i in 0..20 {
        assert_eq!(a.cmd(&["SET", &format!("k{i}"), "v"]), "+OK\r\n");
    }
    c.signal(1, nix::sys::signal::Signal::SIGSTOP);
    for i in 0..20 {
        assert_eq!(a.cmd(&["GET", &format!("k{i}")]), "$1\r\nv\r\n", "k{i}");
        assert_eq!(a.cmd(&["SET", &format!("k{i}"), "w"]), "+OK\r\n", "k{i}");
    }
    c.signal(1, nix::sys::signal::Signal::SIGCONT);
}

#[test]
fn no_acknowledged_write_is_lost_across_sigkill_cycles() {
    let mut c = TestCluster::start(3, "periodic");
    let addrs: Vec<String> = (0..3).map(|i| c.redis_addr(i)).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 0_u64;
            let mut node = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(s) = std::net::TcpStream::connect(&addrs[node]) else {
                    node = (node + 1) % addrs.len();
                    continue;
                };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut conn = Raw(s);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("key-{i}");
                    i += 1;
                    let reply = conn.cmd(&["SET", &key, &key]);
                    if reply == "+OK\r\n" {
                        acked.push(key);
                    } else if reply.is_empty() {
                        break; // this node died; move on
                    }
                }
                node = (node + 1) % addrs.len();
            }
            acked
        })
    };
    let mut rng = SmallRng::seed_from_u64(20);
    for _ in 0..20 {
        let victim = rng.random_range(0..3);
        c.kill(victim);
        c.launch(victim);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.join().unwrap();
    assert!(acked.len() > 100, "the load ran: {} writes acknowledged", acked.len());
    let mut check = Raw::connect(&c.redis_addr(0));
    for key in &acked {
        let reply = check.cmd(&["GET", key]);
        assert_eq!(reply, format!("${}\r\n{key}\r\n", key.len()), "lost acknowledged write {key}");
    }
}

#[test]
fn bad_input_gets_errors_and_stores_nothing() {
    let c = TestCluster::start_with(
        1,
        "periodic",
        "[limits]\nmax_key_bytes = 16\nmax_value_bytes = 64\n",
    );
    let addr = c.redis_addr(0);
    let mut conn = Raw::connect(&addr);
    let reply = conn.cmd(&["NOSUCH", "a"]);
    assert!(reply.starts_with("-ERR unknown command 'NOSUCH'"), "{reply}");
    let reply = conn.cmd(&["SET", "k"]);
    assert!(reply.starts_with("-ERR wrong number of arguments for 'set'"), "{reply}");
    let reply = conn.cmd(&["SET", &"k".repeat(17), "v"]);
    assert!(reply.contains("key is 17 bytes; the maximum is 16 bytes"), "{reply}");
    let reply = conn.cmd(&["MSET", "a", "1", "b", &"x".repeat(65)]);
    assert!(reply.starts_with("-ERR"), "{reply}");
    assert_eq!(conn.cmd(&["EXISTS", "a", "b"]), ":0\r\n", "MSET stored nothing");
    assert!(
        conn.cmd(&["HALKA.CONSISTENCY", "2", "1"]).contains("r=2 exceeds replication factor n=1")
    );
    assert!(conn.cmd(&["SET", "k", "v", "EX", "0"]).contains("invalid expire time"));

    // Malformed frames: an error reply, then the connection closes; the node lives on.
    let mut bad = Raw::connect(&addr);
    let reply = bad.send(b"*1\r\n$abc\r\n");
    assert!(reply.starts_with("-ERR Protocol error"), "{reply}");
    assert!(bad.closed());
    // An argument over the whole request's bound (512 MiB): refused before it arrives.
    let mut huge = Raw::connect(&addr);
    let reply = huge.send(b"*2\r\n$3\r\nSET\r\n$600000000\r\n");
    assert!(reply.contains("larger than max_request_bytes"), "{reply}");
    assert!(huge.closed());
    assert_eq!(Raw::connect(&addr).cmd(&["PING"]), "+PONG\r\n");

    // Inline commands, as typed into telnet: quotes as Redis reads them; an unbalanced
    // quote is a protocol error that stores nothing.
    let mut telnet = Raw::connect(&addr);
    assert_eq!(telnet.send(b"SET greeting \"hi there\"\n"), "+OK\r\n");
    assert_eq!(telnet.send(b"GET greeting\r\n"), "$8\r\nhi there\r\n");
    let reply = telnet.send(b"SET open \"quote\r\n");
    assert!(reply.contains("unbalanced quotes"), "{reply}");
    assert_eq!(Raw::connect(&addr).cmd(&["EXISTS", "open"]), ":0\r\n");

    // HTTP: oversized bodies, bad contexts, bad quorums — JSON errors, nothing stored.
    let (status, body) = http("PUT", &c.http_url(0, "/v1/kv/big"), &[b'x'; 65], &[]);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("the maximum is 64 bytes"), "{body}");
    let (status, body) =
        http("PUT", &c.http_url(0, "/v1/kv/k"), b"v", &[("X-Halka-Context", "!!!")]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid causal context"), "{body}");
    let (status, body) = http("PUT", &c.http_url(0, "/v1/kv/k?w=5"), b"v", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("w=5 exceeds replication factor n=1"), "{body}");
    let (status, body) = http("PUT", &c.http_url(0, "/v1/kv/bigger"), &[b'x'; 1000], &[]);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than the maximum of 64 bytes"), "{body}");
    // Bad query strings, paths and methods: JSON errors too, never plain text.
    for (method, path, status, says) in [
        ("PUT", "/v1/kv/k?w=two", 400, "w: invalid digit"),
        ("GET", "/v1/kv/k?quorum=2", 400, "unknown field `quorum`"),
        ("GET", "/v1/kv/%FF", 400, "Invalid UTF-8"),
        ("GET", "/v1/keys", 404, "no route for GET /v1/keys"),
        ("POST", "/v1/kv/k", 405, "POST is not allowed on /v1/kv/k"),
    ] {
        let (got, body) = http(method, &c.http_url(0, path), b"v", &[]);
        assert_eq!(got, status, "{method} {path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(json["error"].as_str().unwrap().contains(says), "{method} {path}: {body}");
    }
    let (status, _) = http("GET", &c.http_url(0, "/v1/kv/big"), b"", &[]);
    assert_eq!(status, 404);
    let (status, _) = http("GET", &c.http_url(0, "/v1/kv/k"), b"", &[]);
    assert_eq!(status, 404);
}

#[test]
fn http_api_handles_siblings_with_causal_context() {
    let c = TestCluster::start(3, "periodic");
    let url = |p: &str| c.http_url(0, p);
    let (status, body) = http("PUT", &url("/v1/kv/cart"), b"milk", &[]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first_context = v["context"].as_str().unwrap().to_string();
    // Two writers that both saw only the first version: their writes become siblings.
    http("PUT", &url("/v1/kv/cart"), b"eggs", &[("X-Halka-Context", &first_context)]);
    http("PUT", &c.http_url(1, "/v1/kv/cart"), b"bread", &[("X-Halka-Context", &first_context)]);
    let (status, body) = http("GET", &url("/v1/kv/cart?r=3"), b"", &[]);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut siblings: Vec<&str> =
        v["siblings"].as_array().unwrap().iter().map(|s| s["value"].as_str().unwrap()).collect();
    siblings.sort_unstable();
    assert_eq!(siblings, ["bread", "eggs"], "{body}");
    assert_eq!(v["replicas"].as_array().unwrap().len(), 3);
    // A PUT with the merged context resolves them.
    let context = v["context"].as_str().unwrap().to_string();
    http("PUT", &url("/v1/kv/cart"), b"bread,eggs", &[("X-Halka-Context", &context)]);
    let (_, body) = http("GET", &url("/v1/kv/cart?r=3"), b"", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["siblings"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(v["value"], "bread,eggs");

    let (status, body) = http("DELETE", &url("/v1/kv/cart"), b"", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(http("GET", &url("/v1/kv/cart"), b"", &[]).0, 404);

    let (_, body) = http("GET", &url("/v1/cluster"), b"", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    assert_eq!(v["reads"]["fanout"], "quorum", "{body}");
    assert!(v["members"].as_array().unwrap().iter().all(|m| m["alive"] == true), "{body}");
    let (_, metrics) = http("GET", &url("/metrics"), b"", &[]);
    assert!(metrics.contains("halka_requests_total{protocol=\"http\",op=\"put\"}"), "{metrics}");
    assert_eq!(http("GET", &url("/health"), b"", &[]).0, 200);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut c = TestCluster::start(1, "periodic");
    assert_eq!(Raw::connect(&c.redis_addr(0)).cmd(&["SET", "k", "v"]), "+OK\r\n");
    let status = c.terminate(0);
    assert!(status.success(), "{status:?}");
    c.launch(0);
    assert_eq!(Raw::connect(&c.redis_addr(0)).cmd(&["GET", "k"]), "$1\r\nv\r\n");
}

#[test]
fn sigterm_under_load_finishes_what_it_started_and_keeps_every_acknowledged_write() {
    let mut c = TestCluster::start(3, "periodic");
    let acked_total = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (addr, acked_total) = (c.redis_addr(0), acked_total.clone());
            std::thread::spawn(move || {
                let mut conn = Raw::connect(&addr);
                let mut acked = Vec::new();
                for i in 0.. {
                    let key = format!("w{t}-{i}");
                    match conn.cmd(&["SET", &key, "v"]).as_str() {
                        "+OK\r\n" => acked.push(key),
                        "" => return acked, // closed by the shutdown
                        other => panic!("{key}: a reply that is neither OK nor a close: {other:?}"),
                    }
                    acked_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                unreachable!()
            })
        })
        .collect();
    while acked_total.load(std::sync::atomic::Ordering::Relaxed) < 400 {
        std::thread::yield_now();
    }
    let status = c.terminate(0);
    assert!(status.success(), "{status:?}");
    let acked: Vec<String> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    c.launch(0);
    let mut check = Raw::connect(&c.redis_addr(0));
    for key in &acked {
        assert_eq!(check.cmd(&["GET", key]), "$1\r\nv\r\n", "lost acknowledged write {key}");
    }
}

#[test]
fn members_with_different_member_lists_are_told_apart() {
    let mut c = TestCluster::start(3, "periodic");
    let peers = |c: &TestCluster, i: usize| {
        let info = Raw::connect(&c.redis_addr(i)).cmd(&["INFO", "halka"]);
        info.lines().find_map(|l| l.strip_prefix("peers:")).unwrap_or_default().to_string()
    };
    assert_eq!(peers(&c, 0), "node-2=up,node-3=up");
    // node-3 alone now weighs itself double: it places keys differently.
    c.terminate(2);
    let mut config = std::fs::read_to_string(&c.nodes[2].config).unwrap();
    config += "weight = 2\n";
    std::fs::write(&c.nodes[2].config, config).unwrap();
    c.launch(2);
    // node-1's connection to node-3 comes back within a probe interval (50 ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    while peers(&c, 0).contains("node-3=down") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(peers(&c, 0), "node-2=up,node-3=other-placement");
    assert_eq!(peers(&c, 2), "node-1=other-placement,node-2=other-placement");
    let (_, body) = http("GET", &c.http_url(1, "/v1/cluster"), b"", &[]);
    let cluster: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cluster["members"][2]["state"], "other-placement", "{body}");
}

#[test]
fn bad_config_file_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "node_id = \"a\"\nw = 7\n").unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["server", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("field `w`") && err.contains("1..=1"),
        "{err}"
    );
}
