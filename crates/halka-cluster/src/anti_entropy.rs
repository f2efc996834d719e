//! Anti-entropy: replicas compare digest trees and exchange the records on which they
//! differ, so every replica converges whatever it missed — writes during a crash, hints
//! dropped at their bound, a lost disk (Dynamo §4.7).
//!
//! The hash space is walked a *stretch* at a time (`2^-STRETCH_BITS` of it, 64 blocks).
//! For each other replica that co-owns a block in the stretch, one exchange:
//! 1. both sides' block digests for the stretch (one call each);
//! 2. for each co-owned block whose digests differ, its leaf digests;
//! 3. for each run of differing leaves, the keys with their entry digests;
//! 4. each key whose digest differs, or that one side lacks, is repaired: the peer's
//!    record is merged here and the merged record sent to the peer.
//!
//! Records are joins, so a repair can never lose a newer write, whichever side is
//! behind, and a write racing an exchange at worst causes one needless repair. Repairs
//! are paced to `max_keys_per_second`. Keys whose owners do not include both sides (a
//! block that straddles an ownership boundary under a ring placement) are never sent.

use crate::RepairBudget;
use crate::range_sync::{KeyDiff, blocks, diff_keys, differing_runs};
use crate::telemetry;
use crate::view::ViewHandle;
use crate::{Replica, ReplicaError, View};
use bytes::Bytes;
use futures::StreamExt;
use halka_ring::NodeIdx;
use halka_store::digests::{BLOCK_BITS, LEAF_BITS};
use halka_store::{HashRange, NodeId, Record};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// log2 of the number of stretches the hash space is walked in.
pub const STRETCH_BITS: u32 = 6;

/// Keys repaired in one exchange beyond which the next starts without a pause.
const LARGE_REPAIR: u64 = 256;

/// Differing blocks repaired at once within one exchange.
const BLOCKS_IN_FLIGHT: usize = 8;

/// Keys asked for or sent in one batch call.
const KEYS_PER_BATCH: usize = 256;

/// How anti-entropy runs.
#[derive(Debug, Clone)]
pub struct AntiEntropyConfig {
    /// Pause after an exchange that found nothing to repair (after one that did, the
    /// next starts at once, paced by `max_keys_per_second`). With 64 stretches and two
    /// co-owners each (three nodes), 100 ms compares the whole node with both others
    /// every 13 s.
    pub interval: Duration,
    /// Records repaired per second at most (sent and taken together).
    pub max_keys_per_second: u32,
    /// Records repaired per second at most while this node serves clients (see
    /// [`RepairBudget`]): repairs compete with their requests for the same
    /// cores and disks, so a refill slows down rather than their latencies go up.
    pub busy_keys_per_second: u32,
    /// Deadline for one call to the other replica.
    pub timeout: Duration,
    /// The tombstone grace when tombstones are collected: a tombstone older than this is
    /// not copied to a replica that holds nothing for the key (see
    /// `tombstones::collectible`).
    pub tombstone_grace: Option<Duration>,
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            max_keys_per_second: 50_000,
            busy_keys_per_second: 1_500,
            timeout: Duration::from_secs(5),
            tombstone_grace: None,
        }
    }
}

/// What one exchange found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Blocks both sides own, compared.
    pub blocks: usize,
    /// Keys whose records differed (or that one side lacked).
    pub divergent: u64,
    /// Records taken from the peer plus records sent to it.
    pub repaired: u64,
}

/// What anti-entropy has done since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AntiEntropyStats {
    pub exchanges: u64,
    pub failed_exchanges: u64,
    pub keys_divergent: u64,
    pub keys_repaired: u64,
    /// Full walks of the hash space completed.
    pub passes: u64,
    /// Seconds since the stretch compared longest ago was last compared with all of its
    /// co-owners (since start, for one never compared).
    pub oldest_uncompared_secs: u64,
}

