//! Connection and server commands: PING, ECHO, HELLO, INFO, COMMAND, CLIENT, CONFIG, SELECT.

use super::{Args, Session};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use std::fmt::Write as _;

pub fn ping(args: &mut Args) -> Result<Frame, Frame> {
    match args.remaining() {
        0 => Ok(Frame::Simple("PONG".into())),
        1 => Ok(Frame::Bulk(args.next_bytes()?)),
        _ => Err(super::wrong_arity("ping")),
    }
}

pub fn echo(args: &mut Args) -> Result<Frame, Frame> {
    let msg = args.next_bytes()?;
    args.finish().map_err(|_| super::wrong_arity("echo"))?;
    Ok(Frame::Bulk(msg))
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
pub async fn hello(state: &NodeState, s: &mut Session, args: &mut Args) -> Result<Frame, Frame> {
    if args.remaining() > 0 {
        let version = args.next_string()?;
        let resp3 = match version.as_str() {
            "2" => false,
            "3" => true,
            _ => {
                return Err(Frame::error(
                    "NOPROTO unsupported protocol version; halka speaks 2 and 3",
                ));
            }
        };
        // Everything is checked before anything changes: a refused HELLO leaves the
        // connection as it was.
        let mut name = None;
        let mut auth = None;
        while args.remaining() > 0 {
            match args.next_string()?.to_ascii_uppercase().as_str() {
                "SETNAME" => name = Some(super::client::valid_name(args.next_bytes()?)?),
                "AUTH" => auth = Some((args.next_string()?, args.next_bytes()?)),
                _ => return Err(Frame::error("ERR syntax error in HELLO")),
            }
        }
        match auth {
            Some((user, password)) => super::acl::log_in(state, s, &user, &password).await?,
            None if s.user.is_none() => {
                return Err(Frame::error(
                    "NOAUTH HELLO must be called with the client already authenticated, \
                     otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
                     authenticate the client and select the RESP protocol version at the same \
                     time",
                ));
            }
            None => {}
        }
        s.resp3 = resp3;
        if name.is_some() {
            s.name = name;
        }
    }
    Ok(Frame::Map(vec![
        (Frame::bulk("server"), Frame::bulk("halka")),
        (Frame::bulk("version"), Frame::bulk(env!("CARGO_PKG_VERSION"))),
        (Frame::bulk("proto"), Frame::Integer(if s.resp3 { 3 } else { 2 })),
        (Frame::bulk("id"), Frame::Integer(s.id as i64)),
        // "standalone": clients must not try Redis Cluster slot routing against halka.
        (Frame::bulk("mode"), Frame::bulk("standalone")),
        (Frame::bulk("role"), Frame::bulk("master")),
        (Frame::bulk("modules"), Frame::Array(Vec::new())),
        (Frame::bulk("halka_node"), Frame::bulk(state.config.node_id.clone())),
    ]))
}

/// The process's resident set, from `/proc/self/status` (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes as Redis prints them: `1.50M`.
fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes}B"),
        1024..1_048_576 => format!("{:.2}K", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.2}M", b / 1_048_576.0),
        _ => format!("{:.2}G", b / 1_073_741_824.0),
    }
}

/// Who answers: `redis_version` is the Redis whose commands halka follows.
fn server_section(state: &NodeState) -> String {
    format!(
        "# Server\r\nredis_version:7.2.0\r\nhalka_version:{}\r\nredis_mode:standalone\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        state.redis_port,
        state.started.elapsed().as_secs()
    )
}

/// CPU time this process used, as Redis reports it (`used_cpu_sys`, `used_cpu_user`).
fn cpu_section() -> String {
    use nix::sys::resource::{UsageWho, getrusage};
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let (sys, user) = getrusage(UsageWho::RUSAGE_SELF)
        .map_or((0.0, 0.0), |u| (seconds(u.system_time()), seconds(u.user_time())));
    format!("# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n\r\n")
}

/// Replication as halka does it, in Redis's fields: every node takes writes (there are no
/// replicas of a whole node to list); each key is kept by `replication` members chosen
/// per key, which the `halka_` lines say.
fn replication_section(state: &NodeState) -> String {
    let view = state.coordinator.view();
    format!(
        "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nhalka_replication:\
         every key on {} of {} members, chosen per key; no node is a replica of another\r\n\
         halka_layout_version:{}\r\n\r\n",
        state.config.replication,
        view.width(),
        view.epoch()
    )
}

