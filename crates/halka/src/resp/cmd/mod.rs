//! Redis commands: a parser per command family and one dispatcher.
//!
//! Siblings resolve by last-writer-wins on this protocol: a Redis client expects one value.
//! `HALKA.GETALL` shows each replica's answer for clients that want to see more.

mod acl;
mod client;
mod collection;
mod counter;
mod expiry;
mod halka;
mod hash;
mod hll;
mod keys;
mod kv;
mod object;
mod random;
mod rename;
mod server;
mod set;
mod strings;
pub mod table;
pub mod transaction;
mod zcombine;
mod zrange;
mod zset;

use super::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use expiry::{Report, Unit};
use halka_cluster::{ClusterError, WriteQuorum, WriteRequest};
use halka_store::Outcome;

/// Per-connection state.
#[derive(Debug)]
pub struct Session {
    pub id: u64,
    pub resp3: bool,
    pub name: Option<Bytes>,
    /// Read and write quorums for this connection (`HALKA.CONSISTENCY`).
    pub r: usize,
    pub w: usize,
    /// Commands queued since `MULTI`, if one is open.
    pub multi: Option<transaction::Queue>,
    /// This connection in the node's client list, once registered.
    pub client: Option<std::sync::Arc<crate::resp::clients::Client>>,
    /// The user it runs as; `None` until it authenticates, when the default user needs a
    /// password.
    pub user: Option<std::sync::Arc<str>>,
}

impl Session {
    /// A new connection's session: RESP2, no name, the node's default quorums.
    #[must_use]
    pub fn new(id: u64, state: &NodeState) -> Self {
        Self {
            id,
            resp3: false,
            name: None,
            r: state.config.r,
            w: state.config.w,
            multi: None,
            client: None,
            user: Self::first_user(state),
        }
    }

    /// The user a connection runs as before `AUTH`: the default user, when it needs no
    /// password.
    #[must_use]
    pub fn first_user(state: &NodeState) -> Option<std::sync::Arc<str>> {
        state
            .acl
            .default_needs_no_password()
            .then(|| std::sync::Arc::from(crate::acl::DEFAULT_USER))
    }
}

/// What the connection does after replying.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    Close,
}

/// Arguments after the command name, with typed accessors that produce Redis-style errors.
#[derive(Debug)]
pub struct Args {
    name: String,
    args: std::vec::IntoIter<Bytes>,
}

impl Args {
    fn next_bytes(&mut self) -> Result<Bytes, Frame> {
        self.args.next().ok_or_else(|| wrong_arity(&self.name))
    }

    fn next_string(&mut self) -> Result<String, Frame> {
        let b = self.next_bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| Frame::error("ERR argument is not valid UTF-8"))
    }

    fn next_usize(&mut self) -> Result<usize, Frame> {
        self.next_string()?
            .parse()
            .map_err(|_| Frame::error("ERR value is not an integer or out of range"))
    }

    fn next_i64(&mut self) -> Result<i64, Frame> {
        integer(&self.next_bytes()?)
    }

    fn rest(&mut self) -> Vec<Bytes> {
        self.args.by_ref().collect()
    }

    fn remaining(&self) -> usize {
        self.args.len()
    }

    fn finish(&mut self) -> Result<(), Frame> {
        if self.args.len() > 0 {
            return Err(Frame::error(format!(
                "ERR syntax error in '{}'",
                self.name.to_lowercase()
            )));
        }
        Ok(())
    }
}

fn wrong_arity(name: &str) -> Frame {
    Frame::error(format!("ERR wrong number of arguments for '{}' command", name.to_lowercase()))
}