/// This node's side of anti-entropy.
#[derive(Debug)]
pub struct AntiEntropy {
    local: NodeId,
    config: AntiEntropyConfig,
    exchanges: AtomicU64,
    failed: AtomicU64,
    divergent: AtomicU64,
    repaired: AtomicU64,
    passes: AtomicU64,
    started: Instant,
    /// When each stretch was last compared with every co-owner.
    compared: parking_lot::Mutex<Vec<Option<Instant>>>,
    /// This node's repair budget, shared with its RPC server (see `repair_budget`).
    budget: Arc<RepairBudget>,
    /// Wall clock in microseconds, for the age of tombstones.
    clock: crate::Clock,
}

impl AntiEntropy {
    /// Anti-entropy for the replica of `local` in the coordinator's view.
    #[must_use]
    pub fn new(local: NodeId, config: AntiEntropyConfig) -> Arc<Self> {
        Self::with_clock(local, config, crate::Clock::system())
    }

    /// [`AntiEntropy::new`] with another clock for the age of tombstones (microseconds),
    /// the coordinators' (see `Coordinator::with_clock`).
    #[must_use]
    pub fn with_clock(local: NodeId, config: AntiEntropyConfig, clock: crate::Clock) -> Arc<Self> {
        let budget = Arc::new(RepairBudget::new(
            config.max_keys_per_second,
            config.busy_keys_per_second,
            None,
        ));
        Self::assembled(local, config, clock, budget)
    }

    /// Anti-entropy with its clock and the node's repair budget (see `NodeSpec`).
    #[must_use]
    pub fn assembled(
        local: NodeId,
        config: AntiEntropyConfig,
        clock: crate::Clock,
        budget: Arc<RepairBudget>,
    ) -> Arc<Self> {
        Arc::new(Self {
            local,
            config,
            exchanges: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            divergent: AtomicU64::new(0),
            repaired: AtomicU64::new(0),
            passes: AtomicU64::new(0),
            started: Instant::now(),
            compared: parking_lot::Mutex::new(vec![None; 1 << STRETCH_BITS]),
            budget,
            clock,
        })
    }

    #[must_use]
    pub fn stats(&self) -> AntiEntropyStats {
        let oldest = self.compared.lock().iter().map(|c| c.unwrap_or(self.started)).min();
        AntiEntropyStats {
            exchanges: self.exchanges.load(Ordering::Relaxed),
            failed_exchanges: self.failed.load(Ordering::Relaxed),
            keys_divergent: self.divergent.load(Ordering::Relaxed),
            keys_repaired: self.repaired.load(Ordering::Relaxed),
            passes: self.passes.load(Ordering::Relaxed),
            oldest_uncompared_secs: oldest.map_or(0, |t| t.elapsed().as_secs()),
        }
    }

