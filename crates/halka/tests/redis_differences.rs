//! Places where halka answered differently from Redis and now answers as Redis does:
//! each found by running tests written for Redis, each checked here through the Redis
//! protocol a client speaks.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, TestCluster};

#[test]
fn a_client_name_with_a_newline_is_refused_and_cannot_forge_a_client_list_line() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let refused = "-ERR Client names cannot contain spaces, newlines or special characters.\r\n";
    assert_eq!(conn.cmd(&["CLIENT", "SETNAME", "a\nid=1 addr=forged"]), refused);
    assert_eq!(conn.cmd(&["CLIENT", "SETNAME", "with space"]), refused);
    assert_eq!(conn.cmd(&["HELLO", "3", "SETNAME", "bad\rname"]), refused);
    let list = conn.cmd(&["CLIENT", "LIST"]);
    assert!(!list.contains("forged"), "{list}");
    assert_eq!(conn.cmd(&["CLIENT", "SETNAME", "ok-name"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["CLIENT", "SETNAME", ""]), "+OK\r\n", "an empty name clears it");
    assert_eq!(conn.cmd(&["CLIENT", "GETNAME"]), "$-1\r\n");
}

#[test]
fn client_setinfo_checks_its_attribute_and_shows_in_client_list() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(
        conn.cmd(&["CLIENT", "SETINFO", "lib-name", "redis-py"]),
        "-ERR lib-name cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        conn.cmd(&["CLIENT", "SETINFO", "colour", "x"]),
        "-ERR Unrecognized option 'colour'\r\n"
    );
    assert_eq!(conn.cmd(&["CLIENT", "SETINFO", "lib-name", "redispy"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["CLIENT", "SETINFO", "LIB-VER", "5.0.1"]), "+OK\r\n");
    let info = conn.cmd(&["CLIENT", "INFO"]);
    assert!(info.contains("lib-name=redispy lib-ver=5.0.1"), "{info}");
}

#[test]
fn client_list_id_shows_only_the_clients_named() {
    let c = TestCluster::start(1, "periodic");
    let mut a = Raw::connect(&c.redis_addr(0));
    let mut b = Raw::connect(&c.redis_addr(0));
    let a_id = a.cmd(&["CLIENT", "ID"]).trim().trim_start_matches(':').to_string();
    assert_eq!(b.cmd(&["PING"]), "+PONG\r\n");
    let list = b.cmd(&["CLIENT", "LIST", "ID", &a_id]);
    assert_eq!(list.matches("id=").count(), 1, "{list}");
    assert!(list.contains(&format!("id={a_id} ")), "{list}");
    assert_eq!(b.cmd(&["CLIENT", "LIST", "ID", "x"]), "-ERR Invalid client ID\r\n");
}

#[test]
fn incrbyfloat_by_infinity_says_it_would_produce_infinity() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let infinite = "-ERR increment would produce NaN or Infinity\r\n";
    assert_eq!(conn.cmd(&["INCRBYFLOAT", "f", "inf"]), infinite);
    assert_eq!(conn.cmd(&["INCRBYFLOAT", "f", "-1e999"]), infinite);
    assert_eq!(conn.cmd(&["INCRBYFLOAT", "f", "nan"]), "-ERR value is not a valid float\r\n");
    assert_eq!(conn.cmd(&["EXISTS", "f"]), ":0\r\n", "nothing was written");
}

#[test]
fn expire_takes_xx_with_gt_or_lt_as_redis_7_does() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["EXPIRE", "k", "100", "XX", "LT"]), ":0\r\n", "no expiry to lower");
    assert_eq!(conn.cmd(&["EXPIRE", "k", "100", "XX", "GT"]), ":0\r\n");
    assert_eq!(conn.cmd(&["EXPIRE", "k", "100", "LT"]), ":1\r\n", "none counts as never");
    assert_eq!(conn.cmd(&["EXPIRE", "k", "50", "XX", "LT"]), ":1\r\n");
    assert_eq!(conn.cmd(&["EXPIRE", "k", "80", "XX", "LT"]), ":0\r\n");
    assert_eq!(conn.cmd(&["EXPIRE", "k", "200", "GT", "XX"]), ":1\r\n");
    let ttl: i64 = conn.cmd(&["TTL", "k"]).trim().trim_start_matches(':').parse().unwrap();
    assert!((150..=200).contains(&ttl), "{ttl}");
}

#[test]
fn expire_options_that_cannot_go_together_are_refused_in_redis_words() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["SET", "k", "v"]), "+OK\r\n");
    let gt_lt = "-ERR GT and LT options at the same time are not compatible\r\n";
    assert_eq!(conn.cmd(&["EXPIRE", "k", "10", "LT", "GT"]), gt_lt);
    let nx = "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n";
    assert_eq!(conn.cmd(&["EXPIRE", "k", "10", "NX", "XX"]), nx);
    assert_eq!(conn.cmd(&["EXPIRE", "k", "10", "GT", "NX"]), nx);
    assert_eq!(conn.cmd(&["TTL", "k"]), ":-1\r\n", "nothing changed");
}

