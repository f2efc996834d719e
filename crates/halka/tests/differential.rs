//! The same single-client command sequences against a real `redis-server` (started by
//! the test) and a three-node halka cluster, replies compared one by one: written
//! sequences for every family of commands halka has, and sequences proptest generates
//! over a few keys.
//!
//! Replies that legitimately vary (a TTL's exact value, the order of `KEYS`) are compared
//! by their shape. Where halka differs from Redis on purpose, the command is in
//! [`DELIBERATE`] with the reason (the README's "Where halka differs from Redis" says the
//! same), and both replies are still checked to be what each side documents.
//!
//! Needs `redis-server` (Debian's `redis-server` package; `.ci/run` installs it).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{TestCluster, free_port};
use proptest::prelude::*;
use std::process::{Child, Command, Stdio};

/// Commands whose replies differ from Redis's on purpose, with why.
const DELIBERATE: &[(&str, &str)] = &[
    ("INCRBYFLOAT", "64-bit binary floating point where Redis uses long double"),
    ("MSETNX", "over several keys: CROSSSLOT, as Redis Cluster (no all-or-none across keys)"),
    ("WATCH", "refused: no optimistic locking without consensus between replicas"),
    ("SCAN", "a cursor is a position in the placement-hash space, not a table index"),
    ("DBSIZE", "counts this node's replicas, which is every key only while N = nodes"),
    ("SELECT", "one database: SELECT (and COPY ... DB) other than 0 is refused"),
    (
        "OBJECT",
        "ENCODING as of a freshly set string (Redis says raw once APPEND grew one); no IDLETIME or FREQ",
    ),
];