/// `ROLE`: every halka node takes writes and none follows another, so each answers as a
/// Redis master without replicas.
pub fn role(args: &mut Args) -> Result<Frame, Frame> {
    args.finish()?;
    Ok(Frame::Array(vec![Frame::bulk("master"), Frame::Integer(0), Frame::Array(Vec::new())]))
}

/// `INFO [section]`: server, clients, memory, stats, cpu, replication, keyspace and a
/// `halka` section; `commandstats` too when asked for it or for `everything`.
pub async fn info(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let section = if args.remaining() > 0 {
        args.next_string()?.to_ascii_lowercase()
    } else {
        "default".into()
    };
    let all = matches!(section.as_str(), "all" | "everything" | "default");
    let c = &state.config;
    let mut out = String::new();
    if all || section == "server" {
        out.push_str(&server_section(state));
    }
    if all || section == "clients" {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n\
             client_input_bytes:{}\r\nclient_input_budget_bytes:{}\r\n\r\n",
            state.connected_clients(),
            c.max_connections,
            state.input_budget.held_bytes(),
            state.input_budget.max_bytes()
        );
    }
    if all || section == "memory" {
        // The process's resident memory: halka has no separate dataset accounting, so
        // used_memory and used_memory_rss are the same figure.
        let rss = resident_bytes().unwrap_or(0);
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nmaxmemory:0\r\n\r\n",
            human_bytes(rss)
        );
    }
    if all || section == "stats" {
        let (received, rejected, commands) = state.client_totals();
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{received}\r\ntotal_commands_processed:{commands}\r\nrejected_connections:{rejected}\r\n\r\n"
        );
    }
    if all || section == "cpu" {
        out.push_str(&cpu_section());
    }
    if all || section == "replication" {
        out.push_str(&replication_section(state));
    }
    // Not among the default sections, as in Redis.
    if matches!(section.as_str(), "all" | "everything" | "commandstats") {
        out.push_str(&state.command_stats.info_section());
    }
    if all || section == "keyspace" {
        let _ = write!(
            out,
            "# Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\n\r\n",
            state.local_keys()
        );
    }
    if all || section == "halka" {
        let status = crate::status::NodeStatus::gather(state).await;
        out.push_str(&status.info_section());
        // This connection's quorums (HALKA.CONSISTENCY): not the node's, so not in its status.
        let _ = write!(out, "connection_r:{}\r\nconnection_w:{}\r\n\r\n", s.r, s.w);
    }
    Ok(Frame::Bulk(out.into()))
}

/// Enough of `COMMAND` for redis-cli and client libraries: they probe it at connect.
pub fn command(args: &mut Args) -> Result<Frame, Frame> {
    let sub =
        if args.remaining() > 0 { args.next_string()?.to_ascii_uppercase() } else { String::new() };
    let named = |args: &mut Args| -> Vec<&'static super::table::Spec> {
        let names = args.rest();
        if names.is_empty() {
            return super::table::COMMANDS.iter().collect();
        }
        names
            .iter()
            .filter_map(|n| super::table::lookup(&String::from_utf8_lossy(n).to_ascii_uppercase()))
            .collect()
    };
    match sub.as_str() {
        "COUNT" => Ok(Frame::Integer(super::table::COMMANDS.len() as i64)),
        // name → {summary, group}: what redis-cli's `help` shows.
        "DOCS" => Ok(Frame::Map(
            named(args)
                .into_iter()
                .map(|c| {
                    let doc = Frame::Map(vec![
                        (Frame::bulk("summary"), Frame::bulk(c.summary)),
                        (Frame::bulk("group"), Frame::bulk(c.group)),
                    ]);
                    (Frame::bulk(c.name.to_ascii_lowercase()), doc)
                })
                .collect(),
        )),
        // [name, arity, flags, first key, last key, step] per command.
        "INFO" | "" => Ok(Frame::Array(
            named(args)
                .into_iter()
                .map(|c| {
                    let keys = c.op != "other" || c.name == "TYPE" || c.name.ends_with("TTL");
                    let many = ["DEL", "UNLINK", "EXISTS", "TOUCH", "MGET", "MSET"];
                    let (first, last) = match keys {
                        false => (0, 0),
                        true if many.contains(&c.name) => (1, -1),
                        true => (1, 1),
                    };
                    Frame::Array(vec![
                        Frame::bulk(c.name.to_ascii_lowercase()),
                        Frame::Integer(i64::from(c.arity)),
                        Frame::Array(Vec::new()),
                        Frame::Integer(first),
                        Frame::Integer(last),
                        Frame::Integer(if c.name == "MSET" { 2 } else { i64::from(keys) }),
                    ])
                })
                .collect(),
        )),
        _ => Err(Frame::error(format!(
            "ERR unknown subcommand '{sub}'. Try COMMAND COUNT, COMMAND DOCS"
        ))),
    }
}

