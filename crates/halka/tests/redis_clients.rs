//! Clients nobody here wrote: redis-cli, redis-benchmark and the `redis` crate.
//!
//! redis-cli and redis-benchmark come from Debian's redis-tools, which `.ci/run` installs.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster};
use std::process::Command;

fn tool(name: &str) -> Command {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().unwrap();
    assert!(
        found.status.success(),
        "{name} is not installed; install Debian's redis-tools (see .ci/run)"
    );
    Command::new(name)
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = tool("redis-cli").arg("-p").arg(port.to_string()).args(args).output().unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn redis_cli_speaks_to_halka() {
    let c = TestCluster::start(3, "periodic");
    let (p0, p2) = (c.nodes[0].redis_port, c.nodes[2].redis_port);
    assert_eq!(cli(p0, &["PING"]), "PONG");
    assert_eq!(cli(p0, &["SET", "Mahmut", "Ozer"]), "OK");
    assert_eq!(cli(p2, &["GET", "Mahmut"]), "Ozer");
    assert_eq!(cli(p0, &["SET", "Mahmut", "x", "NX"]), "");
    assert_eq!(cli(p0, &["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(cli(p2, &["MGET", "a", "b", "nope"]), "1\n2", "nil prints as an empty line");
    assert_eq!(cli(p0, &["EXISTS", "a", "b", "nope", "a"]), "3", "every mention counts");
    assert_eq!(cli(p0, &["DEL", "a", "nope", "a"]), "1", "a key named twice is deleted once");
    assert_eq!(cli(p0, &["ECHO", "merhaba"]), "merhaba");
    assert_eq!(cli(p0, &["TYPE", "Mahmut"]), "string");
    assert_eq!(cli(p0, &["TYPE", "nope"]), "none");
    assert_eq!(cli(p0, &["TTL", "Mahmut"]), "-1");
    assert_eq!(cli(p0, &["TTL", "nope"]), "-2");
    let info = cli(p0, &["INFO", "halka"]);
    assert!(info.contains("replication:3") && info.contains("read_fanout:quorum"), "{info}");
    assert!(cli(p0, &["NOSUCHCOMMAND"]).contains("ERR unknown command"));
    assert!(cli(p0, &["AUTH", "secret"]).contains("without any password configured"));
    assert!(cli(p0, &["-3", "HELLO", "3"]).contains("halka"));
    assert!(cli(p0, &["HALKA.GETALL", "Mahmut", "3"]).contains("node-1"));
    assert!(
        cli(p0, &["HALKA.CONSISTENCY", "9", "1"]).contains("r=9 exceeds replication factor n=3")
    );
}

#[test]
fn redis_benchmark_runs_against_halka() {
    let c = TestCluster::start(3, "periodic");
    let port = c.nodes[0].redis_port.to_string();
    for pipeline in ["1", "16"] {
        let out = tool("redis-benchmark")
            .args([
                "-p",
                &port,
                "-t",
                "ping,set,get,incr,mset",
                "-n",
                "2000",
                "-c",
                "8",
                "-d",
                "100",
                "-r",
                "1000",
                "-P",
                pipeline,
                "-q",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
        for test in ["PING_INLINE:", "SET:", "GET:", "INCR:", "MSET (10 keys):"] {
            assert!(text.contains(test), "{test} missing from:\n{text}");
        }
    }
    // Without -r every INCR goes to one key: all of them count. (redis-benchmark sends
    // whole pipelines, so the count is a multiple of clients times pipeline depth.)
    let out = tool("redis-benchmark")
        .args(["-p", &port, "-t", "incr", "-n", "1024", "-c", "8", "-P", "16", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let counter = cli(c.nodes[2].redis_port, &["GET", "counter:__rand_int__"]);
    assert_eq!(counter, "1024");
    // What it wrote is really there, on another node.
    let keys = cli(c.nodes[1].redis_port, &["EXISTS", "key:000000000001", "key:000000000002"]);
    assert!(keys.parse::<u32>().unwrap() > 0, "{keys}");
}

#[tokio::test]
async fn redis_crate_client_works() {
    let c = TestCluster::start(3, "periodic");
    let client = redis::Client::open(format!("redis://{}/", c.redis_addr(1))).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET").arg("lib").arg("value").query_async(&mut conn).await.unwrap();
    let got: Option<String> = redis::cmd("GET").arg("lib").query_async(&mut conn).await.unwrap();
    assert_eq!(got.as_deref(), Some("value"));
    let _: () = redis::cmd("MSET")
        .arg("x")
        .arg("1")
        .arg("y")
        .arg("2")
        .query_async(&mut conn)
        .await
        .unwrap();
    let many: Vec<Option<String>> =
        redis::cmd("MGET").arg("x").arg("y").arg("z").query_async(&mut conn).await.unwrap();
    assert_eq!(many, [Some("1".into()), Some("2".into()), None]);
    let deleted: i64 = redis::cmd("DEL").arg("x").arg("z").query_async(&mut conn).await.unwrap();
    assert_eq!(deleted, 1);
    let err = redis::cmd("SET").arg("k").query_async::<()>(&mut conn).await.unwrap_err();
    assert!(err.to_string().contains("wrong number of arguments"), "{err}");
    // A pipeline of many commands in one write.
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
    }
    pipe.cmd("GET").arg("p99");
    let (last,): (String,) = pipe.query_async(&mut conn).await.unwrap();
    assert_eq!(last, "99");
}

#[test]
fn pipelined_commands_keep_their_order_on_one_key() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = common::Raw::connect(&c.redis_addr(0));
    // SET then GET of the same key in one write: the GET must see the SET.
    let mut batch = String::new();
    for i in 0..50 {
        batch += &format!(
            "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{i}\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            i.to_string().len()
        );
    }
    let mut expected = String::new();
    for i in 0..50 {
        expected += &format!("+OK\r\n${}\r\n{i}\r\n", i.to_string().len());
    }
    let mut got = conn.send(batch.as_bytes());
    while got.len() < expected.len() {
        let more = conn.send(b"");
        assert!(!more.is_empty(), "short reply: {got}");
        got += &more;
    }
    assert_eq!(got, expected);
}

#[test]
fn redis_cli_stat_shows_real_figures() {
    use std::io::{BufRead, BufReader};
    let c = TestCluster::start(3, "periodic");
    let port = c.nodes[0].redis_port;
    cli(port, &["SET", "a", "1"]);
    let mut stat = tool("redis-cli")
        .args(["-p", &port.to_string(), "--stat", "-i", "0.1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(stat.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.trim_start().starts_with(|ch: char| ch.is_ascii_digit()))
        .take(2)
        .collect();
    stat.kill().unwrap();
    stat.wait().unwrap();
    assert_eq!(lines.len(), 2, "two rows of figures");
    for line in &lines {
        assert!(!line.contains("-9223372036854775808"), "a field is missing: {line}");
        // keys, mem, clients, blocked, requests, connections
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields.len() >= 6, "{line}");
        assert_ne!(fields[2], "0", "this client is connected: {line}");
    }
    let info = cli(port, &["INFO", "stats"]);
    assert!(info.contains("total_commands_processed:"), "{info}");
}

#[test]
fn strlen_getrange_touch_and_time_answer_as_in_redis() {
    let c = TestCluster::start(3, "periodic");
    let (p0, p1) = (c.nodes[0].redis_port, c.nodes[1].redis_port);
    assert_eq!(cli(p0, &["SET", "s", "This is a string"]), "OK");
    assert_eq!(cli(p1, &["STRLEN", "s"]), "16");
    assert_eq!(cli(p1, &["STRLEN", "nope"]), "0");
    assert_eq!(cli(p1, &["GETRANGE", "s", "-3", "-1"]), "ing");
    assert_eq!(cli(p1, &["GETRANGE", "s", "0", "3"]), "This");
    assert_eq!(cli(p1, &["GETRANGE", "nope", "0", "3"]), "");
    assert!(cli(p1, &["GETRANGE", "s", "x", "3"]).contains("not an integer"));
    assert_eq!(cli(p0, &["TOUCH", "s", "nope", "s"]), "2");
    let time = cli(p0, &["TIME"]);
    let parts: Vec<u64> = time.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(parts.len(), 2, "{time}");
    assert!(parts[0] > 1_700_000_000 && parts[1] < 1_000_000, "{time}");
}

#[test]
fn command_docs_and_info_describe_every_command() {
    let c = TestCluster::start(1, "periodic");
    let p = c.nodes[0].redis_port;
    let count: usize = cli(p, &["COMMAND", "COUNT"]).parse().unwrap();
    assert!(count > 30, "{count}");
    let docs = cli(p, &["COMMAND", "DOCS", "get", "exec"]);
    assert!(docs.contains("Returns the value of a key"), "{docs}");
    assert!(docs.contains("transactions"), "{docs}");
    let info = cli(p, &["COMMAND", "INFO", "mget"]);
    assert_eq!(info.lines().collect::<Vec<_>>(), ["mget", "-2", "", "1", "-1", "1"], "{info}");
    let all = cli(p, &["COMMAND", "DOCS"]);
    assert_eq!(all.matches("summary").count(), count, "every command has a summary");
}

#[test]
fn client_list_info_and_kill_see_and_close_real_connections() {
    let c = TestCluster::start(1, "periodic");
    let mut a = Raw::connect(&c.redis_addr(0));
    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "alpha"]), "+OK\r\n");
    let a_id = a.cmd(&["CLIENT", "ID"]).trim().trim_start_matches(':').to_string();
    let mut b = Raw::connect(&c.redis_addr(0));
    let list = b.cmd(&["CLIENT", "LIST"]);
    assert_eq!(list.matches("id=").count(), 2, "{list}");
    assert!(list.contains(&format!("id={a_id} addr=")), "{list}");
    assert!(list.contains("name=alpha") && list.contains("cmd=client"), "{list}");
    let info = b.cmd(&["CLIENT", "INFO"]);
    assert!(info.contains("cmd=client") && !info.contains("name=alpha"), "{info}");
    assert_eq!(b.cmd(&["CLIENT", "NO-EVICT", "on"]), "+OK\r\n");
    assert_eq!(b.cmd(&["CLIENT", "KILL", "ID", &a_id]), ":1\r\n");
    assert!(a.closed(), "the killed client's connection is closed");
    assert_eq!(b.cmd(&["CLIENT", "KILL", "127.0.0.1:1"]), "-ERR No such client\r\n");
    let list = b.cmd(&["CLIENT", "LIST"]);
    assert_eq!(list.matches("id=").count(), 1, "{list}");
}

#[test]
fn slowlog_keeps_commands_over_the_threshold_and_resets() {
    let c = TestCluster::start_with(1, "periodic", "slowlog_log_slower_than_us = 0");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["CLIENT", "SETNAME", "worker"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["MSET", "k1", "v1", "k2", "v2"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SLOWLOG", "LEN"]), ":2\r\n");
    let newest = conn.cmd(&["SLOWLOG", "GET", "1"]);
    assert!(newest.starts_with("*1\r\n*6\r\n:1\r\n"), "{newest}");
    assert!(newest.contains("$4\r\nMSET\r\n$2\r\nk1\r\n"), "{newest}");
    assert!(newest.contains("... (3 more arguments)"), "{newest}");
    assert!(newest.contains("$6\r\nworker\r\n"), "{newest}");
    assert_eq!(conn.cmd(&["SLOWLOG", "RESET"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SLOWLOG", "LEN"]), ":0\r\n");
}

#[test]
fn slowlog_keeps_nothing_when_switched_off() {
    let c = TestCluster::start_with(1, "periodic", "slowlog_log_slower_than_us = -1");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(conn.cmd(&["SLOWLOG", "LEN"]), ":0\r\n");
}
