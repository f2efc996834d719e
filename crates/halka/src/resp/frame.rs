//! RESP frames: parsing requests (arrays of bulk strings, or inline commands) and encoding
//! replies in RESP2 or RESP3.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io::Cursor;

/// A reply or request frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    Null,
    Array(Vec<Frame>),
    /// RESP3 map; encoded as a flat array under RESP2.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 double (a sorted set's score); a bulk string of the same text under RESP2,
    /// written as Redis writes scores (`halka_store::Score`).
    Double(f64),
}

/// Why a request could not be parsed. Any of these closes the connection after an error
/// reply, as Redis does: the stream can no longer be trusted to be in sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Protocol error: {0}")]
    Protocol(String),
    /// A complete request with an argument over the size a value may have: read and
    /// dropped whole, so the connection goes on and the client gets this error.
    #[error(
        "an argument is {size} bytes; the maximum is {max} bytes (limits.max_value_bytes, or \
         max_key_bytes if larger); the command was not run"
    )]
    TooLarge { size: usize, max: usize },
}

/// Bounds on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    pub max_bulk_bytes: usize,
    pub max_array_len: usize,
    pub max_inline_bytes: usize,
}

pub(super) fn protocol(msg: impl Into<String>) -> ParseError {
    ParseError::Protocol(msg.into())
}

/// Parses one request from the front of `buf`. `Ok(None)` means "not complete yet".
/// On success the cursor is just past the request.
///
/// # Errors
/// Malformed or oversized input.
pub fn parse_request(
    buf: &mut Cursor<&[u8]>,
    limits: &ParseLimits,
) -> Result<Option<Vec<Bytes>>, ParseError> {
    if !buf.has_remaining() {
        return Ok(None);
    }
    match buf.chunk()[0] {
        b'*' => {}
        // Typed frames a client has no business sending (RESP3 maps, sets, pushes...):
        // read as inline text they would become an "unknown command" with a bad name.
        kind @ (b'$' | b'%' | b'~' | b'>' | b'|' | b':' | b',' | b'#' | b'(' | b'!' | b'='
        | b'_') => {
            return Err(protocol(format!(
                "expected '*' (an array of bulk strings) or an inline command, got a '{}' \
                 frame",
                char::from(kind)
            )));
        }
        _ => return super::inline::parse(buf, limits),
    }
    buf.advance(1);
    let Some(len) = line_int(buf, limits.max_inline_bytes)? else { return Ok(None) };
    if len < 0 {
        return Ok(Some(Vec::new()));
    }
    let len = usize::try_from(len).map_err(|_| protocol("invalid multibulk length"))?;
    if len > limits.max_array_len {
        return Err(protocol(format!(
            "invalid multibulk length {len}; at most {} arguments",
            limits.max_array_len
        )));
    }
    let mut args = Vec::with_capacity(len.min(1024));
    for _ in 0..len {
        if !buf.has_remaining() {
            return Ok(None);
        }
        if buf.chunk()[0] != b'$' {
            return Err(protocol(format!("expected '$', got '{}'", char::from(buf.chunk()[0]))));
        }
        buf.advance(1);
        let Some(n) = line_int(buf, limits.max_inline_bytes)? else { return Ok(None) };
        let n = usize::try_from(n).map_err(|_| protocol("invalid bulk length"))?;
        if n > limits.max_bulk_bytes {
            return Err(protocol(format!(
                "invalid bulk length {n}; at most {} bytes",
                limits.max_bulk_bytes
            )));
        }
        if buf.remaining() < n + 2 {
            return Ok(None);
        }
        let start = buf.position() as usize;
        let data = &buf.get_ref()[start..start + n];
        let arg = Bytes::copy_from_slice(data);
        buf.advance(n);
        if &buf.chunk()[..2] != b"\r\n" {
            return Err(protocol("bulk string not terminated by CRLF"));
        }
        buf.advance(2);
        args.push(arg);
    }
    Ok(Some(args))
}

