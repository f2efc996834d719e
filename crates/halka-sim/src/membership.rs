//! Scenarios that change the cluster's shape while clients write: a new layout installed
//! on every node, its partitions streamed, the old layout retired by the nodes as they
//! agree — and the checker judging every acknowledged write, as in any run. The checker
//! judges the final state, which anti-entropy would repair even after a broken change;
//! so two more clients check the change while it runs: keys written before it and never
//! touched again are never read as missing, and a write acknowledged by owners at W = 2
//! is seen by the next read at R = 2 through another node (R + W > N).

use crate::history::Event;
use crate::workload;
use crate::world::World;
use futures::FutureExt;
use futures::future::BoxFuture;
use halka_cluster::membership::{Change, LayoutSpec, MemberSpec};
use halka_ring::Layout;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a change may take before the scenario calls it stuck.
const CHANGE_DEADLINE: Duration = Duration::from_secs(120);

/// The last node leaves, then comes back (with the stale data it kept), while clients
/// read and write through every node over a lossy network; with `crashing`, that node
/// crashes at a random moment of each change and restarts a little later, disk kept.
pub(crate) fn leave_and_rejoin_under_writes(
    world: &Arc<World>,
    keys: u64,
    crashing: Option<usize>,
) -> BoxFuture<'_, Vec<String>> {
    under_writes(world, keys, async move {
        let all: Vec<usize> = (0..world.nodes()).collect();
        let mut problems = Vec::new();
        for members in [&all[..all.len() - 1], &all[..]] {
            let crash =
                crashing.map(|node| tokio::spawn(crash_and_restart(Arc::clone(world), node)));
            problems.extend(change(world, members).await);
            if let Some(crash) = crash {
                let _ = crash.await;
            }
        }
        problems
    })
}

/// The last node leaves, replaces an owner lost with its disk, and the lost node joins
/// back, while clients read and write through every node over a lossy network.
pub(crate) fn replaced_under_writes(world: &Arc<World>, keys: u64) -> BoxFuture<'_, Vec<String>> {
    under_writes(world, keys, async move {
        let all: Vec<usize> = (0..world.nodes()).collect();
        let last = all.len() - 1;
        let mut problems = change(world, &all[..last]).await;
        problems.extend(replace(world, last).await);
        problems.extend(change(world, &all).await);
        problems
    })
}

/// After a change moved the cluster to version 2, the first node loses its disk while
/// every other node is down, and starts alone: it must not route by its static list,
/// version 1, while nobody that kept its state answers (the simulator lost a write that
/// way); once the others are back it takes version 2. Clients read and write through
/// every node all along (not the stable-key reader: at R = 1 a node that lost its disk
/// answers "missing" until anti-entropy refills it, as Dynamo's R = 1 allows).
pub(crate) fn restarted_empty_while_the_others_are_down(
    world: &Arc<World>,
    keys: u64,
) -> BoxFuture<'_, Vec<String>> {
    async move {
        let until = Instant::now() + Duration::from_secs(20);
        let clients: Vec<_> = (0..4)
            .map(|c| tokio::spawn(workload::client(Arc::clone(world), c, keys, until)))
            .collect();
        let all: Vec<usize> = (0..world.nodes()).collect();
        let mut problems = change(world, &all[..all.len() - 1]).await;
        let version = world.layout().version();
        for &i in &all[1..] {
            world.crash(i, false);
        }
        world.crash(0, true);
        world.record(Event::Fault {
            at_us: world.now_us(),
            what: "n1 lost with its disk, every other node down".to_string(),
            erased: Some(world.node_id(0).to_string()),
        });
        world.start(0);
        // Long enough for many rounds of asking.
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Some(c) = world.coordinator(0)
            && let Some(layout) = c.view().layout()
        {
            problems.push(format!(
                "n1 routed by layout version {} while no member that kept its state answered",
                layout.version()
            ));
        }
        for &i in &all[1..] {
            world.start(i);
        }
        world.until_serving(0).await;
        let taken = world.membership(0).and_then(|m| m.newest()).map(|l| l.version);
        if taken != Some(version) {
            problems.push(format!("n1 took layout {taken:?}, not the cluster's {version}"));
        }
        for c in clients {
            let _ = c.await;
        }
        problems
    }
    .boxed()
}

