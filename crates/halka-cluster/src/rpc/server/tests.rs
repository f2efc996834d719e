use super::*;
use crate::LocalReplica;
use halka_store::{HashRange, MemoryEngine, NodeId, Record, TrackedEngine, Tracking, Write};
use std::time::Duration;
use tokio::time::Instant;

fn replica() -> Arc<dyn Replica> {
    Arc::new(LocalReplica::new(NodeId::new("a"), Arc::new(MemoryEngine::default())))
}

fn budgets(repair: RepairBudget) -> Budgets {
    Budgets { repair: Arc::new(repair), transfer: None }
}

fn batch() -> Request {
    Request::GetMany { keys: (0..100).map(|i| Bytes::from(format!("k{i}"))).collect() }
}

#[test]
fn a_guest_may_gossip_and_ask_who_a_node_is_and_its_layouts_but_nothing_else() {
    use crate::membership::MembershipRequest as M;
    assert!(guests_may_ask(&Request::Membership(Box::new(M::Gossip(Vec::new())))));
    assert!(guests_may_ask(&Request::Membership(Box::new(M::Describe))));
    assert!(guests_may_ask(&Request::Ping));
    assert!(guests_may_ask(&Request::Membership(Box::new(M::Current))));
    let install = M::Install { layouts: Vec::new() };
    assert!(!guests_may_ask(&Request::Membership(Box::new(install))));
    assert!(!guests_may_ask(&Request::Get { key: bytes::Bytes::from_static(b"k") }));
    assert!(!guests_may_ask(&batch()));
}

#[tokio::test(start_paused = true)]
async fn a_peers_repair_batches_wait_their_turn_in_the_budget() {
    // 1,000 keys a second: after the first tenth of a second of slack, each batch of
    // 100 waits out the previous one's share.
    let budget = budgets(RepairBudget::new(1_000, 1_000, None));
    let replica = replica();
    let started = Instant::now();
    for _ in 0..3 {
        paced(&budget, &replica, 0, batch()).await;
    }
    assert_eq!(started.elapsed(), std::time::Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn client_requests_from_peers_skip_the_repair_budget() {
    let budget = budgets(RepairBudget::new(1, 1, None));
    let replica = replica();
    // The budget is spent for a long while...
    paced(&budget, &replica, 0, batch()).await;
    let started = Instant::now();
    // ...but a replica read for a client is answered at once.
    let answer = paced(&budget, &replica, 0, Request::Get { key: Bytes::from("k") }).await;
    assert_eq!(answer, Response::MaybeRecord(None));
    assert_eq!(started.elapsed(), std::time::Duration::ZERO);
}

/// A replica holding 50 keys of 1 kB, and budgets with the repair budget spent for
/// minutes and a thousand bytes a second for transfers.
async fn spent_repairs() -> (Arc<dyn Replica>, Budgets) {
    // Digests kept, for key listings.
    let engine = TrackedEngine::build(Arc::new(MemoryEngine::default()), Tracking::ALL);
    let replica: Arc<dyn Replica> =
        Arc::new(LocalReplica::new(NodeId::new("a"), Arc::new(engine.unwrap())));
    let write = Write::value(Some(Bytes::from(vec![b'v'; 1_000])), None, 1);
    let record = Record::apply_write(None, &NodeId::new("a"), &write).unwrap().into_record();
    let entries = (0..50).map(|i| (Bytes::from(format!("k{i}")), Arc::new(record.clone())));
    replica.merge_many(entries.collect()).await.unwrap();
    let budgets = Budgets {
        repair: Arc::new(RepairBudget::new(1, 1, None)),
        transfer: Some(Arc::new(RepairBudget::new(1_000, 1_000, None))),
    };
    paced(&budgets, &replica, 0, batch()).await;
    (replica, budgets)
}

/// How long the fourth and fifth of five `request`s take: the first ones use up the
/// tenth of a second of slack (the first read's blocking task lets the paused clock
/// jump); then each waits out the previous one's share.
async fn steady_pair(budgets: &Budgets, replica: &Arc<dyn Replica>, request: Request) -> Duration {
    for _ in 0..3 {
        paced(budgets, replica, 0, request.clone()).await;
    }
    let started = Instant::now();
    paced(budgets, replica, 0, request.clone()).await;
    paced(budgets, replica, 0, request).await;
    started.elapsed()
}

/// Whether `elapsed` is the share of two answers of `bytes` at a millisecond a byte
/// (timers fire on whole milliseconds).
fn two_shares(elapsed: Duration, bytes: usize) -> bool {
    let share = Duration::from_millis(2 * bytes as u64);
    elapsed >= share && elapsed <= share + Duration::from_millis(2)
}

#[tokio::test(start_paused = true)]
async fn streamed_pages_spend_the_transfer_budget_by_bytes_not_the_repair_budget() {
    let (replica, budgets) = spent_repairs().await;
    let read = Request::ReadRange { range: HashRange::ALL };
    let Response::Listed(page) = handle(replica.as_ref(), 0, read.clone()).await else {
        panic!("not a page")
    };
    assert!(page.bytes() > 50_000, "{}", page.bytes());
    let elapsed = steady_pair(&budgets, &replica, read).await;
    assert!(two_shares(elapsed, page.bytes()), "{elapsed:?} for {} bytes", page.bytes());
}

#[tokio::test(start_paused = true)]
async fn key_listings_spend_the_transfer_budget_by_bytes_not_the_repair_budget() {
    let (replica, budgets) = spent_repairs().await;
    let list = Request::KeyDigests { range: HashRange::ALL };
    let Response::KeyDigests(listed) = handle(replica.as_ref(), 0, list.clone()).await else {
        panic!("not a listing")
    };
    assert_eq!(listed.len(), 50);
    let bytes = listed.iter().map(|(k, _)| k.len() + 8).sum();
    let elapsed = steady_pair(&budgets, &replica, list).await;
    assert!(two_shares(elapsed, bytes), "{elapsed:?} for {bytes} bytes");
}
