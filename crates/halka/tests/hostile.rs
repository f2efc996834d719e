//! Hostile input through the client ports: forged causal contexts over HTTP, oversized and
//! trickled requests, connection floods, patterns and records past their limits (the peer
//! port's are in `peer_port.rs`). Each attack is refused with a clear error, and the node
//! keeps serving everyone else.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Raw, TestCluster, http};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// What the attack in the report sent: postcard of a version vector whose counters are all
/// `u64::MAX`, base64url, no signature.
fn forged_token(nodes: &[&str]) -> String {
    let vv: Vec<(String, u64)> = nodes.iter().map(|n| ((*n).to_string(), u64::MAX)).collect();
    URL_SAFE_NO_PAD.encode(postcard::to_allocvec(&vv).unwrap())
}

#[test]
fn a_forged_context_is_refused_and_the_key_stays_writable() {
    let c = TestCluster::start(3, "periodic");
    let url = c.http_url(0, "/v1/kv/victim");
    let forged = forged_token(&["node-1", "node-2", "node-3"]);
    let (status, body) = http("PUT", &url, b"x", &[("X-Halka-Context", &forged)]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not issued by this cluster"), "{body}");
    // Nothing was stored, and later writes land and read back through every node.
    assert_eq!(http("GET", &url, b"", &[]).0, 404);
    for i in 0..3 {
        assert_eq!(http("PUT", &c.http_url(i, "/v1/kv/victim"), b"v", &[]).0, 200);
        let (status, body) = http("GET", &c.http_url((i + 1) % 3, "/v1/kv/victim?r=2"), b"", &[]);
        assert_eq!((status, json(&body)["value"].as_str()), (200, Some("v")), "{body}");
    }
    assert!(Raw::connect(&c.redis_addr(1)).cmd(&["SET", "victim", "w"]).starts_with("+OK"));
    assert!(Raw::connect(&c.redis_addr(2)).cmd(&["GET", "victim"]).contains("w"));
}

#[test]
fn a_context_issued_for_another_key_is_refused() {
    let c = TestCluster::start(3, "periodic");
    let (_, body) = http("PUT", &c.http_url(0, "/v1/kv/a"), b"1", &[]);
    let token = json(&body)["context"].as_str().unwrap().to_string();
    let (status, body) =
        http("PUT", &c.http_url(0, "/v1/kv/b"), b"2", &[("X-Halka-Context", &token)]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("for this key"), "{body}");
    // The token still works for the key it was issued for, on any node.
    let (status, _) = http("PUT", &c.http_url(2, "/v1/kv/a"), b"3", &[("X-Halka-Context", &token)]);
    assert_eq!(status, 200);
}

#[test]
fn delete_replaces_only_what_its_context_header_saw() {
    let c = TestCluster::start(3, "periodic");
    let url = |i: usize| c.http_url(i, "/v1/kv/doc");
    let (_, body) = http("PUT", &url(0), b"old", &[]);
    let old = json(&body)["context"].as_str().unwrap().to_string();
    // A writer that read "old" replaces it with "new"...
    let (status, _) = http("PUT", &url(1), b"new", &[("X-Halka-Context", &old)]);
    assert_eq!(status, 200);
    // ...and a delete meant for "old" must not erase "new".
    let (status, body) = http("DELETE", &url(0), b"", &[("X-Halka-Context", &old)]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http("GET", &c.http_url(2, "/v1/kv/doc?r=3"), b"", &[]);
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    let live: Vec<&str> =
        v["siblings"].as_array().unwrap().iter().filter_map(|s| s["value"].as_str()).collect();
    assert_eq!(live, ["new"], "{body}");
    // A garbage context on DELETE is an error, not a blind delete.
    let (status, body) = http("DELETE", &url(0), b"", &[("X-Halka-Context", "garbage")]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(http("GET", &c.http_url(2, "/v1/kv/doc"), b"", &[]).0, 200);
}

#[test]
fn data_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let c = TestCluster::start(1, "periodic");
    assert!(Raw::connect(&c.redis_addr(0)).cmd(&["SET", "k", "v"]).starts_with("+OK"));
    let mut checked = 0;
    let mut stack = vec![c.dir.path().join("node-1")];
    while let Some(path) = stack.pop() {
        let meta = std::fs::metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        checked += 1;
    }
    assert!(checked > 5, "{checked}");
}

#[test]
fn hello_with_a_wrong_password_is_refused_and_changes_nothing() {
    let c = TestCluster::start_with(1, "periodic", "requirepass = \"the-password\"");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let reply = conn.cmd(&["HELLO", "3", "AUTH", "default", "secret"]);
    assert!(reply.starts_with("-WRONGPASS"), "{reply}");
    assert!(conn.cmd(&["AUTH", "the-password"]).starts_with("+OK"));
    // Still RESP2: a map would start with '%'.
    assert_eq!(conn.cmd(&["CONFIG", "GET", "save"]), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    assert!(conn.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(conn.cmd(&["CONFIG", "GET", "save"]), "%1\r\n$4\r\nsave\r\n$0\r\n\r\n");
}

#[test]
fn malformed_lengths_and_resp3_frames_from_clients_are_protocol_errors() {
    let c = TestCluster::start(1, "periodic");
    for bad in [&b"*1\r\n$+4\r\nPING\r\n"[..], b"%1\r\n+a\r\n+b\r\n", b"~1\r\n+a\r\n"] {
        let mut conn = Raw::connect(&c.redis_addr(0));
        let reply = conn.send(bad);
        assert!(reply.starts_with("-ERR Protocol error"), "{bad:?}: {reply}");
        assert!(conn.closed(), "{bad:?}");
    }
    assert_eq!(Raw::connect(&c.redis_addr(0)).cmd(&["PING"]), "+PONG\r\n");
}

/// A short MGET naming one large value many times used to build the whole reply (and
/// fetch every copy from the replicas); now each key is read once and the reply is bounded.
#[test]
fn mget_reads_each_key_once_and_bounds_its_reply() {
    let c = TestCluster::start_with(1, "periodic", "[limits]\nmax_reply_bytes = 100000");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let value = "x".repeat(1000);
    assert_eq!(conn.cmd(&["SET", "big", &value]), "+OK\r\n");
    let mut args = vec!["MGET"];
    args.extend(std::iter::repeat_n("big", 50));
    // 50 bulk strings of 1000 bytes: `$1000\r\n`, the value, `\r\n` each.
    let reply = conn.cmd_reply_of(&args, 5 + 50 * 1009);
    assert!(reply.starts_with("*50\r\n$1000\r\n"), "{}", &reply[..20]);
    assert_eq!(reply.len(), 5 + 50 * 1009);
    args.extend(std::iter::repeat_n("big", 150));
    let reply = conn.cmd(&args);
    assert!(reply.starts_with("-ERR the reply would exceed 100000 bytes"), "{reply}");
    assert!(reply.contains("limits.max_reply_bytes"), "{reply}");
    // The connection and the node go on; EXISTS still counts a repeated key each time.
    assert_eq!(conn.cmd(&["EXISTS", "big", "big", "nope"]), ":2\r\n");
}

#[test]
fn a_request_over_max_request_bytes_is_refused_and_the_connection_closed() {
    let c = TestCluster::start_with(1, "periodic", "[limits]\nmax_request_bytes = 100000");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let value = "x".repeat(60_000);
    let reply = conn.cmd(&["MSET", "a", &value, "b", &value]);
    assert!(reply.starts_with("-ERR Protocol error: request larger than"), "{reply}");
    assert!(reply.contains("max_request_bytes (100000 bytes)"), "{reply}");
    assert!(conn.closed());
    // Nothing of it was stored, and other clients are served as before.
    let mut other = Raw::connect(&c.redis_addr(0));
    assert_eq!(other.cmd(&["EXISTS", "a", "b"]), ":0\r\n");
    assert_eq!(other.cmd(&["MSET", "a", &value]), "+OK\r\n");
}

#[test]
fn a_client_silent_past_the_timeout_is_closed_even_mid_command() {
    let c = TestCluster::start_with(1, "periodic", "client_timeout_secs = 1");
    let mut idle = Raw::connect(&c.redis_addr(0));
    assert_eq!(idle.cmd(&["PING"]), "+PONG\r\n");
    let mut half = Raw::connect(&c.redis_addr(0));
    half.0.write_all(b"*1\r\n$4\r\nPI").unwrap();
    // Both reads end with the server's close (the harness gives up after 10 s).
    assert!(half.closed());
    assert!(idle.closed());
    assert_eq!(Raw::connect(&c.redis_addr(0)).cmd(&["PING"]), "+PONG\r\n");
}

/// Pools hand a connection to the next user: RESET must undo what the last one set.
#[test]
fn reset_restores_a_connections_defaults() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["HALKA.CONSISTENCY", "3", "3"]), "+OK\r\n");
    assert!(conn.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(conn.cmd(&["RESET"]), "+RESET\r\n");
    let info = conn.cmd(&["INFO", "halka"]);
    assert!(info.starts_with('$'), "RESP2 again: {info}");
    assert!(info.contains("connection_r:2\r\nconnection_w:2"), "{info}");
}

#[test]
fn halka_get_and_set_take_their_quorum_per_request() {
    let mut c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["HALKA.SET", "k", "v", "3"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["HALKA.GET", "k", "3"]), "$1\r\nv\r\n");
    let reply = conn.cmd(&["HALKA.GET", "k", "4"]);
    assert!(reply.starts_with("-") && reply.contains("r=4"), "{reply}");
    c.kill(2);
    let reply = conn.cmd(&["HALKA.SET", "k", "w", "3"]);
    assert!(reply.starts_with("-NOQUORUM") && reply.contains("w=3"), "{reply}");
    // The connection's own quorums (W=2) were never touched.
    assert_eq!(conn.cmd(&["SET", "k", "x"]), "+OK\r\n");
}

/// A node whose HTTP limits are small enough to reach in a test.
fn tight_http() -> TestCluster {
    TestCluster::start_with(
        1,
        "periodic",
        "[http]\nmax_connections = 2\nheader_timeout_ms = 300\nrequest_timeout_ms = 500\n",
    )
}

/// Reads until the server closes the connection; the socket's own timeout only guards
/// against a hang (it fails the read instead).
fn read_until_closed(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => {}
        // Closed with a reset: what arrived before it still counts.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("not closed by the server: {e}"),
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn an_http_client_that_trickles_its_headers_is_disconnected() {
    let c = tight_http();
    let mut s = TcpStream::connect(("127.0.0.1", c.nodes[0].http_port)).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    // The headers never end: the server closes the connection.
    let reply = read_until_closed(&mut s);
    assert!(!reply.contains("200 OK"), "{reply}");
}

#[test]
fn an_http_request_whose_body_never_ends_gets_408() {
    let c = tight_http();
    let mut s = TcpStream::connect(("127.0.0.1", c.nodes[0].http_port)).unwrap();
    s.write_all(
        b"PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .unwrap();
    let reply = read_until_closed(&mut s);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("http.request_timeout_ms"), "{reply}");
    let (status, _) = http("GET", &c.http_url(0, "/v1/kv/slow"), b"", &[]);
    assert_eq!(status, 404, "nothing of the unfinished body was stored");
}

#[test]
fn http_connections_over_the_cap_are_told_so_and_closed() {
    let c = TestCluster::start_with(1, "periodic", "[http]\nmax_connections = 2\n");
    let port = c.nodes[0].http_port;
    // Two clients hold the node's two slots, mid-request.
    let mut held: Vec<TcpStream> =
        (0..2).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    for s in &mut held {
        s.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    }
    // Once both are accepted, a third connection is refused with the reason.
    let reply = loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let reply = read_until_closed(&mut s);
        if reply.starts_with("HTTP/1.1 503") {
            break reply;
        }
    };
    assert!(reply.contains("http.max_connections"), "{reply}");
    drop(held);
    // Slots free again when those clients leave.
    let ok = loop {
        let (status, _) = http("GET", &c.http_url(0, "/health"), b"", &[]);
        if status == 200 {
            break status;
        }
    };
    assert_eq!(ok, 200);
}

/// A pattern of 64 KiB with an unclosed class kept a core busy for minutes after its
/// client left: every key compared rescanned the whole class. Patterns are capped now,
/// and refused at once with their length and the cap.
#[test]
fn an_oversized_match_pattern_is_refused_at_once() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["SET", "aaaa", "v"]), "+OK\r\n");
    let pattern = format!("*[{}", "a".repeat(64 << 10));
    let reply = conn.cmd_reply_of(&["KEYS", &pattern], 20);
    assert!(reply.starts_with("-ERR pattern of 65538 bytes is longer than the 4096"), "{reply}");
    let reply = conn.cmd_reply_of(&["SCAN", "0", "MATCH", &pattern, "COUNT", "1000"], 20);
    assert!(reply.starts_with("-ERR pattern of 65538 bytes"), "{reply}");
    // The connection goes on.
    assert_eq!(conn.cmd(&["GET", "aaaa"]), "$1\r\nv\r\n");
}