/// The last node leaves; then n1 loses its disk and starts again while n3 is down. n1
/// takes the cluster's layout from n2, but it may have voted on the next version before,
/// so it must not vote until n3 has answered or been convicted; once it may, the last
/// node joins back through a commit, with clients reading and writing throughout.
pub(crate) fn a_node_without_its_votes_waits_to_hear_the_others(
    world: &Arc<World>,
    keys: u64,
) -> BoxFuture<'_, Vec<String>> {
    async move {
        let until = Instant::now() + Duration::from_secs(20);
        let clients: Vec<_> = (0..4)
            .map(|c| tokio::spawn(workload::client(Arc::clone(world), c, keys, until)))
            .collect();
        let all: Vec<usize> = (0..world.nodes()).collect();
        let mut problems = change(world, &all[..all.len() - 1]).await;
        world.crash(2, false);
        world.crash(0, true);
        world.record(Event::Fault {
            at_us: world.now_us(),
            what: "n1 lost with its disk, n3 down".to_string(),
            erased: Some(world.node_id(0).to_string()),
        });
        world.start(0);
        world.until_serving(0).await;
        let may_vote = |world: &Arc<World>| {
            let membership = world.membership(0);
            async move {
                match membership {
                    Some(m) => m.recover_votes().await,
                    None => false,
                }
            }
        };
        if may_vote(world).await {
            problems.push("n1 voted again before n3 answered or was convicted".to_string());
        }
        // n3's silence convicts it within a few seconds of gossip; n1 may vote then.
        tokio::time::sleep(Duration::from_secs(5)).await;
        if !may_vote(world).await {
            problems.push("n1 still refused to vote once n3 was convicted".to_string());
        }
        world.start(2);
        problems.extend(change(world, &all).await);
        for c in clients {
            let _ = c.await;
        }
        problems
    }
    .boxed()
}

/// Runs `changes` while four clients read and write through every node over a network
/// losing 1% of messages, a reader checks the keys written before never read as missing,
/// and another that a write acknowledged at W = 2 is read back at R = 2; returns every
/// problem found.
fn under_writes<'a>(
    world: &'a Arc<World>,
    keys: u64,
    changes: impl std::future::Future<Output = Vec<String>> + Send + 'a,
) -> BoxFuture<'a, Vec<String>> {
    async move {
        write_stable(world).await;
        let until = Instant::now() + Duration::from_secs(20);
        let clients: Vec<_> = (0..4)
            .map(|c| tokio::spawn(workload::client(Arc::clone(world), c, keys, until)))
            .collect();
        let reader = tokio::spawn(read_stable(Arc::clone(world), until));
        let fresh = tokio::spawn(read_after_write(Arc::clone(world), until));
        world.set_loss(0.01);
        let mut problems = changes.await;
        for c in clients {
            let _ = c.await;
        }
        problems.extend(reader.await.unwrap_or_default());
        problems.extend(fresh.await.unwrap_or_default());
        world.set_loss(0.0);
        problems
    }
    .boxed()
}

