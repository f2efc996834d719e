//! Read repair: the merge of a read's answers, and writing it back to the replicas that
//! answered with less, detached from the request.

use crate::telemetry;
use crate::view::View;
use crate::{Background, ReplicaError};
use bytes::Bytes;
use halka_store::{NodeId, Record};
use std::sync::Arc;
use std::time::Duration;

/// Whether a replica that answered `held` should be sent `merged`: it is stale, and not
/// merely without a tombstone its owners may be collecting.
pub(super) fn needs_repair(
    held: Option<&Arc<Record>>,
    merged: &Record,
    cutoff: Option<u64>,
) -> bool {
    is_stale(held, merged) && !(held.is_none() && crate::tombstones::collectible(merged, cutoff))
}

/// Read repair, detached from the request.
#[derive(Debug, Clone)]
pub(super) struct Repairer {
    pub(super) background: Background,
    pub(super) timeout: Duration,
}

impl Repairer {
    pub(super) fn repair_now(&self, view: &View, key: &Bytes, id: NodeId, merged: &Arc<Record>) {
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
pub(super) fn merge_answers<'a>(
    answers: impl Iterator<Item = &'a Option<Arc<Record>>>,
) -> Arc<Record> {
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
