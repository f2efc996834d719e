//! Requests while partitions move between two layouts, through the coordinator: writes
//! are acknowledged only with W from the owners of each active layout, and reads and
//! value-dependent writes use the old owners, which hold the data until the new ones have
//! streamed it. And the streaming itself: each node gaining partitions pulls them from
//! their old owners, after which the new layout alone serves every key.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::stream::MemoryCheckpoints;
use halka_cluster::{
    ChangePhase, Clock, ClusterError, Coordinator, CoordinatorConfig, FaultPlan, FaultyReplica,
    LocalReplica, Replica, TransferConfig, Transfers, View, ViewHandle, WriteQuorum, WriteRequest,
};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member, key_hash};
use halka_store::{Change, MemoryEngine, NodeId, TrackedEngine, Tracking};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Five nodes; the change moves the cluster from n1..n3 (version 1) to n2..n5 (version 2).
struct Change5 {
    locals: BTreeMap<String, LocalReplica>,
    faults: BTreeMap<String, FaultyReplica>,
    transfers: BTreeMap<String, Arc<Transfers>>,
}

impl Change5 {
    fn new() -> Self {
        let (mut locals, mut faults, mut transfers) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for i in 1..=5 {
            let id = format!("n{i}");
            let config = TransferConfig { concurrency: 2, ..TransferConfig::default() };
            let t = Arc::new(Transfers::new(
                NodeId::new(&id),
                config,
                Arc::new(MemoryCheckpoints::default()),
            ));
            // Digest trees, as a server's engine keeps them: catch-ups compare them.
            let engine =
                TrackedEngine::build(Arc::new(MemoryEngine::default()), Tracking::ALL).unwrap();
            let local = LocalReplica::new(NodeId::new(&id), Arc::new(engine))
                .with_transfers(Arc::clone(&t));
            let faulty = FaultyReplica::new(Arc::new(local.clone()), FaultPlan::default(), i);
            locals.insert(id.clone(), local);
            faults.insert(id.clone(), faulty);
            transfers.insert(id, t);
        }
        Self { locals, faults, transfers }
    }

    fn changing(&self) -> View {
        self.view(vec![Self::old(), Self::new_layout()])
    }

    /// Every node syncs its transfers for the change, in two rounds (a node catches up
    /// with the old owners only once every member has taken the change up); returns
    /// whether all did.
    async fn sync_all(&self) -> bool {
        let view = self.changing();
        let mut all = true;
        for _round in 0..2 {
            all = true;
            for t in self.transfers.values() {
                all &= t.sync(&view).await;
            }
        }
        all
    }

    fn layout(version: u64, ids: &[&str]) -> Layout {
        let members: Vec<Member> = ids.iter().map(|id| Member::new(*id)).collect();
        Layout::active(version, &members, 3, DEFAULT_PARTITIONS).unwrap()
    }

    fn old() -> Layout {
        Self::layout(1, &["n1", "n2", "n3"])
    }

    fn new_layout() -> Layout {
        Self::layout(2, &["n2", "n3", "n4", "n5"])
    }

    fn view(&self, history: Vec<Layout>) -> View {
        let reach =
            |id: &str| -> Option<Arc<dyn Replica>> { Some(Arc::new(self.faults.get(id)?.clone())) };
        View::with_history(history, &reach, 3).unwrap()
    }

    /// A coordinator outside the cluster (a client's), with no stand-ins: only owners
    /// can acknowledge.
    fn coordinator(&self, history: Vec<Layout>) -> Coordinator {
        let config = CoordinatorConfig {
            timeout: Duration::from_secs(5),
            stand_ins: false,
            ..CoordinatorConfig::default()
        };
        Coordinator::new(self.view(history), config)
    }

    fn holds(&self, node: &str, key: &[u8]) -> Option<Bytes> {
        let record = self.locals[node].engine().get(key).unwrap()?;
        record.lww_value().cloned()
    }
}

