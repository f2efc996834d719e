//! What users cost: checking a password (what every `AUTH` pays), and the permission
//! check every command passes once users have rules (a user with a few rules and key
//! patterns, and one with everything allowed).
//! Run: `cargo bench -p halka --bench acl`.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use halka::acl::password::Password;
use halka::acl::user::{Compiled, User};
use std::hint::black_box;

fn user(rules: &str) -> Compiled {
    let mut u = User::new();
    for r in rules.split_whitespace() {
        u.apply(r.as_bytes()).expect("a valid rule");
    }
    Compiled::new(u)
}

fn bench(c: &mut Criterion) {
    let password = Password::new(b"a-long-random-password-0123456789");
    c.bench_function("auth: a right password", |b| {
        b.iter(|| black_box(password.matches(black_box(b"a-long-random-password-0123456789"))));
    });
    c.bench_function("auth: a wrong password", |b| {
        b.iter(|| black_box(password.matches(black_box(b"a-wrong-guess"))));
    });
    let args = vec![Bytes::from_static(b"app:user:1234"), Bytes::from_static(b"value")];
    let all = user("on nopass ~* +@all");
    c.bench_function("check: SET, user allowed everything", |b| {
        b.iter(|| black_box(all.check(black_box("SET"), black_box(&args))));
    });
    let ruled = user("on nopass %R~cache:* ~app:* ~session:* +@all -@dangerous -flushdb");
    c.bench_function("check: SET, 3 key patterns and 3 command rules", |b| {
        b.iter(|| black_box(ruled.check(black_box("SET"), black_box(&args))));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
