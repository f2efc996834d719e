//! The write path: find the coordinating replica, replicate its record to the other
//! owners, and wait for W acknowledgements (stand-ins filling the slots of owners that
//! fail), keeping hints for the owners that missed the write.

use super::plan::WritePlan;
use super::stand_ins::StandIns;
use super::{Coordinator, PutResult, WriteQuorum, WriteRequest, prefetch};
use crate::fanout::{Fanout, call_one};
use crate::quorum::{Next, Tally};
use crate::telemetry;
use crate::view::{View, ViewGuard};
use crate::{ClusterError, Durability, ReplicaError};
use bytes::Bytes;
use halka_store::{NodeId, Record, Refusal, Write};
use smallvec::SmallVec;
use std::sync::Arc;

impl Coordinator {
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
        let view = self.enter();
        self.check_write(&view, &key, quorum)?;
        let plan = self.planner(&view).write(&key, request.at_first_owner());
        let retriable = request.change.is_idempotent();
        let write = self.stamp(request)?;
        prefetch(&view, &plan.order, &key);
        let ids = plan.order.iter().map(|&i| view.replica(i).id().clone());
        let mut tally = Tally::new(ids, quorum.w, quorum.pw).in_sets(plan.sets.clone());
        let applied = match self.coordinate(&view, &key, &write, &plan, &mut tally, retriable).await
        {
            Coordination::Applied(applied) => applied,
            // A refusal over a limit is the client's error whatever the command; the
            // others (a condition that did not hold) are the command's to report.
            Coordination::Refused(result) => {
                match result.outcome.refused.and_then(|r| r.limit_error()) {
                    Some(limit) => return Err(ClusterError::Limit(limit)),
                    None => return Ok(*result),
                }
            }
            Coordination::Failed => {
                let failures = std::mem::take(&mut tally.failures);
                return Err(self.quorum_failed(
                    "write",
                    quorum.w,
                    (0, 0),
                    plan.order.len(),
                    failures,
                ));
            }
        };
        let Applied { pos, id, answer, durable, skipped, passed } = *applied;
        let record = answer.record;
        // Replicas skipped as coordinating replica hold none of this write.
        self.keep_hints(skipped.iter(), &key, &record);
        let mut fanout = Fanout::new(self.config.timeout);
        fanout.start(id, durable);
        // Replicas after the coordinator receive the record; those before it already failed.
        for &idx in plan.order[pos + 1..].iter().chain(&passed) {
            let replica = view.replica(idx);
            fanout.start(replica.id().clone(), self.merge_unless_down(replica, &key, &record));
        }
        let mut stand_ins = StandIns::new(self.config.stand_ins);
        for owner in &skipped {
            stand_ins.engage(&view, owner, &key, &record, &mut tally, &mut fanout);
        }
        let replicated =
            Replicated { key: &key, record: &record, n: plan.order.len(), w: quorum.w };
        let tally = self.await_write_quorum(view, replicated, tally, fanout, stand_ins).await?;
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