/// A `redis-server` on a free loopback port, stopped when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) must be installed");
        let server = Self { child, port, _dir: dir };
        // Ready once it answers (polled, as the harness polls for its nodes, under a
        // guard against a hang).
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let guard = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while client.get_connection().is_err() {
            assert!(std::time::Instant::now() < guard, "redis-server never answered on {port}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One connection to each side; every command goes to both.
struct Both {
    redis: redis::Connection,
    halka: redis::Connection,
    /// The commands sent so far in this sequence, for a failure's message.
    sent: Vec<String>,
}

impl Both {
    fn connect(redis: &RedisServer, halka: &TestCluster) -> Self {
        let open = |addr: String| {
            redis::Client::open(format!("redis://{addr}/")).unwrap().get_connection().unwrap()
        };
        Self {
            redis: open(format!("127.0.0.1:{}", redis.port)),
            halka: open(halka.redis_addr(0)),
            sent: Vec::new(),
        }
    }

    /// Starts a sequence from empty databases.
    fn reset(&mut self) {
        self.sent.clear();
        for con in [&mut self.redis, &mut self.halka] {
            let _: () = redis::cmd("FLUSHALL").query(con).unwrap();
        }
    }

    /// Sends `args` to both and returns the two replies, normalised.
    fn both(&mut self, args: &[&str]) -> (String, String) {
        self.sent.push(args.join(" "));
        let run = |con: &mut redis::Connection| {
            let mut cmd = redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            normalise(args[0], cmd.query::<redis::Value>(con))
        };
        (run(&mut self.redis), run(&mut self.halka))
    }

    /// Sends `args` to both and requires the same reply.
    fn same(&mut self, args: &[&str]) {
        let (redis, halka) = self.both(args);
        assert_eq!(halka, redis, "after: {}", self.sent.join(" | "));
    }
}

/// A reply as compared: errors by their whole text, values by their RESP shape, with
/// what varies between two servers reduced to what must hold.
fn normalise(command: &str, reply: redis::RedisResult<redis::Value>) -> String {
    use redis::Value;
    let value = match reply {
        Ok(value) => value,
        Err(e) => {
            return format!("error: {} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""));
        }
    };
    match (command.to_ascii_uppercase().as_str(), value) {
        ("TTL" | "PTTL" | "EXPIRETIME" | "PEXPIRETIME", Value::Int(n)) if n > 0 => {
            "a positive time".into()
        }
        // halka answers in field order, Redis in insertion order (small hashes) or none.
        ("HGETALL", Value::Map(mut pairs)) => {
            pairs.sort_by_key(|p| format!("{p:?}"));
            format!("{:?}", Value::Map(pairs))
        }
        ("HGETALL", Value::Array(pairs)) => {
            let mut pairs: Vec<String> = pairs.chunks(2).map(|p| format!("{p:?}")).collect();
            pairs.sort();
            format!("{pairs:?}")
        }
        // A small collection's walk is one step in both; its items in either order.
        ("HSCAN" | "SSCAN" | "ZSCAN", Value::Array(step)) if step.len() == 2 => {
            let pairs = if command.eq_ignore_ascii_case("SSCAN") { 1 } else { 2 };
            let mut items: Vec<String> = match &step[1] {
                Value::Array(items) => items.chunks(pairs).map(|p| format!("{p:?}")).collect(),
                other => vec![format!("{other:?}")],
            };
            items.sort();
            format!("cursor {:?}, {items:?}", step[0])
        }
        (
            "KEYS" | "HKEYS" | "HVALS" | "SMEMBERS" | "SINTER" | "SUNION" | "SDIFF" | "SPOP"
            | "SRANDMEMBER" | "HRANDFIELD" | "ZRANDMEMBER",
            Value::Array(mut keys),
        ) => {
            keys.sort_by_key(|k| format!("{k:?}"));
            format!("{:?}", Value::Array(keys))
        }
        (_, value) => format!("{value:?}"),
    }
}

fn pair() -> (RedisServer, TestCluster) {
    (RedisServer::start(), TestCluster::start(3, "periodic"))
}

#[test]
fn string_commands_answer_as_redis_does() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    for args in [
        &["GET", "s"][..],
        &["SET", "s", "one"],
        &["GET", "s"],
        &["SET", "s", "two", "NX"],
        &["SET", "s", "two", "XX", "GET"],
        &["SET", "t", "x", "XX"],
        &["SET", "s", "v", "EX", "100"],
        &["TTL", "s"],
        &["SET", "s", "w", "KEEPTTL"],
        &["PTTL", "s"],
        &["SET", "s", "w", "EX", "0"],
        &["SET", "s", "w", "EX", "-1"],
        &["SET", "s", "w", "NX", "XX"],
        &["SET", "s", "w", "EX", "10", "PX", "100"],
        &["SETNX", "n", "1"],
        &["SETNX", "n", "2"],
        &["SETEX", "e", "100", "v"],
        &["SETEX", "e", "0", "v"],
        &["PSETEX", "e", "100000", "v"],
        &["GETSET", "n", "3"],
        &["GETDEL", "n"],
        &["GETDEL", "n"],
        &["GETEX", "s", "PERSIST"],
        &["GETEX", "missing", "EX", "10"],
        &["APPEND", "a", "hello"],
        &["APPEND", "a", " world"],
        &["STRLEN", "a"],
        &["STRLEN", "missing"],
        &["GETRANGE", "a", "0", "4"],
        &["GETRANGE", "a", "-5", "-1"],
        &["GETRANGE", "a", "20", "30"],
        &["SUBSTR", "a", "1", "3"],
        &["SETRANGE", "a", "6", "WORLD"],
        &["SETRANGE", "r", "3", "x"],
        &["GET", "r"],
        &["SETRANGE", "r", "-1", "x"],
        &["MSET", "m1", "a", "m2", "b"],
        &["MGET", "m1", "m2", "missing"],
        &["MSET", "m1"],
        &["MSETNX", "only", "1"],
        &["MSETNX", "only", "2"],
        &["GET", "only"],
    ] {
        both.same(args);
    }
}

#[test]
fn counters_answer_as_redis_does() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    for args in [
        &["INCR", "c"][..],
        &["INCRBY", "c", "41"],
        &["DECR", "c"],
        &["DECRBY", "c", "-10"],
        &["GET", "c"],
        &["INCRBY", "c", "x"],
        &["SET", "word", "abc"],
        &["INCR", "word"],
        &["SET", "big", "9223372036854775807"],
        &["INCR", "big"],
        &["DECRBY", "c", "-9223372036854775808"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["INCRBYFLOAT", "f", "2"],
        &["INCRBYFLOAT", "f", "x"],
        &["INCRBYFLOAT", "f", "inf"],
        &["INCR", "f"],
        &["SET", "sp", " 1"],
        &["INCR", "sp"],
    ] {
        both.same(args);
    }
}

#[test]
fn hash_commands_answer_as_redis_does() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    for args in [
        &["HSET", "h", "a", "1", "b", "2"][..],
        &["HSET", "h", "a", "3", "c", "4"],
        &["HGET", "h", "a"],
        &["HGET", "h", "zz"],
        &["HGET", "nokey", "a"],
        &["HMGET", "h", "a", "zz", "c"],
        &["HMGET", "nokey", "a"],
        &["HGETALL", "h"],
        &["HGETALL", "nokey"],
        &["HSCAN", "h", "0"],
        &["HSCAN", "h", "0", "MATCH", "a*", "COUNT", "100"],
        &["HSCAN", "h", "0", "COUNT", "0"],
        &["HSCAN", "h", "x"],
        &["HSCAN", "h", "0", "BOGUS"],
        &["HSCAN", "nokey", "0"],
        &["HRANDFIELD", "h", "100"],
        &["HRANDFIELD", "h", "0"],
        &["HRANDFIELD", "h", "100", "WITHVALUES"],
        &["HRANDFIELD", "h", "1", "BOGUS"],
        &["HRANDFIELD", "h", "WITHVALUES"],
        &["HRANDFIELD", "nokey"],
        &["HRANDFIELD", "nokey", "2", "WITHVALUES"],
        &["HKEYS", "h"],
        &["HVALS", "h"],
        &["HLEN", "h"],
        &["HLEN", "nokey"],
        &["HEXISTS", "h", "a"],
        &["HEXISTS", "h", "zz"],
        &["HSTRLEN", "h", "a"],
        &["HSTRLEN", "h", "zz"],
        &["HSETNX", "h", "a", "9"],
        &["HSETNX", "h", "d", "9"],
        &["HMSET", "h", "e", "5"],
        &["HINCRBY", "h", "n", "5"],
        &["HINCRBY", "h", "n", "-7"],
        &["HINCRBY", "h", "d", "1"],
        &["HINCRBY", "h", "n", "x"],
        &["HINCRBY", "h", "a", "1"],
        &["HSET", "h", "t", "text"],
        &["HINCRBY", "h", "t", "1"],
        &["HINCRBYFLOAT", "h", "fl", "1.5"],
        &["HINCRBYFLOAT", "h", "fl", "2"],
        &["HINCRBYFLOAT", "h", "t", "1"],
        &["HINCRBYFLOAT", "h", "fl", "x"],
        &["TYPE", "h"],
        &["OBJECT", "ENCODING", "h"],
        &["EXISTS", "h"],
        &["HDEL", "h", "a", "zz", "a"],
        &["HDEL", "nokey", "a"],
        &["SET", "s", "v"],
        &["HSET", "s", "a", "1"],
        &["HGET", "s", "a"],
        &["HGETALL", "s"],
        &["HLEN", "s"],
        &["HDEL", "s", "a"],
        &["GET", "h"],
        &["INCR", "h"],
        &["APPEND", "h", "x"],
        &["STRLEN", "h"],
        &["GETRANGE", "h", "0", "1"],
        &["GETSET", "h", "x"],
        &["MGET", "h", "s"],
        &["HSET", "h"],
        &["HSET", "h", "a"],
        &["HSET", "h", "a", "1", "b"],
        &["HGET", "h"],
        &["HDEL", "h"],
        &["EXPIRE", "h", "100"],
        &["TTL", "h"],
        &["PERSIST", "h"],
        &["TTL", "h"],
        &["HDEL", "h", "b", "c", "d", "e", "n", "t", "fl"],
        &["EXISTS", "h"],
        &["TYPE", "h"],
        &["HGETALL", "h"],
        &["HSET", "h", "again", "1"],
        &["HGETALL", "h"],
        &["DEL", "h"],
        &["HGETALL", "h"],
        &["HSET", "h", "x", "1", "y", "2"],
        &["EXPIRE", "h", "1000"],
        &["RENAME", "h", "h2"],
        &["HGETALL", "h2"],
        &["TTL", "h2"],
        &["EXISTS", "h"],
        &["SET", "str", "v"],
        &["RENAMENX", "h2", "str"],
        &["COPY", "h2", "str"],
        &["COPY", "h2", "str", "REPLACE"],
        &["HGETALL", "str"],
        &["COPY", "str", "h2"],
        &["RENAME", "s", "h2"],
        &["GET", "h2"],
        &["HSET", "h", "x", "1"],
        &["SET", "h", "plain"],
        &["GET", "h"],
    ] {
        both.same(args);
    }
}

#[test]
fn set_commands_answer_as_redis_does() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    for args in [
        &["SADD", "s", "a", "b", "c", "a"][..],
        &["SADD", "s", "c", "d"],
        &["SISMEMBER", "s", "a"],
        &["SISMEMBER", "s", "zz"],
        &["SISMEMBER", "nokey", "a"],
        &["SMISMEMBER", "s", "a", "zz", "d"],
        &["SMISMEMBER", "nokey", "a"],
        &["SMEMBERS", "s"],
        &["SMEMBERS", "nokey"],
        &["SSCAN", "s", "0"],
        &["SSCAN", "s", "0", "MATCH", "[ab]", "COUNT", "5"],
        &["SSCAN", "s", "0", "NOVALUES"],
        &["SSCAN", "nokey", "0"],
        &["HSCAN", "s", "0"],
        &["SADD", "r", "x", "y", "z"],
        &["SRANDMEMBER", "r", "10"],
        &["SRANDMEMBER", "r", "0"],
        &["SRANDMEMBER", "r", "x"],
        &["SRANDMEMBER", "nokey"],
        &["SRANDMEMBER", "nokey", "3"],
        &["SPOP", "r", "-1"],
        &["SPOP", "nokey"],
        &["SPOP", "nokey", "2"],
        &["SPOP", "r", "0"],
        &["SPOP", "r", "10"],
        &["EXISTS", "r"],
        &["SPOP", "r"],
        &["SCARD", "s"],
        &["SCARD", "nokey"],
        &["TYPE", "s"],
        &["OBJECT", "ENCODING", "s"],
        &["SADD", "n", "1", "2", "3"],
        &["OBJECT", "ENCODING", "n"],
        &["SADD", "t", "b", "c", "x"],
        &["SINTER", "s", "t"],
        &["SUNION", "s", "t", "nokey"],
        &["SDIFF", "s", "t"],
        &["SINTER", "s", "nokey"],
        &["SINTERCARD", "2", "s", "t"],
        &["SINTERCARD", "2", "s", "t", "LIMIT", "1"],
        &["SINTERCARD", "0", "s"],
        &["SINTERCARD", "3", "s", "t"],
        &["SINTERSTORE", "dst", "s", "t"],
        &["SMEMBERS", "dst"],
        &["SUNIONSTORE", "dst", "s", "t"],
        &["SCARD", "dst"],
        &["SDIFFSTORE", "dst", "s", "s"],
        &["EXISTS", "dst"],
        &["SMOVE", "s", "t", "a"],
        &["SMOVE", "s", "t", "zz"],
        &["SMOVE", "nokey", "t", "a"],
        &["SMEMBERS", "t"],
        &["SREM", "s", "a", "b", "zz", "b"],
        &["SREM", "nokey", "a"],
        &["SET", "str", "v"],
        &["SADD", "str", "a"],
        &["SMEMBERS", "str"],
        &["SINTER", "s", "str"],
        &["SMOVE", "s", "str", "c"],
        &["HSET", "h", "f", "v"],
        &["SADD", "h", "a"],
        &["HGET", "s", "c"],
        &["GET", "s"],
        &["SADD", "s"],
        &["SREM", "s"],
        &["RENAME", "s", "s2"],
        &["SMEMBERS", "s2"],
        &["SREM", "s2", "c", "d"],
        &["EXISTS", "s2"],
        &["SMEMBERS", "s2"],
        &["DEL", "t"],
        &["SMEMBERS", "t"],
    ] {
        both.same(args);
    }
}

