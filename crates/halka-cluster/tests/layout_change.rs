//! Requests while partitions move between two layouts, through the coordinator: writes
//! are acknowledged only with W from the owners of each active layout, and reads and
//! value-dependent writes use the old owners, which hold the data until the new ones have
//! streamed it.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::{
    ClusterError, Coordinator, CoordinatorConfig, FaultPlan, FaultyReplica, LocalReplica, Replica,
    View, WriteQuorum, WriteRequest,
};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member, key_hash};
use halka_store::{Change, MemoryEngine, NodeId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Five nodes; the change moves the cluster from n1..n3 (version 1) to n2..n5 (version 2).
struct Change5 {
    locals: BTreeMap<String, LocalReplica>,
    faults: BTreeMap<String, FaultyReplica>,
}

impl Change5 {
    fn new() -> Self {
        let mut locals = BTreeMap::new();
        let mut faults = BTreeMap::new();
        for i in 1..=5 {
            let id = format!("n{i}");
            let local = LocalReplica::new(NodeId::new(&id), Arc::new(MemoryEngine::default()));
            let faulty = FaultyReplica::new(Arc::new(local.clone()), FaultPlan::default(), i);
            locals.insert(id.clone(), local);
            faults.insert(id, faulty);
        }
        Self { locals, faults }
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
