//! Reading a collection's members: the records in the collection's hash range
//! (`halka_ring::collection_range`), from R of its owners, merged per key.
//!
//! Members are records of their own, placed beside their collection's key, so the owners
//! of the key hold every member and one range read per owner finds them. Each owner
//! answers a page at a time (`Replica::read_range`); a round ends where the shortest page
//! ended and the next starts just past it, so a collection of any size is read in
//! bounded messages. The answers are not repaired here: anti-entropy brings a replica
//! that missed a member up to date, as for any record.

use super::Coordinator;
use crate::fanout::Fanout;
use crate::view::View;
use crate::{ClusterError, KeyPage, replica::batch_weight};
use bytes::Bytes;
use halka_ring::{NodeIdx, PreferenceList};
use halka_store::{HashRange, Head, Record, collection::split_member_key};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The member records of a collection as R owners hold them.
#[derive(Debug, Clone)]
pub struct MemberRecords {
    /// Member keys (every lifetime) in hash order, each with the merge of its records.
    pub records: Vec<(Bytes, Arc<Record>)>,
    /// The coordinator's clock when the read completed: what expiry is judged by.
    pub now_us: u64,
}

impl MemberRecords {
    /// The members that live in `head`'s lifetimes, each with its newest live value and
    /// when that was written (`Record::member_at`): a member in two lifetimes (heads
    /// created concurrently) reads as its newest. In member order.
    #[must_use]
    pub fn live(&self, head: &Head) -> BTreeMap<Bytes, (u64, Bytes)> {
        let mut out: BTreeMap<Bytes, (u64, Bytes)> = BTreeMap::new();
        for (k, record) in &self.records {
            let Some((_, lifetime, member)) = split_member_key(k) else { continue };
            if head.lifetimes.binary_search(&lifetime).is_err() {
                continue;
            }
            let Some(found) = record.member_at(self.now_us) else { continue };
            match out.get_mut(member) {
                Some(slot) if found.0 > slot.0 => *slot = found,
                Some(_) => {}
                None => {
                    out.insert(Bytes::copy_from_slice(member), found);
                }
            }
        }
        out
    }
}

impl Coordinator {
    /// The member records of the collection at `key` from `r` of its owners, merged.
    /// Holds at most `budget` bytes of them; with `one_page`, stops after the first page
    /// (enough to tell whether the collection holds anything).
    ///
    /// # Errors
    /// Bad `r` or key (before any I/O), [`ClusterError::CollectionTooLarge`] past
    /// `budget`, or a [`QuorumError`](crate::QuorumError) when fewer than `r` owners
    /// answer.
    pub async fn read_members(
        &self,
        key: &Bytes,
        r: usize,
        budget: usize,
        one_page: bool,
    ) -> Result<MemberRecords, ClusterError> {
        let (mut records, mut used) = (Vec::new(), 0_usize);
        self.visit_members(key, r, one_page, &mut |k, record| {
            used = used.saturating_add(batch_weight(&k, &record));
            if used > budget {
                return Err(ClusterError::CollectionTooLarge { max: budget });
            }
            records.push((k, Arc::new(record)));
            Ok(())
        })
        .await?;
        Ok(MemberRecords { records, now_us: self.now_us() })
    }

    /// How many members live in `head`'s lifetimes of the collection at `key`, read from
    /// `r` of its owners a page at a time: `HLEN`, `SCARD` of a collection of any size,
    /// holding one page at a time.
    ///
    /// # Errors
    /// As [`Coordinator::read_members`], without a budget.
    pub async fn count_members(
        &self,
        key: &Bytes,
        r: usize,
        head: &Head,
    ) -> Result<u64, ClusterError> {
        let now = self.now_us();
        // A member in two lifetimes (heads created concurrently) counts once.
        let mut seen = std::collections::HashSet::new();
        let mut count = 0;
        self.visit_members(key, r, false, &mut |k, record| {
            let Some((_, lifetime, member)) = split_member_key(&k) else { return Ok(()) };
            let ours = head.lifetimes.binary_search(&lifetime).is_ok();
            if ours && record.member_at(now).is_some() {
                let first = head.lifetimes.len() == 1 || seen.insert(member.to_vec());
                count += u64::from(first);
            }
            Ok(())
        })
        .await?;
        Ok(count)
    }

