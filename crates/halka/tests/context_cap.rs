//! A causal context at the largest counter a client may pass back leaves its key writable:
//! numbering goes on past the cap, and every replica accepts what was numbered.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{Raw, SECRET, TestCluster, http};
use halka::context_token::TokenKey;
use halka_cluster::ClusterSecret;
use halka_store::{MAX_COUNTER, VersionVector};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Every node's actor, read from the contexts of keys written through each node.
fn actors(c: &TestCluster, tokens: &TokenKey) -> VersionVector {
    let mut all = VersionVector::new();
    for i in 0..3 {
        let key = format!("probe-{i}");
        let url = c.http_url(i, &format!("/v1/kv/{key}"));
        assert_eq!(http("PUT", &url, b"p", &[]).0, 200);
        let (_, body) = http("GET", &format!("{url}?r=3"), b"", &[]);
        let token = json(&body)["context"].as_str().unwrap().to_string();
        for (actor, _) in tokens.decode(key.as_bytes(), &token).unwrap().iter() {
            all.observe(actor, MAX_COUNTER);
        }
    }
    all
}

#[test]
fn a_key_whose_context_sits_at_the_accepted_cap_stays_writable() {
    let c = TestCluster::start(3, "periodic");
    let tokens = TokenKey::new(&ClusterSecret::new(SECRET.as_bytes()).unwrap());
    let context = actors(&c, &tokens);
    assert_eq!(context.iter().count(), 3, "one actor per node: {context:?}");
    // The attack of the report, with the cluster's own key: every owner's counter at the
    // cap a context may carry.
    let token = tokens.encode(b"victim", &context);
    let url = c.http_url(0, "/v1/kv/victim");
    let (status, body) = http("PUT", &url, b"x", &[("X-Halka-Context", &token)]);
    assert_eq!(status, 200, "{body}");
    // SET and DEL through every node still work, and every replica takes them.
    for i in 0..3 {
        let mut r = Raw::connect(&c.redis_addr(i));
        assert!(r.cmd(&["SET", "victim", &format!("v{i}")]).starts_with("+OK"));
        assert!(r.cmd(&["HALKA.GET", "victim", "3"]).contains(&format!("v{i}")));
    }
    let mut r = Raw::connect(&c.redis_addr(1));
    assert_eq!(r.cmd(&["DEL", "victim"]), ":1\r\n");
    assert!(r.cmd(&["FLUSHALL"]).starts_with("+OK"));
}
