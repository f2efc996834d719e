//! The quorum coordinator.
//!
//! A write goes first to one *coordinating* replica, which numbers the new version (its
//! dot) against what it already holds — that is what keeps dotted version vectors exact —
//! and returns the resulting record. The coordinator then sends that record to the other
//! replicas at once and returns at the W-th acknowledgement, counting the coordinating
//! replica as one. A read asks replicas as [`ReadFanout`] says — all N at once, or R of
//! them with another asked whenever one fails or is slow — and returns at the R-th answer
//! with the merge of the answers. Either returns at once with a [`QuorumError`] as soon as
//! success has become impossible.
//!
//! Whatever is still in flight when a request returns is handed to [`Background`], bounded
//! by the per-call deadline, so it finishes (or times out) without holding up the client
//! and without outliving the deadline. Reads compare every answer — including late ones —
//! with the merged record and write the merge back to stale replicas (read repair).

use crate::Clock;
use crate::error::check_quorum;
use crate::fanout::{Fanout, call_one};
use crate::quorum::{Next, Tally};
use crate::suspects::Suspects;
use crate::telemetry;
use crate::view::{View, ViewGuard};
use crate::{Background, ClusterError, Durability, Handoff, QuorumError, ReplicaError};
use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::StreamExt;
use halka_ring::{NodeIdx, PreferenceList};
use halka_store::{Change, Condition, Limits, NodeId, Outcome, Record, VersionVector, Write};
use smallvec::SmallVec;
use std::sync::Arc;
use std::time::Duration;

/// Coordinator settings, with the defaults a new cluster gets.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Replication factor N.
    pub replication: usize,
    /// Deadline for each replica call.
    pub timeout: Duration,
    pub limits: Limits,
    /// Background tasks (stragglers, read repair) in flight at most.
    pub max_background: usize,
    /// This process's node, if it is a member: when it holds a key it coordinates the
    /// key's writes itself, saving a network round trip before the fan-out, and it is the
    /// first replica a read asks.
    pub local_node: Option<NodeId>,
    /// Which replicas a read asks.
    pub reads: ReadFanout,
    /// Let members beyond a key's owners stand in for owners that do not answer a write
    /// (sloppy quorum), keeping it as a hint for them.
    pub stand_ins: bool,
    /// The tombstone grace when tombstones are collected: read repair does not hand a
    /// tombstone older than this to a replica that holds nothing for the key (see
    /// `tombstones::collectible`).
    pub tombstone_grace: Option<Duration>,
    /// How long a write whose W acknowledgements are in waits for the key's first owner
    /// still to answer (see [`WriteRequest::at_first_owner`]). Past it, the owner is
    /// suspected until it answers, so the writes it would coordinate go to the next
    /// owner — one that acknowledged this write — and a hung first owner costs one such
    /// wait, not a deadline.
    pub first_owner_wait: Duration,
}

/// Which replicas a read asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFanout {
    /// All N at once; the read returns at the R-th answer and the rest are still compared
    /// (and repaired) when they arrive. The seed's design, and the cheapest when replicas
    /// are in-process: their answers are already there.
    All,
    /// R replicas first — this node when it holds the key, then preference order, recently
    /// failed replicas last — and one more each time an asked replica fails, or when they
    /// have not all answered after `hedge`. Saves N − R requests per read over the
    /// network; only the replicas that answered are compared and repaired.
    Quorum { hedge: Duration },
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            replication: 3,
            timeout: Duration::from_secs(1),
            limits: Limits::default(),
            max_background: 4096,
            local_node: None,
            reads: ReadFanout::All,
            stand_ins: true,
            tombstone_grace: None,
            first_owner_wait: Duration::from_millis(5),
        }
    }
}

/// Replicas that acknowledged a write; inline up to N = 5, so results allocate nothing.
pub type Acks = SmallVec<[NodeId; 5]>;

/// Replicas' answers to a read, in arrival order; inline up to N = 5.
pub type Replies = SmallVec<[(NodeId, Option<Arc<Record>>); 5]>;

