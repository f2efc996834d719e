//! The replica a simulated node serves itself through: it records every version it
//! creates for the checker, and plays the node's slow or full disk.

#[allow(
    clippy::wildcard_imports,
    reason = "the replica is the world's own part, written with its imports"
)]
use super::*;
/// How a write meets a full disk (see `Recording::full_disk`).
enum FullDisk {
    Refused(ReplicaError),
    Unsynced(ReplicaError),
}

/// A node's local replica that records every version it creates, with what its creator
/// had seen: the checker's ground truth for causality.
#[derive(Debug)]
pub(super) struct Recording {
    pub(super) inner: LocalReplica,
    pub(super) actor: NodeId,
    pub(super) node: usize,
    pub(super) world: Arc<World>,
}

impl Recording {
    fn note(&self, key: &Bytes, record: &Record) {
        let dot = Dot { node: self.actor.clone(), counter: record.context().get(&self.actor) };
        if let Some(made) = record.versions().iter().find(|v| v.dot == dot) {
            let value = made.value.as_deref().map(shown);
            let lifetimes = made.collection.as_ref().map(|h| h.lifetimes.to_vec());
            self.world.record(Event::Version(Version {
                key: crate::history::key_name(key),
                dot: (dot.node.to_string(), dot.counter),
                value,
                seen: record.context().iter().map(|(n, c)| (n.to_string(), c)).collect(),
                at_us: self.world.now_us(),
                lifetimes: lifetimes.unwrap_or_default(),
            }));
        }
    }
}

impl Recording {
    /// While the node's disk is full, a write fails as on a real node: most often it is
    /// refused before it is applied (the space guard: `Refused`), sometimes only its
    /// durability fails (a journal write or fsync after the write was in memory:
    /// `Unsynced`), so it may be seen though it was never acknowledged.
    fn full_disk(&self) -> Option<FullDisk> {
        let after_apply = (*self.world.nodes[self.node].full_disk.lock())?;
        let error = ReplicaError::NoSpace(format!("disk of n{} full (simulated)", self.node + 1));
        Some(if self.world.chance(after_apply) {
            FullDisk::Unsynced(error)
        } else {
            FullDisk::Refused(error)
        })
    }

    /// `ack`, or the full disk's error once the write is applied.
    fn durable_or_full<T: Send + 'static>(
        &self,
        full: Option<FullDisk>,
        apply: impl FnOnce() -> ReplicaFuture<T>,
    ) -> ReplicaFuture<T> {
        match full {
            None => self.after_disk(apply()),
            Some(FullDisk::Refused(e)) => halka_cluster::answered(Err(e)),
            Some(FullDisk::Unsynced(e)) => {
                drop(apply().now_or_never());
                halka_cluster::answered(Err(e))
            }
        }
    }

    /// `ack` after the node's disk has taken its time, when it is slow. The write is
    /// visible at once; only its acknowledgement waits, as it would for an fsync.
    fn after_disk<T: Send + 'static>(&self, ack: ReplicaFuture<T>) -> ReplicaFuture<T> {
        match self.world.disk_delay(self.node) {
            None => ack,
            Some(delay) => halka_cluster::deferred(async move {
                tokio::time::sleep(delay).await;
                ack.await
            }),
        }
    }
}

impl Replica for Recording {
    fn id(&self) -> &NodeId {
        self.inner.id()
    }

    fn coordinate_write(&self, key: &Bytes, write: &Write) -> ReplicaFuture<Coordinated> {
        let applied = self.coordinate_write_deferred(key, write);
        halka_cluster::deferred(async move {
            let (coordinated, durable) = applied.await?;
            durable.await?;
            Ok(coordinated)
        })
    }

    fn coordinate_write_deferred(
        &self,
        key: &Bytes,
        write: &Write,
    ) -> ReplicaFuture<(Coordinated, ReplicaFuture<Durability>)> {
        let full = self.full_disk();
        if let Some(FullDisk::Refused(e)) = full {
            return halka_cluster::answered(Err(e));
        }
        // A local replica answers inline: the version exists once this returns.
        let answer = self.inner.coordinate_write_deferred(key, write).now_or_never();
        if let Some(Ok((coordinated, _))) = &answer
            && coordinated.applied()
        {
            self.note(key, &coordinated.record);
        }
        match answer {
            Some(Ok((record, durable))) => {
                let durable = self.durable_or_full(full, || durable);
                halka_cluster::answered(Ok((record, durable)))
            }
            Some(Err(e)) => halka_cluster::answered(Err(e)),
            None => halka_cluster::answered(Err(ReplicaError::Storage(
                "a local replica did not answer inline".into(),
            ))),
        }
    }

    fn merge(&self, key: &Bytes, record: &Arc<Record>) -> ReplicaFuture<Durability> {
        self.durable_or_full(self.full_disk(), || self.inner.merge(key, record))
    }

    fn get(&self, key: &Bytes) -> ReplicaFuture<Option<Arc<Record>>> {
        self.inner.get(key)
    }

    fn scan_range(&self, range: HashRange) -> ReplicaFuture<Vec<(Bytes, Arc<Record>)>> {
        self.inner.scan_range(range)
    }

    fn read_range(&self, range: HashRange) -> ReplicaFuture<halka_cluster::KeyPage> {
        self.inner.read_range(range)
    }

    fn drop_ranges(&self, ranges: Vec<HashRange>) -> ReplicaFuture<u64> {
        self.inner.drop_ranges(ranges)
    }

    fn transfer_status(&self, version: u64) -> ReplicaFuture<halka_cluster::ChangePhase> {
        self.inner.transfer_status(version)
    }

    fn membership(
        &self,
        request: halka_cluster::membership::MembershipRequest,
    ) -> ReplicaFuture<halka_cluster::membership::MembershipResponse> {
        self.inner.membership(request)
    }

    fn list_keys(&self, range: HashRange) -> ReplicaFuture<halka_cluster::KeyPage> {
        self.inner.list_keys(range)
    }

    fn digests(&self, range: HashRange, bits: u32) -> ReplicaFuture<Vec<u64>> {
        self.inner.digests(range, bits)
    }

    fn key_digests(&self, range: HashRange) -> ReplicaFuture<Vec<(Bytes, u64)>> {
        self.inner.key_digests(range)
    }

    fn get_many(&self, keys: Vec<Bytes>) -> ReplicaFuture<Vec<Option<Arc<Record>>>> {
        self.inner.get_many(keys)
    }

    fn merge_many(&self, entries: Vec<(Bytes, Arc<Record>)>) -> ReplicaFuture<()> {
        self.durable_or_full(self.full_disk(), || self.inner.merge_many(entries))
    }

    fn keep_hint(
        &self,
        owner: &NodeId,
        key: &Bytes,
        record: &Arc<Record>,
    ) -> ReplicaFuture<Durability> {
        self.durable_or_full(self.full_disk(), || self.inner.keep_hint(owner, key, record))
    }

    fn hinted(&self, keys: Vec<Bytes>) -> ReplicaFuture<Vec<bool>> {
        self.inner.hinted(keys)
    }
}

/// A value as the history shows it: a HyperLogLog (12 KiB of registers) as the registers
/// it has set, anything else as text.
fn shown(value: &[u8]) -> String {
    match halka_store::hll::Registers::decode(value) {
        Ok(registers) => format!("HYLL{:?}", registers.set()),
        Err(_) => String::from_utf8_lossy(value).into_owned(),
    }
}
