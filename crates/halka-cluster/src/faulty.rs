//! A replica wrapper that injects latency, errors and silence, driven by a seeded RNG so a
//! failing test replays exactly.

use crate::Coordinated;
use crate::replica::deferred;
use crate::{Durability, Replica, ReplicaError, ReplicaFuture};
use bytes::Bytes;
use halka_store::{HashRange, NodeId, Record, Write};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;

/// What can go wrong with each call, and how often.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Latency added to every call.
    pub fixed_delay: Duration,
    /// Extra latency, uniform in `0..=jitter`.
    pub jitter: Duration,
    /// Probability that a call fails with an error.
    pub error_rate: f64,
    /// Probability that a call never answers (the coordinator's deadline must catch it).
    pub silence_rate: f64,
}

impl FaultPlan {
    #[must_use]
    pub fn slow(delay: Duration) -> Self {
        Self { fixed_delay: delay, ..Self::default() }
    }

    #[must_use]
    pub fn down() -> Self {
        Self { error_rate: 1.0, ..Self::default() }
    }

    #[must_use]
    pub fn silent() -> Self {
        Self { silence_rate: 1.0, ..Self::default() }
    }
}

#[derive(Debug)]
enum Fate {
    Answer(Duration),
    Fail(Duration),
    Silence,
}

/// Wraps a replica and applies a [`FaultPlan`] to every call.
#[derive(Debug, Clone)]
pub struct FaultyReplica {
    inner: Arc<dyn Replica>,
    plan: Arc<Mutex<FaultPlan>>,
    rng: Arc<Mutex<SmallRng>>,
}

impl FaultyReplica {
    #[must_use]
    pub fn new(inner: Arc<dyn Replica>, plan: FaultPlan, seed: u64) -> Self {
        Self {
            inner,
            plan: Arc::new(Mutex::new(plan)),
            rng: Arc::new(Mutex::new(SmallRng::seed_from_u64(seed))),
        }
    }

    /// Changes the plan for subsequent calls (e.g. "this node just crashed").
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.plan.lock() = plan;
    }

    fn fate(&self) -> Fate {
        let plan = self.plan.lock().clone();
        let mut rng = self.rng.lock();
        let jitter = if plan.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(rng.random_range(0..=plan.jitter.as_nanos() as u64))
        };
        let delay = plan.fixed_delay + jitter;
        let roll: f64 = rng.random();
        if roll < plan.silence_rate {
            Fate::Silence
        } else if roll < plan.silence_rate + plan.error_rate {
            Fate::Fail(delay)
        } else {
            Fate::Answer(delay)
        }
    }

    fn wrap<T: Send + 'static>(&self, call: impl FnOnce() -> ReplicaFuture<T>) -> ReplicaFuture<T> {
        match self.fate() {
            Fate::Silence => deferred(futures::future::pending()),
            Fate::Fail(delay) => deferred(async move {
                tokio::time::sleep(delay).await;
                Err(ReplicaError::Unavailable("injected fault".into()))
            }),
            Fate::Answer(delay) if delay.is_zero() => call(),
            Fate::Answer(delay) => {
                let fut = call();
                deferred(async move {
                    tokio::time::sleep(delay).await;
                    fut.await
                })
            }
        }
    }
}

impl Replica for FaultyReplica {
    fn id(&self) -> &NodeId {
        self.inner.id()
    }

    fn coordinate_write(&self, key: &Bytes, write: &Write) -> ReplicaFuture<Coordinated> {
        self.wrap(|| self.inner.coordinate_write(key, write))
    }

    fn coordinate_write_deferred(
        &self,
        key: &Bytes,
        write: &Write,
    ) -> ReplicaFuture<(Coordinated, ReplicaFuture<Durability>)> {
        self.wrap(|| self.inner.coordinate_write_deferred(key, write))
    }

    fn merge(&self, key: &Bytes, record: &Arc<Record>) -> ReplicaFuture<Durability> {
        self.wrap(|| self.inner.merge(key, record))
    }

    fn get(&self, key: &Bytes) -> ReplicaFuture<Option<Arc<Record>>> {
        self.wrap(|| self.inner.get(key))
    }

    fn scan_range(&self, range: HashRange) -> ReplicaFuture<Vec<(Bytes, Arc<Record>)>> {
        self.inner.scan_range(range)
    }

    fn read_range(&self, range: HashRange) -> ReplicaFuture<crate::KeyPage> {
        self.wrap(|| self.inner.read_range(range))
    }

    fn drop_ranges(&self, ranges: Vec<HashRange>) -> ReplicaFuture<u64> {
        self.inner.drop_ranges(ranges)
    }

    fn transfer_status(&self, version: u64) -> ReplicaFuture<crate::ChangePhase> {
        self.wrap(|| self.inner.transfer_status(version))
    }

    fn transfer_progress(&self) -> ReplicaFuture<crate::Progress> {
        self.wrap(|| self.inner.transfer_progress())
    }

    fn membership(
        &self,
        request: crate::membership::MembershipRequest,
    ) -> ReplicaFuture<crate::membership::MembershipResponse> {
        self.wrap(|| self.inner.membership(request))
    }

    fn list_keys(&self, range: HashRange) -> ReplicaFuture<crate::KeyPage> {
        self.wrap(|| self.inner.list_keys(range))
    }

    fn digests(&self, range: HashRange, bits: u32) -> ReplicaFuture<Vec<u64>> {
        self.wrap(|| self.inner.digests(range, bits))
    }

    fn key_digests(&self, range: HashRange) -> ReplicaFuture<Vec<(Bytes, u64)>> {
        self.wrap(|| self.inner.key_digests(range))
    }

    fn get_many(&self, keys: Vec<Bytes>) -> ReplicaFuture<Vec<Option<Arc<Record>>>> {
        self.wrap(|| self.inner.get_many(keys))
    }

    fn merge_many(&self, entries: Vec<(Bytes, Arc<Record>)>) -> ReplicaFuture<()> {
        self.wrap(|| self.inner.merge_many(entries))
    }

    fn keep_hint(
        &self,
        owner: &NodeId,
        key: &Bytes,
        record: &Arc<Record>,
    ) -> ReplicaFuture<Durability> {
        self.wrap(|| self.inner.keep_hint(owner, key, record))
    }

    fn hinted(&self, keys: Vec<Bytes>) -> ReplicaFuture<Vec<bool>> {
        self.wrap(|| self.inner.hinted(keys))
    }
}
