//! The read path: ask replicas as the plan says, hedging past slow ones, merge the first
//! R answers, and repair the replicas that answered with less (stragglers too, when they
//! arrive).

use super::plan::ReadPlan;
use super::read_repair::{Repairer, merge_answers, needs_repair};
use super::{Coordinator, GetResult, Replies, prefetch};
use crate::ClusterError;
use crate::fanout::Fanout;
use crate::view::View;
use bytes::Bytes;
use halka_store::Record;
use std::sync::Arc;

impl Coordinator {
    /// Reads `key` from `r` replicas and merges their answers.
    ///
    /// # Errors
    /// Bad `r` (before any I/O), or [`QuorumError`] naming the failed replicas.
    pub async fn get(&self, key: Bytes, r: usize) -> Result<GetResult, ClusterError> {
        let view = self.enter();
        self.check_read(&view, &key, r)?;
        let plan = self.planner(&view).read(&key, self.config.reads, r);
        prefetch(&view, &plan.order, &key);
        let mut asking = Asking { plan, asked: 0, fanout: Fanout::new(self.config.timeout) };
        while asking.asked < plan.first {
            asking.ask_next(&view, &key);
        }
        let replies = match self.await_read_quorum(&view, &key, r, &mut asking).await {
            Ok(replies) => replies,
            Err(e) => {
                self.finish_in_background(asking.fanout, view, |_, _, _| {});
                return Err(e);
            }
        };
        // Answers that are already in count for repair too, without waiting for them.
        let mut late = Replies::new();
        asking.fanout.drain_now(|id, result| {
            if let Ok(record) = result {
                late.push((id, record));
            }
        });
        let merged = merge_answers(replies.iter().chain(late.iter()).map(|(_, rec)| rec));
        let cutoff = crate::tombstones::cutoff(self.now_us(), self.config.tombstone_grace);
        for (id, rec) in replies.iter().chain(late.iter()) {
            if needs_repair(rec.as_ref(), &merged, cutoff) {
                self.repairer().repair_now(&view, &key, id.clone(), &merged);
            }
        }
        // Stragglers are compared when they arrive, and repaired if stale.
        let (key2, merged2) = (key.clone(), Arc::clone(&merged));
        let (repairer, suspects) = (self.repairer(), Arc::clone(&self.suspects));
        self.finish_in_background(asking.fanout, view, move |view, id, result| match result {
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

    /// Collects `r` answers, asking one more replica whenever an asked one fails or the
    /// asked ones are slower than the plan's hedge.
    ///
    /// # Errors
    /// [`QuorumError`] once `r` answers can no longer come.
    async fn await_read_quorum(
        &self,
        view: &View,
        key: &Bytes,
        r: usize,
        asking: &mut Asking,
    ) -> Result<Replies, ClusterError> {
        let n = asking.plan.order.len();
        // Armed on the first wait only: reads answered at once arm no timer.
        let mut hedge_at = None;
        let mut replies = Replies::new();
        let mut failures = Vec::new();
        while replies.len() < r {
            if replies.len() + asking.fanout.len() + (n - asking.asked) < r {
                let in_flight = asking.fanout.len();
                return Err(self.quorum_failed("read", r, (replies.len(), in_flight), n, failures));
            }
            if asking.fanout.len() == 0 {
                asking.ask_next(view, key);
                continue;
            }
            let answer = match asking.plan.hedge {
                Some(after) if asking.asked < n => {
                    let at = *hedge_at.get_or_insert_with(|| tokio::time::Instant::now() + after);
                    tokio::select! {
                        biased;
                        answer = asking.fanout.next() => answer,
                        () = tokio::time::sleep_until(at) => {
                            // Slow answers: ask one more replica, and give the next one as
                            // long again.
                            asking.ask_next(view, key);
                            hedge_at = Some(tokio::time::Instant::now() + after);
                            continue;
                        }
                    }
                }
                _ => asking.fanout.next().await,
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
        Ok(replies)
    }

    fn repairer(&self) -> Repairer {
        Repairer { background: self.background.clone(), timeout: self.config.timeout }
    }
}

/// A read's progress through its plan.
struct Asking {
    plan: ReadPlan,
    /// How many of the plan's replicas have been asked.
    asked: usize,
    fanout: Fanout<Option<Arc<Record>>>,
}

impl Asking {
    fn ask_next(&mut self, view: &View, key: &Bytes) {
        let replica = view.replica(self.plan.order[self.asked]);
        self.fanout.start(replica.id().clone(), replica.get(key));
        self.asked += 1;
    }
}
