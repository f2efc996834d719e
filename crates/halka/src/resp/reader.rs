//! Reading requests off a connection incrementally.
//!
//! A request's arguments are taken out of the input buffer as each one completes, and
//! the reader remembers how far into the request it is. So a request that arrives in many
//! small reads costs work linear in its size: nothing already parsed is looked at again
//! (re-parsing from the start on every read made a trickled request quadratic), and the
//! buffer holds at most the one argument still arriving. The whole request is bounded by
//! `max_request_bytes`, as Redis bounds its query buffer.
//!
//! An argument longer than a value may be (`max_bulk_bytes`) but within that bound is
//! read and dropped as it arrives, never held: the request then ends in a size error and
//! the connection goes on. Closing at once instead would reset the connection under a
//! client still sending the value, and the client would never see why.

use super::frame::{ParseError, ParseLimits, line_int, parse_request, protocol};
use bytes::{Buf, Bytes, BytesMut};
use std::io::Cursor;

/// The request being read, and how far.
#[derive(Debug)]
struct Partial {
    /// Arguments still to come.
    remaining: usize,
    args: Vec<Bytes>,
    /// Bytes of the arguments so far.
    bytes: usize,
    /// The size of an argument over `max_bulk_bytes`, dropped as it arrived.
    too_large: Option<usize>,
}

#[derive(Debug)]
pub struct RequestReader {
    limits: ParseLimits,
    max_request_bytes: usize,
    partial: Option<Partial>,
    /// Bytes of an oversized argument still to drop (its CRLF not included).
    dropping: Option<usize>,
    /// Input bytes examined so far (headers scanned, arguments copied): what reading
    /// costs, for tests that check it stays linear.
    pub examined: u64,
}

impl RequestReader {
    #[must_use]
    pub fn new(limits: ParseLimits, max_request_bytes: usize) -> Self {
        Self { limits, max_request_bytes, partial: None, dropping: None, examined: 0 }
    }

    /// Bytes of the request in progress already taken off the input (its arguments so
    /// far): with what is left in the input, what the connection holds.
    #[must_use]
    pub fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.bytes + p.args.len() * 16)
    }

    /// Whether a request has started and not yet completed.
    #[must_use]
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// The next complete request, taken off the front of `input`; `Ok(None)` until one
    /// is complete (what has arrived of it is kept, here or in `input`).
    ///
    /// # Errors
    /// Malformed or oversized input; the connection should be closed after replying.
    pub fn next(&mut self, input: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ParseError> {
        if self.partial.is_none() {
            let Some(first) = input.first() else { return Ok(None) };
            if *first != b'*' {
                // Inline commands and refused frame kinds: one short line at most.
                let mut cursor = Cursor::new(&input[..]);
                let parsed = parse_request(&mut cursor, &self.limits)?;
                if parsed.is_some() {
                    self.examined += cursor.position();
                    input.advance(cursor.position() as usize);
                }
                return Ok(parsed);
            }
            let mut cursor = Cursor::new(&input[..]);
            cursor.advance(1);
            let Some(len) = line_int(&mut cursor, self.limits.max_inline_bytes)? else {
                return Ok(None);
            };
            self.examined += cursor.position();
            input.advance(cursor.position() as usize);
            if len <= 0 {
                return Ok(Some(Vec::new()));
            }
            let len = usize::try_from(len).map_err(|_| protocol("invalid multibulk length"))?;
            if len > self.limits.max_array_len {
                return Err(protocol(format!(
                    "invalid multibulk length {len}; at most {} arguments",
                    self.limits.max_array_len
                )));
            }
            self.partial = Some(Partial {
                remaining: len,
                args: Vec::with_capacity(len.min(1024)),
                bytes: 0,
                too_large: None,
            });
        }
        let Some(partial) = self.partial.as_mut() else { return Ok(None) };
        while partial.remaining > 0 {
            if let Some(left) = self.dropping.as_mut() {
                if !drop_argument(left, input, &mut self.examined)? {
                    return Ok(None);
                }
                self.dropping = None;
                partial.remaining -= 1;
                continue;
            }
            let Some(first) = input.first() else { return Ok(None) };
            if *first != b'$' {
                return Err(protocol(format!("expected '$', got '{}'", char::from(*first))));
            }
            let mut cursor = Cursor::new(&input[..]);
            cursor.advance(1);
            let Some(n) = line_int(&mut cursor, self.limits.max_inline_bytes)? else {
                return Ok(None);
            };
            let header = cursor.position() as usize;
            let n = usize::try_from(n).map_err(|_| protocol("invalid bulk length"))?;
            if partial.bytes + n > self.max_request_bytes {
                return Err(protocol(format!(
                    "request larger than max_request_bytes ({} bytes)",
                    self.max_request_bytes
                )));
            }
            if n > self.limits.max_bulk_bytes {
                // Dropped, not held: it does not count towards what the request holds.
                input.advance(header);
                self.examined += header as u64;
                partial.too_large = Some(n);
                self.dropping = Some(n);
                continue;
            }
            if input.len() < header + n + 2 {
                // Room for the rest of this argument, so it arrives without regrowing.
                input.reserve(header + n + 2 - input.len());
                return Ok(None);
            }
            if &input[header + n..header + n + 2] != b"\r\n" {
                return Err(protocol("bulk string not terminated by CRLF"));
            }
            // A copy, not a slice of the read buffer: a stored value must not pin it.
            partial.args.push(Bytes::copy_from_slice(&input[header..header + n]));
            input.advance(header + n + 2);
            self.examined += (header + n + 2) as u64;
            partial.bytes += n;
            partial.remaining -= 1;
        }
        match self.partial.take() {
            Some(Partial { too_large: Some(size), .. }) => {
                Err(ParseError::TooLarge { size, max: self.limits.max_bulk_bytes })
            }
            done => Ok(done.map(|p| p.args)),
        }
    }
}

