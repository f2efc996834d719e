//! MULTI/EXEC/DISCARD as ordered batches, through a raw connection and through a client
//! library's transaction pipeline.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster};

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
    assert!(conn.cmd(&["NOSUCH", "x"]).starts_with("-ERR unknown command 'nosuch'"));
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