/// What a successful write reports: its receipt.
#[derive(Debug, Clone)]
pub struct PutResult {
    /// Causal context of the new record; pass it back to replace what this write produced.
    pub context: VersionVector,
    /// Nodes that acknowledged before the call returned, owners and stand-ins, in order.
    pub acked: Acks,
    /// The stand-ins among them, each with the owner it keeps the write for.
    pub stand_ins: SmallVec<[(NodeId, NodeId); 2]>,
    /// Those of `acked` that fsynced the write before acknowledging it (sync policy
    /// `always`): the copies that survive their machine losing power. The others hold it
    /// as their sync policy holds writes.
    pub synced: Acks,
    /// What the coordinating replica made of the write. When it refused it (a condition
    /// did not hold, say), nothing was written and `acked` names that replica alone.
    pub outcome: Outcome,
}

/// A client write before the coordinator stamps it: what to change, against which
/// context, under which condition.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub change: Change,
    /// The context the client read; `None` replaces whatever the coordinating replica
    /// holds (plain `SET`).
    pub context: Option<VersionVector>,
    /// Checked at the coordinating replica (see [`WriteRequest::at_first_owner`]).
    pub condition: Condition,
    /// Report the key's previous value in [`Outcome::previous`].
    pub want_previous: bool,
    /// The media type a put stores with its value (see `Write::content_type`).
    pub content_type: Option<Box<str>>,
}

impl WriteRequest {
    /// An unconditional change against `context`.
    #[must_use]
    pub fn new(change: Change, context: Option<VersionVector>) -> Self {
        Self {
            change,
            context,
            condition: Condition::Always,
            want_previous: false,
            content_type: None,
        }
    }

    /// Whether the write depends on what the coordinating replica holds — a condition, a
    /// previous value to report, a change derived from the value (`INCR`, `EXPIRE`,
    /// `APPEND`). Such writes are coordinated by the key's first owner that answers: the
    /// same replica whichever node takes the request, and one that holds every such
    /// write before it acknowledges it. So concurrent conditional writes have one winner
    /// and each sees the ones before it, while that replica is up. Plain stores and
    /// deletes are coordinated by this node when it is an owner, saving a hop; they reach
    /// the first owner in their fan-out.
    #[must_use]
    pub fn at_first_owner(&self) -> bool {
        self.condition != Condition::Always
            || self.want_previous
            || !matches!(
                self.change,
                Change::Put { expiry: halka_store::Expiry::Never | halka_store::Expiry::At(_), .. }
                    | Change::Delete
            )
    }
}

/// How many acknowledgements a write waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteQuorum {
    /// Owner slots filled, by the owner or by a stand-in for it.
    pub w: usize,
    /// Slots filled by owners themselves (0: stand-ins may fill every slot but the
    /// coordinating owner's).
    pub pw: usize,
}

/// `pw` must not exceed `w`.
///
/// # Errors
/// [`ClusterError::OwnerQuorum`].
pub fn check_owner_quorum(pw: usize, w: usize) -> Result<(), ClusterError> {
    if pw > w {
        return Err(ClusterError::OwnerQuorum { pw, w });
    }
    Ok(())
}

/// What a successful read reports.
#[derive(Debug, Clone)]
pub struct GetResult {
    /// The first R answers, in arrival order: each replica's record (`None` if it had
    /// nothing). The seed project's map of replica → value.
    pub replies: Replies,
    /// The merge of the answers.
    pub record: Arc<Record>,
    /// The coordinator's clock when the read completed: what expiry is judged by.
    pub now_us: u64,
}

impl GetResult {
    /// Live sibling values of the merged record (empty when absent, deleted or expired).
    pub fn values(&self) -> impl Iterator<Item = &Bytes> {
        self.record.values_at(self.now_us)
    }

    /// The key's value for clients that want exactly one: the last writer's (for a
    /// counter, its joined value); `None` when absent, deleted or expired.
    #[must_use]
    pub fn value(&self) -> Option<Bytes> {
        self.record.value_at(self.now_us)
    }

    /// When the value expires (microseconds), if it lives and has an expiry.
    #[must_use]
    pub fn expires_at_us(&self) -> Option<u64> {
        self.record.live_winner(self.now_us).and_then(|v| v.expires_at_us)
    }

