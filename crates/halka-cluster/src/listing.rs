//! Listing the cluster's keys: what `SCAN`, `KEYS`, `RANDOMKEY` and `FLUSHDB` walk.
//!
//! Every engine keeps its records in placement-hash order (`halka_store::layout`), so the
//! keys of the whole cluster can be walked one hash range at a time. A *cursor* is the
//! hash where the next step starts: the same on every node, and still valid after any
//! node fails. Each step asks every member for the keys it holds in its range — records
//! without their values ([`Replica::list_keys`]) — merges the answers per key, and keeps
//! the keys whose merged record holds a live value now: deleted and expired keys never
//! appear. Each member answers one page of bounded size, whatever the range (a `COUNT`
//! of a billion, or an estimate far too low, asks for a wide one): the step then ends
//! where the shortest page ended, and the next starts after it. A key that holds a value for the whole walk is listed at least once, as long
//! as one replica holding it answers each step; so a step fails rather than answer when
//! more than `max_missing` members are silent.
//!
//! [`Replica::list_keys`]: crate::Replica::list_keys

use crate::fanout::Fanout;
use crate::{ClusterError, Coordinator, KeyPage, QuorumError};
use bytes::Bytes;
use halka_store::{HashRange, Record};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One step of a walk.
#[derive(Debug, Clone)]
pub struct Page {
    /// The live keys of the step's range, in hash order, with their merged records
    /// (without values).
    pub keys: Vec<(Bytes, Arc<Record>)>,
    /// Where the next step starts; `None` when the walk reached the end of the hash space.
    pub next: Option<u64>,
}

impl Coordinator {
    /// The live keys whose placement hash lies in `range`, merged from every member that
    /// answers, up to where the shortest answer stopped (each member answers one page,
    /// see [`Replica::list_keys`]); the page's `next` is where to go on from.
    ///
    /// # Errors
    /// More than `max_missing` members did not answer.
    pub async fn list_range(
        &self,
        range: HashRange,
        max_missing: usize,
    ) -> Result<Page, ClusterError> {
        let view = self.view();
        let mut fanout = Fanout::new(self.config().timeout);
        for replica in view.replicas() {
            fanout.start(replica.id().clone(), replica.list_keys(range));
        }
        let mut merged = Merged::new(range);
        let mut failures = Vec::new();
        while let Some((id, answer)) = fanout.next().await {
            match answer {
                Ok(page) => merged.add(page),
                Err(e) => failures.push((id, e)),
            }
        }
        if failures.len() > max_missing {
            let replicas = view.replicas().len();
            return Err(ClusterError::Quorum(QuorumError {
                op: "list",
                required: replicas - max_missing,
                succeeded: merged.answered,
                in_flight: 0,
                replicas,
                failures,
            }));
        }
        Ok(merged.live(self.now_us()))
    }

    /// One step of a walk from `cursor`, sized to list about `want` keys when the
    /// cluster holds about `estimate` keys in all (a guess is enough: it sizes the step,
    /// not what is returned, and each member's answer is a page of bounded size).
    ///
    /// # Errors
    /// As [`Coordinator::list_range`].
    pub async fn scan(
        &self,
        cursor: u64,
        want: usize,
        estimate: u64,
        max_missing: usize,
    ) -> Result<Page, ClusterError> {
        self.list_range(step(cursor, want, estimate), max_missing).await
    }
}

/// Members' pages of one range, merged per key.
struct Merged {
    /// The last hash every answer so far covers.
    through: u64,
    keys: BTreeMap<(u64, Bytes), Record>,
    answered: usize,
}

impl Merged {
    fn new(range: HashRange) -> Self {
        Self { through: range.last, keys: BTreeMap::new(), answered: 0 }
    }