/// A cluster error as a RESP error reply.
pub(crate) fn cluster_error(e: &ClusterError) -> Frame {
    let prefix = match e {
        // Redis's words carry their own prefix.
        ClusterError::WrongType => return Frame::error(e.to_string()),
        // Only a value's `TooLarge` names the limit, and that is never refused here.
        ClusterError::Refused(refusal) => {
            return expiry::refusal_error(*refusal, usize::MAX)
                .unwrap_or_else(|| Frame::error(format!("ERR {e}")));
        }
        ClusterError::Quorum(q) if q.for_lack_of_space() => "NOSPACE",
        ClusterError::Quorum(_) => "NOQUORUM",
        ClusterError::NotInCluster | ClusterError::Replaced { .. } => "CLUSTERDOWN",
        _ => "ERR",
    };
    Frame::error(format!("{prefix} {e}"))
}

/// Applies `request` to `key` with this connection's W. A refusal that the client must hear
/// as an error (a value that is not an integer, say) is one; a condition that did not hold
/// is left in the outcome for the command to report.
async fn apply(
    state: &NodeState,
    s: &Session,
    key: Bytes,
    request: WriteRequest,
) -> Result<Outcome, Frame> {
    let put = state
        .coordinator
        .apply(key, request, WriteQuorum { w: s.w, pw: 0 })
        .await
        .map_err(|e| cluster_error(&e))?;
    if let Some(refusal) = put.outcome.refused
        && let Some(error) = expiry::refusal_error(refusal, state.config.limits.max_value_bytes)
    {
        return Err(error);
    }
    Ok(put.outcome)
}

/// Whether `request` is `EXEC`, whose reply is written out as its commands run (see
/// `transaction::exec`).
#[must_use]
pub fn is_exec(request: &[Bytes]) -> bool {
    request.first().is_some_and(|name| name.eq_ignore_ascii_case(b"EXEC"))
}

/// Whether `request` walks the cluster's keys and changes nothing (`KEYS`, `SCAN`,
/// `RANDOMKEY`): it may run long, and stopping it halfway loses nothing, so it stops when
/// its client goes away.
#[must_use]
pub fn is_walk(request: &[Bytes]) -> bool {
    request.first().is_some_and(|name| {
        ["KEYS", "SCAN", "RANDOMKEY"].iter().any(|w| name.eq_ignore_ascii_case(w.as_bytes()))
    })
}

/// The key of a command that reads or writes exactly one key and nothing else, so it may
/// run concurrently with other such commands on other keys within one pipeline.
#[must_use]
pub fn single_key(request: &[Bytes]) -> Option<&Bytes> {
    let name = request.first()?;
    let simple = match request.len() {
        2 => {
            name.eq_ignore_ascii_case(b"GET")
                || name.eq_ignore_ascii_case(b"DEL")
                || name.eq_ignore_ascii_case(b"EXISTS")
        }
        3 => name.eq_ignore_ascii_case(b"SET"),
        _ => false,
    };
    simple.then(|| &request[1])
}

/// Runs one command that [`single_key`] accepted; it needs only shared access to the
/// session, so several can run at once.
pub async fn execute_shared(state: &NodeState, session: &Session, request: Vec<Bytes>) -> Frame {
    state.command_served();
    let name = String::from_utf8_lossy(&request[0]).to_ascii_uppercase();
    if let Err(refused) = acl::permit(state, session, &name, &request[1..]) {
        return refused;
    }
    if let Some(refused) = reserved_key(&name, &request[1..]) {
        return refused;
    }
    let (first, more) = (request.get(1).cloned(), request.len().saturating_sub(2));
    let mut args = Args {
        name: name.clone(),
        args: request.into_iter().skip(1).collect::<Vec<_>>().into_iter(),
    };
    let started = std::time::Instant::now();
    let result = match name.as_str() {
        "GET" => kv::get(state, session, &mut args).await,
        "SET" => kv::set(state, session, &mut args).await,
        "DEL" => kv::del(state, session, &mut args).await,
        _ => kv::exists(state, session, &mut args).await,
    };
    observe(state, session, &name, (first.as_ref(), more), (started.elapsed(), result.is_err()));
    match result {
        Ok(frame) | Err(frame) => frame,
    }
}