    /// The media type the winning value was stored with, if any.
    #[must_use]
    pub fn content_type(&self) -> Option<&str> {
        self.record.live_winner(self.now_us).and_then(|v| v.content_type.as_deref())
    }

    /// Whether concurrent writes left more than one live value for a client to choose
    /// from (a counter's concurrent states join into one value, so never).
    #[must_use]
    pub fn has_siblings(&self) -> bool {
        let counter = self.record.live_winner(self.now_us).is_some_and(|v| v.counter.is_some());
        !counter && self.values().nth(1).is_some()
    }

    /// The causal context to pass to a write that resolves these siblings.
    #[must_use]
    pub fn context(&self) -> &VersionVector {
        self.record.context()
    }
}

/// Quorum reads and writes over the current [`View`].
#[derive(Debug)]
pub struct Coordinator {
    view: ArcSwap<View>,
    config: CoordinatorConfig,
    background: Background,
    clock: Clock,
    /// Shared with background stragglers, whose late answers count too.
    suspects: Arc<Suspects>,
    /// Where writes a replica missed are kept for it; `None` keeps none.
    handoff: Option<Arc<Handoff>>,
}

impl Coordinator {
    #[must_use]
    pub fn new(view: View, config: CoordinatorConfig) -> Self {
        let background = Background::new(config.max_background);
        Self {
            view: ArcSwap::from_pointee(view),
            config,
            background,
            clock: Clock::system(),
            suspects: Arc::default(),
            handoff: None,
        }
    }

    /// Keeps writes that a replica did not acknowledge as hints in `handoff`, which
    /// delivers them when the replica answers again (see [`Handoff::run`]).
    #[must_use]
    pub fn with_handoff(mut self, handoff: Arc<Handoff>) -> Self {
        self.handoff = Some(handoff);
        self
    }

    /// The hints this coordinator keeps, if it keeps any.
    #[must_use]
    pub fn handoff(&self) -> Option<&Arc<Handoff>> {
        self.handoff.as_ref()
    }

