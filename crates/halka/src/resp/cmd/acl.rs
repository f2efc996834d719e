//! Users over RESP: `AUTH`, `HELLO … AUTH`, `ACL …`, and the check every command passes
//! before it runs (see `acl`). Errors are worded as Redis words them, so that clients'
//! handling of `NOAUTH`, `WRONGPASS` and `NOPERM` works unchanged.

use super::{Args, Session};
use crate::acl::log::Reason;
use crate::acl::user::Denied;
use crate::acl::{AclError, DEFAULT_USER, command, password};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use std::sync::Arc;

/// Commands a connection may send before it authenticates.
fn before_auth(name: &str) -> bool {
    matches!(name, "AUTH" | "HELLO" | "QUIT" | "RESET")
}

fn noauth() -> Frame {
    Frame::error("NOAUTH Authentication required.")
}

fn wrongpass() -> Frame {
    Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
}

/// Whether the connection's user may run `name` (upper case) with `args`; the refusal,
/// noted in `ACL LOG`, when not.
pub fn permit(state: &NodeState, s: &Session, name: &str, args: &[Bytes]) -> Result<(), Frame> {
    let Some(user) = &s.user else {
        return if before_auth(name) { Ok(()) } else { Err(noauth()) };
    };
    if before_auth(name) || (user.as_ref() == DEFAULT_USER && state.acl.open()) {
        return Ok(());
    }
    let Some(rules) = state.acl.user(user) else {
        return Err(Frame::error(format!(
            "NOAUTH user '{user}' no longer exists; authenticate again"
        )));
    };
    let Err(denied) = rules.check(name, args) else { return Ok(()) };
    let context = if s.multi.is_some() { "multi" } else { "toplevel" };
    let client = s.client.as_ref().map(|c| c.addr.to_string()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    Err(match denied {
        Denied::Command => {
            state.acl_log.note(Reason::Command, context, &lower, user, &client);
            metrics::counter!("halka_acl_denied_total", "reason" => "command").increment(1);
            Frame::error(format!(
                "NOPERM User {user} has no permissions to run the '{lower}' command"
            ))
        }
        Denied::Key(key) => {
            let key = String::from_utf8_lossy(&key).into_owned();
            state.acl_log.note(Reason::Key, context, &key, user, &client);
            metrics::counter!("halka_acl_denied_total", "reason" => "key").increment(1);
            Frame::error(format!("NOPERM User {user} has no permissions to access the '{key}' key"))
        }
    })
}

/// Logs `user` in with `password` (see `acl::login`).
pub async fn log_in(
    state: &NodeState,
    s: &mut Session,
    user: &str,
    password: &[u8],
) -> Result<(), Frame> {
    let source = s.client.as_ref().map(|c| c.addr);
    if state.door().log_in(source, "toplevel", user, password).await {
        s.user = Some(Arc::from(user));
        Ok(())
    } else {
        Err(wrongpass())
    }
}

/// `AUTH [username] password`.
pub async fn auth(state: &NodeState, s: &mut Session, args: &mut Args) -> Result<Frame, Frame> {
    let words = args.rest();
    let (user, password) = match words.as_slice() {
        [password] => {
            if state.acl.default_needs_no_password() {
                return Err(Frame::error(
                    "ERR AUTH <password> called without any password configured for the \
                     default user. Are you sure your configuration is correct?",
                ));
            }
            (DEFAULT_USER.to_string(), password)
        }
        [user, password] => (String::from_utf8_lossy(user).into_owned(), password),
        _ => return Err(super::wrong_arity("AUTH")),
    };
    log_in(state, s, &user, password).await?;
    Ok(Frame::ok())
}

/// `ACL subcommand …`.
pub async fn acl(state: &NodeState, s: &mut Session, args: &mut Args) -> Result<Frame, Frame> {
    let sub = args.next_string()?.to_ascii_uppercase();
    match sub.as_str() {
        "WHOAMI" => {
            args.finish()?;
            Ok(Frame::Bulk(Bytes::from(s.user.as_deref().unwrap_or(DEFAULT_USER).to_string())))
        }
        "SETUSER" => {
            let name = args.next_bytes()?;
            state.acl.set_user(&name, &args.rest()).await.map_err(|e| acl_error(&e))?;
            Ok(Frame::ok())
        }
        "DELUSER" => {
            let names = args.rest();
            if names.is_empty() {
                return Err(super::wrong_arity("ACL|DELUSER"));
            }
            let removed = state.acl.delete_users(&names).await.map_err(|e| acl_error(&e))?;
            Ok(Frame::Integer(removed as i64))
        }
        "GETUSER" => get_user(state, args),
        "LIST" => {
            args.finish()?;
            let lines = state.acl.names().into_iter().filter_map(|name| {
                let u = state.acl.user(&name)?;
                Some(Frame::Bulk(Bytes::from(format!("user {name} {}", u.user.describe()))))
            });
            Ok(Frame::Array(lines.collect()))
        }
        "USERS" => {
            args.finish()?;
            Ok(Frame::Array(state.acl.names().into_iter().map(|n| Frame::Bulk(n.into())).collect()))
        }
        "CAT" => cat(args),
        "LOG" => log(state, args),
        "GENPASS" => {
            let bits = if args.remaining() > 0 { args.next_usize()? } else { 256 };
            args.finish()?;
            if !(1..=4096).contains(&bits) {
                return Err(Frame::error(
                    "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
                ));
            }
            Ok(Frame::Bulk(password::generate(bits).into()))
        }
        "DRYRUN" => dry_run(state, args),
        "SAVE" | "LOAD" => Err(Frame::error(
            "ERR halka keeps users cluster-wide, in every node's data directory; an aclfile \
             only seeds them at a node's first start, so there is nothing to save or load",
        )),
        _ => Err(Frame::error(format!(
            "ERR unknown subcommand '{}'. Try ACL HELP.",
            sub.to_lowercase()
        ))),
    }
}

fn acl_error(e: &AclError) -> Frame {
    Frame::error(format!("ERR {e}"))
}

/// `ACL GETUSER name`: its flags, passwords (as kept: salt and hash), commands and keys.
fn get_user(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    let name = args.next_string()?;
    args.finish()?;
    let Some(u) = state.acl.user(&name) else { return Ok(Frame::Null) };
    let user = &u.user;
    let mut flags = vec![Frame::bulk(if user.enabled { "on" } else { "off" })];
    if user.nopass {
        flags.push(Frame::bulk("nopass"));
    }
    let passwords = user.passwords.iter().map(|p| Frame::Bulk(p.shown().into())).collect();
    Ok(Frame::Map(vec![
        (Frame::bulk("flags"), Frame::Array(flags)),
        (Frame::bulk("passwords"), Frame::Array(passwords)),
        (Frame::bulk("commands"), Frame::Bulk(user.commands.join(" ").into())),
        (Frame::bulk("keys"), Frame::Bulk(user.describe_keys().into())),
        (Frame::bulk("channels"), Frame::bulk("")),
        (Frame::bulk("selectors"), Frame::Array(Vec::new())),
    ]))
}

/// `ACL CAT [category]`: the categories, or the commands in one.
fn cat(args: &mut Args) -> Result<Frame, Frame> {
    if args.remaining() == 0 {
        let names = command::CATEGORIES.iter().map(|c| Frame::bulk(c.name));
        return Ok(Frame::Array(names.collect()));
    }
    let name = args.next_string()?;
    args.finish()?;
    let category = command::category(&name)
        .ok_or_else(|| Frame::error(format!("ERR Unknown category '{name}'")))?;
    let commands = super::table::COMMANDS
        .iter()
        .filter(|spec| command::traits(spec.name).is_some_and(|t| t.is(category)))
        .map(|spec| Frame::Bulk(spec.name.to_ascii_lowercase().into()));
    Ok(Frame::Array(commands.collect()))
}

/// `ACL LOG [count | RESET]`.
fn log(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    let count = match args.remaining() {
        0 => 10,
        _ => {
            let word = args.next_string()?;
            if word.eq_ignore_ascii_case("RESET") {
                state.acl_log.reset();
                return Ok(Frame::ok());
            }
            word.parse().map_err(|_| Frame::error("ERR value is out of range, must be positive"))?
        }
    };
    args.finish()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let entries = state.acl_log.recent(count).into_iter().map(|e| {
        let age = now.saturating_sub(e.created_ms) as f64 / 1000.0;
        Frame::Map(vec![
            (Frame::bulk("count"), Frame::Integer(e.count as i64)),
            (Frame::bulk("reason"), Frame::bulk(e.reason.as_str())),
            (Frame::bulk("context"), Frame::bulk(e.context)),
            (Frame::bulk("object"), Frame::Bulk(e.object.into())),
            (Frame::bulk("username"), Frame::Bulk(e.username.into())),
            (Frame::bulk("age-seconds"), Frame::Bulk(format!("{age:.3}").into())),
            (Frame::bulk("client-info"), Frame::Bulk(format!("addr={}", e.client).into())),
            (Frame::bulk("entry-id"), Frame::Integer(e.id as i64)),
            (Frame::bulk("timestamp-created"), Frame::Integer(e.created_ms as i64)),
            (Frame::bulk("timestamp-last-updated"), Frame::Integer(e.updated_ms as i64)),
        ])
    });
    Ok(Frame::Array(entries.collect()))
}

/// `ACL DRYRUN user command [arg …]`: whether the user could run the command.
fn dry_run(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    let user = args.next_string()?;
    let name = args.next_string()?.to_ascii_uppercase();
    let rest = args.rest();
    let rules = state
        .acl
        .user(&user)
        .ok_or_else(|| Frame::error(format!("ERR User '{user}' not found")))?;
    if command::traits(&name).is_none() {
        return Err(Frame::error(format!("ERR Command '{}' not found", name.to_lowercase())));
    }
    Ok(match rules.check(&name, &rest) {
        Ok(()) => Frame::ok(),
        Err(Denied::Command) => Frame::Bulk(
            format!("User {user} has no permissions to run the '{}' command", name.to_lowercase())
                .into(),
        ),
        Err(Denied::Key(k)) => Frame::Bulk(
            format!(
                "User {user} has no permissions to access the '{}' key",
                String::from_utf8_lossy(&k)
            )
            .into(),
        ),
    })
}