    /// One step of a walk over the member records of the collection at `key` (`HSCAN`,
    /// `SSCAN`): the records from `cursor` (an offset in the collection's 2^32 hashes) to
    /// where the shortest of `r` owners' pages ended, and the cursor after them (`None`
    /// at the end). Any node continues a walk any other began.
    ///
    /// # Errors
    /// As [`Coordinator::read_members`], without a budget.
    pub async fn scan_members(
        &self,
        key: &Bytes,
        r: usize,
        cursor: u32,
    ) -> Result<(MemberRecords, Option<u32>), ClusterError> {
        let view = self.enter();
        self.check_read(&view, key, r)?;
        let order = self.planner(&view).read(key, self.config.reads, r).order;
        let (first, last) = halka_ring::collection_range(key);
        let range = HashRange { first: first + u64::from(cursor), last };
        let (merged, through) = self.member_round(&view, &order, r, key, range).await?;
        let records = merged.into_iter().map(|((_, k), record)| (k, Arc::new(record))).collect();
        // The offset past `through`, which lies in the collection's range.
        let next = u32::try_from(through - first).ok().and_then(|t| t.checked_add(1));
        let read = MemberRecords { records, now_us: self.now_us() };
        Ok((read, next.filter(|_| through < last)))
    }

    /// Visits the member records of the collection at `key` from `r` of its owners,
    /// merged, in hash order, a page at a time.
    async fn visit_members(
        &self,
        key: &Bytes,
        r: usize,
        one_page: bool,
        visit: &mut (dyn FnMut(Bytes, Record) -> Result<(), ClusterError> + Send),
    ) -> Result<(), ClusterError> {
        let view = self.enter();
        self.check_read(&view, key, r)?;
        let order = self.planner(&view).read(key, self.config.reads, r).order;
        let (first, last) = halka_ring::collection_range(key);
        let mut cursor = first;
        loop {
            let range = HashRange { first: cursor, last };
            let (merged, through) = self.member_round(&view, &order, r, key, range).await?;
            for ((_, k), record) in merged {
                visit(k, record)?;
            }
            match through.checked_add(1) {
                Some(next) if through < last && !one_page => cursor = next,
                _ => return Ok(()),
            }
        }
    }

    /// One round of a member read: a page of `range` from each of `r` owners, merged per
    /// member key of the collection at `key`, up to the hash where the shortest page ended
    /// (returned: beyond it some owner has not answered yet).
    async fn member_round(
        &self,
        view: &View,
        order: &PreferenceList,
        r: usize,
        key: &Bytes,
        range: HashRange,
    ) -> Result<(BTreeMap<(u64, Bytes), Record>, u64), ClusterError> {
        let pages = self.read_pages(view, order, r, range).await?;
        let through = pages.iter().filter_map(|p| p.through).min().unwrap_or(range.last);
        let mut merged: BTreeMap<(u64, Bytes), Record> = BTreeMap::new();
        for (k, record) in pages.into_iter().flat_map(|p| p.keys) {
            let hash = halka_store::layout::key_hash(&k);
            let ours = split_member_key(&k).is_some_and(|(c, _, _)| c == &key[..]);
            if hash <= through && ours {
                let entry = merged.entry((hash, k)).or_default();
                *entry = entry.merge(&record);
            }
        }
        Ok((merged, through))
    }

    /// One page of `range` from each of `r` owners in `order`, asking the next owner when
    /// one fails.
    async fn read_pages(
        &self,
        view: &View,
        order: &PreferenceList,
        r: usize,
        range: HashRange,
    ) -> Result<Vec<KeyPage>, ClusterError> {
        let mut fanout = Fanout::new(self.config.timeout);
        let ask = |fanout: &mut Fanout<KeyPage>, idx: NodeIdx| {
            let replica = view.replica(idx);
            fanout.start(replica.id().clone(), replica.read_range(range));
        };
        let mut asked = r.min(order.len());
        for &idx in &order[..asked] {
            ask(&mut fanout, idx);
        }
        let (mut pages, mut failures) = (Vec::new(), Vec::new());
        while pages.len() < r {
            match fanout.next().await {
                Some((_, Ok(page))) => pages.push(page),
                Some((id, Err(e))) => {
                    failures.push((id, e));
                    if let Some(&idx) = order.get(asked) {
                        ask(&mut fanout, idx);
                        asked += 1;
                    }
                }
                None => {
                    let n = order.len();
                    return Err(self.quorum_failed("read", r, (pages.len(), 0), n, failures));
                }
            }
        }
        Ok(pages)
    }
}
