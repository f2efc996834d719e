//! Arbitrary MATCH/KEYS patterns against arbitrary keys: compiling never panics, a
//! pattern past the cap is refused, and a compiled pattern matches without panicking.
#![no_main]

use halka_cluster::{Glob, MAX_PATTERN_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input into a pattern and a key.
    let Some((&split, rest)) = data.split_first() else { return };
    let (pattern, key) = rest.split_at(usize::from(split).min(rest.len()));
    match Glob::new(pattern) {
        Ok(glob) => {
            let _ = glob.matches(key);
            // A pattern matches itself when it has no special bytes.
            if !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\')) {
                assert!(glob.matches(pattern));
            }
        }
        Err(_) => assert!(pattern.len() > MAX_PATTERN_BYTES),
    }
});
