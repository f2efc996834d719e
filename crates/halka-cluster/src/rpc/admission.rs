//! Who may wait at the peer port: connections still in their handshake, and which one gives
//! way when there are too many.
//!
//! Anyone can open a connection to the peer port, and until its handshake ends nothing
//! tells a member from a stranger. Refusing new connections once the waiting room is full
//! let a stranger who kept it full lock every member out; so instead a new connection is
//! always let in, and the one that gives way is chosen from whoever holds the most places:
//!
//! - no source address (an IPv4 address, or an IPv6 /64) waits with more than
//!   `per_source` connections: a stranger's flood from one host only displaces itself, and
//!   members on other hosts never notice it;
//! - when the room is full, the source holding the most places gives one up;
//! - within a source, a connection that has not yet said which member it is gives way
//!   before one that has (members speak first, at once), then the oldest before the newer.
//!
//! A stranger on a member's own host competes with that member's connections, and a member
//! wins as long as its handshake ends before `per_source` newer connections arrive from the
//! same host; a stranger on another host cannot delay a member at all.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The waiting room's two limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Connections in their handshake at once.
    pub waiting: usize,
    /// Of those, from one source address.
    pub per_source: usize,
}

/// The connections waiting at the peer port.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    room: Mutex<Room>,
}

#[derive(Debug, Default)]
struct Room {
    next: u64,
    waiting: Vec<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    id: u64,
    source: Source,
    greeted: bool,
    displaced: CancellationToken,
}

/// What one host is counted as: the address, or an IPv6 address's /64 (one host's share
/// of addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Source(IpAddr);

impl Source {
    fn of(ip: IpAddr) -> Self {
        Source(source_of(ip))
    }
}

/// The address a connection from `ip` is counted under when limiting what one host may
/// hold: the IPv4 address (an IPv4-mapped IPv6 one counts as its IPv4), or an IPv6
/// address's /64, one host's share of addresses.
#[must_use]
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// A connection's place in the waiting room, given up when dropped.
#[derive(Debug)]
pub(crate) struct Place {
    admission: Arc<Admission>,
    id: u64,
    displaced: CancellationToken,
}

impl Place {
    /// Marks the connection as one that named a member: it gives way after those that
    /// have said nothing.
    pub fn greeted(&self) {
        let mut room = self.admission.room.lock();
        if let Some(w) = room.waiting.iter_mut().find(|w| w.id == self.id) {
            w.greeted = true;
        }
    }

    /// Completes when a newer connection took this one's place.
    pub async fn displaced(&self) {
        self.displaced.cancelled().await;
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.admission.room.lock().waiting.retain(|w| w.id != self.id);
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        let limits =
            Limits { waiting: limits.waiting.max(1), per_source: limits.per_source.max(1) };
        Arc::new(Self { limits, room: Mutex::new(Room::default()) })
    }

    /// Lets a connection from `ip` wait for its handshake, displacing another if the room
    /// or the source's share of it is full.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Place {
        let source = Source::of(ip);
        let displaced = CancellationToken::new();
        let mut room = self.room.lock();
        if let Some(victim) = self.victim(&room.waiting, source) {
            room.waiting.swap_remove(victim).displaced.cancel();
        }
        let id = room.next;
        room.next += 1;
        room.waiting.push(Waiting { id, source, greeted: false, displaced: displaced.clone() });
        Place { admission: Arc::clone(self), id, displaced }
    }

    /// The index of the connection that gives way to a new one from `source`, if any must.
    fn victim(&self, waiting: &[Waiting], source: Source) -> Option<usize> {
        let mut held: HashMap<Source, usize> = HashMap::new();
        for w in waiting {
            *held.entry(w.source).or_default() += 1;
        }
        let from = if held.get(&source).copied().unwrap_or(0) >= self.limits.per_source {
            source
        } else if waiting.len() >= self.limits.waiting {
            // The biggest holder gives way; among equals, the one whose candidate is oldest.
            let most = held.values().copied().max()?;
            waiting.iter().filter(|w| held[&w.source] == most).min_by_key(|w| rank(w))?.source
        } else {
            return None;
        };
        waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| w.source == from)
            .min_by_key(|(_, w)| rank(w))
            .map(|(i, _)| i)
    }
}

/// Which connection of a source gives way first: silent before greeted, then oldest.
fn rank(w: &Waiting) -> (bool, u64) {
    (w.greeted, w.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn room(waiting: usize, per_source: usize) -> Arc<Admission> {
        Admission::new(Limits { waiting, per_source })
    }

    fn is_displaced(p: &Place) -> bool {
        p.displaced().now_or_never().is_some()
    }

    #[test]
    fn a_source_over_its_share_displaces_its_own_oldest() {
        let a = room(64, 2);
        let first = a.enter(ip("10.0.0.9"));
        let second = a.enter(ip("10.0.0.9"));
        let member = a.enter(ip("10.0.0.1"));
        let third = a.enter(ip("10.0.0.9"));
        assert!(is_displaced(&first));
        assert!(![&second, &member, &third].into_iter().any(is_displaced));
    }

    #[test]
    fn a_full_room_is_given_way_by_the_source_holding_most() {
        let a = room(4, 3);
        let member = a.enter(ip("10.0.0.1"));
        let flood: Vec<Place> = (0..3).map(|_| a.enter(ip("10.0.0.9"))).collect();
        let other_member = a.enter(ip("10.0.0.2"));
        assert!(is_displaced(&flood[0]), "the flood's oldest gave way");
        assert!(![&member, &other_member, &flood[1], &flood[2]].into_iter().any(is_displaced));
    }

    #[test]
    fn a_connection_that_named_a_member_outlasts_silent_ones_from_its_host() {
        let a = room(64, 2);
        let member = a.enter(ip("127.0.0.1"));
        member.greeted();
        let silent: Vec<Place> = (0..5).map(|_| a.enter(ip("127.0.0.1"))).collect();
        assert!(!is_displaced(&member));
        assert_eq!(silent.iter().filter(|p| is_displaced(p)).count(), 4);
    }

    #[test]
    fn a_place_given_up_frees_room_for_the_next() {
        let a = room(1, 1);
        drop(a.enter(ip("10.0.0.9")));
        let next = a.enter(ip("10.0.0.9"));
        assert!(!is_displaced(&next));
    }

    #[test]
    fn one_ipv6_host_counts_as_one_source() {
        let a = room(64, 1);
        let first = a.enter(ip("2001:db8::1"));
        let _second = a.enter(ip("2001:db8::ffff:2"));
        assert!(is_displaced(&first), "the same /64 is the same host");
        let elsewhere = a.enter(ip("2001:db8:0:1::1"));
        assert!(!is_displaced(&elsewhere));
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_source() {
        let a = room(64, 1);
        let first = a.enter(ip("10.0.0.9"));
        let _mapped = a.enter(ip("::ffff:10.0.0.9"));
        assert!(is_displaced(&first));
    }
}