#[test]
fn sorted_set_commands_answer_as_redis_does() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    for args in [
        &["ZADD", "z", "1", "a", "2", "b", "3", "c", "1.5", "d", "2", "b"][..],
        &["ZADD", "z", "0.1", "e", "-inf", "f", "+inf", "g", "1e20", "h"],
        &["ZSCORE", "z", "e"],
        &["ZSCORE", "z", "h"],
        &["ZSCORE", "z", "f"],
        &["ZSCORE", "z", "nope"],
        &["ZSCORE", "nokey", "a"],
        &["ZMSCORE", "z", "a", "nope", "g"],
        &["ZMSCORE", "nokey", "a"],
        &["ZCARD", "z"],
        &["ZCARD", "nokey"],
        &["ZRANGE", "z", "0", "-1"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["ZRANGE", "z", "2", "3", "REV", "WITHSCORES"],
        &["ZRANGE", "z", "-2", "100"],
        &["ZRANGE", "z", "5", "2"],
        &["ZRANGE", "z", "(1", "3", "BYSCORE", "WITHSCORES"],
        &["ZRANGE", "z", "3", "(1", "BYSCORE", "REV"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "2", "-1"],
        &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "2"],
        &["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"],
        &["ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"],
        &["ZRANGE", "z", "x", "y", "BYSCORE"],
        &["ZRANGE", "z", "0", "x"],
        &["ZRANGE", "z", "0", "1", "BOGUS"],
        &["ZRANGE", "nokey", "0", "-1"],
        &["ZREVRANGE", "z", "0", "2", "WITHSCORES"],
        &["ZRANGEBYSCORE", "z", "1", "2", "WITHSCORES"],
        &["ZRANGEBYSCORE", "z", "-inf", "(2", "LIMIT", "1", "1"],
        &["ZREVRANGEBYSCORE", "z", "+inf", "2"],
        &["ZCOUNT", "z", "1", "(3"],
        &["ZCOUNT", "z", "-inf", "+inf"],
        &["ZCOUNT", "z", "a", "b"],
        &["ZRANK", "z", "c"],
        &["ZRANK", "z", "nope"],
        &["ZREVRANK", "z", "c"],
        &["ZRANK", "nokey", "c"],
        &["ZINCRBY", "z", "2.5", "a"],
        &["ZINCRBY", "z", "1", "new"],
        &["ZINCRBY", "z", "x", "a"],
        &["ZINCRBY", "z", "-inf", "g"],
        &["ZADD", "z", "XX", "CH", "10", "b", "11", "q"],
        &["ZADD", "z", "NX", "20", "b", "21", "r"],
        &["ZADD", "z", "GT", "CH", "5", "c", "0", "d"],
        &["ZADD", "z", "LT", "5", "c", "0", "d"],
        &["ZADD", "z", "INCR", "5", "b"],
        &["ZADD", "z", "NX", "INCR", "5", "b"],
        &["ZADD", "z", "GT", "INCR", "-1", "b"],
        &["ZADD", "z", "XX", "NX", "1", "a"],
        &["ZADD", "z", "GT", "LT", "1", "a"],
        &["ZADD", "z", "INCR", "1", "a", "2", "b"],
        &["ZADD", "z", "1"],
        &["ZADD", "z", "nan", "a"],
        &["ZADD", "z", "x", "a"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["ZREM", "z", "a", "nope", "a"],
        &["ZREM", "nokey", "a"],
        &["ZPOPMIN", "z"],
        &["ZPOPMIN", "z", "2"],
        &["ZPOPMAX", "z"],
        &["ZPOPMAX", "z", "0"],
        &["ZPOPMAX", "z", "-1"],
        &["ZPOPMIN", "nokey"],
        &["ZPOPMIN", "nokey", "2"],
        &["ZSCAN", "z", "0"],
        &["ZSCAN", "z", "0", "MATCH", "[bc]*"],
        &["ZSCAN", "nokey", "0"],
        &["ZADD", "r", "1", "x", "2", "y", "3", "z"],
        &["ZRANDMEMBER", "r", "10"],
        &["ZRANDMEMBER", "r", "10", "WITHSCORES"],
        &["ZRANDMEMBER", "r", "0"],
        &["ZRANDMEMBER", "nokey"],
        &["ZRANDMEMBER", "nokey", "2"],
        &["TYPE", "r"],
        &["OBJECT", "ENCODING", "r"],
        &["ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e"],
        &["ZRANGEBYLEX", "lex", "[b", "(d"],
        &["ZRANGEBYLEX", "lex", "-", "+", "LIMIT", "1", "2"],
        &["ZREVRANGEBYLEX", "lex", "+", "[c"],
        &["ZRANGEBYLEX", "lex", "b", "d"],
        &["ZLEXCOUNT", "lex", "-", "(c"],
        &["ZREMRANGEBYLEX", "lex", "-", "[a"],
        &["ZREMRANGEBYRANK", "lex", "0", "1"],
        &["ZREMRANGEBYSCORE", "r", "(1", "2"],
        &["ZRANGE", "lex", "0", "-1"],
        &["ZRANGE", "r", "0", "-1", "WITHSCORES"],
        &["ZRANGESTORE", "dst", "z", "0", "1"],
        &["ZRANGE", "dst", "0", "-1", "WITHSCORES"],
        &["ZRANGESTORE", "dst", "z", "100", "200"],
        &["EXISTS", "dst"],
        &["SET", "str", "v"],
        &["ZADD", "str", "1", "a"],
        &["ZRANGE", "str", "0", "-1"],
        &["ZSCORE", "str", "a"],
        &["SADD", "s", "a"],
        &["ZCARD", "s"],
        &["ZADD", "r", "1"],
        &["DEL", "r"],
        &["ZCARD", "r"],
    ] {
        both.same(args);
    }
}

