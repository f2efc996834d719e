//! `CLIENT`: this connection's name and library (checked as Redis checks them, since
//! they are printed in `CLIENT LIST` lines), its id and info, every connection's list,
//! and closing connections.

use super::{Args, Session};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;

pub fn client(state: &NodeState, s: &mut Session, args: &mut Args) -> Result<Frame, Frame> {
    let sub = args.next_string()?.to_ascii_uppercase();
    match sub.as_str() {
        "SETNAME" => {
            let name = valid_name(args.next_bytes()?)?;
            args.finish()?;
            // An empty name removes it, as in Redis.
            let name = (!name.is_empty()).then_some(name);
            if let Some(client) = &s.client {
                client.set_name(name.clone());
            }
            s.name = name;
            Ok(Frame::ok())
        }
        "GETNAME" => Ok(s.name.clone().map_or(Frame::Null, Frame::Bulk)),
        "SETINFO" => set_info(s, args),
        "ID" => Ok(Frame::Integer(s.id as i64)),
        "LIST" => list(state, args),
        "INFO" => {
            args.finish()?;
            let line = s.client.as_ref().map(|c| c.line()).unwrap_or_default();
            Ok(Frame::Bulk(format!("{line}\n").into()))
        }
        // halka evicts nothing, so there is nothing to exempt a client from.
        "NO-EVICT" | "NO-TOUCH" => {
            let mode = args.next_string()?.to_ascii_uppercase();
            args.finish()?;
            if mode != "ON" && mode != "OFF" {
                return Err(Frame::error("ERR syntax error: expected ON or OFF"));
            }
            Ok(Frame::ok())
        }
        "KILL" => kill(state, s, args),
        _ => Err(Frame::error(format!(
            "ERR unknown subcommand '{}'; halka supports CLIENT SETNAME, GETNAME, SETINFO, ID, \
             LIST, INFO, KILL, NO-EVICT, NO-TOUCH",
            sub.to_lowercase()
        ))),
    }
}

/// A connection name as Redis allows it: printable ASCII without spaces (a newline would
/// forge a line in `CLIENT LIST`).
pub(super) fn valid_name(name: Bytes) -> Result<Bytes, Frame> {
    if printable(&name) {
        Ok(name)
    } else {
        Err(Frame::error("ERR Client names cannot contain spaces, newlines or special characters."))
    }
}

fn printable(value: &[u8]) -> bool {
    value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value`: shown in `CLIENT LIST` and `CLIENT INFO`.
fn set_info(s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let attr = args.next_string()?.to_ascii_lowercase();
    let value = args.next_bytes()?;
    args.finish()?;
    if attr != "lib-name" && attr != "lib-ver" {
        return Err(Frame::error(format!("ERR Unrecognized option '{attr}'")));
    }
    // A library name is also written `name-version`, so Redis refuses `-` in it.
    let dash = attr == "lib-name" && value.contains(&b'-');
    if !printable(&value) || dash {
        return Err(Frame::error(format!(
            "ERR {attr} cannot contain spaces, newlines or special characters."
        )));
    }
    if let Some(client) = &s.client {
        client.set_lib(&attr, value);
    }
    Ok(Frame::ok())
}

/// `CLIENT LIST [ID id ...]`: a line per connection (those with the ids given).
fn list(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    let mut ids = None;
    if args.remaining() > 0 {
        let filter = args.next_string()?.to_ascii_uppercase();
        if filter != "ID" || args.remaining() == 0 {
            return Err(Frame::error("ERR syntax error: halka supports CLIENT LIST [ID id ...]"));
        }
        let mut wanted = Vec::new();
        while args.remaining() > 0 {
            let id = args.next_string()?;
            wanted.push(id.parse::<u64>().map_err(|_| Frame::error("ERR Invalid client ID"))?);
        }
        ids = Some(wanted);
    }
    let mut clients = state.client_list.all();
    clients.sort_by_key(|c| c.id);
    let mut out = String::new();
    for client in clients.iter().filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id))) {
        out.push_str(&client.line());
        out.push('\n');
    }
    Ok(Frame::Bulk(out.into()))
}

/// `CLIENT KILL addr:port` (closes that client, `+OK`) or `CLIENT KILL [ID id] [ADDR
/// addr:port] [SKIPME yes|no]` (closes every client matching all filters, the count).
fn kill(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let first = args.next_string()?;
    if args.remaining() == 0 {
        // The old form: one address.
        let victim = state.client_list.all().into_iter().find(|c| c.addr.to_string() == first);
        return match victim {
            Some(c) => {
                c.kill.cancel();
                Ok(Frame::ok())
            }
            None => Err(Frame::error("ERR No such client")),
        };
    }
    let (mut id, mut addr, mut skip_me) = (None, None, true);
    let mut filter = Some(first);
    while let Some(name) = filter
        .take()
        .or_else(|| (args.remaining() > 0).then(|| args.next_string().unwrap_or_default()))
    {
        match name.to_ascii_uppercase().as_str() {
            "ID" => id = Some(args.next_usize()? as u64),
            "ADDR" => addr = Some(args.next_string()?),
            "SKIPME" => skip_me = args.next_string()?.eq_ignore_ascii_case("yes"),
            other => {
                return Err(Frame::error(format!(
                    "ERR syntax error: unknown CLIENT KILL filter '{other}'; halka supports ID, ADDR, SKIPME"
                )));
            }
        }
    }
    let mut killed = 0;
    for client in state.client_list.all() {
        let matches = id.is_none_or(|id| client.id == id)
            && addr.as_ref().is_none_or(|a| client.addr.to_string() == *a)
            && !(skip_me && client.id == s.id);
        if matches {
            client.kill.cancel();
            killed += 1;
        }
    }
    Ok(Frame::Integer(killed))
}