/// A long class within the cap is one set lookup per byte compared: it matches as Redis
/// would, and the node answers.
#[test]
fn a_long_class_within_the_cap_matches_as_redis_does() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    for key in ["xa", "xb", "xz"] {
        assert_eq!(conn.cmd(&["SET", key, "v"]), "+OK\r\n");
    }
    let pattern = format!("x[{}b]", "a".repeat(4000));
    let reply = conn.cmd(&["KEYS", &pattern]);
    assert!(reply.starts_with("*2\r\n") && reply.contains("xa") && reply.contains("xb"), "{reply}");
}

#[test]
fn siblings_past_the_record_limit_are_refused_and_the_key_still_replicates() {
    let c = TestCluster::start(3, "periodic");
    let url = c.http_url(0, "/v1/kv/big");
    let (_, body) = http("PUT", &url, b"seed", &[]);
    let old = json(&body)["context"].as_str().unwrap().to_string();
    // The report's attack: 1 MiB values written with the same old context pile up as
    // siblings. Four fit in the 4 MiB limit; the fifth is refused.
    let mib = vec![b'x'; 1 << 20];
    let answers: Vec<(u16, String)> =
        (0..5).map(|_| http("PUT", &url, &mib, &[("X-Halka-Context", &old)])).collect();
    assert!(answers[..4].iter().all(|(status, _)| *status == 200), "{:?}", answers[3].1);
    let (status, body) = &answers[4];
    assert_eq!(*status, 413, "{body}");
    assert!(body.contains("max_record_bytes") && body.contains("context"), "{body}");
    // Every replica holds the four siblings, read through another node at R=3: the record
    // travels between nodes.
    let (status, body) = http("GET", &c.http_url(1, "/v1/kv/big?r=3"), b"", &[]);
    assert_eq!(status, 200, "{body}");
    let read = json(&body);
    assert_eq!(read["siblings"].as_array().unwrap().len(), 4);
    // Writing with the context of that read replaces them, as the error says.
    let context = read["context"].as_str().unwrap().to_string();
    let (status, body) = http("PUT", &url, b"resolved", &[("X-Halka-Context", &context)]);
    assert_eq!(status, 200, "{body}");
    let (_, body) = http("GET", &c.http_url(2, "/v1/kv/big?r=3"), b"", &[]);
    assert_eq!(json(&body)["value"].as_str(), Some("resolved"), "{body}");
}

