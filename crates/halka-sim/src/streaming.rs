//! A scenario step for range streaming (`halka_cluster::stream`): a new replica copies
//! the cluster's keys, one hash range at a time, from a node that crashes and comes back
//! midway, over links that delay and lose messages.

use crate::workload;
use crate::world::World;
use futures::future::BoxFuture;
use halka_cluster::stream::{MemoryCheckpoints, stream_range};
use halka_cluster::{LocalReplica, Replica};
use halka_store::{HashRange, MemoryEngine, NodeId};
use std::sync::Arc;
use std::time::Duration;

/// Streams every key from `source` (reached from `via`) into an empty replica while the
/// source crashes (disk kept) and restarts; the new replica must end up with every
/// record the source held before the stream began. Returns the problems found.
pub(crate) fn stream_through_a_crash(
    world: &Arc<World>,
    via: usize,
    source: usize,
    keys: u64,
) -> BoxFuture<'_, Vec<String>> {
    Box::pin(async move {
        let before: Vec<_> =
            (0..keys).map(|k| world.stored(source, workload::key(k).as_bytes())).collect();
        let target = LocalReplica::new(NodeId::new("new"), Arc::new(MemoryEngine::default()));
        let checkpoints = MemoryCheckpoints::default();
        let crash_at = Duration::from_millis(world.draw(0..40));
        let crasher = {
            let world = Arc::clone(world);
            tokio::spawn(async move {
                tokio::time::sleep(crash_at).await;
                world.crash(source, false);
                tokio::time::sleep(Duration::from_millis(300)).await;
                world.start(source);
            })
        };
        // Sixteen ranges, each retried until it completes: a failed one resumes past its
        // checkpoint.
        for range in HashRange::chunks(4) {
            while stream_range(
                world.link(via, source).as_ref(),
                &target,
                range,
                &checkpoints,
                Duration::from_millis(500),
            )
            .await
            .is_err()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let _ = crasher.await;
        let mut problems = Vec::new();
        for (k, held) in before.iter().enumerate() {
            let key = workload::key(k as u64);
            let got = target.get(&key.clone().into()).await.ok().flatten();
            let want = held.as_ref().and_then(|r| r.lww_value().cloned());
            if got.as_ref().and_then(|r| r.lww_value().cloned()) != want {
                problems.push(format!("{key}: streamed {got:?}, the source held {want:?}"));
            }
        }
        problems
    })
}