    fn add(&mut self, page: KeyPage) {
        self.answered += 1;
        if let Some(through) = page.through {
            self.through = self.through.min(through);
        }
        for (key, record) in page.keys {
            let hash = halka_store::layout::key_hash(&key);
            let entry = self.keys.entry((hash, key)).or_default();
            *entry = entry.merge(&record);
        }
    }

    /// The keys holding a live value at `now`, up to the hash every answer covers: beyond
    /// it, some member has not listed its keys yet.
    fn live(self, now: u64) -> Page {
        let through = self.through;
        let keys = self
            .keys
            .into_iter()
            .take_while(|((hash, _), _)| *hash <= through)
            // A collection's members are not keys: its head is.
            .filter(|((_, key), _)| !halka_store::collection::is_member_key(key))
            .filter(|(_, record)| record.live_winner(now).is_some())
            .map(|((_, key), record)| (key, Arc::new(record)))
            .collect();
        Page { keys, next: through.checked_add(1) }
    }
}

/// The hash range of one step from `cursor`: about `want / estimate` of the hash space,
/// at least 2^-32 of it, to the end of the space at most.
#[must_use]
pub fn step(cursor: u64, want: usize, estimate: u64) -> HashRange {
    let share = (want.max(1) as f64 / estimate.max(1) as f64).min(1.0);
    let width = ((u64::MAX as f64) * share) as u64;
    let width = width.max(1 << 32);
    HashRange { first: cursor, last: cursor.saturating_add(width) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PageBuilder;
    use halka_store::{NodeId, VersionVector, Write};

    fn record(value: &str) -> Arc<Record> {
        let write =
            Write::value(Some(Bytes::from(value.to_string())), Some(VersionVector::new()), 1);
        Arc::new(Record::apply_write(None, &NodeId::new("a"), &write).unwrap().into_record())
    }

    /// `n` keys in hash order.
    fn keys(n: usize) -> Vec<Bytes> {
        let mut keys: Vec<Bytes> = (0..n).map(|i| Bytes::from(format!("key-{i:04}"))).collect();
        keys.sort_by_key(|k| halka_store::layout::key_hash(k));
        keys
    }

    fn page(keys: &[Bytes], budget: usize) -> KeyPage {
        let mut page = PageBuilder::new(budget);
        for k in keys {
            if page.offer(k, record("v")).is_break() {
                break;
            }
        }
        page.finish()
    }

    #[test]
    fn a_page_stops_once_full_and_says_where() {
        let all = keys(100);
        let one = crate::replica::batch_weight(&all[0], &record("v"));
        let p = page(&all, one * 10);
        assert_eq!(p.keys.len(), 10);
        assert_eq!(p.through, Some(halka_store::layout::key_hash(&all[9])));
        assert_eq!(page(&all, usize::MAX).through, None, "a page that holds all says so");
    }

    #[test]
    fn a_step_ends_where_the_shortest_page_ended() {
        let all = keys(100);
        let one = crate::replica::batch_weight(&all[0], &record("v"));
        let mut merged = Merged::new(HashRange::ALL);
        merged.add(page(&all, usize::MAX));
        merged.add(page(&all[..50], one * 20));
        let p = merged.live(1);
        assert_eq!(p.keys.len(), 20);
        assert_eq!(p.next, Some(halka_store::layout::key_hash(&all[19]) + 1));
        let mut whole = Merged::new(HashRange::ALL);
        whole.add(page(&all, usize::MAX));
        let p = whole.live(1);
        assert_eq!((p.keys.len(), p.next), (100, None));
    }

    #[test]
    fn steps_cover_the_hash_space_in_order() {
        let mut cursor = 0;
        let mut steps = 0;
        loop {
            let range = step(cursor, 10, 1000);
            assert_eq!(range.first, cursor);
            steps += 1;
            match range.last.checked_add(1) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        assert_eq!(steps, 100, "10 keys of 1000 a step: a hundredth of the space each");
        assert_eq!(step(5, 10, 5), HashRange { first: 5, last: u64::MAX });
    }
}
