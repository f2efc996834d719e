//! Arbitrary `ACL SETUSER` rules: applying them never panics, a user built from whatever
//! was accepted describes itself, survives being kept (JSON) unchanged, and checks
//! arbitrary commands on arbitrary keys without panicking.
#![no_main]

use bytes::Bytes;
use halka::acl::user::{Compiled, User};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut user = User::new();
    let mut words = data.split(|b| *b == b' ');
    for rule in words.by_ref().take(32) {
        let _ = user.apply(rule);
    }
    let _ = user.describe();
    let kept = serde_json::to_string(&user).expect("a user serializes");
    assert_eq!(serde_json::from_str::<User>(&kept).expect("and parses back"), user);
    let compiled = Compiled::new(user);
    let args: Vec<Bytes> = words.take(4).map(Bytes::copy_from_slice).collect();
    for name in ["GET", "SET", "MSET", "RENAME", "ACL", "DEL", "EXISTS"] {
        let _ = compiled.check(name, &args);
    }
});
