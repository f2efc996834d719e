//! Riak-style HTTP: a raw GET answers with the value's bytes and the type they were
//! stored with, `300 Multiple Choices` when concurrent writes left siblings, and the
//! causal context in a header either way.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{TestCluster, http_answer};

#[test]
fn a_raw_get_returns_the_bytes_with_the_type_they_were_stored_with() {
    let c = TestCluster::start(3, "periodic");
    let png = [0x89, b'P', b'N', b'G', 0, 0xff, 0xfe];
    let put =
        http_answer("PUT", &c.http_url(0, "/v1/kv/logo"), &png, &[("Content-Type", "image/png")]);
    assert_eq!(put.status, 200);
    for (path, headers) in [
        ("/v1/kv/logo?raw=true", vec![]),
        ("/v1/kv/logo", vec![("Accept", "application/octet-stream")]),
    ] {
        let got = http_answer("GET", &c.http_url(1, path), b"", &headers);
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(got.body, png, "{path}");
        assert_eq!(got.header("content-type"), Some("image/png"), "{path}");
        let context = got.header("x-halka-context").unwrap();
        assert_eq!(got.header("etag"), Some(format!("\"{context}\"").as_str()));
    }
    // The JSON GET names the type too.
    let json = http_answer("GET", &c.http_url(2, "/v1/kv/logo"), b"", &[]);
    let body: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(body["siblings"][0]["content_type"], "image/png");
}

#[test]
fn a_raw_get_of_a_value_stored_without_a_type_is_an_octet_stream() {
    let c = TestCluster::start(1, "periodic");
    assert_eq!(http_answer("PUT", &c.http_url(0, "/v1/kv/k"), b"v", &[]).status, 200);
    let got = http_answer("GET", &c.http_url(0, "/v1/kv/k?raw=true"), b"", &[]);
    assert_eq!((got.status, got.body.as_slice()), (200, &b"v"[..]));
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    let missing = http_answer("GET", &c.http_url(0, "/v1/kv/nothing?raw=true"), b"", &[]);
    assert_eq!(missing.status, 404);
    assert!(missing.header("x-halka-context").is_some());
}

#[test]
fn a_raw_get_of_siblings_answers_300_and_its_context_resolves_them() {
    let c = TestCluster::start(3, "periodic");
    let url = |i: usize| c.http_url(i, "/v1/kv/doc");
    assert_eq!(http_answer("PUT", &url(0), b"v1", &[]).status, 200);
    let read = http_answer("GET", &c.http_url(0, "/v1/kv/doc?raw=true"), b"", &[]);
    let seen = read.header("x-halka-context").unwrap().to_string();
    // Two writers that both read v1 write concurrently: siblings.
    for (i, v) in [(1, "left"), (2, "right")] {
        let put = http_answer("PUT", &url(i), v.as_bytes(), &[("X-Halka-Context", &seen)]);
        assert_eq!(put.status, 200);
    }
    let got = http_answer("GET", &c.http_url(0, "/v1/kv/doc?raw=true&r=3"), b"", &[]);
    assert_eq!(got.status, 300, "{}", String::from_utf8_lossy(&got.body));
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let mut values: Vec<&str> =
        body["siblings"].as_array().unwrap().iter().map(|s| s["value"].as_str().unwrap()).collect();
    values.sort_unstable();
    assert_eq!(values, ["left", "right"]);
    // A write with the 300's context replaces both.
    let both = got.header("x-halka-context").unwrap().to_string();
    let put = http_answer("PUT", &url(1), b"merged", &[("X-Halka-Context", &both)]);
    assert_eq!(put.status, 200);
    let got = http_answer("GET", &c.http_url(2, "/v1/kv/doc?raw=true&r=3"), b"", &[]);
    assert_eq!((got.status, got.body.as_slice()), (200, &b"merged"[..]));
}

#[test]
fn a_content_type_that_is_not_printable_ascii_is_refused() {
    let c = TestCluster::start(1, "periodic");
    let long = "x".repeat(300);
    let put = http_answer("PUT", &c.http_url(0, "/v1/kv/k"), b"v", &[("Content-Type", &long)]);
    assert_eq!(put.status, 400);
    assert!(String::from_utf8_lossy(&put.body).contains("Content-Type"));
    let got = http_answer("GET", &c.http_url(0, "/v1/kv/k?raw=true"), b"", &[]);
    assert_eq!(got.status, 404, "nothing was stored");
}
