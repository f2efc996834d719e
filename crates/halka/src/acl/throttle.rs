//! Slowing down a source that keeps failing to authenticate.
//!
//! After `FREE` failures within `WINDOW`, every further `AUTH` from that address (right or
//! wrong: a right one must not tell the guesser it was right sooner) waits before it is
//! checked, twice as long for each failure, up to `MAX_DELAY`. The wait parks only the
//! connection, never a thread, and the password is hashed only after it: a flood of wrong
//! passwords costs the node at most one hash per connection per `MAX_DELAY`.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures a source may have in a window before it is slowed.
pub const FREE: u32 = 10;
/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// Sources remembered at once (the oldest are forgotten first beyond this).
const MAX_SOURCES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// Recent authentication failures, by source address.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    /// How long an `AUTH` from `source` waits at `now`.
    #[must_use]
    pub fn delay(&self, source: IpAddr, now: Instant) -> Duration {
        let failures = self.failures.lock();
        let Some(f) = failures.get(&source) else { return Duration::ZERO };
        if now.duration_since(f.since) > WINDOW || f.count < FREE {
            return Duration::ZERO;
        }
        let doublings = (f.count - FREE).min(16);
        Duration::from_millis(10u64 << doublings).min(MAX_DELAY)
    }

    /// Counts a failure from `source` at `now`.
    pub fn failed(&self, source: IpAddr, now: Instant) {
        let mut failures = self.failures.lock();
        if failures.len() >= MAX_SOURCES && !failures.contains_key(&source) {
            failures.retain(|_, f| now.duration_since(f.since) <= WINDOW);
            if failures.len() >= MAX_SOURCES {
                failures.clear();
            }
        }
        let f = failures.entry(source).or_insert(Failures { count: 0, since: now });
        if now.duration_since(f.since) > WINDOW {
            *f = Failures { count: 0, since: now };
        }
        f.count = f.count.saturating_add(1);
    }

    /// Forgets `source`'s failures once it authenticated.
    pub fn succeeded(&self, source: IpAddr) {
        self.failures.lock().remove(&source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_source_is_not_slowed_for_its_first_failures() {
        let (t, now) = (Throttle::default(), Instant::now());
        for _ in 0..FREE - 1 {
            t.failed(A, now);
        }
        assert_eq!(t.delay(A, now), Duration::ZERO);
    }

    #[test]
    fn each_failure_past_the_free_ones_doubles_the_wait_up_to_the_cap() {
        let (t, now) = (Throttle::default(), Instant::now());
        for _ in 0..FREE {
            t.failed(A, now);
        }
        assert_eq!(t.delay(A, now), Duration::from_millis(10));
        t.failed(A, now);
        assert_eq!(t.delay(A, now), Duration::from_millis(20));
        for _ in 0..40 {
            t.failed(A, now);
        }
        assert_eq!(t.delay(A, now), MAX_DELAY);
    }

    #[test]
    fn another_source_is_not_slowed_by_one_that_fails() {
        let (t, now) = (Throttle::default(), Instant::now());
        for _ in 0..50 {
            t.failed(A, now);
        }
        assert_eq!(t.delay(B, now), Duration::ZERO);
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let (t, now) = (Throttle::default(), Instant::now());
        for _ in 0..50 {
            t.failed(A, now);
        }
        assert_eq!(t.delay(A, now + WINDOW + Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn a_success_clears_the_source() {
        let (t, now) = (Throttle::default(), Instant::now());
        for _ in 0..50 {
            t.failed(A, now);
        }
        t.succeeded(A);
        assert_eq!(t.delay(A, now), Duration::ZERO);
    }
}