/// A line up to CRLF, or None if incomplete.
fn line<'a>(buf: &mut Cursor<&'a [u8]>, max: usize) -> Result<Option<&'a [u8]>, ParseError> {
    let start = buf.position() as usize;
    let data: &'a [u8] = buf.get_ref();
    let rest = &data[start..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            if end > max {
                return Err(protocol("line too long"));
            }
            buf.set_position((start + end + 2) as u64);
            Ok(Some(&rest[..end]))
        }
        None if rest.len() > max => Err(protocol("line too long")),
        None => Ok(None),
    }
}

/// A length line: digits, optionally after a minus (`*-1`). Stricter than `str::parse`,
/// which would also take `+4`.
pub(super) fn line_int(buf: &mut Cursor<&[u8]>, max: usize) -> Result<Option<i64>, ParseError> {
    let Some(l) = line(buf, max)? else { return Ok(None) };
    let digits = l.strip_prefix(b"-").unwrap_or(l);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(protocol("invalid length"));
    }
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| protocol("invalid length"))
}

impl Frame {
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }

    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    /// Appends the start of an array of `len` frames (the same in both protocol versions):
    /// for a reply whose elements are encoded one by one after it.
    pub fn encode_array_header(len: usize, out: &mut BytesMut) {
        out.put_u8(b'*');
        out.put_slice(len.to_string().as_bytes());
        out.put_slice(b"\r\n");
    }

    /// Appends the frame's encoding for protocol version 2 or 3.
    pub fn encode(&self, resp3: bool, out: &mut BytesMut) {
        match self {
            Frame::Simple(s) => {
                out.put_u8(b'+');
                out.put_slice(s.as_bytes());
                out.put_slice(b"\r\n");
            }
            Frame::Error(s) => {
                out.put_u8(b'-');
                // A newline inside an error would break the framing.
                out.put_slice(s.replace(['\r', '\n'], " ").as_bytes());
                out.put_slice(b"\r\n");
            }
            Frame::Integer(i) => {
                out.put_u8(b':');
                out.put_slice(i.to_string().as_bytes());
                out.put_slice(b"\r\n");
            }
            Frame::Bulk(b) => {
                out.put_u8(b'$');
                out.put_slice(b.len().to_string().as_bytes());
                out.put_slice(b"\r\n");
                out.put_slice(b);
                out.put_slice(b"\r\n");
            }
            Frame::Null => out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
            Frame::Double(x) => {
                let text = halka_store::Score(*x).to_string();
                if resp3 {
                    out.put_u8(b',');
                    out.put_slice(text.as_bytes());
                    out.put_slice(b"\r\n");
                } else {
                    Frame::Bulk(Bytes::from(text)).encode(resp3, out);
                }
            }
            Frame::Array(items) => {
                Frame::encode_array_header(items.len(), out);
                for item in items {
                    item.encode(resp3, out);
                }
            }
            Frame::Map(pairs) => {
                out.put_u8(if resp3 { b'%' } else { b'*' });
                let n = if resp3 { pairs.len() } else { pairs.len() * 2 };
                out.put_slice(n.to_string().as_bytes());
                out.put_slice(b"\r\n");
                for (k, v) in pairs {
                    k.encode(resp3, out);
                    v.encode(resp3, out);
                }
            }
        }
    }
}