#[test]
fn pexpireat_with_extreme_times_keeps_or_deletes_as_redis_does() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["PEXPIREAT", "k", &i64::MAX.to_string()]), ":1\r\n");
    assert_eq!(conn.cmd(&["EXISTS", "k"]), ":1\r\n", "the far future keeps it");
    assert_eq!(conn.cmd(&["PEXPIREAT", "k", &i64::MIN.to_string()]), ":1\r\n");
    assert_eq!(conn.cmd(&["EXISTS", "k"]), ":0\r\n", "the far past deletes it");
    assert_eq!(conn.cmd(&["SET", "k", "v"]), "+OK\r\n");
    let invalid = |cmd: &str| format!("-ERR invalid expire time in '{cmd}' command\r\n");
    assert_eq!(conn.cmd(&["EXPIRE", "k", &i64::MAX.to_string()]), invalid("expire"));
    assert_eq!(conn.cmd(&["PEXPIRE", "k", &i64::MAX.to_string()]), invalid("pexpire"));
    assert_eq!(conn.cmd(&["EXISTS", "k"]), ":1\r\n");
}

#[test]
fn dbsize_counts_live_keys_only_not_deleted_flushed_or_expired_ones() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    for k in 0..40 {
        assert_eq!(conn.cmd(&["SET", &format!("k{k}"), "v"]), "+OK\r\n");
    }
    assert_eq!(conn.cmd(&["DBSIZE"]), ":40\r\n");
    assert_eq!(conn.cmd(&["FLUSHALL"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "a", "1"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["DEL", "a"]), ":1\r\n");
    assert_eq!(conn.cmd(&["DBSIZE"]), ":0\r\n");
    assert_eq!(conn.cmd(&["SET", "brief", "v", "PX", "50"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "kept", "v", "EX", "1000"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["DBSIZE"]), ":2\r\n");
    while conn.cmd(&["EXISTS", "brief"]) != ":0\r\n" {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(conn.cmd(&["DBSIZE"]), ":1\r\n", "the expired key no longer counts");
}

#[test]
fn info_all_has_cpu_replication_and_commandstats_and_role_answers() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(conn.cmd(&["GET", "k"]), "$1\r\nv\r\n");
    let all = conn.cmd(&["INFO", "all"]);
    for section in ["# Server", "# CPU", "# Replication", "# Commandstats", "# Keyspace"] {
        assert!(all.contains(section), "INFO all lacks {section}: {all}");
    }
    assert!(all.contains("used_cpu_user:") && all.contains("role:master"), "{all}");
    let stats = conn.cmd(&["INFO", "commandstats"]);
    assert!(
        stats.contains("cmdstat_get:calls=2,") && stats.contains("cmdstat_set:calls=1,"),
        "{stats}"
    );
    let default = conn.cmd(&["INFO"]);
    assert!(default.contains("# CPU") && !default.contains("# Commandstats"), "{default}");
    assert!(conn.cmd(&["INFO", "everything"]).contains("# Commandstats"));
    assert_eq!(conn.cmd(&["ROLE"]), "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
}

#[test]
fn a_value_over_the_limit_gets_the_size_error_and_the_connection_goes_on() {
    let c = TestCluster::start(1, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    let big = "x".repeat(3 << 20);
    let reply = conn.cmd(&["SET", "big", &big]);
    assert!(
        reply.starts_with("-ERR an argument is 3145728 bytes; the maximum is 1048576"),
        "{reply}"
    );
    assert_eq!(conn.cmd(&["PING"]), "+PONG\r\n", "the connection is still open");
    assert_eq!(conn.cmd(&["EXISTS", "big"]), ":0\r\n");
    // Inside MULTI it fails the batch, as any command that cannot be queued.
    assert_eq!(conn.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "small", "v"]), "+QUEUED\r\n");
    assert!(conn.cmd(&["SET", "big", &big]).starts_with("-ERR an argument is"));
    assert!(conn.cmd(&["EXEC"]).starts_with("-EXECABORT"));
    assert_eq!(conn.cmd(&["EXISTS", "small", "big"]), ":0\r\n");
}

#[test]
fn rename_moves_the_value_and_its_expiry_and_the_source_is_gone_everywhere() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["SET", "from", "v", "EX", "1000"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "to", "old"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["RENAME", "from", "to"]), "+OK\r\n");
    for i in 0..3 {
        let mut other = Raw::connect(&c.redis_addr(i));
        assert_eq!(other.cmd(&["HALKA.GET", "to", "3"]), "$1\r\nv\r\n", "through node {i}");
        assert_eq!(other.cmd(&["HALKA.GET", "from", "3"]), "$-1\r\n", "through node {i}");
    }
    let ttl: i64 = conn.cmd(&["TTL", "to"]).trim().trim_start_matches(':').parse().unwrap();
    assert!((990..=1000).contains(&ttl), "the expiry moved with it: {ttl}");
    assert_eq!(conn.cmd(&["RENAME", "nothing", "to"]), "-ERR no such key\r\n");
    assert_eq!(conn.cmd(&["RENAME", "to", "to"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["GET", "to"]), "$1\r\nv\r\n");
}

