//! Arbitrary causal-context tokens from HTTP clients: decoding never panics, and a token
//! that decodes names a context that encodes and decodes back to itself.
#![no_main]

use halka::context_token::TokenKey;
use halka_cluster::ClusterSecret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let secret = ClusterSecret::new(b"0123456789abcdef0123456789abcdef").expect("a secret");
    let key = TokenKey::new(&secret);
    if let Ok(context) = key.decode(b"k", token) {
        let again = key.encode(b"k", &context);
        assert_eq!(key.decode(b"k", &again).expect("an issued token decodes"), context);
    }
});
