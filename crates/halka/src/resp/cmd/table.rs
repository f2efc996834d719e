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

const fn spec(name: &'static str, arity: i32, op: &'static str) -> Spec {
    Spec { name, arity, op }
}

/// Every command, in dispatch order of importance.
pub const COMMANDS: &[Spec] = &[
    spec("GET", 2, "get"),
    spec("SET", -3, "set"),
    spec("DEL", -2, "del"),
    spec("UNLINK", -2, "del"),
    spec("EXISTS", -2, "exists"),
    spec("MGET", -2, "mget"),
    spec("MSET", -3, "mset"),
    spec("TOUCH", -2, "exists"),
    spec("STRLEN", 2, "get"),
    spec("GETRANGE", 4, "get"),
    spec("SUBSTR", 4, "get"),
    spec("TIME", 1, "other"),
    spec("TYPE", 2, "other"),
    spec("TTL", 2, "other"),
    spec("PTTL", 2, "other"),
    spec("PING", -1, "other"),
    spec("ECHO", 2, "other"),
    spec("HELLO", -1, "other"),
    spec("INFO", -1, "other"),
    spec("COMMAND", -1, "other"),
    spec("CLIENT", -2, "other"),
    spec("CONFIG", -2, "other"),
    spec("SELECT", 2, "other"),
    spec("RESET", 1, "other"),
    spec("AUTH", -2, "other"),
    spec("DBSIZE", 1, "other"),
    spec("QUIT", -1, "other"),
    spec("MULTI", 1, "other"),
    spec("EXEC", 1, "other"),
    spec("DISCARD", 1, "other"),
    spec("WATCH", -2, "other"),
    spec("UNWATCH", 1, "other"),
    spec("HALKA.CONSISTENCY", -1, "other"),
    spec("HALKA.GETALL", 2, "getall"),
    spec("HALKA.GET", 3, "get"),
    spec("HALKA.SET", 4, "set"),
];

/// The command named `name` (upper case).
#[must_use]
pub fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The metric label for `name`: unknown commands share "other", so labels stay bounded.
#[must_use]
pub fn metric_op(name: &str) -> &'static str {
    lookup(name).map_or("other", |c| c.op)
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
