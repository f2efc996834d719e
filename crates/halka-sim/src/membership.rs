//! Scenarios that change the cluster's shape while clients write: a new layout installed
//! on every node, its partitions streamed, the old layout retired by the nodes as they
//! agree — and the checker judging every acknowledged write, as in any run. The checker
//! judges the final state, which anti-entropy would repair even after a broken change;
//! so a reader also checks, throughout, that keys written before the change and never
//! touched again are never read as missing.

use crate::workload;
use crate::world::World;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a change may take before the scenario calls it stuck.
const CHANGE_DEADLINE: Duration = Duration::from_secs(120);

/// The last node leaves, then comes back (with the stale data it kept), while clients
/// read and write through every node over a lossy network.
pub(crate) fn leave_and_rejoin_under_writes(
    world: &Arc<World>,
    keys: u64,
) -> BoxFuture<'_, Vec<String>> {
    async move {
        let all: Vec<usize> = (0..world.nodes()).collect();
        write_stable(world).await;
        let until = Instant::now() + Duration::from_secs(20);
        let clients: Vec<_> = (0..4)
            .map(|c| tokio::spawn(workload::client(Arc::clone(world), c, keys, until)))
            .collect();
        let reader = tokio::spawn(read_stable(Arc::clone(world), until));
        world.set_loss(0.01);
        let mut problems = Vec::new();
        problems.extend(change(world, &all[..all.len() - 1]).await);
        problems.extend(change(world, &all).await);
        for c in clients {
            let _ = c.await;
        }
        problems.extend(reader.await.unwrap_or_default());
        world.set_loss(0.0);
        problems
    }
    .boxed()
}

/// Installs the layout of `members` beside the current one on every node, and waits
/// until every node has retired the old one.
async fn change(world: &Arc<World>, members: &[usize]) -> Vec<String> {
    let old = world.layout();
    let next = world.next_layout(members);
    let version = next.version();
    world.set_layouts(vec![old, next.clone()]);
    let deadline = Instant::now() + CHANGE_DEADLINE;
    while world.changing_nodes() > 0 {
        if Instant::now() >= deadline {
            return vec![format!(
                "the change to layout version {version} was still under way on {} nodes after {} s",
                world.changing_nodes(),
                CHANGE_DEADLINE.as_secs()
            )];
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.set_layouts(vec![next]);
    Vec::new()
}

/// Keys written before the change at W = N and never written again.
const STABLE_KEYS: u64 = 60;

fn stable_key(i: u64) -> bytes::Bytes {
    bytes::Bytes::from(format!("stable-{i}"))
}

async fn write_stable(world: &World) {
    let Some(coordinator) = world.coordinator(0) else { return };
    for i in 0..STABLE_KEYS {
        let value = Some(bytes::Bytes::from_static(b"kept"));
        // Retried until every owner has it: the reader's premise.
        while coordinator.write(stable_key(i), value.clone(), None, crate::world::N).await.is_err()
        {
        }
    }
}

/// Reads the stable keys at R = 1 (one owner answers: the one that would lack a key first)
/// through random nodes until `until`; returns every read
/// that answered "missing".
async fn read_stable(world: Arc<World>, until: Instant) -> Vec<String> {
    let mut problems = Vec::new();
    while Instant::now() < until {
        let node = world.draw(0..world.nodes() as u64) as usize;
        let key = stable_key(world.draw(0..STABLE_KEYS));
        if let Some(coordinator) = world.coordinator(node)
            && let Ok(got) = coordinator.get(key.clone(), 1).await
            && got.value().is_none()
            && problems.len() < 5
        {
            let versions = coordinator.view().active_versions();
            problems.push(format!(
                "{key:?} read as missing through node {node} (layouts {versions:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(world.draw(1..20))).await;
    }
    problems
}
