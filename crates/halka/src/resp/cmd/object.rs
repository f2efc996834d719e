//! `OBJECT`: how a key's value is held. halka keeps every value as bytes in its record,
//! so `ENCODING` answers what Redis would call a freshly set string of that value: `int`
//! for a value that reads as a 64-bit integer, `embstr` up to 44 bytes, `raw` above.
//! Redis also answers `raw` for a short string that `APPEND` or `SETRANGE` grew in place;
//! halka does not track how a value was written. Access times and frequencies are not
//! tracked either, so `IDLETIME` and `FREQ` are refused saying so.

use super::collection::Held;
use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;

/// Redis keeps strings up to this many bytes in one allocation with their header.
const EMBSTR_MAX: usize = 44;

/// `OBJECT ENCODING key | REFCOUNT key | IDLETIME key | FREQ key | HELP`.
pub async fn object(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let sent = args.next_bytes()?;
    let sub = String::from_utf8_lossy(&sent).to_ascii_uppercase();
    match sub.as_str() {
        "HELP" => {
            args.finish()?;
            Ok(Frame::Array(HELP.iter().map(|l| Frame::Simple((*l).into())).collect()))
        }
        "ENCODING" | "REFCOUNT" => {
            // Redis names the subcommand in its arity error.
            if args.remaining() != 1 {
                return Err(super::wrong_arity(&format!("OBJECT|{sub}")));
            }
            let key = args.next_bytes()?;
            let got =
                state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
            Ok(match (super::collection::held(state, s, &key, &got).await?, sub.as_str()) {
                (Held::Nothing, _) => Frame::Null,
                (Held::String(value), "ENCODING") => Frame::Bulk(encoding(&value).into()),
                (Held::Collection(head), "ENCODING") => {
                    Frame::bulk(super::collection::encoding(state, s, &key, &head).await?)
                }
                (_, _) => Frame::Integer(1),
            })
        }
        "IDLETIME" | "FREQ" => Err(Frame::error(format!(
            "ERR halka does not track when or how often a key is read: OBJECT {sub} is not \
             available"
        ))),
        _ => Err(Frame::error(format!(
            "ERR unknown subcommand '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(&sent)
        ))),
    }
}

/// What Redis calls the encoding of a string freshly set to `value`.
fn encoding(value: &[u8]) -> &'static str {
    if halka_store::parse_integer(value).is_ok() {
        "int"
    } else if value.len() <= EMBSTR_MAX {
        "embstr"
    } else {
        "raw"
    }
}

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key> (always 1 in halka).",
    "IDLETIME <key>, FREQ <key>",
    "    Not available: halka does not track access times or frequencies.",
    "HELP",
    "    Print this help.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_those_of_a_freshly_set_redis_string() {
        assert_eq!(encoding(b"12345"), "int");
        assert_eq!(encoding(b"-9223372036854775808"), "int");
        assert_eq!(encoding(b"007"), "embstr", "a leading zero is not an integer");
        assert_eq!(encoding(b"12345678901234567890"), "embstr", "past i64");
        assert_eq!(encoding(&[b'x'; 44]), "embstr");
        assert_eq!(encoding(&[b'x'; 45]), "raw");
    }
}
