//! What the permission rules know of each command: its categories (`+@read`) and which
//! of its arguments are keys, read or written (`%R~`, `%W~`).
//!
//! Categories follow Redis's for the same commands, so that rules written for Redis mean
//! the same here. A key is *read* when the reply reveals its value, *written* when the
//! command changes it; a command that does neither (`EXISTS`, `TYPE`) needs only a
//! pattern that names the key, as in Redis.

/// A command category, as `ACL CAT` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Category {
    pub name: &'static str,
    bit: u16,
}

const fn cat(name: &'static str, bit: u16) -> Category {
    Category { name, bit: 1 << bit }
}

pub const KEYSPACE: Category = cat("keyspace", 0);
pub const READ: Category = cat("read", 1);
pub const WRITE: Category = cat("write", 2);
pub const STRING: Category = cat("string", 3);
pub const FAST: Category = cat("fast", 4);
pub const SLOW: Category = cat("slow", 5);
pub const ADMIN: Category = cat("admin", 6);
pub const DANGEROUS: Category = cat("dangerous", 7);
pub const CONNECTION: Category = cat("connection", 8);
pub const TRANSACTION: Category = cat("transaction", 9);
pub const HASH: Category = cat("hash", 10);
pub const SET: Category = cat("set", 11);
pub const SORTEDSET: Category = cat("sortedset", 12);
pub const HYPERLOGLOG: Category = cat("hyperloglog", 13);

/// Every category (`all` is not one: it names every command).
pub const CATEGORIES: &[Category] = &[
    KEYSPACE,
    READ,
    WRITE,
    STRING,
    FAST,
    SLOW,
    ADMIN,
    DANGEROUS,
    CONNECTION,
    TRANSACTION,
    HASH,
    SET,
    SORTEDSET,
    HYPERLOGLOG,
];

/// The category named `name` (without `@`), if halka has it.
#[must_use]
pub fn category(name: &str) -> Option<Category> {
    CATEGORIES.iter().copied().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// What a command does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
}

const R: Access = Access { read: true, write: false };
const W: Access = Access { read: false, write: true };
const RW: Access = Access { read: true, write: true };
/// Neither reads nor writes the value: any pattern naming the key allows it.
const NAMED: Access = Access { read: false, write: false };

/// Which arguments are keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    None,
    /// The first argument.
    First(Access),
    /// Every argument.
    All(Access),
    /// Every other argument from the first (`MSET k v k v`).
    Pairs(Access),
    /// The second argument (after a subcommand: `OBJECT ENCODING key`).
    Second(Access),
    /// The first argument (the source) and the second (the destination).
    Move {
        from: Access,
        to: Access,
    },
    /// The first argument, then every other (`SINTERSTORE destination key …`).
    FirstThen {
        first: Access,
        rest: Access,
    },
    /// As many as the first argument counts, after it (`SINTERCARD 2 a b LIMIT 1`).
    Counted(Access),
    /// The first argument, then as many as the second counts after it (`ZUNIONSTORE
    /// destination 2 a b WEIGHTS 1 2`).
    FirstThenCounted {
        first: Access,
        rest: Access,
    },
}

/// A command as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traits {
    categories: u16,
    pub keys: Keys,
}

impl Traits {
    #[must_use]
    pub fn is(&self, c: Category) -> bool {
        self.categories & c.bit != 0
    }
}

/// The rules' view of command `name` (upper case) given its first argument, which for
/// `ACL` and `CLIENT` is a subcommand that may need more than the command: `ACL WHOAMI`
/// is anyone's, `ACL SETUSER` an administrator's.
#[must_use]
pub fn traits_of(name: &str, first: Option<&[u8]>) -> Option<Traits> {
    let sub = |words: &[&str]| {
        first.is_some_and(|f| words.iter().any(|w| f.eq_ignore_ascii_case(w.as_bytes())))
    };
    let cats: &[Category] = match name {
        "ACL" if sub(&["WHOAMI", "CAT", "GENPASS", "HELP"]) => &[SLOW],
        "CLIENT" if sub(&["KILL", "LIST", "INFO"]) => &[ADMIN, SLOW, DANGEROUS],
        _ => return traits(name),
    };
    let categories = cats.iter().fold(0, |bits, c| bits | c.bit);
    Some(Traits { categories, keys: Keys::None })
}