#[test]
fn renamenx_leaves_both_keys_when_the_new_name_exists() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(1));
    assert_eq!(conn.cmd(&["SET", "a", "1"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "b", "2"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["RENAMENX", "a", "b"]), ":0\r\n");
    assert_eq!(conn.cmd(&["MGET", "a", "b"]), "*2\r\n$1\r\n1\r\n$1\r\n2\r\n");
    assert_eq!(conn.cmd(&["RENAMENX", "a", "c"]), ":1\r\n");
    assert_eq!(conn.cmd(&["MGET", "a", "c"]), "*2\r\n$-1\r\n$1\r\n1\r\n");
}

#[test]
fn copy_keeps_the_source_and_replaces_only_when_asked() {
    let c = TestCluster::start(3, "periodic");
    let mut conn = Raw::connect(&c.redis_addr(2));
    assert_eq!(conn.cmd(&["SET", "src", "v1"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "dst", "old"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["COPY", "src", "dst"]), ":0\r\n");
    assert_eq!(conn.cmd(&["COPY", "src", "dst", "REPLACE"]), ":1\r\n");
    assert_eq!(conn.cmd(&["MGET", "src", "dst"]), "*2\r\n$2\r\nv1\r\n$2\r\nv1\r\n");
    assert_eq!(conn.cmd(&["COPY", "nothing", "dst"]), ":0\r\n");
    assert_eq!(
        conn.cmd(&["COPY", "src", "src"]),
        "-ERR source and destination objects are the same\r\n"
    );
    assert_eq!(conn.cmd(&["COPY", "src", "x", "DB", "1"]), "-ERR DB index is out of range\r\n");
}

/// The owners of `key` (node indexes), as a read at R=3 through node 0 reports them.
fn owners(c: &TestCluster, key: &str) -> Vec<usize> {
    let (_, body) = common::http("GET", &c.http_url(0, &format!("/v1/kv/{key}?r=3")), b"", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let nodes = v["replicas"].as_array().unwrap().iter();
    let ids = nodes.map(|r| r["node"].as_str().unwrap().trim_start_matches("node-").to_string());
    ids.map(|n| n.parse::<usize>().unwrap() - 1).collect()
}

#[test]
fn a_rename_whose_source_delete_is_not_acknowledged_loses_nothing_and_finishes_when_run_again() {
    // Five nodes, no stand-ins: a key with an owner down cannot be written at W=3.
    let mut c = TestCluster::start_with(5, "periodic", "[handoff]\nenabled = false\n");
    let mut conn = Raw::connect(&c.redis_addr(0));
    for k in 0..40 {
        assert_eq!(conn.cmd(&["SET", &format!("k{k}"), &format!("v{k}")]), "+OK\r\n");
    }
    // A source with an owner (not node 0) that owns nothing of the destination.
    let keys: Vec<(String, Vec<usize>)> =
        (0..40).map(|k| format!("k{k}")).map(|k| (k.clone(), owners(&c, &k))).collect();
    let (src, dst, down) = keys
        .iter()
        .flat_map(|(s, so)| keys.iter().map(move |(d, dro)| (s, so, d, dro)))
        .find_map(|(s, so, d, dro)| {
            let x = so.iter().find(|&&x| x != 0 && !dro.contains(&x))?;
            (s != d).then(|| (s.clone(), d.clone(), *x))
        })
        .unwrap();
    let value = conn.cmd(&["GET", &src]);
    c.kill(down);
    assert_eq!(conn.cmd(&["HALKA.CONSISTENCY", "2", "3"]), "+OK\r\n");
    let reply = conn.cmd(&["RENAME", &src, &dst]);
    assert!(reply.contains("the source may still hold it; run the command again"), "{reply}");
    assert_eq!(conn.cmd(&["GET", &dst]), value, "nothing was lost: the destination has it");
    c.start_process(down);
    // Run again once every owner of the source takes writes: done, or found done.
    loop {
        let again = conn.cmd(&["RENAME", &src, &dst]);
        if again == "+OK\r\n" || again == "-ERR no such key\r\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(conn.cmd(&["GET", &dst]), value);
    assert_eq!(conn.cmd(&["HALKA.GET", &src, "3"]), "$-1\r\n", "gone from every owner's merge");
}
