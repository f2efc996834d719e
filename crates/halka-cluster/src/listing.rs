//! Listing the cluster's keys: what `SCAN`, `KEYS`, `RANDOMKEY` and `FLUSHDB` walk.
//!
//! Every engine keeps its records in placement-hash order (`halka_store::layout`), so the
//! keys of the whole cluster can be walked one hash range at a time. A *cursor* is the
//! hash where the next step starts: the same on every node, and still valid after any
//! node fails. Each step asks every member for the keys it holds in its range — records
//! without their values ([`Replica::list_keys`]) — merges the answers per key, and keeps
//! the keys whose merged record holds a live value now: deleted and expired keys never
//! appear. A key that holds a value for the whole walk is listed at least once, as long
//! as one replica holding it answers each step; so a step fails rather than answer when
//! more than `max_missing` members are silent.
//!
//! [`Replica::list_keys`]: crate::Replica::list_keys

use crate::fanout::Fanout;
use crate::{ClusterError, Coordinator, QuorumError};
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
    /// answers.
    ///
    /// # Errors
    /// More than `max_missing` members did not answer.
    pub async fn list_range(
        &self,
        range: HashRange,
        max_missing: usize,
    ) -> Result<Vec<(Bytes, Arc<Record>)>, ClusterError> {
        let view = self.view();
        let mut fanout = Fanout::new(self.config().timeout);
        for replica in view.replicas() {
            fanout.start(replica.id().clone(), replica.list_keys(range));
        }
        let mut merged: BTreeMap<(u64, Bytes), Record> = BTreeMap::new();
        let mut failures = Vec::new();
        let mut answered = 0;
        while let Some((id, answer)) = fanout.next().await {
            match answer {
                Ok(listed) => {
                    answered += 1;
                    for (key, record) in listed {
                        let hash = halka_store::layout::key_hash(&key);
                        let entry = merged.entry((hash, key)).or_default();
                        *entry = entry.merge(&record);
                    }
                }
                Err(e) => failures.push((id, e)),
            }
        }
        if failures.len() > max_missing {
            let replicas = view.replicas().len();
            return Err(ClusterError::Quorum(QuorumError {
                op: "list",
                required: replicas - max_missing,
                succeeded: answered,
                in_flight: 0,
                replicas,
                failures,
            }));
        }
        let now = self.now_us();
        Ok(merged
            .into_iter()
            .filter(|(_, record)| record.live_winner(now).is_some())
            .map(|((_, key), record)| (key, Arc::new(record)))
            .collect())
    }

    /// One step of a walk from `cursor`, sized to list about `want` keys when the
    /// cluster holds about `estimate` keys in all (a guess is enough: it sizes the step,
    /// not what is returned).
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
        let range = step(cursor, want, estimate);
        let keys = self.list_range(range, max_missing).await?;
        Ok(Page { keys, next: range.last.checked_add(1) })
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