#[test]
fn sorted_sets_combine_as_redis_combines_them() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    for args in [
        &["ZADD", "a", "1", "x", "2", "y", "inf", "i"][..],
        &["ZADD", "b", "3", "y", "4", "w", "-inf", "i"],
        &["SADD", "s", "x", "z"],
        &["SET", "str", "v"],
        &["ZUNION", "2", "a", "s", "WITHSCORES"],
        &["ZUNION", "3", "a", "b", "s", "WEIGHTS", "2", "3", "0", "AGGREGATE", "MAX", "WITHSCORES"],
        &["ZUNION", "2", "a", "b", "WITHSCORES"],
        &["ZUNION", "2", "a", "b", "WEIGHTS", "0", "1", "WITHSCORES"],
        &["ZINTER", "2", "a", "b", "WITHSCORES"],
        &["ZINTER", "2", "a", "b", "AGGREGATE", "MIN", "WITHSCORES"],
        &["ZINTER", "2", "a", "s"],
        &["ZINTER", "2", "a", "nokey"],
        &["ZDIFF", "2", "a", "b", "WITHSCORES"],
        &["ZDIFF", "1", "nokey"],
        &["ZDIFF", "2", "a", "s", "WEIGHTS", "1", "1"],
        &["ZINTERCARD", "2", "a", "b"],
        &["ZINTERCARD", "2", "a", "b", "LIMIT", "1"],
        &["ZINTERCARD", "2", "a", "b", "LIMIT", "-1"],
        &["ZINTERCARD", "0", "a"],
        &["ZUNIONSTORE", "d", "2", "a", "b"],
        &["ZRANGE", "d", "0", "-1", "WITHSCORES"],
        &["ZINTERSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
        &["ZRANGE", "d", "0", "-1", "WITHSCORES"],
        &["ZDIFFSTORE", "d", "2", "a", "a"],
        &["EXISTS", "d"],
        &["ZUNIONSTORE", "a", "2", "a", "b"],
        &["ZRANGE", "a", "0", "-1", "WITHSCORES"],
        &["ZUNION", "2", "a", "str"],
        &["ZUNIONSTORE", "d", "0", "a"],
        &["ZUNIONSTORE", "d", "3", "a", "b"],
        &["ZUNION", "2", "a", "b", "WEIGHTS", "1"],
        &["ZUNION", "2", "a", "b", "WEIGHTS", "1", "x"],
        &["ZUNION", "2", "a", "b", "AGGREGATE", "AVG"],
        &["ZUNIONSTORE", "d", "2", "a", "b", "WITHSCORES"],
        &["ZUNION", "-1", "a"],
    ] {
        both.same(args);
    }
}