/// The rules' view of command `name` (upper case); `None` for a command halka does not
/// answer.
#[must_use]
pub fn traits(name: &str) -> Option<Traits> {
    let (cats, keys): (&[Category], Keys) = match name {
        "GET" | "STRLEN" | "GETRANGE" | "SUBSTR" => (&[READ, STRING, FAST], Keys::First(R)),
        "MGET" => (&[READ, STRING, FAST], Keys::All(R)),
        "HALKA.GET" | "HALKA.GETALL" => (&[READ, STRING, SLOW], Keys::First(R)),
        "SET" | "SETNX" | "SETEX" | "PSETEX" | "APPEND" | "SETRANGE" => {
            (&[WRITE, STRING, SLOW], Keys::First(W))
        }
        "HALKA.SET" => (&[WRITE, STRING, SLOW], Keys::First(W)),
        "GETSET" | "GETDEL" | "GETEX" | "INCR" | "DECR" | "INCRBY" | "DECRBY" | "INCRBYFLOAT" => {
            (&[WRITE, STRING, FAST], Keys::First(RW))
        }
        "MSET" | "MSETNX" => (&[WRITE, STRING, SLOW], Keys::Pairs(W)),
        "HGET" | "HMGET" | "HEXISTS" | "HSTRLEN" | "HLEN" => (&[READ, HASH, FAST], Keys::First(R)),
        "HGETALL" | "HKEYS" | "HVALS" | "HSCAN" | "HRANDFIELD" => {
            (&[READ, HASH, SLOW], Keys::First(R))
        }
        "HSET" | "HMSET" | "HSETNX" | "HDEL" => (&[WRITE, HASH, FAST], Keys::First(W)),
        "HINCRBY" | "HINCRBYFLOAT" => (&[WRITE, HASH, FAST], Keys::First(RW)),
        "SISMEMBER" | "SMISMEMBER" => (&[READ, SET, FAST], Keys::First(R)),
        "SMEMBERS" | "SCARD" | "SSCAN" | "SRANDMEMBER" => (&[READ, SET, SLOW], Keys::First(R)),
        "SPOP" => (&[WRITE, SET, FAST], Keys::First(RW)),
        "SINTER" | "SUNION" | "SDIFF" => (&[READ, SET, SLOW], Keys::All(R)),
        "SINTERCARD" => (&[READ, SET, SLOW], Keys::Counted(R)),
        "SADD" | "SREM" => (&[WRITE, SET, FAST], Keys::First(W)),
        "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE" => {
            (&[WRITE, SET, SLOW], Keys::FirstThen { first: W, rest: R })
        }
        "SMOVE" => (&[WRITE, SET, FAST], Keys::Move { from: RW, to: W }),
        "ZSCORE" | "ZMSCORE" | "ZCARD" | "ZRANK" | "ZREVRANK" | "ZCOUNT" | "ZLEXCOUNT" => {
            (&[READ, SORTEDSET, FAST], Keys::First(R))
        }
        "ZRANGE" | "ZREVRANGE" | "ZRANGEBYSCORE" | "ZREVRANGEBYSCORE" | "ZRANGEBYLEX"
        | "ZREVRANGEBYLEX" | "ZSCAN" | "ZRANDMEMBER" => (&[READ, SORTEDSET, SLOW], Keys::First(R)),
        "ZADD" | "ZINCRBY" | "ZREM" | "ZPOPMIN" | "ZPOPMAX" => {
            (&[WRITE, SORTEDSET, FAST], Keys::First(RW))
        }
        "ZREMRANGEBYRANK" | "ZREMRANGEBYSCORE" | "ZREMRANGEBYLEX" => {
            (&[WRITE, SORTEDSET, SLOW], Keys::First(RW))
        }
        "ZUNION" | "ZINTER" | "ZDIFF" => (&[READ, SORTEDSET, SLOW], Keys::Counted(R)),
        "ZINTERCARD" => (&[READ, SORTEDSET, SLOW], Keys::Counted(R)),
        "ZUNIONSTORE" | "ZINTERSTORE" | "ZDIFFSTORE" => {
            (&[WRITE, SORTEDSET, SLOW], Keys::FirstThenCounted { first: W, rest: R })
        }
        "PFADD" => (&[WRITE, HYPERLOGLOG, FAST], Keys::First(RW)),
        "PFCOUNT" => (&[READ, HYPERLOGLOG, SLOW], Keys::All(R)),
        "PFMERGE" => (&[WRITE, HYPERLOGLOG, SLOW], Keys::FirstThen { first: RW, rest: R }),
        // The destination comes first here, the source second.
        "ZRANGESTORE" => (&[WRITE, SORTEDSET, SLOW], Keys::Move { from: W, to: R }),
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" | "PERSIST" => {
            (&[KEYSPACE, WRITE, FAST], Keys::First(W))
        }
        "TTL" | "PTTL" | "EXPIRETIME" | "PEXPIRETIME" => (&[KEYSPACE, READ, FAST], Keys::First(R)),
        "TYPE" => (&[KEYSPACE, READ, FAST], Keys::First(NAMED)),
        "OBJECT" => (&[KEYSPACE, READ, SLOW], Keys::Second(NAMED)),
        "EXISTS" | "TOUCH" => (&[KEYSPACE, READ, FAST], Keys::All(NAMED)),
        "DEL" | "UNLINK" => (&[KEYSPACE, WRITE, SLOW], Keys::All(W)),
        "RENAME" | "RENAMENX" => (&[KEYSPACE, WRITE, SLOW], Keys::Move { from: RW, to: W }),
        "COPY" => (&[KEYSPACE, WRITE, SLOW], Keys::Move { from: R, to: W }),
        "SCAN" | "RANDOMKEY" | "DBSIZE" => (&[KEYSPACE, READ, SLOW], Keys::None),
        "KEYS" => (&[KEYSPACE, READ, SLOW, DANGEROUS], Keys::None),
        // Also @admin, unlike Redis: emptying the whole cluster is an administrator's act.
        "FLUSHDB" | "FLUSHALL" => (&[KEYSPACE, WRITE, SLOW, DANGEROUS, ADMIN], Keys::None),
        "PING" | "ECHO" | "SELECT" | "AUTH" | "HELLO" | "QUIT" | "RESET" => {
            (&[CONNECTION, FAST], Keys::None)
        }
        "CLIENT" | "HALKA.CONSISTENCY" => (&[CONNECTION, SLOW], Keys::None),
        "TIME" | "COMMAND" => (&[CONNECTION, SLOW], Keys::None),
        "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH" => (&[TRANSACTION, FAST], Keys::None),
        "INFO" | "ROLE" | "HALKA.STATUS" => (&[SLOW, DANGEROUS], Keys::None),
        "CONFIG" | "SLOWLOG" | "HALKA.CLUSTER" | "ACL" => (&[ADMIN, SLOW, DANGEROUS], Keys::None),
        _ => return None,
    };
    let categories = cats.iter().fold(0, |bits, c| bits | c.bit);
    Some(Traits { categories, keys })
}