    /// Walks the hash space stretch by stretch until `shutdown`, one exchange every
    /// `interval` (sooner behind an exchange that repaired: the pacer sets the pace then).
    pub async fn run(self: Arc<Self>, views: ViewHandle, shutdown: CancellationToken) {
        // Nodes start their walks at different stretches: two nodes repairing a third
        // would otherwise send it the same keys at the same time.
        let stretches = 1_u64 << STRETCH_BITS;
        let first = halka_ring::key_hash(self.local.as_str().as_bytes()) % stretches;
        let mut stretch = first;
        loop {
            let view = views.view();
            let range = HashRange::partition(stretch, STRETCH_BITS);
            let mut complete = true;
            let peers = self.co_owners(&view, range);
            if view.layout().is_none() {
                // No layout yet (a node settling its first, or waiting to be joined): it
                // owns nothing, and a walk over nothing is no pass.
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.config.interval) => continue,
                }
            }
            if peers.is_empty() {
                // Nothing to compare here (a cluster of one): idle as if exchanging.
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.config.interval) => {}
                }
            }
            for peer in peers {
                // A co-owner the detector convicts would only time out: it is not asked,
                // and the stretch stays uncompared until it is back (the pause below
                // still comes, so a walk past members that are all down idles).
                let exchange = if views.liveness().convicted(view.replica(peer).id()) {
                    None
                } else {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        e = self.exchange(&view, range, view.replica(peer)) => Some(e),
                    }
                };
                match exchange {
                    // Behind a large repair the next stretch probably differs too: go on
                    // at once, at the pace the pacer sets. (A few keys differ under any
                    // write load, while their writes are in flight: those wait.)
                    Some(Ok(done)) if done.divergent >= LARGE_REPAIR => continue,
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => complete = false,
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.config.interval) => {}
                }
            }
            if complete {
                self.compared.lock()[stretch as usize] = Some(Instant::now());
            }
            metrics::gauge!(telemetry::AAE_OLDEST).set(self.stats().oldest_uncompared_secs as f64);
            stretch = (stretch + 1) % stretches;
            if stretch == first {
                self.passes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Other members that own some block of `range` together with this node and whose
    /// exchanges with it this node runs: each pair is compared by its member with the
    /// lower id (an exchange repairs both sides, so once is enough).
    fn co_owners(&self, view: &View, range: HashRange) -> Vec<NodeIdx> {
        let mut peers = Vec::new();
        let Some(me) = self.local_index(view) else { return peers };
        for block in blocks(range) {
            let owners = view.owners(block.first);
            if owners.contains(&me) {
                for &o in owners.iter() {
                    let runs_it = view.replica(o).id() > &self.local;
                    if o != me && runs_it && !peers.contains(&o) {
                        peers.push(o);
                    }
                }
            }
        }
        peers.sort_unstable();
        peers
    }

    fn local_index(&self, view: &View) -> Option<NodeIdx> {
        index_of(view, &self.local)
    }

    /// Compares `range` (a stretch or a block) with `peer` and repairs every key on which
    /// the two differ, in both directions.
    ///
    /// # Errors
    /// A call to either side failed or timed out; repairs made before it stand.
    pub async fn exchange(
        &self,
        view: &View,
        range: HashRange,
        peer: &Arc<dyn Replica>,
    ) -> Result<Exchange, ReplicaError> {
        let result = self.compare(view, range, peer).await;
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        metrics::counter!(telemetry::AAE_EXCHANGES, "result" => outcome).increment(1);
        match &result {
            Ok(done) => {
                self.exchanges.fetch_add(1, Ordering::Relaxed);
                if done.divergent > 0 {
                    tracing::debug!(peer = %peer.id(), ?range, ?done, "anti-entropy repaired");
                }
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %peer.id(), error = %e, "anti-entropy exchange failed");
            }
        }
        result
    }

    async fn compare(
        &self,
        view: &View,
        range: HashRange,
        peer: &Arc<dyn Replica>,
    ) -> Result<Exchange, ReplicaError> {
        let Some(me) = self.local_index(view) else { return Ok(Exchange::default()) };
        let local = Arc::clone(view.replica(me));
        let Some(peer_idx) = index_of(view, peer.id()) else { return Ok(Exchange::default()) };
        let pair = Pair { view, me, peer_idx, local: &local, peer };
        let shared: Vec<(usize, HashRange)> =
            blocks(range).enumerate().filter(|(_, block)| pair.both_own(block.first)).collect();
        let mut done = Exchange { blocks: shared.len(), ..Exchange::default() };
        if shared.is_empty() {
            return Ok(done);
        }
        let (mine, theirs) = self.both(&pair, |r| r.digests(range, BLOCK_BITS)).await?;
        let differing = shared.into_iter().filter(|(i, _)| mine.get(*i) != theirs.get(*i));
        // Several blocks at once: each costs a few round trips, mostly waiting.
        let mut repairs = futures::stream::iter(differing)
            .map(|(_, block)| self.repair_block(&pair, block))
            .buffer_unordered(BLOCKS_IN_FLIGHT);
        while let Some(result) = repairs.next().await {
            let (d, r) = result?;
            done.divergent += d;
            done.repaired += r;
        }
        Ok(done)
    }

    /// Compares the leaves of one block and repairs the keys of those that differ.
    async fn repair_block(
        &self,
        pair: &Pair<'_>,
        block: HashRange,
    ) -> Result<(u64, u64), ReplicaError> {
        let (mine, theirs) = self.both(pair, |r| r.digests(block, LEAF_BITS)).await?;
        let mut done = (0, 0);
        for listing in differing_runs(block, &mine, &theirs) {
            let (d, r) = self.repair_listing(pair, listing).await?;
            done = (done.0 + d, done.1 + r);
        }
        Ok(done)
    }

    /// Lists the keys of `range` on both sides and repairs those that differ.
    async fn repair_listing(
        &self,
        pair: &Pair<'_>,
        range: HashRange,
    ) -> Result<(u64, u64), ReplicaError> {
        let (mine, theirs) = self.both(pair, |r| r.key_digests(range)).await?;
        let KeyDiff { take, send, absent_here, absent_there, divergent } =
            diff_keys(mine, theirs, |hash| pair.both_own(hash));
        if divergent == 0 {
            return Ok((0, 0));
        }
        self.divergent.fetch_add(divergent, Ordering::Relaxed);
        metrics::counter!(telemetry::AAE_DIVERGENT).increment(divergent);
        self.budget.take(divergent).await;
        let taken = self.copy(pair.peer, pair.local, take, &HashMap::new(), &absent_here).await?;
        let mut repaired = taken.len() as u64;
        // Where theirs already covered ours, the join is theirs: nothing to send back.
        repaired +=
            self.copy(pair.local, pair.peer, send, &taken, &absent_there).await?.len() as u64;
        self.repaired.fetch_add(repaired, Ordering::Relaxed);
        metrics::counter!(telemetry::AAE_REPAIRED).increment(repaired);
        Ok((divergent, repaired))
    }

    /// Reads `keys` from `from` and merges them into `to`, a batch at a time, except
    /// records `to` is known to hold already (`held`), and tombstones old enough to be
    /// collected for keys `to` holds nothing for (`absent`). Returns what was merged.
    async fn copy(
        &self,
        from: &Arc<dyn Replica>,
        to: &Arc<dyn Replica>,
        mut keys: Vec<Bytes>,
        held: &HashMap<Bytes, Arc<Record>>,
        absent: &HashSet<Bytes>,
    ) -> Result<HashMap<Bytes, Arc<Record>>, ReplicaError> {
        let cutoff = crate::tombstones::cutoff(self.clock.now_us(), self.config.tombstone_grace);
        let mut copied = HashMap::new();
        while !keys.is_empty() {
            let ask: Vec<Bytes> = keys.iter().take(KEYS_PER_BATCH).cloned().collect();
            let records = self.call(from.get_many(ask.clone())).await?;
            if records.is_empty() {
                return Err(ReplicaError::Unavailable("answered a batch read with nothing".into()));
            }
            keys.drain(..records.len().min(ask.len()));
            let entries: Vec<(Bytes, Arc<Record>)> = ask
                .into_iter()
                .zip(records)
                .filter_map(|(k, r)| r.map(|r| (k, r)))
                .filter(|(k, r)| !held.get(k).is_some_and(|h| h.same_as(r)))
                .filter(|(k, r)| !(absent.contains(k) && crate::tombstones::collectible(r, cutoff)))
                .collect();
            if entries.is_empty() {
                continue;
            }
            self.call(to.merge_many(entries.clone())).await?;
            copied.extend(entries);
        }
        Ok(copied)
    }

    /// The same question to both sides, at once.
    async fn both<T, F>(
        &self,
        pair: &Pair<'_>,
        ask: impl Fn(&Arc<dyn Replica>) -> F,
    ) -> Result<(T, T), ReplicaError>
    where
        F: Future<Output = Result<T, ReplicaError>>,
    {
        let (mine, theirs) = tokio::join!(self.call(ask(pair.local)), self.call(ask(pair.peer)));
        Ok((mine?, theirs?))
    }

    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, ReplicaError>>,
    ) -> Result<T, ReplicaError> {
        let timeout = self.config.timeout;
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(ReplicaError::Timeout(timeout.as_millis() as u64)))
    }
}

/// The index of member `id` in `view`.
fn index_of(view: &View, id: &NodeId) -> Option<NodeIdx> {
    let i = view.replicas().iter().position(|r| r.id() == id)?;
    NodeIdx::try_from(i).ok()
}

/// This node and one peer, within one view.
struct Pair<'a> {
    view: &'a View,
    me: NodeIdx,
    peer_idx: NodeIdx,
    local: &'a Arc<dyn Replica>,
    peer: &'a Arc<dyn Replica>,
}

impl Pair<'_> {
    fn both_own(&self, hash: u64) -> bool {
        let owners = self.view.owners(hash);
        owners.contains(&self.me) && owners.contains(&self.peer_idx)
    }
}