#[test]
fn hyperloglogs_count_as_redis_counts() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    let many: Vec<String> = (0..5000).map(|i| format!("e{i}")).collect();
    let mut pfadd = vec!["PFADD", "big"];
    pfadd.extend(many.iter().map(String::as_str));
    for args in [
        &["PFADD", "h", "a", "b", "c"][..],
        &["PFADD", "h", "a"],
        &["PFADD", "h"],
        &["PFADD", "new"],
        &["PFCOUNT", "h"],
        &["PFCOUNT", "new"],
        &["PFCOUNT", "nokey"],
        &pfadd,
        &["PFCOUNT", "big"],
        &["PFCOUNT", "big", "h"],
        &["PFADD", "g", "c", "d"],
        &["PFMERGE", "m", "h", "g"],
        &["PFCOUNT", "m"],
        &["PFMERGE", "m"],
        &["PFMERGE", "m2", "big", "nokey"],
        &["PFCOUNT", "m2"],
        &["TYPE", "m"],
        &["SET", "str", "v"],
        &["PFADD", "str", "a"],
        &["PFCOUNT", "str"],
        &["PFCOUNT", "h", "str"],
        &["PFMERGE", "h", "str"],
        &["SADD", "s", "a"],
        &["PFADD", "s", "a"],
        &["PFCOUNT", "s"],
        &["PFCOUNT"],
        &["PFADD"],
    ] {
        both.same(args);
    }
    // A HyperLogLog copied from Redis (its sparse encoding) counts the same here.
    let bytes: Vec<u8> = redis::cmd("GET").arg("h").query(&mut both.redis).unwrap();
    let _: () = redis::cmd("SET").arg("copied").arg(&bytes).query(&mut both.halka).unwrap();
    let copied: i64 = redis::cmd("PFCOUNT").arg("copied").query(&mut both.halka).unwrap();
    assert_eq!(copied, 3);
    let _: i64 = redis::cmd("PFADD").arg("copied").arg("z").query(&mut both.halka).unwrap();
    let _: i64 = redis::cmd("PFADD").arg("h").arg("z").query(&mut both.redis).unwrap();
    let here: i64 = redis::cmd("PFCOUNT").arg("copied").query(&mut both.halka).unwrap();
    let there: i64 = redis::cmd("PFCOUNT").arg("h").query(&mut both.redis).unwrap();
    assert_eq!((here, there), (4, 4));
}

