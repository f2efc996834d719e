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

/// Whether `key` matches a Redis glob `pattern`: `*`, `?`, `[abc]`, `[^a-z]`, and `\`
/// to take the next character literally.
#[must_use]
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0, 0);
    // Where to resume after the last `*`: (pattern position after it, key position).
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p + 1, k));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    k += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, end)) = class(pattern, p, key[k])
                        && matched
                    {
                        p = end;
                        k += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == key[k] => {
                    p += 2;
                    k += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {}
                c if c == key[k] => {
                    p += 1;
                    k += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Mismatch: let the last `*` swallow one more byte, or fail.
        match star {
            Some((after, at)) => {
                p = after;
                k = at + 1;
                star = Some((after, at + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[open] == b'['`: whether it matched
/// and where the pattern continues. An unclosed class runs to the end of the pattern.
fn class(pattern: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1] == c;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (lo, hi) = (pattern[i].min(pattern[i + 2]), pattern[i].max(pattern[i + 2]));
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= pattern[i] == c;
            i += 1;
        }
    }
    Some((matched != negate, (i + 1).min(pattern.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_redis_matches_them() {
        let yes = |p: &str, k: &str| assert!(glob_match(p.as_bytes(), k.as_bytes()), "{p} {k}");
        let no = |p: &str, k: &str| assert!(!glob_match(p.as_bytes(), k.as_bytes()), "{p} {k}");
        yes("*", "");
        yes("*", "anything");
        yes("h?llo", "hello");
        no("h?llo", "hllo");
        yes("h*llo", "heeeello");
        yes("h[ae]llo", "hallo");
        no("h[ae]llo", "hillo");
        yes("h[^e]llo", "hallo");
        no("h[^e]llo", "hello");
        yes("h[a-b]llo", "hbllo");
        no("h[a-b]llo", "hcllo");
        yes("user:*:name", "user:42:name");
        no("user:*:name", "user:42:mail");
        yes("a\\*b", "a*b");
        no("a\\*b", "axb");
        yes("*a*b*", "xxaxxbxx");
        no("*a*b*", "xxbxxaxx");
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