fn ids(layout: &Layout, key: &[u8]) -> Vec<String> {
    layout.owner_ids(layout.partition_of(key_hash(key))).into_iter().map(String::from).collect()
}

/// A key two of whose three new owners are not old owners, the first of them included
/// (the new layout alone would coordinate `INCR` there, and read there first).
fn moving_key() -> Bytes {
    let (old, new) = (Change5::old(), Change5::new_layout());
    (0_u32..)
        .map(|i| format!("k{i}").into_bytes())
        .find(|k| {
            let (before, after) = (ids(&old, k), ids(&new, k));
            after.iter().filter(|n| !before.contains(n)).count() == 2 && !before.contains(&after[0])
        })
        .map(Bytes::from)
        .unwrap()
}

#[tokio::test]
async fn a_write_during_a_change_needs_w_from_the_new_owners_too() {
    let nodes = Change5::new();
    let key = moving_key();
    let coordinator = nodes.coordinator(vec![Change5::old(), Change5::new_layout()]);
    let before = ids(&Change5::old(), &key);
    let gaining: Vec<String> =
        ids(&Change5::new_layout(), &key).into_iter().filter(|n| !before.contains(n)).collect();
    for node in &gaining {
        nodes.faults[node].set_plan(FaultPlan::down());
    }
    // Every old owner could acknowledge, but the new layout's owners have one at most.
    let err = coordinator.write(key.clone(), Some(Bytes::from("v")), None, 2).await.unwrap_err();
    assert!(matches!(err, ClusterError::Quorum(_)), "{err}");
    for node in &gaining {
        nodes.faults[node].set_plan(FaultPlan::default());
    }
    coordinator.write(key.clone(), Some(Bytes::from("v")), None, 3).await.unwrap();
    for node in ids(&Change5::new_layout(), &key) {
        assert_eq!(nodes.holds(&node, &key).as_deref(), Some(&b"v"[..]), "new owner {node}");
    }
}

#[tokio::test]
async fn a_read_during_a_change_finds_what_only_the_old_owners_hold() {
    let nodes = Change5::new();
    let key = moving_key();
    let before = nodes.coordinator(vec![Change5::old()]);
    before.write(key.clone(), Some(Bytes::from("kept")), None, 3).await.unwrap();
    let during = nodes.coordinator(vec![Change5::old(), Change5::new_layout()]);
    for _ in 0..20 {
        let got = during.get(key.clone(), 2).await.unwrap();
        assert_eq!(got.value().as_deref(), Some(&b"kept"[..]));
        assert!(got.replies.iter().all(|(_, r)| r.is_some()), "only old owners were asked");
    }
    // The new layout alone would ask the two owners that have nothing yet.
    let after = nodes.coordinator(vec![Change5::new_layout()]);
    let got = after.get(key.clone(), 3).await.unwrap();
    assert_eq!(got.replies.iter().filter(|(_, r)| r.is_none()).count(), 2);
}

#[tokio::test]
async fn an_incr_during_a_change_counts_on_from_what_the_old_owners_hold() {
    let nodes = Change5::new();
    let key = moving_key();
    let before = nodes.coordinator(vec![Change5::old()]);
    before.write(key.clone(), Some(Bytes::from("41")), None, 3).await.unwrap();
    let during = nodes.coordinator(vec![Change5::old(), Change5::new_layout()]);
    let incr = WriteRequest::new(Change::Add(1), None);
    let result = during.apply(key.clone(), incr, WriteQuorum { w: 2, pw: 0 }).await.unwrap();
    assert_eq!(result.outcome.number, Some(42));
}

/// Writes `count` keys through the old layout alone (before the change), at W = 3.
async fn load(nodes: &Change5, count: usize) -> Vec<Bytes> {
    let before = nodes.coordinator(vec![Change5::old()]);
    let mut keys = Vec::new();
    for i in 0..count {
        let key = Bytes::from(format!("key-{i}"));
        before.write(key.clone(), Some(Bytes::from(format!("v{i}"))), None, 3).await.unwrap();
        keys.push(key);
    }
    keys
}

