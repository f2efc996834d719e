//! Collections (hashes, sets) read and written through a coordinator: the operations
//! every front end shares — the Redis commands, the HTTP API and the simulator's clients.
//!
//! A collection is a head at its key (`halka_store::collection::Head`: its kind and
//! lifetimes) and a record per member beside it. Every write begins by making the head
//! at the key's first owner (`Change::Create`, which writes nothing when it exists), then
//! writes the member in the head's lifetime; a read takes the head, then the members of
//! its lifetimes, each as its newest live version (`Record::member_at`: add wins).

use crate::{ClusterError, Coordinator, PutResult, WriteQuorum, WriteRequest};
use bytes::Bytes;
use futures::future::{join_all, try_join_all};
use halka_store::collection::member_key;
use halka_store::{Change, Condition, Head, Kind, Refusal};

/// A live member found by a walk: its offset in the collection's hashes, name and value.
type Offered = (u32, Bytes, Bytes);

/// The collection at one key, with the quorums its reads and writes use.
#[derive(Debug, Clone)]
pub struct Collection<'c> {
    coordinator: &'c Coordinator,
    key: Bytes,
    r: usize,
    quorum: WriteQuorum,
}

impl<'c> Collection<'c> {
    #[must_use]
    pub fn new(coordinator: &'c Coordinator, key: Bytes, r: usize, quorum: WriteQuorum) -> Self {
        Self { coordinator, key, r, quorum }
    }

    #[must_use]
    pub fn key(&self) -> &Bytes {
        &self.key
    }

    /// The head, if the key holds a collection of `kind`; `None` when it holds nothing.
    ///
    /// # Errors
    /// [`ClusterError::WrongType`] when the key holds a string or another kind; a read
    /// that fails.
    pub async fn head(&self, kind: Kind) -> Result<Option<Head>, ClusterError> {
        let got = self.coordinator.get(self.key.clone(), self.r).await?;
        match got.head() {
            Some(head) if head.kind == kind => Ok(Some(head)),
            None if got.value().is_none() => Ok(None),
            _ => Err(ClusterError::WrongType),
        }
    }

    /// The head of the collection of `kind`, made if the key holds nothing: the write
    /// every collection write begins with (it writes nothing when the head exists).
    ///
    /// # Errors
    /// [`ClusterError::WrongType`] when the key holds something else; a failed write.
    pub async fn make(&self, kind: Kind) -> Result<Head, ClusterError> {
        let request = WriteRequest::new(Change::Create(kind), None);
        let put = self.coordinator.apply(self.key.clone(), request, self.quorum).await?;
        match (put.outcome.head, put.outcome.refused) {
            (Some(head), _) => Ok(*head),
            (None, Some(Refusal::WrongType)) => Err(ClusterError::WrongType),
            (None, refused) => Err(ClusterError::Storage(format!(
                "the collection's head was not made ({refused:?})"
            ))),
        }
    }

    /// Applies `request` to `member` of lifetime `lifetime`. A refusal (a counter that is
    /// not a number, say) is left in the result for the caller to word.
    ///
    /// # Errors
    /// A failed write.
    pub async fn write_member(
        &self,
        lifetime: u64,
        member: &[u8],
        request: WriteRequest,
    ) -> Result<PutResult, ClusterError> {
        let at = Bytes::from(member_key(&self.key, lifetime, member));
        self.coordinator.apply(at, request, self.quorum).await
    }

    /// The value of `member`: the newest live one among the head's lifetimes.
    ///
    /// # Errors
    /// A failed read.
    pub async fn value(&self, head: &Head, member: &[u8]) -> Result<Option<Bytes>, ClusterError> {
        let reads = head.lifetimes.iter().map(|&l| {
            let at = Bytes::from(member_key(&self.key, l, member));
            self.coordinator.get(at, self.r)
        });
        let got = try_join_all(reads).await?;
        let newest =
            got.iter().filter_map(|g| g.record.member_at(g.now_us)).max_by_key(|(at, _)| *at);
        Ok(newest.map(|(_, v)| v))
    }

