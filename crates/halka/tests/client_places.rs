//! Places for clients: the node-wide cap, each address's share, and idle clients making
//! room for new ones when every place is taken.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster, http};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn a_client_over_the_connection_cap_is_told_why_at_once() {
    let c = TestCluster::start_with(1, "periodic", "max_connections = 2");
    let mut first = Raw::connect(&c.redis_addr(0));
    let mut second = Raw::connect(&c.redis_addr(0));
    assert_eq!(first.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(second.cmd(&["PING"]), "+PONG\r\n");
    let mut third = Raw::connect(&c.redis_addr(0));
    let reply = third.cmd(&["PING"]);
    assert!(reply.starts_with("-ERR max number of clients reached"), "{reply}");
    assert!(third.closed());
    // The clients already in keep being served, and a slot freed is a slot taken.
    assert_eq!(first.cmd(&["PING"]), "+PONG\r\n");
    drop(second);
    let mut next = Raw::connect(&c.redis_addr(0));
    let mut reply = next.cmd(&["PING"]);
    for _ in 0..100 {
        // The freed slot is released when the server notices the close.
        if reply == "+PONG\r\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        next = Raw::connect(&c.redis_addr(0));
        reply = next.cmd(&["PING"]);
    }
    assert_eq!(reply, "+PONG\r\n");
}

/// A connection to `addr` from `source` (another loopback address: another host).
fn connect_from(source: &str, addr: &str) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::new(source.parse().unwrap(), 0).into()).unwrap();
    s.connect(&addr.parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

#[test]
fn one_address_cannot_take_every_redis_connection() {
    let c = TestCluster::start_with(
        1,
        "periodic",
        "max_connections = 6\nmax_connections_per_source = 3",
    );
    let held: Vec<Raw> = (0..3)
        .map(|_| {
            let mut r = Raw::connect(&c.redis_addr(0));
            assert_eq!(r.cmd(&["PING"]), "+PONG\r\n");
            r
        })
        .collect();
    let refused = Raw::connect(&c.redis_addr(0)).cmd(&["PING"]);
    assert!(refused.contains("too many connections from your address"), "{refused}");
    assert!(refused.contains("max_connections_per_source"), "{refused}");
    // Another host still gets in.
    let mut other = Raw(connect_from("127.0.0.2", &c.redis_addr(0)));
    assert_eq!(other.cmd(&["PING"]), "+PONG\r\n");
    drop(held);
}

#[test]
fn one_address_cannot_take_every_http_connection() {
    let c = TestCluster::start_with(
        1,
        "periodic",
        "[http]\nmax_connections = 6\nmax_connections_per_source = 3",
    );
    let addr = c.http_url(0, "");
    // Idle sockets, as in the report: connected, sending nothing.
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let (status, body) = http("GET", &c.http_url(0, "/v1/cluster"), b"", &[]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("http.max_connections_per_source"), "{body}");
    let mut other = connect_from("127.0.0.2", &addr);
    other
        .write_all(b"GET /v1/cluster HTTP/1.1\r\nhost: halka\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = other.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(idle);
}

/// `INFO clients`' `client_input_bytes`, asked over `conn`.
fn client_input_bytes(conn: &mut Raw) -> u64 {
    let info = conn.cmd(&["INFO", "clients"]);
    info.lines().find_map(|l| l.strip_prefix("client_input_bytes:")?.trim().parse().ok()).unwrap()
}

#[test]
fn a_new_client_displaces_the_client_idle_longest_when_every_place_is_taken() {
    let c = TestCluster::start_with(
        1,
        "periodic",
        "max_connections = 2\ndisplace_idle_clients_after_secs = 0",
    );
    let mut first = Raw::connect(&c.redis_addr(0));
    assert_eq!(first.cmd(&["PING"]), "+PONG\r\n");
    let mut second = Raw::connect(&c.redis_addr(0));
    assert_eq!(second.cmd(&["PING"]), "+PONG\r\n");
    // Both wait for their next command; the first has waited longer.
    let mut newcomer = Raw::connect(&c.redis_addr(0));
    assert_eq!(newcomer.cmd(&["PING"]), "+PONG\r\n");
    assert!(first.closed(), "the client idle longest made room");
    assert_eq!(second.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn a_client_halfway_through_a_request_is_never_displaced() {
    let c = TestCluster::start_with(
        1,
        "periodic",
        "max_connections = 3\ndisplace_idle_clients_after_secs = 0",
    );
    let partial = b"*1\r\n$4\r\nPI";
    let mut halfway: Vec<Raw> = (0..2).map(|_| Raw::connect(&c.redis_addr(0))).collect();
    for conn in &mut halfway {
        conn.0.write_all(partial).unwrap();
    }
    let mut watcher = Raw::connect(&c.redis_addr(0));
    while client_input_bytes(&mut watcher) < 2 * partial.len() as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The only idle client is the watcher: it makes room, the others keep their places.
    let mut newcomer = Raw::connect(&c.redis_addr(0));
    assert_eq!(newcomer.cmd(&["PING"]), "+PONG\r\n");
    assert!(watcher.closed());
    for mut conn in halfway {
        assert_eq!(conn.send(b"NG\r\n"), "+PONG\r\n");
    }
}