/// The refusal of a command naming a key that begins with the bytes halka keeps for the
/// members of collections (`halka_ring::MEMBER_PREFIX`).
fn reserved_key(name: &str, args: &[Bytes]) -> Option<Frame> {
    let traits = crate::acl::command::traits(name)?;
    let mut keys = crate::acl::command::keys(name, traits.keys, args);
    keys.any(|(k, _)| k.starts_with(halka_ring::MEMBER_PREFIX)).then(|| {
        Frame::error(
            "ERR keys beginning with the bytes \\xff\\xfehalka\\x00 are reserved: halka \
             stores the fields of hashes under them",
        )
    })
}

/// Counts a command in the metrics and `INFO commandstats`, and in `SLOWLOG` when it was
/// slow. `args` is its first argument and how many more it had.
fn observe(
    state: &NodeState,
    session: &Session,
    name: &str,
    (first, more): (Option<&Bytes>, usize),
    (took, failed): (std::time::Duration, bool),
) {
    let index = table::position(name);
    // Unknown commands share the label "other", so the metric's labels stay bounded.
    let op = index.map_or("other", |i| table::COMMANDS[i].op);
    if let Some(i) = index {
        state.command_stats.note(i, took, failed);
    }
    metrics::counter!("halka_requests_total", "protocol" => "resp", "op" => op).increment(1);
    metrics::histogram!("halka_request_duration_seconds", "protocol" => "resp", "op" => op)
        .record(took.as_secs_f64());
    // Reading the slow log is not itself kept in it.
    if name != "SLOWLOG" && state.slowlog.is_slow(took) {
        let addr = session.client.as_ref().map(|c| c.addr.to_string()).unwrap_or_default();
        let client_name = session.name.clone().unwrap_or_default();
        state.slowlog.note(name, first, more, took, (addr, client_name));
    }
}

/// Runs one command, or queues it while a `MULTI` is open.
pub async fn execute(
    state: &NodeState,
    session: &mut Session,
    request: Vec<Bytes>,
) -> (Frame, After) {
    state.command_served();
    let name = request.first().map(|n| String::from_utf8_lossy(n).to_ascii_uppercase());
    if let Some(name) = &name
        && let Err(refused) = acl::permit(state, session, name, &request[1..])
    {
        return match session.multi.as_mut() {
            Some(queue) if !matches!(name.as_str(), "EXEC" | "DISCARD") => {
                (queue.refuse(refused), After::Continue)
            }
            _ => (refused, After::Continue),
        };
    }
    match name.as_deref() {
        Some("MULTI") => (transaction::multi(session, request.len()), After::Continue),
        Some("DISCARD") => (transaction::discard(session, request.len()), After::Continue),
        Some("WATCH") => (transaction::watch(session), After::Continue),
        Some("UNWATCH") if request.len() == 1 => (Frame::ok(), After::Continue),
        Some(name) if name != "RESET" && name != "QUIT" && session.multi.is_some() => {
            let queue = session.multi.as_mut().expect("checked above");
            (queue.push(name, request, state.config.limits.max_request_bytes), After::Continue)
        }
        _ => dispatch(state, session, request).await,
    }
}