    /// Every live member with its value, in member order, holding at most `budget` bytes.
    ///
    /// # Errors
    /// [`ClusterError::CollectionTooLarge`] past `budget`; a failed read.
    pub async fn members(
        &self,
        head: &Head,
        budget: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, ClusterError> {
        let read = self.coordinator.read_members(&self.key, self.r, budget, false).await?;
        Ok(read.live(head).into_iter().map(|(m, (_, v))| (m, v)).collect())
    }

    /// One step of a walk over the live members (`HSCAN`, `SSCAN`): those from `cursor`
    /// (an offset in the collection's hash range, 0 to begin) through one page of R
    /// owners, in hash order, and the cursor to go on from (0 at the end, as Redis says
    /// it). A member in two lifetimes (heads made concurrently) may be given twice, as
    /// `SCAN` may give a key twice.
    ///
    /// # Errors
    /// A failed read.
    pub async fn scan(
        &self,
        head: &Head,
        cursor: u32,
    ) -> Result<(Vec<(Bytes, Bytes)>, u32), ClusterError> {
        let (found, next) = self.step(head, cursor).await?;
        Ok((found.into_iter().map(|(_, m, v)| (m, v)).collect(), next))
    }

    /// `scan`, each member with its offset in the collection's hashes.
    async fn step(&self, head: &Head, cursor: u32) -> Result<(Vec<Offered>, u32), ClusterError> {
        let (read, next) = self.coordinator.scan_members(&self.key, self.r, cursor).await?;
        let (first, _) = halka_ring::collection_range(&self.key);
        let mut found = Vec::new();
        for (key, record) in &read.records {
            let Some((_, lifetime, member)) = halka_store::collection::split_member_key(key) else {
                continue;
            };
            if head.lifetimes.binary_search(&lifetime).is_err() {
                continue;
            }
            if let Some((_, value)) = record.member_at(read.now_us) {
                let offset = halka_store::layout::key_hash(key).wrapping_sub(first);
                let offset = u32::try_from(offset).unwrap_or(u32::MAX);
                found.push((offset, Bytes::copy_from_slice(member), value));
            }
        }
        Ok((found, next.unwrap_or(0)))
    }

    /// Up to `want` distinct live members with their values (at most `budget` bytes of
    /// them), taken in hash order from
    /// `start` (an offset in the collection's hashes; random for `SRANDMEMBER`, `SPOP`
    /// and `HRANDFIELD`) round to where it began, a page at a time: a member is as likely
    /// to be first as the gap of hashes before it is wide, as `RANDOMKEY`'s keys are.
    ///
    /// # Errors
    /// [`ClusterError::CollectionTooLarge`] past `budget`; a failed read.
    pub async fn sample(
        &self,
        head: &Head,
        start: u32,
        want: usize,
        budget: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, ClusterError> {
        let (mut found, mut seen, mut used) = (Vec::new(), std::collections::BTreeSet::new(), 0);
        let (mut cursor, mut wrapped) = (start, false);
        while found.len() < want {
            let (items, next) = self.step(head, cursor).await?;
            for (offset, member, value) in items {
                if wrapped && offset >= start {
                    return Ok(found);
                }
                if found.len() < want && seen.insert(member.clone()) {
                    used += member.len() + value.len() + 16;
                    if used > budget {
                        return Err(ClusterError::CollectionTooLarge { max: budget });
                    }
                    found.push((member, value));
                }
            }
            match next {
                0 if wrapped || start == 0 => break,
                0 => (cursor, wrapped) = (0, true),
                n if wrapped && n > start => break,
                n => cursor = n,
            }
        }
        Ok(found)
    }

    /// Removes `member` if it is still there, deciding at the collection's first owner:
    /// whether this call removed it. Two pops of one member through different nodes then
    /// remove it once, as long as the first owner is reachable (as for conditional writes:
    /// in the failover window both may).
    ///
    /// # Errors
    /// A failed write; a refused removal.
    pub async fn pop(&self, head: &Head, member: &[u8]) -> Result<bool, ClusterError> {
        let mut popped = false;
        for &lifetime in &head.lifetimes {
            let put = self.write_member(lifetime, member, delete_at_first_owner()).await?;
            match put.outcome.refused {
                None => popped = true,
                Some(Refusal::ConditionNotMet) => {}
                Some(refusal) => return Err(ClusterError::Refused(refusal)),
            }
        }
        Ok(popped)
    }

    /// How many members live in the collection, read a page at a time.
    ///
    /// # Errors
    /// A failed read.
    pub async fn count(&self, head: &Head) -> Result<u64, ClusterError> {
        self.coordinator.count_members(&self.key, self.r, head).await
    }

    /// Whether any member lives: a head whose members were all removed holds nothing, as
    /// Redis removes a collection with its last member.
    ///
    /// # Errors
    /// A failed read.
    pub async fn holds_any(&self, head: &Head, budget: usize) -> Result<bool, ClusterError> {
        let read = self.coordinator.read_members(&self.key, self.r, budget, true).await?;
        if !read.live(head).is_empty() {
            return Ok(true);
        }
        // The first page held only removed members: the rest may still hold live ones.
        Ok(self.count(head).await? > 0)
    }

    /// Removes `member` from every lifetime of the head; whether it was there. Each
    /// removal replaces only the versions its coordinating replica held, so a concurrent
    /// write to the member through another node survives it.
    ///
    /// # Errors
    /// A failed read or write; a refused removal.
    pub async fn remove(&self, head: &Head, member: &[u8]) -> Result<bool, ClusterError> {
        // Read first: a member whose removal lost to a concurrent write holds a value
        // though its newest version is a removal, which a condition at the coordinating
        // replica would take for absent.
        if self.value(head, member).await?.is_none() {
            return Ok(false);
        }
        let removals = head
            .lifetimes
            .iter()
            .map(|&l| self.write_member(l, member, WriteRequest::new(Change::Delete, None)));
        for removed in join_all(removals).await {
            if let Some(refusal) = removed?.outcome.refused {
                return Err(ClusterError::Refused(refusal));
            }
        }
        Ok(true)
    }
}

/// A delete of what the key holds, coordinated by its first owner (a condition makes it
/// so) like the `Change::Create` that follows it: that replica then holds the delete
/// when it makes the new head, whatever the other owners had received.
#[must_use]
pub fn delete_at_first_owner() -> WriteRequest {
    WriteRequest { condition: Condition::Present, ..WriteRequest::new(Change::Delete, None) }
}