#[test]
fn keyspace_commands_answer_as_redis_does() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    for args in [
        &["MSET", "k1", "a", "k2", "b", "other", "c"][..],
        &["EXISTS", "k1", "k2", "k1", "missing"],
        &["TYPE", "k1"],
        &["TYPE", "missing"],
        &["KEYS", "k*"],
        &["KEYS", "*"],
        &["DEL", "k1", "missing"],
        &["UNLINK", "k2"],
        &["TOUCH", "other", "missing"],
        &["EXPIRE", "other", "100"],
        &["TTL", "other"],
        &["EXPIRE", "other", "50", "GT"],
        &["EXPIRE", "other", "50", "LT"],
        &["EXPIRE", "other", "500", "NX"],
        &["EXPIRE", "other", "500", "XX", "GT"],
        &["EXPIRE", "other", "5", "GT", "LT"],
        &["EXPIRE", "other", "5", "NX", "XX"],
        &["PERSIST", "other"],
        &["PERSIST", "other"],
        &["TTL", "other"],
        &["TTL", "missing"],
        &["PEXPIRE", "other", "100000"],
        &["EXPIRETIME", "other"],
        &["EXPIRE", "missing", "10"],
        &["EXPIRE", "other", "abc"],
        &["SET", "gone", "v"],
        &["EXPIRE", "gone", "0"],
        &["GET", "gone"],
        &["SET", "gone", "v"],
        &["PEXPIREAT", "gone", "1"],
        &["EXISTS", "gone"],
        &["RENAME", "other", "moved"],
        &["GET", "moved"],
        &["RENAME", "missing", "x"],
        &["SET", "taken", "t"],
        &["RENAMENX", "moved", "taken"],
        &["COPY", "moved", "copy"],
        &["COPY", "moved", "taken"],
        &["COPY", "moved", "taken", "REPLACE"],
        &["GET", "taken"],
        &["SET", "number", "12345"],
        &["OBJECT", "ENCODING", "number"],
        &["INCR", "number"],
        &["OBJECT", "ENCODING", "number"],
        &["OBJECT", "ENCODING", "taken"],
        &["SET", "long", "this value is longer than forty-four bytes, so raw"],
        &["OBJECT", "ENCODING", "long"],
        &["SET", "zero", "007"],
        &["OBJECT", "ENCODING", "zero"],
        &["OBJECT", "ENCODING", "missing"],
        &["OBJECT", "REFCOUNT", "missing"],
        &["OBJECT", "BOGUS", "long"],
        &["OBJECT", "ENCODING"],
    ] {
        both.same(args);
    }
}