    /// Keeps `record` for each replica in `missed`.
    fn keep_hints<'a>(
        &self,
        missed: impl IntoIterator<Item = &'a NodeId>,
        key: &Bytes,
        record: &Arc<Record>,
    ) {
        if let Some(handoff) = &self.handoff {
            for owner in missed {
                handoff.keep(owner, key, record);
            }
        }
    }

    /// Replaces the timestamp source (microseconds) used for last-writer-wins ordering.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock timestamps come from, in microseconds (see [`Coordinator::with_clock`]).
    #[must_use]
    pub fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    #[must_use]
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The current membership view.
    #[must_use]
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    #[must_use]
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// Installs a new view and returns the previous one (not yet retired).
    pub fn swap_view(&self, view: View) -> Arc<View> {
        self.view.swap(Arc::new(view))
    }

    /// The current view, entered: it cannot be retired while the guard lives.
    fn enter(&self) -> ViewGuard {
        loop {
            if let Some(guard) = View::enter(self.view.load()) {
                return guard;
            }
        }
    }

    fn check_write(&self, view: &View, key: &[u8], w: usize) -> Result<(), ClusterError> {
        check_quorum("w", w, self.config.replication)?;
        if w > view.width() {
            return Err(ClusterError::TooFewNodes { name: "w", given: w, nodes: view.width() });
        }
        self.config.limits.check_key(key)?;
        Ok(())
    }

    /// Writes `value` (or a tombstone for `None`) to `key` and waits for `w`
    /// acknowledgements. With a `context`, the write replaces exactly the versions that
    /// context covers; without one it replaces whatever the coordinating replica holds
    /// (plain `SET` semantics), and concurrent versions elsewhere survive as siblings.
    ///
    /// # Errors
    /// Bad `w` or sizes (before any I/O), or [`QuorumError`] naming the failed replicas.
    pub async fn write(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        context: Option<VersionVector>,
        w: usize,
    ) -> Result<PutResult, ClusterError> {
        self.write_with(key, value, context, WriteQuorum { w, pw: 0 }).await
    }

    /// [`Coordinator::write`] with the full quorum: `w` owner slots filled, by owners or
    /// by stand-ins keeping the write for owners that do not answer (sloppy quorum),
    /// `pw` of them by the owners themselves.
    ///
    /// # Errors
    /// As [`Coordinator::write`]; also `pw` above `w`.
    pub async fn write_with(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        context: Option<VersionVector>,
        quorum: WriteQuorum,
    ) -> Result<PutResult, ClusterError> {
        let change = match value {
            Some(value) => Change::Put { value, expiry: halka_store::Expiry::Never },
            None => Change::Delete,
        };
        self.apply(key, WriteRequest::new(change, context), quorum).await
    }

    /// Applies `request` to `key` at its coordinating replica and waits for the quorum:
    /// every kind of write (`SET` with expiry, `INCR`, `EXPIRE`, `SET NX`…) goes through
    /// here. A write the coordinating replica refuses returns at once, with the refusal in
    /// [`PutResult::outcome`].
    ///
    /// # Errors
    /// As [`Coordinator::write`]; also `pw` above `w`.
    pub async fn apply(
        &self,
        key: Bytes,
        request: WriteRequest,
        quorum: WriteQuorum,
    ) -> Result<PutResult, ClusterError> {
        let WriteQuorum { w, pw } = quorum;
        let view = self.enter();
        self.check_write(&view, &key, w)?;
        check_owner_quorum(pw, w)?;
        let at_first_owner = request.at_first_owner();
        let retriable = request.change.is_idempotent();
        let mut write = Write::new(request.change, request.context, self.timestamp());
        write.condition = request.condition;
        write.want_previous = request.want_previous;
        write.content_type = request.content_type;
        if let Some(v) = write.payload() {
            self.config.limits.check_value(v)?;
        }
        let (owners, healthy) = self.owners_first(&view, &key);
        let first_owner = owners.first().map(|&i| view.replica(i).id().clone());
        let preference =
            if at_first_owner { owners } else { self.local_first(&view, owners, healthy) };
        prefetch(&view, &preference, &key);
        let n = preference.len();
        let mut tally = Tally::new(preference.iter().map(|&i| view.replica(i).id().clone()), w, pw);
        let mut stand_ins = StandIns::new(self.config.stand_ins);

        // The coordinating replica: the first owner in preference order that answers. It
        // answers once the write is applied; its durability is awaited alongside the other
        // replicas' writes, so its fsync overlaps theirs. Stand-ins never coordinate.
        let timeout = self.config.timeout;
        let mut coordinated = None;
        let mut skipped = Vec::new();
        // Every owner is tried: stand-ins may fill the slots of those that fail here.
        for (pos, &idx) in preference.iter().enumerate() {
            let replica = view.replica(idx);
            let call = replica.coordinate_write_deferred(&key, &write);
            match call_one(replica.id().clone(), call, timeout).await {
                (id, Ok((answer, _))) if !answer.applied() => {
                    // Refused: nothing was written, so there is nothing to replicate.
                    self.suspects.clear(&id);
                    return Ok(PutResult {
                        context: answer.record.context().clone(),
                        acked: std::iter::once(id).collect(),
                        stand_ins: SmallVec::new(),
                        synced: SmallVec::new(),
                        outcome: answer.outcome,
                    });
                }
                (id, Ok((answer, durable))) => {
                    self.suspects.clear(&id);
                    coordinated = Some((pos, id, answer, durable));
                    break;
                }
                (id, Err(e)) => {
                    self.suspects.suspect(&id);
                    // A change that must not apply twice (`INCR`) is not retried on the
                    // next owner once this one may have applied it: the client hears
                    // of the failure instead, as from Redis after a timeout.
                    let maybe_applied =
                        matches!(e, ReplicaError::Timeout(_) | ReplicaError::Lost(_));
                    tally.failed_before(&id, e);
                    skipped.push(id);
                    if maybe_applied && !retriable {
                        break;
                    }
                }
            }
        }
        // The first owner's answer is awaited too, so writes that depend on the stored
        // value, which it coordinates, see this one once it is acknowledged. One that
        // already failed here is not.
        if let Some(first) = first_owner
            && coordinated.as_ref().is_some_and(|(_, id, _, _)| *id != first)
            && !skipped.contains(&first)
        {
            tally.awaiting(first);
        }
        let Some((pos, coordinator, answer, durable)) = coordinated else {
            let failures = std::mem::take(&mut tally.failures);
            return Err(self.quorum_failed("write", w, (0, 0), n, failures));
        };
        let record = answer.record;
        // Replicas skipped as coordinating replica hold none of this write.
        self.keep_hints(skipped.iter(), &key, &record);
        let mut fanout = Fanout::new(timeout);
        fanout.start(coordinator, durable);
        // Replicas after the coordinator receive the record; those before it already failed.
        for &idx in &preference[pos + 1..] {
            let replica = view.replica(idx);
            fanout.start(replica.id().clone(), replica.merge(&key, &record));
        }
        for owner in &skipped {
            stand_ins.engage(&view, owner, &key, &record, &mut tally, &mut fanout);
        }
        // Every answer, before or after the client's, is noted the same way.
        let mut note = self.hinter(&key, &record);
        // When the wait for the first owner alone ends (armed once W is met).
        let mut waited = None;
        loop {
            match tally.next() {
                Next::Done => break,
                Next::Failed => {
                    let (_, in_flight) = tally.progress();
                    let (op, required, succeeded) = tally.shortfall();
                    let failures = std::mem::take(&mut tally.failures);
                    self.finish_in_background(fanout, view, note);
                    return Err(self.quorum_failed(
                        op,
                        required,
                        (succeeded, in_flight),
                        n,
                        failures,
                    ));
                }
                Next::Wait => {}
            }
            let answer = match tally.only_awaiting().cloned() {
                None => fanout.next().await,
                Some(first) => {
                    let at = *waited.get_or_insert_with(|| {
                        tokio::time::Instant::now() + self.config.first_owner_wait
                    });
                    tokio::select! {
                        biased;
                        answer = fanout.next() => answer,
                        () = tokio::time::sleep_until(at) => {
                            self.suspects.suspect(&first);
                            tally.stop_awaiting();
                            continue;
                        }
                    }
                }
            };
            let Some((id, result)) = answer else { break };
            note(&view, id.clone(), result.clone());
            if let Some(owner) = tally.answer(&id, result) {
                stand_ins.engage(&view, &owner, &key, &record, &mut tally, &mut fanout);
            }
        }
        if tally.next() != Next::Done {
            let (filled, _) = tally.progress();
            let failures = std::mem::take(&mut tally.failures);
            return Err(self.quorum_failed("write", w, (filled, 0), n, failures));
        }
        self.finish_in_background(fanout, view, note);
        let stood_in = tally.stand_ins();
        if !stood_in.is_empty() {
            metrics::counter!(telemetry::STAND_IN_ACKS).increment(stood_in.len() as u64);
        }
        Ok(PutResult {
            context: record.context().clone(),
            acked: tally.acked,
            stand_ins: stood_in,
            synced: tally.synced,
            outcome: answer.outcome,
        })
    }

    /// The wall clock in microseconds, strictly increasing on each thread: a write never
    /// gets a timestamp at or below one made before it on the same thread, so sequential
    /// overwrites are ordered even when they meet as siblings (after a membership change,
    /// say, when the new write's coordinating replica had not yet received the old one).
    /// Within one microsecond the timestamp moves on by one per write, so it runs ahead of
    /// the clock only beyond a million writes per second per thread — unlike a per-write
    /// millisecond bump, which ran ahead under any real load and made last-writer-wins
    /// favour the busiest coordinator. Per thread rather than per coordinator, so the hot
    /// path writes no shared cache line.
    fn timestamp(&self) -> u64 {
        thread_local! {
            static LAST: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        let now = self.clock.now_us();
        LAST.with(|last| {
            let t = now.max(last.get().saturating_add(1));
            last.set(t);
            t
        })
    }

    /// Reads `key` from `r` replicas and merges their answers.
    ///
    /// # Errors
    /// Bad `r` (before any I/O), or [`QuorumError`] naming the failed replicas.
    pub async fn get(&self, key: Bytes, r: usize) -> Result<GetResult, ClusterError> {
        let view = self.enter();
        check_quorum("r", r, self.config.replication)?;
        if r > view.width() {
            return Err(ClusterError::TooFewNodes { name: "r", given: r, nodes: view.width() });
        }
        self.config.limits.check_key(&key)?;
        let preference = match self.config.reads {
            ReadFanout::All => view.preference(&key),
            ReadFanout::Quorum { .. } => self.ask_order(&view, &key),
        };
        prefetch(&view, &preference, &key);
        let n = preference.len();
        let (first, hedge) = match self.config.reads {
            ReadFanout::All => (n, None),
            ReadFanout::Quorum { hedge } => (r.min(n), Some(hedge)),
        };
        let mut fanout = Fanout::new(self.config.timeout);
        let ask = |fanout: &mut Fanout<_>, asked: &mut usize| {
            let replica = view.replica(preference[*asked]);
            fanout.start(replica.id().clone(), replica.get(&key));
            *asked += 1;
        };
        let mut asked = 0;
        while asked < first {
            ask(&mut fanout, &mut asked);
        }
        // Armed on the first wait only: reads answered at once arm no timer.
        let mut hedge_at = None;
        let mut replies = Replies::new();
        let mut failures = Vec::new();
        while replies.len() < r {
            if replies.len() + fanout.len() + (n - asked) < r {
                let in_flight = fanout.len();
                self.finish_in_background(fanout, view, |_, _, _| {});
                return Err(self.quorum_failed("read", r, (replies.len(), in_flight), n, failures));
            }
            if fanout.len() == 0 {
                ask(&mut fanout, &mut asked);
                continue;
            }
            let answer = match hedge {
                Some(after) if asked < n => {
                    let at = *hedge_at.get_or_insert_with(|| tokio::time::Instant::now() + after);
                    tokio::select! {
                        biased;
                        answer = fanout.next() => answer,
                        () = tokio::time::sleep_until(at) => {
                            // Slow answers: ask one more replica, and give the next one as
                            // long again.
                            ask(&mut fanout, &mut asked);
                            hedge_at = Some(tokio::time::Instant::now() + after);
                            continue;
                        }
                    }
                }
                _ => fanout.next().await,
            };
            match answer {
                Some((id, Ok(record))) => {
                    self.suspects.clear(&id);
                    replies.push((id, record));
                }
                Some((id, Err(e))) => {
                    self.suspects.suspect(&id);
                    failures.push((id, e));
                }
                None => break,
            }
        }
        if replies.len() < r {
            return Err(self.quorum_failed("read", r, (replies.len(), 0), n, failures));
        }
        // Answers that are already in count for repair too, without waiting for them.
        let mut late = Replies::new();
        fanout.drain_now(|id, result| {
            if let Ok(record) = result {
                late.push((id, record));
            }
        });
        let merged = merge_answers(replies.iter().chain(late.iter()).map(|(_, rec)| rec));
        let cutoff = crate::tombstones::cutoff(self.now_us(), self.config.tombstone_grace);
        for (id, rec) in replies.iter().chain(late.iter()) {
            if needs_repair(rec.as_ref(), &merged, cutoff) {
                self.repair(&view, &key, id.clone(), &merged);
            }
        }
        // Stragglers are compared when they arrive, and repaired if stale.
        let (key2, merged2) = (key.clone(), Arc::clone(&merged));
        let (repairer, suspects) = (self.repairer(), Arc::clone(&self.suspects));
        self.finish_in_background(fanout, view, move |view, id, result| match result {
            Ok(record) => {
                suspects.clear(&id);
                if needs_repair(record.as_ref(), &merged2, cutoff) {
                    repairer.repair_now(view, &key2, id, &merged2);
                }
            }
            // A replica that answers after the read returned is hung or slow: pass it over.
            Err(_) => suspects.suspect(&id),
        });
        Ok(GetResult { replies, record: merged, now_us: self.now_us() })
    }

    /// The order in which to ask `key`'s replicas: this node first when it holds the key,
    /// then preference order, with recently failed replicas moved last.
    fn ask_order(&self, view: &View, key: &[u8]) -> PreferenceList {
        let (owners, healthy) = self.owners_first(view, key);
        self.local_first(view, owners, healthy)
    }

    /// `key`'s owners in preference order with recently failed ones last — the same from
    /// every node — and how many lead that are not suspected. The head is the key's
    /// *first owner*, which coordinates the writes that depend on the stored value.
    /// Suspicion is asked once per owner: asking renews a lapsed suspicion for everyone
    /// but the one caller that then probes the replica.
    fn owners_first(&self, view: &View, key: &[u8]) -> (PreferenceList, usize) {
        let mut preference = view.preference(key);
        let mut healthy = preference.len();
        if self.suspects.any() {
            let mut flagged: SmallVec<[(bool, NodeIdx); 5]> = preference
                .iter()
                .map(|&i| (self.suspects.is_suspected(view.replica(i).id()), i))
                .collect();
            // A stable sort: the order is otherwise kept.
            flagged.sort_by_key(|&(suspected, _)| suspected);
            healthy = flagged.iter().filter(|(suspected, _)| !suspected).count();
            for (slot, (_, i)) in preference.iter_mut().zip(flagged) {
                *slot = i;
            }
        }
        (preference, healthy)
    }

    /// `owners` (from [`Coordinator::owners_first`]) with this node moved to the front
    /// when it is one of the `healthy` leading ones.
    fn local_first(
        &self,
        view: &View,
        mut owners: PreferenceList,
        healthy: usize,
    ) -> PreferenceList {
        if let Some(local) = &self.config.local_node
            && let Some(pos) = owners[..healthy].iter().position(|&i| view.replica(i).id() == local)
        {
            owners[..=pos].rotate_right(1);
        }
        owners
    }

    fn repairer(&self) -> Repairer {
        Repairer { background: self.background.clone(), timeout: self.config.timeout }
    }

    fn repair(&self, view: &View, key: &Bytes, id: NodeId, merged: &Arc<Record>) {
        self.repairer().repair_now(view, key, id, merged);
    }

    fn quorum_failed(
        &self,
        op: &'static str,
        required: usize,
        (succeeded, in_flight): (usize, usize),
        replicas: usize,
        failures: Vec<(NodeId, ReplicaError)>,
    ) -> ClusterError {
        metrics::counter!(telemetry::QUORUM_FAILURES, "op" => op).increment(1);
        ClusterError::Quorum(QuorumError { op, required, succeeded, in_flight, replicas, failures })
    }

    /// Lets the calls still in flight finish in the background (each is bounded by the
    /// per-call deadline), feeding successful answers to `on_answer`. The view guard moves
    /// along, so a membership change waits for them.
    fn finish_in_background<T, F>(&self, mut fanout: Fanout<T>, view: ViewGuard, mut on_answer: F)
    where
        T: Send + 'static,
        F: FnMut(&View, NodeId, Result<T, ReplicaError>) + Send + 'static,
    {
        fanout.drain_now(|id, result| on_answer(&view, id, result));
        let Some(mut pending) = fanout.into_pending() else {
            return;
        };
        self.background.spawn(async move {
            while let Some((id, result)) = pending.next().await {
                on_answer(&view, id, result);
            }
            drop(view);
        });
    }

    /// For a write's answers (the stragglers' too): clears the suspicion of a replica
    /// that acknowledged; suspects one that failed and keeps a hint for it.
    fn hinter(
        &self,
        key: &Bytes,
        record: &Arc<Record>,
    ) -> impl FnMut(&View, NodeId, Result<Durability, ReplicaError>) + Send + 'static {
        // Nothing is cloned for a coordinator that keeps no hints.
        let hint = self.handoff.clone().map(|h| (h, key.clone(), Arc::clone(record)));
        let suspects = Arc::clone(&self.suspects);
        move |view, id, result| {
            if result.is_ok() {
                suspects.clear(&id);
                return;
            }
            suspects.suspect(&id);
            if let Some((handoff, key, record)) = &hint {
                // A stand-in that failed owes the key nothing: only owners get hints.
                let owner = view.preference(key).iter().any(|&i| view.replica(i).id() == &id);
                if owner {
                    handoff.keep(&id, key, record);
                }
            }
        }
    }
}