    /// Finds the write's coordinating replica: the first owner in the plan's order that
    /// answers. It answers once the write is applied; its durability is awaited alongside
    /// the other replicas' writes, so its fsync overlaps theirs. Stand-ins never
    /// coordinate. Every owner is tried (stand-ins may fill the slots of those that fail
    /// here), except that a change that must not apply twice (`INCR`) is not retried on
    /// the next owner once one may have applied it: the client hears of the failure
    /// instead, as from Redis after a timeout.
    async fn coordinate(
        &self,
        view: &View,
        key: &Bytes,
        write: &Write,
        plan: &WritePlan,
        tally: &mut Tally,
        retriable: bool,
    ) -> Coordination {
        let mut skipped = Vec::new();
        let mut passed = Vec::new();
        let mut exhausted = None;
        for (pos, &idx) in plan.order.iter().enumerate() {
            let replica = view.replica(idx);
            let call = replica.coordinate_write_deferred(key, write);
            match call_one(replica.id().clone(), call, self.config.timeout).await {
                // This owner can number no more writes to the key; another owner's actor
                // can, and this one then receives the record like the owners after it.
                (id, Ok((answer, _)))
                    if answer.outcome.refused == Some(Refusal::CounterExhausted) =>
                {
                    self.suspects.clear(&id);
                    passed.push(idx);
                    exhausted = Some(refused(id, answer));
                }
                (id, Ok((answer, _))) if !answer.applied() => {
                    // Refused: nothing was written, so there is nothing to replicate.
                    self.suspects.clear(&id);
                    return Coordination::Refused(refused(id, answer));
                }
                (id, Ok((answer, durable))) => {
                    self.suspects.clear(&id);
                    // The first owner's answer is awaited too, so writes that depend on
                    // the stored value, which it coordinates, see this one once it is
                    // acknowledged. One that already failed here is not.
                    if let Some(first) = plan.first_owner.map(|i| view.replica(i).id())
                        && *first != id
                        && !skipped.contains(first)
                    {
                        tally.awaiting(first.clone());
                    }
                    let applied = Applied { pos, id, answer, durable, skipped, passed };
                    return Coordination::Applied(Box::new(applied));
                }
                (id, Err(e)) => {
                    self.suspects.suspect(&id);
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
        exhausted.map_or(Coordination::Failed, Coordination::Refused)
    }

    /// Waits until `tally` has the write's quorum or cannot get it; answers that come
    /// later are noted in the background the same way (hints for replicas that failed).
    async fn await_write_quorum(
        &self,
        view: ViewGuard,
        replicated: Replicated<'_>,
        mut tally: Tally,
        mut fanout: Fanout<Durability>,
        mut stand_ins: StandIns,
    ) -> Result<Tally, ClusterError> {
        let Replicated { key, record, n, w } = replicated;
        let mut note = self.hinter(key, record);
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
                stand_ins.engage(&view, &owner, key, record, &mut tally, &mut fanout);
            }
        }
        if tally.next() != Next::Done {
            let (filled, _) = tally.progress();
            let failures = std::mem::take(&mut tally.failures);
            return Err(self.quorum_failed("write", w, (filled, 0), n, failures));
        }
        self.finish_in_background(fanout, view, note);
        Ok(tally)
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
                let owners = view.all_owners(halka_ring::key_hash(key));
                let owner = owners.iter().any(|&i| view.replica(i).id() == &id);
                if owner {
                    handoff.keep(&id, key, record);
                }
            }
        }
    }

    /// `replica`'s merge of `record`, or at once a failure when the failure detector
    /// convicts it: the write then engages a stand-in and keeps a hint without waiting
    /// for a node that is down (or hangs) to time out.
    fn merge_unless_down(
        &self,
        replica: &Arc<dyn crate::Replica>,
        key: &Bytes,
        record: &Arc<Record>,
    ) -> crate::ReplicaFuture<Durability> {
        if self.suspects.convicted(replica.id()) {
            let down = format!("node {} is down (failure detector)", replica.id());
            return crate::answered(Err(ReplicaError::Unavailable(down)));
        }
        replica.merge(key, record)
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
}

/// The result of a write `id` refused: nothing was written, so there is nothing to
/// replicate.
fn refused(id: NodeId, answer: crate::replica::Coordinated) -> Box<PutResult> {
    Box::new(PutResult {
        context: answer.record.context().clone(),
        acked: std::iter::once(id).collect(),
        stand_ins: SmallVec::new(),
        synced: SmallVec::new(),
        outcome: answer.outcome,
    })
}

/// How the search for a write's coordinating replica ended.
enum Coordination {
    Applied(Box<Applied>),
    /// The coordinating replica refused the write (a condition did not hold, or every
    /// owner has numbered all the writes it can to the key): nothing was written.
    Refused(Box<PutResult>),
    /// No owner applied it.
    Failed,
}

/// A write applied at its coordinating replica.
struct Applied {
    /// The coordinating replica's position in the plan's order.
    pos: usize,
    id: NodeId,
    answer: crate::replica::Coordinated,
    /// Completes when the write is durable at the coordinating replica.
    durable: crate::ReplicaFuture<Durability>,
    /// Owners tried before it that failed: they hold none of the write.
    skipped: Vec<NodeId>,
    /// Owners tried before it that could number no more writes to the key (by position in
    /// the view): they are up, and receive the record like the owners after it.
    passed: Vec<u16>,
}

/// A write being replicated, as its quorum wait sees it.
struct Replicated<'a> {
    key: &'a Bytes,
    record: &'a Arc<Record>,
    /// Owners in the plan.
    n: usize,
    w: usize,
}