#[test]
fn mistakes_are_answered_as_redis_answers_them() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    for args in [
        &["NOSUCHCOMMAND", "x"][..],
        &["GET"],
        &["GET", "a", "b"],
        &["SET", "a"],
        &["SET", "a", "b", "BOGUS"],
        &["EXPIRE", "a"],
        &["PING"],
        &["PING", "hello"],
        &["ECHO", "hi"],
        &["SELECT", "0"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "EX", "1.5"],
        &["SET", "k", "v", "PX", "0"],
        &["GETEX", "k", "EX", "0"],
        &["GETEX", "k", "PERSIST", "EX", "10"],
        &["INCRBY", "k", "1", "2"],
        &["EXPIRE", "k", "10", "BOGUS"],
        &["MGET"],
        &["MSET", "a", "1", "b"],
        &["GETRANGE", "k", "a", "b"],
        &["SETRANGE", "k", "x", "v"],
        &["APPEND", "k"],
        &["RENAME", "k"],
        &["COPY", "k", "j", "BOGUS"],
        &["EXISTS"],
        &["DEL"],
        &["TTL"],
        &["ECHO"],
        &["PING", "a", "b"],
    ] {
        both.same(args);
    }
}

/// Every deliberate difference is still one: both sides answer, and differently.
#[test]
fn the_deliberate_differences_still_differ() {
    let (redis, halka) = pair();
    let mut both = Both::connect(&redis, &halka);
    both.reset();
    let (r, h) = both.both(&["INCRBYFLOAT", "f", "0.1"]);
    assert_eq!(r, h);
    let (r, h) = both.both(&["INCRBYFLOAT", "f", "0.2"]);
    assert_ne!(r, h, "{}", DELIBERATE[0].1);
    let (r, h) = both.both(&["MSETNX", "x", "1", "y", "2"]);
    assert!(h.contains("CROSSSLOT") && !r.contains("CROSSSLOT"), "{r} / {h}");
    let (r, h) = both.both(&["SELECT", "1"]);
    assert!(r == "ok" && h.contains("only SELECT 0"), "{r} / {h}");
    let (r, h) = both.both(&["WATCH", "x"]);
    assert!(r == "ok" && h.starts_with("error: ERR WATCH is not supported"), "{r} / {h}");
}