/// The stand-ins of one write's key, engaged one per failed owner: the best one left in
/// the failed owner's zone, so the write keeps its spread over zones, else the best one
/// left.
struct StandIns {
    /// Computed on first use (the key's hash too): most writes never need one.
    order: Option<PreferenceList>,
    /// Positions in `order` already engaged (`order` is at most `MAX_REPLICAS` long).
    used: u32,
    enabled: bool,
}

impl StandIns {
    fn new(enabled: bool) -> Self {
        Self { order: None, used: 0, enabled }
    }

    /// Asks a stand-in, if any is left, to keep `record` for `owner`.
    fn engage(
        &mut self,
        view: &View,
        owner: &NodeId,
        key: &Bytes,
        record: &Arc<Record>,
        tally: &mut Tally,
        fanout: &mut Fanout<Durability>,
    ) {
        if !self.enabled {
            return;
        }
        let order = self.order.get_or_insert_with(|| view.stand_ins(halka_ring::key_hash(key)));
        let zone = |idx: usize| view.members().get(idx).map(|m| m.zone.as_str());
        let owner_zone = view.replicas().iter().position(|r| r.id() == owner).and_then(zone);
        let free = |pos: &usize| self.used & (1 << pos) == 0;
        let pick = (0..order.len())
            .filter(free)
            .find(|&pos| zone(usize::from(order[pos])) == owner_zone)
            .or_else(|| (0..order.len()).find(free));
        let Some(pos) = pick else { return };
        self.used |= 1 << pos;
        let stand_in = view.replica(order[pos]);
        tally.standing_in(owner, stand_in.id().clone());
        fanout.start(stand_in.id().clone(), stand_in.keep_hint(owner, key, record));
    }
}