/// Commits the layout of `members` through a random running node (another one, later,
/// while none can: a partition, a node down, a change still retiring), then waits until
/// every running node holds the new layout alone.
async fn change(world: &Arc<World>, members: &[usize]) -> Vec<String> {
    let deadline = Instant::now() + CHANGE_DEADLINE;
    let (old, next) = match commit(world, members, deadline).await {
        Ok(layouts) => layouts,
        Err(problem) => return vec![problem],
    };
    let version = next.version();
    world.record_layouts(vec![old, next.clone()]);
    while world.nodes_not_at(version) > 0 {
        if Instant::now() >= deadline {
            return vec![format!(
                "the change to layout version {version} was still under way on {} nodes after {} s",
                world.nodes_not_at(version),
                CHANGE_DEADLINE.as_secs()
            )];
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.record_layouts(vec![next]);
    Vec::new()
}

/// Stages the changes that make `members` the owners, and commits them, through random
/// running nodes until one commit chooses this change; returns the layouts before and
/// after. A racing commit that won first is waited for and built on.
async fn commit(
    world: &Arc<World>,
    members: &[usize],
    deadline: Instant,
) -> Result<(Layout, Layout), String> {
    loop {
        let node = world.draw(0..world.nodes() as u64) as usize;
        // A node behind the layout the commits chose (one that lost its disk and has
        // not caught up yet) would compute the changes against an old layout.
        if let Some(m) = world.membership(node)
            && let Some(current) = m.newest()
            && current.version >= world.layout().version()
        {
            let changes = changes_to(world, &current, members);
            if changes.is_empty() {
                let layout = current.layout().map_err(|e| e.to_string())?;
                return Ok((layout.clone(), layout));
            }
            m.clear_staged();
            let staged = changes.into_iter().try_for_each(|c| m.stage(c).map(|_| ()));
            if staged.is_ok()
                && let Ok(committed) = m.commit().await
                && committed.ours
            {
                let old = current.layout().map_err(|e| e.to_string())?;
                return Ok((old, committed.layout.layout().map_err(|e| e.to_string())?));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no commit of {members:?} went through in {} s",
                CHANGE_DEADLINE.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The joins and leaves that make `members` the owning members of the layout after
/// `current`.
fn changes_to(world: &World, current: &LayoutSpec, members: &[usize]) -> Vec<Change> {
    let owning: Vec<&str> = current.owning().map(|m| m.id.as_str()).collect();
    let wanted: Vec<MemberSpec> = members.iter().map(|&i| world.member_spec(i)).collect();
    let joins =
        wanted.iter().filter(|m| !owning.contains(&m.id.as_str())).cloned().map(Change::Join);
    let leaves = owning
        .iter()
        .filter(|id| !wanted.iter().any(|m| m.id == **id))
        .map(|id| Change::Leave((*id).to_string()));
    joins.chain(leaves).collect()
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
        // A failure can be immediate (a node still learning the layout refuses at once):
        // wait a little before trying again, so the rest of the world moves on.
        while coordinator.write(stable_key(i), value.clone(), None, crate::world::N).await.is_err()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
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

/// Crashes `node` (disk kept) at a random moment within the next 3 s, and restarts it
/// up to 2 s later: in the middle of a change's transfers or phases.
async fn crash_and_restart(world: Arc<World>, node: usize) {
    tokio::time::sleep(Duration::from_millis(world.draw(0..3_000))).await;
    world.crash(node, false);
    tokio::time::sleep(Duration::from_millis(world.draw(100..2_000))).await;
    world.start(node);
}

/// Writes fresh values at W = 2 through one random node and reads them back at R = 2
/// through another, until `until`; returns every read that missed the write just
/// acknowledged. Writes a stand-in acknowledged are not checked: a sloppy quorum does
/// not promise that.
async fn read_after_write(world: Arc<World>, until: Instant) -> Vec<String> {
    let mut problems = Vec::new();
    let mut serial = 0_u64;
    while Instant::now() < until && problems.len() < 5 {
        serial += 1;
        let nodes = world.nodes() as u64;
        let (via, then) = (world.draw(0..nodes) as usize, world.draw(0..nodes) as usize);
        let key = bytes::Bytes::from(format!("fresh-{}", world.draw(0..10)));
        let value = bytes::Bytes::from(serial.to_string());
        // A node down or refusing at once (no layout yet) answers in no simulated time:
        // pause, so that time moves on.
        let pause = || tokio::time::sleep(Duration::from_millis(10));
        let (Some(writer), Some(reader)) = (world.coordinator(via), world.coordinator(then)) else {
            pause().await;
            continue;
        };
        let Ok(put) = writer.write(key.clone(), Some(value.clone()), None, 2).await else {
            pause().await;
            continue;
        };
        if !put.stand_ins.is_empty() {
            continue;
        }
        if let Ok(got) = reader.get(key.clone(), 2).await
            && !got.values().any(|v| *v == value)
        {
            let versions = reader.view().active_versions();
            problems.push(format!(
                "{key:?}: write {serial} acknowledged through node {via} by {:?}, then read \
                 through node {then} (layouts {versions:?}) without it",
                put.acked
            ));
        }
    }
    problems
}

/// Layout changes until `until`, a few seconds apart: a random member leaves, or every
/// node is a member again. Each change is recorded in the history and waited for (past
/// `until` if need be: it completes once every member answers again).
pub(crate) async fn reshape(world: Arc<World>, until: Instant) {
    let all: Vec<usize> = (0..world.nodes()).collect();
    loop {
        tokio::time::sleep(Duration::from_millis(world.draw(1_000..4_000))).await;
        if Instant::now() >= until {
            return;
        }
        let out = all.iter().copied().find(|&i| !world.owns_any(i));
        if let Some(out) = out
            && world.draw(0..3) == 0
        {
            let _ = replace(&world, out).await;
            continue;
        }
        let members: Vec<usize> = if out.is_none() {
            let leaving = world.draw(0..all.len() as u64) as usize;
            all.iter().copied().filter(|&i| i != leaving).collect()
        } else {
            all.clone()
        };
        let names: Vec<String> = members.iter().map(|i| format!("n{}", i + 1)).collect();
        world.record(Event::Fault {
            at_us: world.now_us(),
            what: format!("layout {}: {}", world.layout().version() + 1, names.join(" ")),
            erased: None,
        });
        // A change that does not finish leaves its nodes changing, and a node holding
        // another layout than the one chosen is found: the checker says so.
        if world.draw(0..4) == 0 {
            let _ = race(&world, &members, &all).await;
        } else {
            let _ = change(&world, &members).await;
        }
    }
}

/// Two commits at once through different nodes, one making `members` the owners and the
/// other every node: one version is chosen first and the other change follows it.
async fn race(world: &Arc<World>, members: &[usize], all: &[usize]) -> Vec<String> {
    let deadline = Instant::now() + CHANGE_DEADLINE;
    let other: Vec<usize> = if members.len() == all.len() {
        let leaving = world.draw(0..all.len() as u64) as usize;
        all.iter().copied().filter(|&i| i != leaving).collect()
    } else {
        all.to_vec()
    };
    world.record(Event::Fault {
        at_us: world.now_us(),
        what: format!("a racing commit for owners {other:?}"),
        erased: None,
    });
    let (a, b) = tokio::join!(commit(world, members, deadline), commit(world, &other, deadline));
    let (Ok(a), Ok(b)) = (a, b) else {
        return vec!["a racing commit did not go through".into()];
    };
    let last = if a.1.version() >= b.1.version() { a } else { b };
    let version = last.1.version();
    world.record_layouts(vec![last.0, last.1.clone()]);
    while world.nodes_not_at(version) > 0 {
        if Instant::now() >= deadline {
            return vec![format!("racing changes still under way at version {version}")];
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.record_layouts(vec![last.1]);
    Vec::new()
}

/// A member lost with its disk, replaced by `new` (the node out of the layout): nothing is
/// streamed from the lost one and nobody waits for it, the new one takes a share streamed
/// from the other owners. The lost node is started again once the change is over, with an
/// empty disk, outside the layout (a later change may take it back).
async fn replace(world: &Arc<World>, new: usize) -> Vec<String> {
    let owning: Vec<usize> = (0..world.nodes()).filter(|&i| i != new).collect();
    let old = owning[world.draw(0..owning.len() as u64) as usize];
    world.crash(old, true);
    world.record(Event::Fault {
        at_us: world.now_us(),
        what: format!("n{} lost with its disk, replaced by n{}", old + 1, new + 1),
        erased: Some(world.node_id(old).to_string()),
    });
    let deadline = Instant::now() + CHANGE_DEADLINE;
    let change =
        Change::Replace { old: world.node_id(old).to_string(), new: world.member_spec(new) };
    let (before, after) = loop {
        let node = world.draw(0..world.nodes() as u64) as usize;
        if let Some(m) = world.membership(node)
            && let Some(current) = m.newest()
        {
            m.clear_staged();
            if m.stage(change.clone()).is_ok()
                && let Ok(committed) = m.commit().await
                && committed.ours
                && let (Ok(before), Ok(after)) = (current.layout(), committed.layout.layout())
            {
                break (before, after);
            }
        }
        if Instant::now() >= deadline {
            world.start(old);
            return vec![format!("the replace of n{} did not go through", old + 1)];
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let version = after.version();
    world.record_layouts(vec![before, after.clone()]);
    while world.nodes_not_at(version) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world.record_layouts(vec![after]);
    world.start(old);
    Vec::new()
}