#[test]
fn a_bad_context_token_is_not_echoed_in_the_error() {
    let c = TestCluster::start(1, "periodic");
    let token = "c2VjcmV0LWxvb2tpbmctdG9rZW4tdGhhdC1pcy1ub3Qtb3Vycw";
    let (status, body) =
        http("PUT", &c.http_url(0, "/v1/kv/k"), b"v", &[("X-Halka-Context", token)]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid causal context"), "{body}");
    assert!(!body.contains(token), "the token came back: {body}");
}

#[test]
fn a_node_warns_at_startup_when_protected_mode_is_off() {
    let c = TestCluster::start_with(1, "periodic", "protected_mode = false");
    let log = c.startup_log(0);
    assert!(log.contains("protected_mode = false") && log.contains("not authenticated"), "{log}");
}

#[test]
fn a_node_warns_at_startup_when_its_disk_is_smaller_than_the_reserve() {
    // A reserve of a thousand terabytes: larger than any disk this test runs on.
    let c =
        TestCluster::start_in(&std::env::temp_dir(), 1, "periodic", "", "min_free_mb = 1000000000");
    let log = c.startup_log(0);
    assert!(log.contains("smaller than storage.min_free_mb"), "{log}");
}

#[test]
fn a_request_trickled_in_past_its_deadline_is_refused_and_not_run() {
    let c = TestCluster::start_with(1, "periodic", "request_timeout_secs = 1");
    let mut conn = Raw::connect(&c.redis_addr(0));
    conn.0.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    conn.0.write_all(b"*3\r\n$3\r\nSET\r\n$7\r\ntrickle\r\n$100\r\n").unwrap();
    // The report's attacker: a byte every 200 ms, far slower than the deadline allows.
    let mut writer = conn.0.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..100 {
            if writer.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut reply = String::new();
    let _ = conn.0.read_to_string(&mut reply);
    assert!(reply.contains("did not arrive in full within 1 s (request_timeout_secs)"), "{reply}");
    let _ = trickle.join();
    assert_eq!(Raw::connect(&c.redis_addr(0)).cmd(&["GET", "trickle"]), "$-1\r\n");
}

/// `INFO clients`' `client_input_bytes` on node `i`.
fn client_input_bytes(c: &TestCluster, i: usize) -> u64 {
    let info = Raw::connect(&c.redis_addr(i)).cmd(&["INFO", "clients"]);
    info.lines().find_map(|l| l.strip_prefix("client_input_bytes:")?.trim().parse().ok()).unwrap()
}

#[test]
fn clients_together_cannot_hold_more_request_bytes_than_the_node_budget() {
    let c = TestCluster::start_with(1, "periodic", "[limits]\nmax_buffered_bytes = 1500000");
    let unfinished = |n: usize| {
        let mut bytes = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", n + 1).into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', n));
        bytes
    };
    let mut a = Raw::connect(&c.redis_addr(0));
    a.0.write_all(&unfinished(900_000)).unwrap();
    while client_input_bytes(&c, 0) < 900_000 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // A second client sending as much would take the node past its budget: it is told
    // so and closed, and the node goes on serving everyone else.
    let mut b = Raw::connect(&c.redis_addr(0));
    b.0.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let _ = b.0.write_all(&unfinished(900_000));
    let mut reply = String::new();
    let _ = b.0.read_to_string(&mut reply);
    assert!(reply.contains("limits.max_buffered_bytes = 1500000"), "{reply}");
    assert_eq!(Raw::connect(&c.redis_addr(0)).cmd(&["PING"]), "+PONG\r\n");
    // The first finishes its request and it runs.
    a.0.write_all(b"x\r\n").unwrap();
    let mut ok = [0_u8; 5];
    a.0.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
}