/// Runs one command that is not transaction control.
async fn dispatch(state: &NodeState, session: &mut Session, request: Vec<Bytes>) -> (Frame, After) {
    let mut it = request.into_iter();
    let Some(name) = it.next() else {
        return (Frame::error("ERR empty command"), After::Continue);
    };
    let sent = name;
    let name = String::from_utf8_lossy(&sent).to_ascii_uppercase();
    let rest = it.as_slice();
    // Redis checks a command's arity against its table before anything else.
    if table::lookup(&name).is_some_and(|spec| !spec.accepts(rest.len() + 1)) {
        return (wrong_arity(&name), After::Continue);
    }
    if let Some(refused) = reserved_key(&name, rest) {
        return (refused, After::Continue);
    }
    let (first, more) = (rest.first().cloned(), rest.len().saturating_sub(1));
    let mut args = Args { name: name.clone(), args: it };
    let started = std::time::Instant::now();
    let result = match name.as_str() {
        "GET" => kv::get(state, session, &mut args).await,
        "SET" => kv::set(state, session, &mut args).await,
        "DEL" | "UNLINK" => kv::del(state, session, &mut args).await,
        "EXISTS" | "TOUCH" => kv::exists(state, session, &mut args).await,
        "STRLEN" => kv::strlen(state, session, &mut args).await,
        "GETRANGE" | "SUBSTR" => kv::getrange(state, session, &mut args).await,
        "TIME" => server::time(&mut args),
        "MGET" => kv::mget(state, session, &mut args).await,
        "MSET" => kv::mset(state, session, &mut args).await,
        "TYPE" => kv::type_of(state, session, &mut args).await,
        "OBJECT" => object::object(state, session, &mut args).await,
        "TTL" => expiry::ttl(state, session, &mut args, Report::Left(Unit::Seconds)).await,
        "PTTL" => expiry::ttl(state, session, &mut args, Report::Left(Unit::Millis)).await,
        "EXPIRETIME" => expiry::ttl(state, session, &mut args, Report::At(Unit::Seconds)).await,
        "PEXPIRETIME" => expiry::ttl(state, session, &mut args, Report::At(Unit::Millis)).await,
        "EXPIRE" => expiry::expire(state, session, &mut args, Unit::Seconds, false).await,
        "PEXPIRE" => expiry::expire(state, session, &mut args, Unit::Millis, false).await,
        "EXPIREAT" => expiry::expire(state, session, &mut args, Unit::Seconds, true).await,
        "PEXPIREAT" => expiry::expire(state, session, &mut args, Unit::Millis, true).await,
        "PERSIST" => expiry::persist(state, session, &mut args).await,
        "GETEX" => expiry::getex(state, session, &mut args).await,
        "SETEX" => expiry::setex(state, session, &mut args, Unit::Seconds).await,
        "PSETEX" => expiry::setex(state, session, &mut args, Unit::Millis).await,
        "INCR" => counter::add(state, session, &mut args, Some(1), false).await,
        "DECR" => counter::add(state, session, &mut args, Some(1), true).await,
        "INCRBY" => counter::add(state, session, &mut args, None, false).await,
        "DECRBY" => counter::add(state, session, &mut args, None, true).await,
        "INCRBYFLOAT" => counter::add_float(state, session, &mut args).await,
        "SETNX" => strings::setnx(state, session, &mut args).await,
        "GETSET" => strings::getset(state, session, &mut args).await,
        "GETDEL" => strings::getdel(state, session, &mut args).await,
        "APPEND" => strings::append(state, session, &mut args).await,
        "SETRANGE" => strings::setrange(state, session, &mut args).await,
        "SCAN" => keys::scan(state, session, &mut args).await,
        "KEYS" => keys::keys(state, session, &mut args).await,
        "RANDOMKEY" => keys::randomkey(state, session, &mut args).await,
        "FLUSHDB" | "FLUSHALL" => keys::flush(state, session, &mut args).await,
        "PING" => server::ping(&mut args),
        "ECHO" => server::echo(&mut args),
        "HELLO" => server::hello(state, session, &mut args).await,
        "INFO" => server::info(state, session, &mut args).await,
        "COMMAND" => server::command(&mut args),
        "CLIENT" => client::client(state, session, &mut args),
        "CONFIG" => server::config(state, &mut args),
        "SELECT" => server::select(&mut args),
        "ROLE" => server::role(&mut args),
        "RESET" => server::reset(state, session, &mut args),
        "AUTH" => acl::auth(state, session, &mut args).await,
        "ACL" => acl::acl(state, session, &mut args).await,
        "MSETNX" => strings::msetnx(state, session, &mut args).await,
        "HSET" | "HMSET" => hash::hset(state, session, &mut args).await,
        "HSETNX" => hash::hsetnx(state, session, &mut args).await,
        "HGET" => hash::hget(state, session, &mut args).await,
        "HMGET" => hash::hmget(state, session, &mut args).await,
        "HEXISTS" => hash::hexists(state, session, &mut args).await,
        "HSTRLEN" => hash::hstrlen(state, session, &mut args).await,
        "HDEL" => hash::hdel(state, session, &mut args).await,
        "HGETALL" => hash::whole(state, session, &mut args, hash::Whole::All).await,
        "HKEYS" => hash::whole(state, session, &mut args, hash::Whole::Keys).await,
        "HVALS" => hash::whole(state, session, &mut args, hash::Whole::Values).await,
        "HLEN" => hash::hlen(state, session, &mut args).await,
        "HINCRBY" => hash::hincrby(state, session, &mut args).await,
        "HINCRBYFLOAT" => hash::hincrbyfloat(state, session, &mut args).await,
        "HSCAN" => collection::scan(state, session, &mut args, halka_store::Kind::Hash).await,
        "SSCAN" => collection::scan(state, session, &mut args, halka_store::Kind::Set).await,
        "SRANDMEMBER" => random::srandmember(state, session, &mut args).await,
        "SPOP" => random::spop(state, session, &mut args).await,
        "HRANDFIELD" => random::hrandfield(state, session, &mut args).await,
        "SADD" => set::sadd(state, session, &mut args).await,
        "SREM" => set::srem(state, session, &mut args).await,
        "SISMEMBER" => set::sismember(state, session, &mut args).await,
        "SMISMEMBER" => set::smismember(state, session, &mut args).await,
        "SMEMBERS" => set::smembers(state, session, &mut args).await,
        "SCARD" => set::scard(state, session, &mut args).await,
        "SINTER" => set::combine(state, session, &mut args, set::Combine::Inter).await,
        "SUNION" => set::combine(state, session, &mut args, set::Combine::Union).await,
        "SDIFF" => set::combine(state, session, &mut args, set::Combine::Diff).await,
        "SINTERSTORE" => set::combine_store(state, session, &mut args, set::Combine::Inter).await,
        "SUNIONSTORE" => set::combine_store(state, session, &mut args, set::Combine::Union).await,
        "SDIFFSTORE" => set::combine_store(state, session, &mut args, set::Combine::Diff).await,
        "SINTERCARD" => set::sintercard(state, session, &mut args).await,
        "SMOVE" => set::smove(state, session, &mut args).await,
        name if zset_command(name) => sorted_set(state, session, &mut args).await,
        "PFADD" => hll::pfadd(state, session, &mut args).await,
        "PFCOUNT" => hll::pfcount(state, session, &mut args).await,
        "PFMERGE" => hll::pfmerge(state, session, &mut args).await,
        "RENAME" => rename::rename(state, session, &mut args).await,
        "RENAMENX" => rename::renamenx(state, session, &mut args).await,
        "COPY" => rename::copy(state, session, &mut args).await,
        "DBSIZE" => Ok(Frame::Integer(i64::try_from(state.local_keys()).unwrap_or(i64::MAX))),
        "QUIT" => return (Frame::ok(), After::Close),
        "HALKA.CONSISTENCY" => halka::consistency(state, session, &mut args),
        "HALKA.GETALL" => halka::getall(state, session, &mut args).await,
        "HALKA.GET" => halka::get(state, &mut args).await,
        "HALKA.SET" => halka::set(state, &mut args).await,
        "HALKA.STATUS" => halka::status(state, &mut args).await,
        "HALKA.CLUSTER" => halka::cluster(state, &mut args).await,
        "SLOWLOG" => server::slowlog(state, &mut args),
        _ => Err(unknown_command(&sent, &args.rest())),
    };
    observe(state, session, &name, (first.as_ref(), more), (started.elapsed(), result.is_err()));
    match result {
        Ok(frame) | Err(frame) => (frame, After::Continue),
    }
}