/// Drops what has arrived of an oversized argument (`left` bytes still to come, then its
/// CRLF); whether all of it is gone.
fn drop_argument(
    left: &mut usize,
    input: &mut BytesMut,
    examined: &mut u64,
) -> Result<bool, ParseError> {
    let now = (*left).min(input.len());
    input.advance(now);
    *examined += now as u64;
    *left -= now;
    if *left > 0 || input.len() < 2 {
        return Ok(false);
    }
    if &input[..2] != b"\r\n" {
        return Err(protocol("bulk string not terminated by CRLF"));
    }
    input.advance(2);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits =
        ParseLimits { max_bulk_bytes: 1 << 20, max_array_len: 1 << 20, max_inline_bytes: 1024 };

    fn request(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Feeds `bytes` in `chunk`-sized reads; returns every request read.
    fn feed(reader: &mut RequestReader, bytes: &[u8], chunk: usize) -> Vec<Vec<Bytes>> {
        let mut input = BytesMut::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            input.extend_from_slice(piece);
            while let Some(req) = reader.next(&mut input).unwrap() {
                out.push(req);
            }
        }
        out
    }

    #[test]
    fn an_oversized_argument_is_dropped_as_it_arrives_and_the_next_request_reads() {
        let limits = ParseLimits { max_bulk_bytes: 100, ..LIMITS };
        let mut reader = RequestReader::new(limits, 1 << 20);
        let big = vec![b'x'; 10_000];
        let mut bytes = request(&[b"SET", b"k", &big]);
        bytes.extend(request(&[b"PING"]));
        let mut input = BytesMut::new();
        let mut answers = Vec::new();
        for piece in bytes.chunks(700) {
            input.extend_from_slice(piece);
            // Never more than one piece is held: the value is not kept.
            assert!(input.len() + reader.held() <= 1_500, "holds {}", input.len());
            loop {
                match reader.next(&mut input) {
                    Ok(Some(req)) => answers.push(Ok(req)),
                    Ok(None) => break,
                    Err(e) => answers.push(Err(e.to_string())),
                }
            }
        }
        assert_eq!(answers.len(), 2, "{answers:?}");
        let refused = answers[0].as_ref().unwrap_err();
        assert!(refused.contains("an argument is 10000 bytes; the maximum is 100"), "{refused}");
        assert_eq!(answers[1].as_ref().unwrap(), &vec![Bytes::from_static(b"PING")]);
    }

    #[test]
    fn a_request_arriving_byte_by_byte_reads_as_a_whole_one() {
        let bytes = [request(&[b"SET", b"k", b"hello"]), b"PING\r\n".to_vec()].concat();
        let mut reader = RequestReader::new(LIMITS, 1 << 20);
        let got = feed(&mut reader, &bytes, 1);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], [&b"SET"[..], b"k", b"hello"].map(Bytes::copy_from_slice));
        assert_eq!(got[1], [Bytes::from_static(b"PING")]);
    }

    #[test]
    fn a_trickled_request_costs_work_linear_in_its_size() {
        let values: Vec<Vec<u8>> = (0..20_000).map(|i| format!("value-{i}").into_bytes()).collect();
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        args.extend(values.iter().map(Vec::as_slice));
        let bytes = request(&args);
        let mut reader = RequestReader::new(LIMITS, 1 << 30);
        let got = feed(&mut reader, &bytes, 7);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), args.len());
        assert!(
            reader.examined <= bytes.len() as u64 * 2,
            "examined {} bytes of a {}-byte request",
            reader.examined,
            bytes.len()
        );
    }

    #[test]
    fn a_request_over_max_request_bytes_is_refused_naming_the_limit() {
        let big = vec![b'x'; 600];
        let bytes = request(&[b"MSET", b"a", &big, b"b", &big]);
        let mut reader = RequestReader::new(LIMITS, 1000);
        let mut input = BytesMut::from(&bytes[..]);
        let err = match reader.next(&mut input) {
            Ok(Some(_)) => panic!("an oversized request was read"),
            Ok(None) => panic!("the reader waited for more of a complete request"),
            Err(e) => e,
        };
        assert!(err.to_string().contains("max_request_bytes (1000 bytes)"), "{err}");
    }

    proptest::proptest! {
        /// Whatever bytes arrive, in whatever pieces, the reader never panics, and once
        /// it refuses the input it is not asked again (the connection closes).
        #[test]
        fn arbitrary_input_in_arbitrary_pieces_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            chunk in 1_usize..64,
        ) {
            let mut reader = RequestReader::new(
                ParseLimits { max_bulk_bytes: 64, max_array_len: 16, max_inline_bytes: 64 },
                256,
            );
            let mut input = BytesMut::new();
            'feed: for piece in bytes.chunks(chunk) {
                input.extend_from_slice(piece);
                loop {
                    match reader.next(&mut input) {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }

        /// Valid requests read the same whole or in pieces of any size.
        #[test]
        fn requests_read_the_same_in_any_pieces(
            args in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..40), 1..8),
            chunk in 1_usize..32,
        ) {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let bytes = [request(&refs), request(&refs)].concat();
            let mut reader = RequestReader::new(LIMITS, 1 << 20);
            let got = feed(&mut reader, &bytes, chunk);
            let want: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
            proptest::prop_assert_eq!(got, vec![want.clone(), want]);
        }
    }
}