/// Every key reads back from every one of its owners in the new layout alone.
async fn every_new_owner_holds(nodes: &Change5, keys: &[Bytes]) {
    let after = nodes.coordinator(vec![Change5::new_layout()]);
    for (i, key) in keys.iter().enumerate() {
        let got = after.get(key.clone(), 3).await.unwrap();
        assert!(got.replies.iter().all(|(_, r)| r.is_some()), "{key:?}: {:?}", got.replies);
        assert_eq!(got.value(), Some(Bytes::from(format!("v{i}"))));
    }
}

#[tokio::test]
async fn nodes_gaining_partitions_stream_them_from_their_old_owners() {
    let nodes = Change5::new();
    let keys = load(&nodes, 300).await;
    let view = nodes.changing();
    let n2 = &nodes.transfers["n2"];
    let synced = || n2.all_reached(&view, false, ChangePhase::Synced);
    assert!(!synced().await, "nothing streamed yet");
    assert!(nodes.sync_all().await);
    assert!(synced().await);
    let n4 = nodes.transfers["n4"].progress();
    assert_eq!((n4.version, n4.done), (2, n4.gained));
    assert!(n4.gained > 0 && n4.records > 0, "{n4:?}");
    assert_eq!(nodes.transfers["n1"].progress().gained, 0, "a leaving node gains nothing");
    every_new_owner_holds(&nodes, &keys).await;
}

#[tokio::test]
async fn a_node_restarted_during_a_change_does_not_stream_again_what_it_holds() {
    let nodes = Change5::new();
    load(&nodes, 300).await;
    assert!(nodes.sync_all().await, "every member takes the change up");
    let view = nodes.changing();
    let kept = Arc::new(MemoryCheckpoints::default());
    let start = || Transfers::new(NodeId::new("n4"), TransferConfig::default(), kept.clone());
    let first = start();
    assert!(first.sync(&view).await);
    assert!(first.progress().records > 0);
    let restarted = start();
    assert!(restarted.sync(&view).await);
    let again = restarted.progress();
    assert_eq!((again.done, again.records), (again.gained, 0), "{again:?}");
}

#[tokio::test]
async fn a_new_owner_is_synced_only_once_every_old_owner_served_it() {
    let nodes = Change5::new();
    let keys = load(&nodes, 200).await;
    nodes.faults["n2"].set_plan(FaultPlan::down());
    assert!(!nodes.sync_all().await, "n2 holds partitions back");
    // n4 streamed n2's partitions from the other old owners, but n2 may hold writes they
    // lack: n4 is not synced until it has caught up with n2 too.
    let progress = nodes.transfers["n4"].progress();
    assert_eq!(progress.done, progress.gained, "{progress:?}");
    assert_eq!(nodes.transfers["n4"].phase(2), ChangePhase::Streaming);
    nodes.faults["n2"].set_plan(FaultPlan::default());
    assert!(nodes.sync_all().await);
    every_new_owner_holds(&nodes, &keys).await;
}

#[tokio::test]
async fn a_write_only_one_old_owner_holds_reaches_the_new_owners() {
    let nodes = Change5::new();
    let key = moving_key();
    let holder = ids(&Change5::old(), &key)[2].clone();
    for node in ["n1", "n2", "n3"].into_iter().filter(|n| **n != *holder) {
        nodes.faults[node].set_plan(FaultPlan::down());
    }
    let before = nodes.coordinator(vec![Change5::old()]);
    before.write(key.clone(), Some(Bytes::from("one copy")), None, 1).await.unwrap();
    for node in ["n1", "n2", "n3"] {
        nodes.faults[node].set_plan(FaultPlan::default());
    }
    assert!(nodes.sync_all().await);
    // Each new owner streamed from every old owner, the one holding the write included
    // (an owner in both layouts streams nothing: it stays as repaired as it was).
    let old = ids(&Change5::old(), &key);
    for node in ids(&Change5::new_layout(), &key).iter().filter(|n| !old.contains(n)) {
        assert_eq!(nodes.holds(node, &key).as_deref(), Some(&b"one copy"[..]), "{node}");
    }
}