/// The keys among `args` (the words after the command name), with what the command does
/// with each. `SET k v GET` reads the key as well.
pub fn keys<'a>(
    name: &str,
    keys: Keys,
    args: &'a [bytes::Bytes],
) -> impl Iterator<Item = (&'a [u8], Access)> + 'a {
    let set_get = name == "SET" && args.iter().skip(2).any(|a| a.eq_ignore_ascii_case(b"GET"));
    let mut found: Vec<(&[u8], Access)> = match keys {
        Keys::None => Vec::new(),
        Keys::First(a) => args.first().map(|k| (k.as_ref(), a)).into_iter().collect(),
        Keys::All(a) => args.iter().map(|k| (k.as_ref(), a)).collect(),
        Keys::Second(a) => args.get(1).map(|k| (k.as_ref(), a)).into_iter().collect(),
        Keys::Pairs(a) => args.iter().step_by(2).map(|k| (k.as_ref(), a)).collect(),
        Keys::Move { from, to } => {
            args.iter().take(2).zip([from, to]).map(|(k, a)| (k.as_ref(), a)).collect()
        }
        Keys::FirstThen { first, rest } => args
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_ref(), if i == 0 { first } else { rest }))
            .collect(),
        Keys::Counted(a) => counted(args, a),
        Keys::FirstThenCounted { first, rest } => {
            let mut found: Vec<(&[u8], Access)> =
                args.first().map(|k| (k.as_ref(), first)).into_iter().collect();
            found.extend(counted(args.get(1..).unwrap_or_default(), rest));
            found
        }
    };
    if set_get && let Some(first) = found.first_mut() {
        first.1 = RW;
    }
    found.into_iter()
}

/// The keys after a count of them, all with access `a`.
fn counted(args: &[bytes::Bytes], a: Access) -> Vec<(&[u8], Access)> {
    let n = args.first().and_then(|n| std::str::from_utf8(n).ok()?.parse().ok());
    args.iter().skip(1).take(n.unwrap_or(0)).map(|k| (k.as_ref(), a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::cmd::table::COMMANDS;
    use bytes::Bytes;

    #[test]
    fn every_command_halka_answers_has_categories() {
        for spec in COMMANDS {
            assert!(traits(spec.name).is_some(), "{} has no ACL categories", spec.name);
        }
    }

    #[test]
    fn every_command_that_names_keys_reads_or_writes_per_redis() {
        let t = traits("INCR").unwrap();
        assert!(t.is(WRITE) && !t.is(READ));
        assert_eq!(t.keys, Keys::First(RW));
        assert!(traits("GET").unwrap().is(READ));
    }

    #[test]
    fn mset_keys_are_every_other_argument() {
        let args: Vec<Bytes> = [&b"a"[..], b"1", b"b", b"2"].map(Bytes::from_static).to_vec();
        let t = traits("MSET").unwrap();
        let got: Vec<&[u8]> = keys("MSET", t.keys, &args).map(|(k, _)| k).collect();
        assert_eq!(got, vec![&b"a"[..], b"b"]);
    }

    #[test]
    fn object_names_its_key_after_the_subcommand() {
        let args: Vec<Bytes> = [&b"ENCODING"[..], b"k"].map(Bytes::from_static).to_vec();
        let t = traits("OBJECT").unwrap();
        let got: Vec<&[u8]> = keys("OBJECT", t.keys, &args).map(|(k, _)| k).collect();
        assert_eq!(got, vec![&b"k"[..]]);
        let help = [Bytes::from_static(b"HELP")];
        assert_eq!(keys("OBJECT", t.keys, &help).count(), 0);
    }

    #[test]
    fn set_with_get_reads_its_key() {
        let args: Vec<Bytes> = [&b"k"[..], b"v", b"GET"].map(Bytes::from_static).to_vec();
        let t = traits("SET").unwrap();
        let got: Vec<Access> = keys("SET", t.keys, &args).map(|(_, a)| a).collect();
        assert_eq!(got, vec![RW]);
    }
}