/// Whether a replica that answered `held` should be sent `merged`: it is stale, and not
/// merely without a tombstone its owners may be collecting.
fn needs_repair(held: Option<&Arc<Record>>, merged: &Record, cutoff: Option<u64>) -> bool {
    is_stale(held, merged) && !(held.is_none() && crate::tombstones::collectible(merged, cutoff))
}

/// Read repair, detached from the request.
#[derive(Debug, Clone)]
struct Repairer {
    background: Background,
    timeout: Duration,
}

impl Repairer {
    fn repair_now(&self, view: &View, key: &Bytes, id: NodeId, merged: &Arc<Record>) {
        let Some(replica) = view.replicas().iter().find(|r| *r.id() == id).cloned() else {
            return;
        };
        metrics::counter!(telemetry::READ_REPAIRS).increment(1);
        let fut = replica.merge(key, merged);
        let timeout = self.timeout;
        self.background.spawn(async move {
            if let Ok(Err(e)) | Err(e) =
                tokio::time::timeout(timeout, fut).await.map_err(|_| ReplicaError::Timeout(0))
            {
                tracing::debug!(node = %id, error = %e, "read repair failed");
            }
        });
    }
}

/// The join of the answers, sharing the answer itself when they all agree (the common case).
fn merge_answers<'a>(answers: impl Iterator<Item = &'a Option<Arc<Record>>>) -> Arc<Record> {
    let mut acc: Option<Arc<Record>> = None;
    for rec in answers.flatten() {
        acc = Some(match acc {
            None => Arc::clone(rec),
            Some(a) if a.same_as(rec) => a,
            Some(a) => Arc::new(a.merge(rec)),
        });
    }
    acc.unwrap_or_default()
}

/// True when a replica's answer lacks something the merged record has.
fn is_stale(answer: Option<&Arc<Record>>, merged: &Record) -> bool {
    match answer {
        None => !merged.is_empty(),
        Some(rec) => !rec.same_as(merged),
    }
}

/// Lets every replica of `key` start fetching it before any is asked, so that in-process
/// replicas' cache misses overlap rather than add up.
fn prefetch(view: &View, preference: &[NodeIdx], key: &[u8]) {
    for &idx in preference {
        view.replica(idx).prefetch(key);
    }
}
