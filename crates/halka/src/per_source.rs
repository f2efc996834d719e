//! How many connections one source address holds on a client port (Redis or HTTP).
//!
//! A node's connection cap keeps it within its means, but alone it lets one host take
//! every place: idle connections from one address kept every other client out. With a
//! share per source (an IPv4 address, or an IPv6 /64), one host can take only its share
//! and the rest stay open to everyone else.

use halka_cluster::rpc::source_of;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Connections held per source address, each at most `max`.
#[derive(Debug)]
pub struct PerSource {
    max: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its source's share; given back when dropped.
#[derive(Debug)]
pub struct Place {
    owner: Arc<PerSource>,
    source: IpAddr,
}

impl PerSource {
    /// Shares of `max` connections per source; 0 means no limit.
    #[must_use]
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max: if max == 0 { usize::MAX } else { max }, held: Mutex::default() })
    }

    /// A place for a connection from `ip`, or `None` when its source holds its share.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<Place> {
        let source = source_of(ip);
        let mut held = self.held.lock();
        let count = held.entry(source).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Place { owner: Arc::clone(self), source })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock();
        if let Some(count) = held.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_holds_its_share_and_no_more() {
        let limit = PerSource::new(2);
        let (a, _b) = (limit.enter(ip("10.0.0.9")).unwrap(), limit.enter(ip("10.0.0.9")).unwrap());
        assert!(limit.enter(ip("10.0.0.9")).is_none());
        assert!(limit.enter(ip("10.0.0.1")).is_some(), "another host is not affected");
        drop(a);
        assert!(limit.enter(ip("10.0.0.9")).is_some(), "a place given back is free again");
    }

    #[test]
    fn zero_means_no_limit() {
        let limit = PerSource::new(0);
        let places: Vec<_> = (0..1000).map(|_| limit.enter(ip("10.0.0.9"))).collect();
        assert!(places.iter().all(Option::is_some));
    }
}
