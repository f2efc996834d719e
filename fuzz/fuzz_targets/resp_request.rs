//! Arbitrary bytes from a Redis client, fed in arbitrary pieces: the request reader
//! never panics, and never holds more than its limit.
#![no_main]

use bytes::BytesMut;
use halka::resp::frame::ParseLimits;
use halka::resp::reader::RequestReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else { return };
    let limits = ParseLimits { max_bulk_bytes: 4096, max_array_len: 64, max_inline_bytes: 1024 };
    let mut reader = RequestReader::new(limits, 8192);
    let mut input = BytesMut::new();
    for piece in bytes.chunks(usize::from(split).max(1)) {
        input.extend_from_slice(piece);
        loop {
            match reader.next(&mut input) {
                Ok(Some(request)) => {
                    assert!(request.iter().map(|a| a.len()).sum::<usize>() <= 8192)
                }
                Ok(None) => break,
                // Refused whole: the connection goes on with the next request.
                Err(halka::resp::frame::ParseError::TooLarge { .. }) => {}
                Err(_) => return,
            }
        }
    }
});