#[tokio::test]
async fn a_write_during_the_change_is_not_undone_by_the_streamed_older_record() {
    let nodes = Change5::new();
    let key = moving_key();
    nodes
        .coordinator(vec![Change5::old()])
        .write(key.clone(), Some(Bytes::from("old")), None, 3)
        .await
        .unwrap();
    let during = nodes.coordinator(vec![Change5::old(), Change5::new_layout()]);
    during.write(key.clone(), Some(Bytes::from("new")), None, 3).await.unwrap();
    assert!(nodes.sync_all().await);
    for node in ids(&Change5::new_layout(), &key) {
        assert_eq!(nodes.holds(&node, &key).as_deref(), Some(&b"new"[..]), "{node}");
    }
}

#[tokio::test]
async fn the_old_layout_retires_only_once_every_member_reads_the_new_one() {
    let nodes = Change5::new();
    let keys = load(&nodes, 100).await;
    let views: BTreeMap<&String, ViewHandle> = nodes
        .transfers
        .keys()
        .map(|id| (id, ViewHandle::new(nodes.changing(), Clock::system())))
        .collect();
    let phase = |id: &String| nodes.transfers[id].phase(2);
    for round in 0..10 {
        for (id, handle) in &views {
            let view = handle.view();
            if view.is_changing() {
                nodes.transfers[*id].advance(handle, &view).await;
            }
            // A node writes to the new layout alone only once nobody reads the old one.
            if !handle.view().is_changing() {
                for other in nodes.transfers.keys() {
                    assert_eq!(
                        phase(other),
                        ChangePhase::ReadingNew,
                        "{id} retired, round {round}"
                    );
                }
            }
            // A node reads the new layout only once every new owner holds its partitions.
            if handle.view().reads_newest() {
                for new_owner in ["n2", "n3", "n4", "n5"].map(String::from) {
                    assert!(
                        phase(&new_owner) >= ChangePhase::Synced,
                        "{id} reads new, round {round}"
                    );
                }
            }
        }
    }
    assert!(views.values().all(|h| !h.view().is_changing()), "every node retired the old layout");
    every_new_owner_holds(&nodes, &keys).await;
    // A node keeps only what it owns in the new layout: n1 left, and holds nothing.
    let new = Change5::new_layout();
    for id in nodes.locals.keys() {
        for key in &keys {
            let owns = ids(&new, key).contains(id);
            assert_eq!(nodes.holds(id, key).is_some(), owns, "{id} and {key:?}");
        }
    }
}

/// A coordinator that has not taken the change up yet writes to the old owners alone; a
/// new owner that had already streamed the partition must not count as synced before
/// that coordinator has taken the change up, and then catches up with the write.
#[tokio::test]
async fn a_write_to_the_old_owners_alone_before_every_member_took_the_change_up_reaches_the_new_owners()
 {
    let nodes = Change5::new();
    let key = moving_key();
    let view = nodes.changing();
    let n4 = &nodes.transfers["n4"];
    assert!(!n4.sync(&view).await, "the other members have not taken the change up");
    assert_eq!(n4.phase(2), ChangePhase::Streaming);
    let lagging = nodes.coordinator(vec![Change5::old()]);
    lagging.write(key.clone(), Some(Bytes::from("late")), None, 3).await.unwrap();
    assert!(nodes.sync_all().await);
    let old = ids(&Change5::old(), &key);
    for node in ids(&Change5::new_layout(), &key).iter().filter(|n| !old.contains(n)) {
        assert_eq!(nodes.holds(node, &key).as_deref(), Some(&b"late"[..]), "{node}");
    }
}