/// One command of a generated sequence, over three keys and a few values.
fn command() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c"]);
    let value =
        prop::sample::select(vec!["0", "1", "-7", "x", "", "12345678901234567890", "01", " 5"]);
    let n = prop::sample::select(vec!["0", "1", "-1", "3", "100", "abc", "007", "+2", "-0"]);
    let field = prop::sample::select(vec!["f", "g", "h"]);
    let template = prop::sample::select(vec![
        "GET k",
        "SET k v",
        "SET k v NX",
        "SET k v XX",
        "SET k v GET",
        "SETNX k v",
        "GETSET k v",
        "GETDEL k",
        "APPEND k v",
        "STRLEN k",
        "GETRANGE k n n",
        "SETRANGE k n v",
        "INCR k",
        "DECR k",
        "INCRBY k n",
        "DECRBY k n",
        "DEL k",
        "EXISTS k",
        "TYPE k",
        "EXPIRE k n",
        "PERSIST k",
        "TTL k",
        "MGET k k",
        "MSET k v k v",
        "RENAME k k",
        "RENAMENX k k",
        "COPY k k",
        "KEYS *",
        "EXPIRE k n NX",
        "EXPIRE k n XX",
        "EXPIRE k n GT",
        "EXPIRE k n LT",
        "PEXPIRE k 100000",
        "PEXPIRE k 0",
        "PTTL k",
        "GETEX k EX n",
        "GETEX k PERSIST",
        "SET k v EX n",
        "SET k v KEEPTTL",
        "SETEX k n v",
        "MSETNX k v",
        "UNLINK k k",
        "TOUCH k",
        "COPY k k REPLACE",
        "GETRANGE k n n",
        "HSET k f v",
        "HSET k f v f v",
        "HSETNX k f v",
        "HGET k f",
        "HMGET k f f",
        // Not HDEL: a hash emptied by HDEL keeps its head, which EXPIRE, TTL, SET NX and
        // the like still see (the README says so; `hash_commands_answer_as_redis_does`
        // checks what does answer as Redis after one).
        "HGETALL k",
        "HKEYS k",
        "HVALS k",
        "HLEN k",
        "HEXISTS k f",
        "HSTRLEN k f",
        "HINCRBY k f n",
        "SADD k f",
        "SADD k f f",
        "SISMEMBER k f",
        "SMISMEMBER k f f",
        "SMEMBERS k",
        "SCARD k",
        "SINTER k k",
        "SUNION k k",
        "SDIFF k k",
        "SINTERSTORE k k k",
        "SUNIONSTORE k k k",
        "SMOVE k k f",
        // Not ZREM, ZPOPMIN and the like, for the reason HDEL is left out.
        "ZADD k n f",
        "ZADD k n f n f",
        "ZADD k NX n f",
        "ZADD k XX CH n f",
        "ZADD k GT n f",
        "ZINCRBY k n f",
        "ZSCORE k f",
        "ZMSCORE k f f",
        "ZCARD k",
        "ZRANGE k n n",
        "ZRANGE k n n WITHSCORES",
        "ZRANGE k n n BYSCORE",
        "ZRANGEBYSCORE k n n",
        "ZCOUNT k n n",
        "ZRANK k f",
        "ZREVRANK k f",
        // Not HINCRBYFLOAT: 64-bit floats where Redis has `long double`, as INCRBYFLOAT
        // (DELIBERATE).
    ]);
    (template, prop::collection::vec((key, value, n, field), 4)).prop_map(|(template, fills)| {
        let mut fills = fills.into_iter().cycle();
        template
            .split(' ')
            .map(|word| {
                let (k, v, n, f) = fills.next().unwrap();
                match word {
                    "k" => k.to_string(),
                    "f" => f.to_string(),
                    "v" => v.to_string(),
                    "n" => n.to_string(),
                    other => other.to_string(),
                }
            })
            .collect()
    })
}

#[test]
fn generated_sequences_answer_as_redis_does() {
    let (redis, halka) = pair();
    let both = std::cell::RefCell::new(Both::connect(&redis, &halka));
    let config =
        ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(sequence in prop::collection::vec(command(), 1..16))| {
        let mut both = both.borrow_mut();
        both.reset();
        for args in &sequence {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (redis, halka) = both.both(&args);
            prop_assert_eq!(halka, redis, "after: {}", both.sent.join(" | "));
        }
    });
}
