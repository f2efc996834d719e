//! Inline commands: a line of text, as typed into telnet (`SET k "a b"`), split into
//! arguments the way Redis splits them.

use super::frame::{ParseError, ParseLimits, protocol};
use bytes::Bytes;
use std::io::Cursor;
use std::iter::{Copied, Peekable};
use std::slice::Iter;

/// Parses one inline command from the front of `buf`: a line ending in LF (CR optional).
/// `Ok(None)` means the line is not complete yet.
pub(super) fn parse(
    buf: &mut Cursor<&[u8]>,
    limits: &ParseLimits,
) -> Result<Option<Vec<Bytes>>, ParseError> {
    let start = buf.position() as usize;
    let rest = &buf.get_ref()[start..];
    let Some(end) = rest.iter().position(|b| *b == b'\n') else {
        return if rest.len() > limits.max_inline_bytes {
            Err(protocol("too big inline request"))
        } else {
            Ok(None)
        };
    };
    if end > limits.max_inline_bytes {
        return Err(protocol("too big inline request"));
    }
    buf.set_position((start + end + 1) as u64);
    let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
    split(line).map(Some)
}

type Rest<'a> = Peekable<Copied<Iter<'a, u8>>>;

fn unbalanced() -> ParseError {
    protocol("unbalanced quotes in request")
}

/// Whitespace separates arguments; `"..."` may hold spaces and the escapes
/// `\n \r \t \b \a \\ \" \xHH`; `'...'` is literal but for `\'`. Quoted and bare parts
/// join into one argument (`a"b c"` is `ab c`), but a closing quote must end it.
fn split(line: &[u8]) -> Result<Vec<Bytes>, ParseError> {
    let mut rest: Rest<'_> = line.iter().copied().peekable();
    let mut args = Vec::new();
    loop {
        while rest.next_if(u8::is_ascii_whitespace).is_some() {}
        if rest.peek().is_none() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        while let Some(c) = rest.next_if(|c| !c.is_ascii_whitespace()) {
            match c {
                b'"' => double_quoted(&mut rest, &mut arg)?,
                b'\'' => single_quoted(&mut rest, &mut arg)?,
                c => arg.push(c),
            }
        }
        args.push(Bytes::from(arg));
    }
}

/// The rest of a `"` section, escapes decoded.
fn double_quoted(rest: &mut Rest<'_>, arg: &mut Vec<u8>) -> Result<(), ParseError> {
    loop {
        match rest.next().ok_or_else(unbalanced)? {
            b'"' => return end_of_quote(rest),
            b'\\' => {
                let escaped = match rest.next().ok_or_else(unbalanced)? {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    b'x' => hex_byte(rest).unwrap_or(b'x'),
                    other => other,
                };
                arg.push(escaped);
            }
            c => arg.push(c),
        }
    }
}

/// The rest of a `'` section: only `\'` is an escape.
fn single_quoted(rest: &mut Rest<'_>, arg: &mut Vec<u8>) -> Result<(), ParseError> {
    loop {
        match rest.next().ok_or_else(unbalanced)? {
            b'\'' => return end_of_quote(rest),
            b'\\' if rest.next_if_eq(&b'\'').is_some() => arg.push(b'\''),
            c => arg.push(c),
        }
    }
}

/// Two hex digits after `\x`, consumed only if both are there.
fn hex_byte(rest: &mut Rest<'_>) -> Option<u8> {
    let mut ahead = rest.clone();
    let high = char::from(ahead.next()?).to_digit(16)?;
    let low = char::from(ahead.next()?).to_digit(16)?;
    *rest = ahead;
    u8::try_from(high * 16 + low).ok()
}

fn end_of_quote(rest: &mut Rest<'_>) -> Result<(), ParseError> {
    match rest.peek() {
        Some(c) if !c.is_ascii_whitespace() => Err(unbalanced()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[u8]) -> Vec<Bytes> {
        split(line).unwrap()
    }

    #[test]
    fn words_and_quotes_split_like_redis() {
        assert_eq!(args(b"  PING  hello "), ["PING", "hello"]);
        assert_eq!(args(b"SET k \"a b\""), ["SET", "k", "a b"]);
        assert_eq!(args(b"SET k \"\""), ["SET", "k", ""]);
        assert_eq!(args(b"SET k a\"b c\"")[2], "ab c");
        assert_eq!(args(b"SET k 'it\\'s \\n'")[2], "it's \\n");
    }

    #[test]
    fn escapes_in_double_quotes() {
        assert_eq!(args(b"SET k \"\\x41\\n\\\"\\x4\"")[2], &b"A\n\"x4"[..]);
        assert_eq!(args(b"GET\t\"\\xff\\t\\\\\"")[1], &[0xff, b'\t', b'\\'][..]);
    }

    #[test]
    fn unbalanced_quotes_are_protocol_errors() {
        for bad in [
            &b"SET k \"open"[..],
            b"SET k 'open",
            b"SET k \"a\"b",
            b"SET k a\"b\"c",
            b"SET k \"a\\",
        ] {
            let e = split(bad).unwrap_err().to_string();
            assert!(e.contains("unbalanced quotes"), "{e}");
        }
    }

    #[test]
    fn lines_end_in_lf_with_optional_cr_and_are_bounded() {
        let limits = ParseLimits { max_bulk_bytes: 16, max_array_len: 8, max_inline_bytes: 64 };
        let mut buf = Cursor::new(&b"PING\nECHO x\r\nGET"[..]);
        assert_eq!(parse(&mut buf, &limits).unwrap().unwrap(), ["PING"]);
        assert_eq!(parse(&mut buf, &limits).unwrap().unwrap(), ["ECHO", "x"]);
        assert_eq!(parse(&mut buf, &limits).unwrap(), None, "GET is not complete yet");
        let long = [b'P'; 100];
        assert!(parse(&mut Cursor::new(&long[..]), &limits).is_err());
    }
}