/// An integer argument as Redis reads one (`string2ll`: no `+`, no spaces, no leading
/// zero), or Redis's error.
pub(super) fn integer(arg: &[u8]) -> Result<i64, Frame> {
    halka_store::parse_integer(arg)
        .map_err(|_| Frame::error("ERR value is not an integer or out of range"))
}

/// Redis's reply to a command it does not know, worded as Redis words it: the name as
/// sent, then each argument quoted and followed by a space, until 128 characters.
fn unknown_command(sent: &[u8], args: &[Bytes]) -> Frame {
    let printable = |b: &[u8]| String::from_utf8_lossy(b).replace(['\r', '\n'], " ");
    let mut listed = String::new();
    for arg in args {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        let arg = printable(arg);
        let arg: String = arg.chars().take(room).collect();
        listed += &format!("'{arg}' ");
    }
    let name: String = printable(sent).chars().take(128).collect();
    Frame::error(format!("ERR unknown command '{name}', with args beginning with: {listed}"))
}

/// Whether `name` is a sorted set command (dispatched by [`sorted_set`]).
fn zset_command(name: &str) -> bool {
    name.starts_with('Z') && table::lookup(name).is_some_and(|spec| spec.group == "sorted-set")
}

/// Runs a sorted set command.
async fn sorted_set(state: &NodeState, session: &Session, args: &mut Args) -> Result<Frame, Frame> {
    use zcombine::How;
    use zrange::Form;
    let (s, a) = (session, args);
    match a.name.as_str() {
        "ZADD" => zset::zadd(state, s, a).await,
        "ZINCRBY" => zset::zincrby(state, s, a).await,
        "ZSCORE" => zset::zscore(state, s, a).await,
        "ZMSCORE" => zset::zmscore(state, s, a).await,
        "ZCARD" => zset::zcard(state, s, a).await,
        "ZREM" => zset::zrem(state, s, a).await,
        "ZPOPMIN" => zset::zpop(state, s, a, zset::End::Min).await,
        "ZPOPMAX" => zset::zpop(state, s, a, zset::End::Max).await,
        "ZRANDMEMBER" => random::zrandmember(state, s, a).await,
        "ZSCAN" => collection::scan(state, s, a, halka_store::Kind::SortedSet).await,
        "ZRANGE" => zrange::zrange(state, s, a, Form::Any).await,
        "ZREVRANGE" => zrange::zrange(state, s, a, Form::RevRank).await,
        "ZRANGEBYSCORE" => zrange::zrange(state, s, a, Form::Score { rev: false }).await,
        "ZREVRANGEBYSCORE" => zrange::zrange(state, s, a, Form::Score { rev: true }).await,
        "ZRANGEBYLEX" => zrange::zrange(state, s, a, Form::Lex { rev: false }).await,
        "ZREVRANGEBYLEX" => zrange::zrange(state, s, a, Form::Lex { rev: true }).await,
        "ZCOUNT" => zrange::zcount(state, s, a, Form::Score { rev: false }).await,
        "ZLEXCOUNT" => zrange::zcount(state, s, a, Form::Lex { rev: false }).await,
        "ZRANK" => zrange::zrank(state, s, a, false).await,
        "ZREVRANK" => zrange::zrank(state, s, a, true).await,
        "ZREMRANGEBYRANK" => zrange::zremrange(state, s, a, Form::Rank).await,
        "ZREMRANGEBYSCORE" => zrange::zremrange(state, s, a, Form::Score { rev: false }).await,
        "ZREMRANGEBYLEX" => zrange::zremrange(state, s, a, Form::Lex { rev: false }).await,
        "ZRANGESTORE" => zrange::zrangestore(state, s, a).await,
        "ZUNION" => zcombine::zcombine(state, s, a, How::Union).await,
        "ZINTER" => zcombine::zcombine(state, s, a, How::Inter).await,
        "ZDIFF" => zcombine::zcombine(state, s, a, How::Diff).await,
        "ZUNIONSTORE" => zcombine::zcombine_store(state, s, a, How::Union).await,
        "ZINTERSTORE" => zcombine::zcombine_store(state, s, a, How::Inter).await,
        "ZDIFFSTORE" => zcombine::zcombine_store(state, s, a, How::Diff).await,
        "ZINTERCARD" => zcombine::zintercard(state, s, a).await,
        name => Err(unknown_command(name.to_owned().as_bytes(), &a.rest())),
    }
}