/// Parses one reply frame (used by the `halka` CLI's client). `Ok(None)` if incomplete.
///
/// # Errors
/// Malformed input.
pub fn parse_reply(buf: &mut Cursor<&[u8]>) -> Result<Option<Frame>, ParseError> {
    const MAX: usize = 64 * 1024 * 1024;
    if !buf.has_remaining() {
        return Ok(None);
    }
    let tag = buf.get_u8();
    let text = |buf: &mut Cursor<&[u8]>| -> Result<Option<String>, ParseError> {
        Ok(line(buf, MAX)?.map(|l| String::from_utf8_lossy(l).into_owned()))
    };
    Ok(match tag {
        b'+' => text(buf)?.map(Frame::Simple),
        b'-' => text(buf)?.map(Frame::Error),
        b':' => line_int(buf, MAX)?.map(Frame::Integer),
        b'_' => line(buf, MAX)?.map(|_| Frame::Null),
        b',' => match text(buf)? {
            None => None,
            Some(t) => Some(Frame::Double(
                halka_store::Score::parse(t.as_bytes()).map_err(|_| protocol("invalid double"))?.0,
            )),
        },
        b'$' => match line_int(buf, MAX)? {
            None => None,
            Some(-1) => Some(Frame::Null),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| protocol("invalid bulk length"))?;
                if buf.remaining() < n + 2 {
                    return Ok(None);
                }
                let b = Bytes::copy_from_slice(&buf.chunk()[..n]);
                buf.advance(n + 2);
                Some(Frame::Bulk(b))
            }
        },
        b'*' | b'%' => {
            let Some(n) = line_int(buf, MAX)? else { return Ok(None) };
            if n < 0 {
                return Ok(Some(Frame::Null));
            }
            let count = if tag == b'%' { n * 2 } else { n };
            let mut items = Vec::new();
            for _ in 0..count {
                match parse_reply(buf)? {
                    Some(f) => items.push(f),
                    None => return Ok(None),
                }
            }
            Some(Frame::Array(items))
        }
        other => return Err(protocol(format!("unexpected reply type '{}'", char::from(other)))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits =
        ParseLimits { max_bulk_bytes: 16, max_array_len: 8, max_inline_bytes: 64 };

    fn parse(input: &[u8]) -> Result<Option<Vec<Bytes>>, ParseError> {
        parse_request(&mut Cursor::new(input), &LIMITS)
    }

    #[test]
    fn a_length_with_a_plus_sign_is_refused() {
        assert!(parse(b"*1\r\n$+4\r\nPING\r\n").is_err());
        assert!(parse(b"*+1\r\n$4\r\nPING\r\n").is_err());
        assert!(parse(b"*1\r\n$4\r\nPING\r\n").is_ok());
    }

    #[test]
    fn resp3_typed_frames_from_a_client_are_protocol_errors() {
        for frame in [&b"%1\r\n+a\r\n+b\r\n"[..], b"~1\r\n+a\r\n", b">1\r\n+a\r\n"] {
            let err = parse(frame).unwrap_err();
            assert!(format!("{err:?}").contains("frame"), "{err:?}");
        }
    }

    #[test]
    fn arrays_and_inline_commands_parse() {
        let args = parse(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap().unwrap();
        assert_eq!(args, [Bytes::from_static(b"GET"), Bytes::from_static(b"k")]);
        assert_eq!(parse(b"PING  hello\r\n").unwrap().unwrap().len(), 2);
        assert_eq!(parse(b"PING\n").unwrap().unwrap(), [Bytes::from_static(b"PING")]);
        assert_eq!(parse(b"\r\n").unwrap().unwrap(), Vec::<Bytes>::new());
    }

    #[test]
    fn incomplete_input_is_not_an_error() {
        for cut in 1..20 {
            let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
            if cut < full.len() {
                assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
            }
        }
    }

    #[test]
    fn malformed_and_oversized_input_is_rejected() {
        assert!(
            parse(b"*1\r\n$99\r\n").unwrap_err().to_string().contains("invalid bulk length 99")
        );
        assert!(parse(b"*100\r\n").unwrap_err().to_string().contains("multibulk length"));
        assert!(parse(b"*1\r\n:5\r\n").is_err());
        assert!(parse(b"*x\r\n").is_err());
        assert!(parse(b"*1\r\n$1\r\nabc\r\n").is_err());
        assert!(parse(&[b'P'; 100]).is_err(), "an endless inline line is bounded");
    }

    #[test]
    fn replies_encode_per_protocol_version() {
        let mut out = BytesMut::new();
        Frame::Null.encode(false, &mut out);
        Frame::Null.encode(true, &mut out);
        Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]).encode(true, &mut out);
        Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]).encode(false, &mut out);
        assert_eq!(&out[..], b"$-1\r\n_\r\n%1\r\n$1\r\na\r\n:1\r\n*2\r\n$1\r\na\r\n:1\r\n");
        let mut cur = Cursor::new(&out[..]);
        assert_eq!(parse_reply(&mut cur).unwrap(), Some(Frame::Null));
    }
}
