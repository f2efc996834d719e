//! Arbitrary frames on the peer port: decoding never panics, and whatever decodes
//! encodes back to a frame that decodes to the same message.
#![no_main]

use halka_cluster::rpc::{Request, Response, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode::<Request>(data) {
        let again = encode(&request).expect("a decoded request encodes");
        assert_eq!(decode::<Request>(&again).expect("and decodes again"), request);
    }
    if let Ok(response) = decode::<Response>(data) {
        let again = encode(&response).expect("a decoded response encodes");
        assert_eq!(decode::<Response>(&again).expect("and decodes again"), response);
    }
});
