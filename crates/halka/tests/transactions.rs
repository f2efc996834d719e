//! MULTI/EXEC/DISCARD as ordered batches, through a raw connection and through a client
//! library's transaction pipeline.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster};
use std::io::{Read, Write};

#[test]
fn exec_runs_the_queued_commands_in_order_and_answers_each() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "t", "1"]), "+QUEUED\r\n");
    assert_eq!(conn.cmd(&["GET", "t"]), "+QUEUED\r\n");
    assert_eq!(conn.cmd(&["SET", "t", "2"]), "+QUEUED\r\n");
    assert_eq!(conn.cmd(&["DEL", "t", "missing"]), "+QUEUED\r\n");
    // Nothing ran yet: another connection sees no key.
    assert_eq!(Raw::connect(&c.redis_addr(1)).cmd(&["GET", "t"]), "$-1\r\n");
    assert_eq!(conn.cmd(&["EXEC"]), "*4\r\n+OK\r\n$1\r\n1\r\n+OK\r\n:1\r\n");
    assert_eq!(conn.cmd(&["GET", "t"]), "$-1\r\n", "the connection is out of MULTI");
}

#[test]
fn a_command_refused_while_queueing_makes_exec_discard_the_batch() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "aborted", "1"]), "+QUEUED\r\n");
    assert!(conn.cmd(&["NOSUCH", "x"]).starts_with("-ERR unknown command 'NOSUCH'"));
    assert!(conn.cmd(&["GET"]).starts_with("-ERR wrong number of arguments for 'get'"));
    assert_eq!(
        conn.cmd(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(conn.cmd(&["GET", "aborted"]), "$-1\r\n", "nothing of the batch ran");
}

#[test]
fn discard_drops_the_queue_and_stray_transaction_commands_are_errors() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["EXEC"]), "-ERR EXEC without MULTI\r\n");
    assert_eq!(conn.cmd(&["DISCARD"]), "-ERR DISCARD without MULTI\r\n");
    assert_eq!(conn.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["MULTI"]), "-ERR MULTI calls can not be nested\r\n");
    assert_eq!(conn.cmd(&["SET", "dropped", "1"]), "+QUEUED\r\n");
    assert_eq!(conn.cmd(&["DISCARD"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["GET", "dropped"]), "$-1\r\n");
    // RESET leaves an open MULTI too.
    assert_eq!(conn.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["RESET"]), "+RESET\r\n");
    assert_eq!(conn.cmd(&["EXEC"]), "-ERR EXEC without MULTI\r\n");
}

#[test]
fn watch_is_refused_with_the_reason() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let reply = conn.cmd(&["WATCH", "k"]);
    assert!(
        reply.starts_with("-ERR WATCH is not supported") && reply.contains("consensus"),
        "{reply}"
    );
    assert_eq!(
        conn.cmd(&["UNWATCH"]),
        "+OK\r\n",
        "nothing is watched: UNWATCH has nothing to undo"
    );
}

#[tokio::test]
async fn a_client_librarys_transaction_pipeline_runs() {
    let c = TestCluster::start(3, "periodic");
    let client = redis::Client::open(format!("redis://{}/", c.redis_addr(2))).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (a, b): (String, Option<String>) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("pa")
        .arg("1")
        .ignore()
        .cmd("GET")
        .arg("pa")
        .cmd("GET")
        .arg("pb")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((a.as_str(), b), ("1", None));
}

#[test]
fn exec_writes_its_replies_out_as_they_come_so_the_node_holds_few() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let mib = "x".repeat(1 << 20);
    assert_eq!(conn.cmd(&["SET", "big", &mib]), "+OK\r\n");
    let before = c.peak_rss(0);
    // The report's batch: a short MULTI naming a 1 MiB value hundreds of times.
    let gets = 200;
    let mut batch = String::from("*1\r\n$5\r\nMULTI\r\n");
    batch += &"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(gets);
    batch += "*1\r\n$4\r\nEXEC\r\n";
    conn.0.write_all(batch.as_bytes()).unwrap();
    let bulk = format!("${}\r\n{mib}\r\n", mib.len()).len();
    let reply_len =
        "+OK\r\n".len() + "+QUEUED\r\n".len() * gets + format!("*{gets}\r\n").len() + bulk * gets;
    let mut reply = Vec::with_capacity(reply_len);
    let mut buf = vec![0_u8; 1 << 20];
    while reply.len() < reply_len {
        let n = conn.0.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} bytes", reply.len());
        reply.extend_from_slice(&buf[..n]);
    }
    let tail = String::from_utf8_lossy(&reply[reply.len() - 20..]).into_owned();
    assert!(tail.ends_with(&format!("{}\r\n", &mib[..4])), "{tail:?}");
    let grown = c.peak_rss(0).saturating_sub(before);
    assert!(grown < 64 << 20, "EXEC of {gets} MiB of replies grew the node by {grown} bytes");
}

#[test]
fn a_multi_batch_past_the_byte_budget_is_refused_and_exec_discards_it() {
    let c = TestCluster::start_with(3, "periodic", "[limits]\nmax_request_bytes = 3500000");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let mib = "x".repeat(1 << 20);
    assert_eq!(conn.cmd(&["MULTI"]), "+OK\r\n");
    for i in 0..3 {
        assert_eq!(conn.cmd(&["SET", &format!("k{i}"), &mib]), "+QUEUED\r\n");
    }
    let refused = conn.cmd(&["SET", "k3", &mib]);
    assert!(refused.starts_with("-ERR a MULTI batch holds at most 3500000 bytes"), "{refused}");
    assert!(refused.contains("limits.max_request_bytes"), "{refused}");
    assert_eq!(
        conn.cmd(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(conn.cmd(&["GET", "k0"]), "$-1\r\n", "nothing of the batch ran");
}
