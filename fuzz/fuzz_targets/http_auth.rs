//! Arbitrary `Authorization` headers and request paths: reading Basic credentials and
//! naming the command a request amounts to never panic.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, Method, header};
use halka::http_auth::{as_command, basic_credentials};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let (value, path) = rest.split_at(usize::from(split).min(rest.len()));
    if let Ok(value) = HeaderValue::from_bytes(value) {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value);
        let _ = basic_credentials(&headers);
    }
    let path = String::from_utf8_lossy(path);
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::POST] {
        let _ = as_command(&method, &path);
    }
});