/// `TIME`: this node's clock, seconds and microseconds since the Unix epoch.
pub fn time(args: &mut Args) -> Result<Frame, Frame> {
    args.finish()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Frame::error("ERR this node's clock is before 1970"))?;
    Ok(Frame::Array(vec![
        Frame::bulk(now.as_secs().to_string()),
        Frame::bulk(now.subsec_micros().to_string()),
    ]))
}

/// `RESET`: the connection as it was when opened — RESP2, no name, the node's default
/// quorums — so a pooled connection does not pass `HALKA.CONSISTENCY` on to its next user.
pub fn reset(state: &NodeState, s: &mut Session, args: &mut Args) -> Result<Frame, Frame> {
    args.finish()?;
    s.resp3 = false;
    s.name = None;
    s.r = state.config.r;
    s.w = state.config.w;
    s.multi = None;
    s.user = Session::first_user(state);
    Ok(Frame::Simple("RESET".into()))
}

/// `SLOWLOG GET [count]`, `SLOWLOG LEN`, `SLOWLOG RESET`.
pub fn slowlog(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    let sub = args.next_string()?.to_ascii_uppercase();
    match sub.as_str() {
        "GET" => {
            let count = if args.remaining() > 0 { args.next_usize()? } else { 10 };
            args.finish()?;
            let entries = state.slowlog.newest(count);
            Ok(Frame::Array(
                entries
                    .into_iter()
                    .map(|e| {
                        Frame::Array(vec![
                            Frame::Integer(e.id as i64),
                            Frame::Integer(e.at as i64),
                            Frame::Integer(e.micros as i64),
                            Frame::Array(e.args.into_iter().map(Frame::Bulk).collect()),
                            Frame::bulk(e.client_addr),
                            Frame::Bulk(e.client_name),
                        ])
                    })
                    .collect(),
            ))
        }
        "LEN" => {
            args.finish()?;
            Ok(Frame::Integer(state.slowlog.len() as i64))
        }
        "RESET" => {
            args.finish()?;
            state.slowlog.reset();
            Ok(Frame::ok())
        }
        _ => Err(Frame::error(format!(
            "ERR unknown subcommand '{}'; halka supports SLOWLOG GET, LEN, RESET",
            sub.to_lowercase()
        ))),
    }
}

/// `CONFIG GET` answers the parameters benchmark tools ask about; nothing can be set.
pub fn config(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    let sub = args.next_string()?.to_ascii_uppercase();
    if sub != "GET" {
        return Err(Frame::error(
            "ERR halka is configured by its config file; only CONFIG GET is supported",
        ));
    }
    let mut out = Vec::new();
    for pattern in args.rest() {
        let p = String::from_utf8_lossy(&pattern).to_ascii_lowercase();
        let always = state.config.storage.sync == crate::config::SyncChoice::Always;
        for (name, value) in [("save", ""), ("appendonly", if always { "yes" } else { "no" })] {
            if p == name || p == "*" {
                out.push((Frame::bulk(name), Frame::bulk(value)));
            }
        }
    }
    // A map, as Redis answers under RESP3 (clients build a dict from it); RESP2 gets the
    // same pairs flattened into an array.
    Ok(Frame::Map(out))
}

pub fn select(args: &mut Args) -> Result<Frame, Frame> {
    let db = args.next_string()?;
    args.finish()?;
    if db == "0" {
        Ok(Frame::ok())
    } else {
        Err(Frame::error("ERR halka has a single database; only SELECT 0 is allowed"))
    }
}
