//! The Redis commands halka answers, in one table: what `COMMAND COUNT` reports, what
//! `MULTI` checks a command against before queueing it, and the metric label of each.

/// One command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Upper case, as dispatched.
    pub name: &'static str,
    /// Redis's convention: `n > 0` takes exactly `n` words including the name, `-n` at
    /// least `n`.
    pub arity: i32,
    /// The `op` label of the request metrics; commands of one kind share one.
    pub op: &'static str,
    /// The command group, as `COMMAND DOCS` names them.
    pub group: &'static str,
    /// One line for `COMMAND DOCS` (what redis-cli's `help` prints).
    pub summary: &'static str,
}

impl Spec {
    /// Whether `words` words (the name included) is a valid length for this command.
    #[must_use]
    pub fn accepts(&self, words: usize) -> bool {
        let words = i64::try_from(words).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 { words == arity } else { words >= -arity }
    }
}

const fn spec(
    name: &'static str,
    arity: i32,
    op: &'static str,
    group: &'static str,
    summary: &'static str,
) -> Spec {
    Spec { name, arity, op, group, summary }
}

/// Every command halka answers.
pub const COMMANDS: &[Spec] = &[
    spec(
        "GET",
        2,
        "get",
        "string",
        "Returns the value of a key (last writer wins among siblings).",
    ),
    spec(
        "SET",
        -3,
        "set",
        "string",
        "Sets a key; EX/PX/EXAT/PXAT/KEEPTTL expiry; NX/XX checked at the key's first owner; GET.",
    ),
    spec("SETNX", 3, "set", "string", "Sets a key that holds no value; 1 when set."),
    spec("SETEX", 4, "set", "string", "Sets a key with an expiry in seconds."),
    spec("PSETEX", 4, "set", "string", "Sets a key with an expiry in milliseconds."),
    spec("GETSET", 3, "set", "string", "Sets a key and returns the value it replaced."),
    spec("GETDEL", 2, "del", "string", "Deletes a key and returns the value it held."),
    spec("GETEX", -2, "get", "string", "Returns a value, changing its expiry when asked."),
    spec("APPEND", 3, "set", "string", "Appends to a value; returns the new length."),
    spec("SETRANGE", 4, "set", "string", "Overwrites part of a value; returns the new length."),
    spec(
        "INCR",
        2,
        "incr",
        "string",
        "Adds 1 to a convergent counter; replies with the value its coordinating replica knows.",
    ),
    spec("DECR", 2, "incr", "string", "Subtracts 1 from a convergent counter."),
    spec("INCRBY", 3, "incr", "string", "Adds an integer to a convergent counter."),
    spec("DECRBY", 3, "incr", "string", "Subtracts an integer from a convergent counter."),
    spec(
        "INCRBYFLOAT",
        3,
        "incr",
        "string",
        "Adds a float to a convergent counter (64-bit binary floating point).",
    ),
    spec(
        "EXPIRE",
        -3,
        "expire",
        "generic",
        "Sets a key's expiry in seconds (NX/XX/GT/LT); 1 when set.",
    ),
    spec("PEXPIRE", -3, "expire", "generic", "Sets a key's expiry in milliseconds."),
    spec("EXPIREAT", -3, "expire", "generic", "Sets a key's expiry as a Unix time in seconds."),
    spec("PEXPIREAT", -3, "expire", "generic", "Sets a key's expiry as a Unix time in ms."),
    spec("PERSIST", 2, "expire", "generic", "Removes a key's expiry; 1 when there was one."),
    spec("DEL", -2, "del", "generic", "Deletes keys (tombstones); returns how many existed."),
    spec("UNLINK", -2, "del", "generic", "Same as DEL."),
    spec(
        "EXISTS",
        -2,
        "exists",
        "generic",
        "Counts the given keys that exist; a key named twice counts twice.",
    ),
    spec(
        "TOUCH",
        -2,
        "exists",
        "generic",
        "Counts the given keys that exist (halka keeps no access times).",
    ),
    spec("STRLEN", 2, "get", "string", "Returns the length of a key's value, 0 when missing."),
    spec(
        "GETRANGE",
        4,
        "get",
        "string",
        "Returns a byte range of a key's value; negative offsets count from the end.",
    ),
    spec("SUBSTR", 4, "get", "string", "Same as GETRANGE."),
    spec("MGET", -2, "mget", "string", "Returns the values of several keys."),
    spec(
        "MSET",
        -3,
        "mset",
        "string",
        "Sets several keys, each its own quorum write (not atomic).",
    ),
    spec("TYPE", 2, "other", "generic", "Returns string for an existing key, none otherwise."),
    spec("OBJECT", -2, "other", "generic", "How a key's value is held (ENCODING, REFCOUNT, HELP)."),
    spec(
        "SCAN",
        -2,
        "scan",
        "generic",
        "Walks the cluster's keys by hash range (MATCH, COUNT, TYPE); any node continues a cursor.",
    ),
    spec("KEYS", 2, "scan", "generic", "Every key in the cluster matching a glob pattern."),
    spec("RANDOMKEY", 1, "scan", "generic", "A key from a random place in the hash space."),
    spec(
        "FLUSHDB",
        -1,
        "flush",
        "server",
        "Deletes every key in the cluster; refused unless every member answers.",
    ),
    spec("FLUSHALL", -1, "flush", "server", "Same as FLUSHDB (there is one database)."),
    spec("TTL", 2, "ttl", "generic", "Seconds left: -1 without expiry, -2 for a missing key."),
    spec("PTTL", 2, "ttl", "generic", "Milliseconds left: -1 without expiry, -2 when missing."),
    spec("EXPIRETIME", 2, "ttl", "generic", "The Unix time (seconds) a key expires at."),
    spec("PEXPIRETIME", 2, "ttl", "generic", "The Unix time (milliseconds) a key expires at."),
    spec("TIME", 1, "other", "server", "Returns this node's clock: seconds and microseconds."),
    spec("ROLE", 1, "other", "server", "master: every node takes writes, none is a replica."),
    spec("HSET", -4, "hash_write", "hash", "Sets fields of a hash; how many are new."),
    spec("HMSET", -4, "hash_write", "hash", "Sets fields of a hash; OK."),
    spec("HSETNX", 4, "hash_write", "hash", "Sets a field that does not exist; 1 when set."),
    spec("HGET", 3, "hash_read", "hash", "Returns a field's value."),
    spec("HMGET", -3, "hash_read", "hash", "Returns the values of several fields."),
    spec("HEXISTS", 3, "hash_read", "hash", "1 when the field exists."),
    spec("HSTRLEN", 3, "hash_read", "hash", "The length of a field's value."),
    spec("HDEL", -3, "hash_write", "hash", "Removes fields (the versions seen); how many existed."),
    spec("HGETALL", 2, "hash_read", "hash", "Every field and value (reads the whole hash)."),
    spec("HKEYS", 2, "hash_read", "hash", "Every field (reads the whole hash)."),
    spec("HVALS", 2, "hash_read", "hash", "Every value (reads the whole hash)."),
    spec("HLEN", 2, "hash_read", "hash", "How many fields (reads the whole hash)."),
    spec("HINCRBY", 4, "hash_write", "hash", "Adds to a field's convergent counter."),
    spec("HINCRBYFLOAT", 4, "hash_write", "hash", "Adds a float to a field's counter."),
    spec(
        "HSCAN",
        -3,
        "hash_read",
        "hash",
        "Walks a hash's fields a page at a time (MATCH, COUNT, NOVALUES).",
    ),
    spec("SADD", -3, "set_write", "set", "Adds members to a set; how many are new."),
    spec("SREM", -3, "set_write", "set", "Removes members (the additions seen); how many were in."),
    spec("SISMEMBER", 3, "set_read", "set", "1 when the member is in the set."),
    spec("SMISMEMBER", -3, "set_read", "set", "1 or 0 for each member."),
    spec("SMEMBERS", 2, "set_read", "set", "Every member (reads the whole set)."),
    spec("SCARD", 2, "set_read", "set", "How many members (reads the whole set)."),
    spec("SSCAN", -3, "set_read", "set", "Walks a set's members a page at a time (MATCH, COUNT)."),
    spec(
        "SRANDMEMBER",
        -2,
        "set_read",
        "set",
        "Members drawn at random (a count, negative: repeats).",
    ),
    spec("SPOP", -2, "set_write", "set", "Removes and answers members drawn at random."),
    spec(
        "HRANDFIELD",
        -2,
        "hash_read",
        "hash",
        "Fields drawn at random (a count, negative: repeats; WITHVALUES).",
    ),
    spec("SINTER", -2, "set_read", "set", "The members in every set."),
    spec("SUNION", -2, "set_read", "set", "The members in any set."),
    spec("SDIFF", -2, "set_read", "set", "The first set's members in none of the others."),
    spec("SINTERSTORE", -3, "set_write", "set", "SINTER into a new set at the destination."),
    spec("SUNIONSTORE", -3, "set_write", "set", "SUNION into a new set at the destination."),
    spec("SDIFFSTORE", -3, "set_write", "set", "SDIFF into a new set at the destination."),
    spec("SINTERCARD", -3, "set_read", "set", "How many members SINTER would answer (LIMIT)."),
    spec("SMOVE", 4, "set_write", "set", "Moves a member: added to the destination, then removed."),
    spec("ZADD", -4, "zset_write", "sorted-set", "Adds members with scores (NX XX GT LT CH INCR)."),
    spec(
        "ZINCRBY",
        4,
        "zset_write",
        "sorted-set",
        "Adds to a member's score; increments through any nodes all count.",
    ),
    spec("ZSCORE", 3, "zset_read", "sorted-set", "A member's score."),
    spec("ZMSCORE", -3, "zset_read", "sorted-set", "The score of each member."),
    spec("ZCARD", 2, "zset_read", "sorted-set", "How many members (counted a page at a time)."),
    spec(
        "ZREM",
        -3,
        "zset_write",
        "sorted-set",
        "Removes members (the additions seen); how many were in.",
    ),
    spec(
        "ZPOPMIN",
        -2,
        "zset_write",
        "sorted-set",
        "Removes and answers the lowest-scored members.",
    ),
    spec(
        "ZPOPMAX",
        -2,
        "zset_write",
        "sorted-set",
        "Removes and answers the highest-scored members.",
    ),
    spec(
        "ZRANDMEMBER",
        -2,
        "zset_read",
        "sorted-set",
        "Members drawn at random (a count, negative: repeats; WITHSCORES).",
    ),
    spec(
        "ZSCAN",
        -3,
        "zset_read",
        "sorted-set",
        "Walks a sorted set a page at a time, in hash order (MATCH, COUNT).",
    ),
    spec(
        "ZRANGE",
        -4,
        "zset_read",
        "sorted-set",
        "Members by rank, score (BYSCORE) or name (BYLEX); REV, LIMIT, WITHSCORES.",
    ),
    spec("ZREVRANGE", -4, "zset_read", "sorted-set", "Members by rank from the highest score."),
    spec("ZRANGEBYSCORE", -4, "zset_read", "sorted-set", "Members with scores in a range."),
    spec(
        "ZREVRANGEBYSCORE",
        -4,
        "zset_read",
        "sorted-set",
        "Members with scores in a range, highest first.",
    ),
    spec("ZRANGEBYLEX", -4, "zset_read", "sorted-set", "Members in a range of names."),
    spec(
        "ZREVRANGEBYLEX",
        -4,
        "zset_read",
        "sorted-set",
        "Members in a range of names, last first.",
    ),
    spec("ZCOUNT", 4, "zset_read", "sorted-set", "How many members have scores in a range."),
    spec("ZLEXCOUNT", 4, "zset_read", "sorted-set", "How many members are in a range of names."),
    spec("ZRANK", 3, "zset_read", "sorted-set", "A member's position from the lowest score."),
    spec("ZREVRANK", 3, "zset_read", "sorted-set", "A member's position from the highest score."),
    spec(
        "ZREMRANGEBYRANK",
        4,
        "zset_write",
        "sorted-set",
        "Removes the members in a range of positions.",
    ),
    spec(
        "ZREMRANGEBYSCORE",
        4,
        "zset_write",
        "sorted-set",
        "Removes the members with scores in a range.",
    ),
    spec(
        "ZREMRANGEBYLEX",
        4,
        "zset_write",
        "sorted-set",
        "Removes the members in a range of names.",
    ),
    spec(
        "ZRANGESTORE",
        -5,
        "zset_write",
        "sorted-set",
        "ZRANGE into a new sorted set at the destination.",
    ),
    spec(
        "ZUNION",
        -3,
        "zset_read",
        "sorted-set",
        "Members in any input (WEIGHTS, AGGREGATE, WITHSCORES).",
    ),
    spec(
        "ZINTER",
        -3,
        "zset_read",
        "sorted-set",
        "Members in every input (WEIGHTS, AGGREGATE, WITHSCORES).",
    ),
    spec(
        "ZDIFF",
        -3,
        "zset_read",
        "sorted-set",
        "The first input's members in none of the others.",
    ),
    spec(
        "ZUNIONSTORE",
        -4,
        "zset_write",
        "sorted-set",
        "ZUNION into a new sorted set at the destination.",
    ),
    spec(
        "ZINTERSTORE",
        -4,
        "zset_write",
        "sorted-set",
        "ZINTER into a new sorted set at the destination.",
    ),
    spec(
        "ZDIFFSTORE",
        -4,
        "zset_write",
        "sorted-set",
        "ZDIFF into a new sorted set at the destination.",
    ),
    spec(
        "ZINTERCARD",
        -3,
        "zset_read",
        "sorted-set",
        "How many members ZINTER would answer (LIMIT).",
    ),
    spec(
        "PFADD",
        -2,
        "hll_write",
        "hyperloglog",
        "Adds elements to a HyperLogLog; 1 when it changed.",
    ),
    spec(
        "PFCOUNT",
        -2,
        "hll_read",
        "hyperloglog",
        "Estimated distinct elements in the union of HyperLogLogs.",
    ),
    spec("PFMERGE", -2, "hll_write", "hyperloglog", "Merges HyperLogLogs into the destination."),
    spec("RENAME", 3, "set", "generic", "Moves a key's value and expiry to another key."),
    spec("RENAMENX", 3, "set", "generic", "RENAME unless the new name exists."),
    spec("COPY", -3, "set", "generic", "Copies a key's value and expiry to another key."),
    spec("PING", -1, "other", "connection", "Answers PONG, or echoes its argument."),
    spec("ECHO", 2, "other", "connection", "Returns its argument."),
    spec(
        "HELLO",
        -1,
        "other",
        "connection",
        "Switches the protocol (2 or 3) and describes the server.",
    ),
    spec(
        "INFO",
        -1,
        "other",
        "server",
        "Server, clients, memory, stats, keyspace and halka sections.",
    ),
    spec("COMMAND", -1, "other", "server", "COUNT, INFO and DOCS of the commands halka answers."),
    spec(
        "CLIENT",
        -2,
        "other",
        "connection",
        "SETNAME, GETNAME, SETINFO, ID, INFO of this connection; LIST and KILL of all; NO-EVICT.",
    ),
    spec("CONFIG", -2, "other", "server", "CONFIG GET of the few settings clients ask for."),
    spec("SLOWLOG", -2, "other", "server", "GET, LEN and RESET of the recent slow commands."),
    spec("SELECT", 2, "other", "connection", "Only database 0 exists."),
    spec(
        "RESET",
        1,
        "other",
        "connection",
        "Restores this connection's defaults (protocol, name, quorums, MULTI).",
    ),
    spec("AUTH", -2, "other", "connection", "Logs in as a user: AUTH [username] password."),
    spec(
        "ACL",
        -2,
        "other",
        "server",
        "Users: WHOAMI, SETUSER, GETUSER, DELUSER, LIST, USERS, CAT, LOG, GENPASS, DRYRUN.",
    ),
    spec(
        "MSETNX",
        -3,
        "set",
        "string",
        "SETNX for one key; several keys get CROSSSLOT (all-or-none needs consensus).",
    ),
    spec("DBSIZE", 1, "other", "server", "Keys with a live value on this node, replicas included."),
    spec("QUIT", -1, "other", "connection", "Closes the connection."),
    spec(
        "MULTI",
        1,
        "other",
        "transactions",
        "Starts queueing commands for EXEC (ordered, not isolated).",
    ),
    spec(
        "EXEC",
        1,
        "other",
        "transactions",
        "Runs the queued commands in order, each its own quorum operation.",
    ),
    spec("DISCARD", 1, "other", "transactions", "Drops the queued commands."),
    spec("WATCH", -2, "other", "transactions", "Refused: no optimistic locking without consensus."),
    spec("UNWATCH", 1, "other", "transactions", "Nothing is watched: answers OK."),
    spec("HALKA.CONSISTENCY", -1, "other", "halka", "Shows or sets this connection's R and W."),
    spec("HALKA.GETALL", -2, "getall", "halka", "Every replica's answer for a key, with siblings."),
    spec("HALKA.GET", -3, "get", "halka", "GET with R (and PR) for this request only."),
    spec(
        "HALKA.SET",
        -4,
        "set",
        "halka",
        "SET with W (and PW, owner acks) for this request only; RECEIPT lists who acknowledged.",
    ),
    spec("HALKA.STATUS", 1, "other", "halka", "This node's status as JSON (as /v1/cluster)."),
    spec(
        "HALKA.CLUSTER",
        -2,
        "other",
        "halka",
        "Layout changes as JSON: STATUS, JOIN, LEAVE, REPLACE, PLAN, COMMIT, CLEAR.",
    ),
];

/// The command named `name` (upper case).
#[must_use]
pub fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// Where the command named `name` (upper case) is in [`COMMANDS`].
#[must_use]
pub fn position(name: &str) -> Option<usize> {
    COMMANDS.iter().position(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arity_follows_the_redis_convention() {
        let get = lookup("GET").unwrap();
        assert!(get.accepts(2) && !get.accepts(1) && !get.accepts(3));
        let del = lookup("DEL").unwrap();
        assert!(del.accepts(2) && del.accepts(9) && !del.accepts(1));
    }

    #[test]
    fn names_are_unique_and_upper_case() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert_eq!(c.name, c.name.to_ascii_uppercase());
            assert!(COMMANDS[..i].iter().all(|o| o.name != c.name), "{} twice", c.name);
        }
    }
}
