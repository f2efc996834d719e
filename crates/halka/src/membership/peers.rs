//! How the other members answer, as this node sees them: up, down, or up but computing
//! placement from other inputs. Read on demand (`INFO halka`, `/v1/cluster`) and watched in
//! the background, which logs each change.

use super::layout::{Peer, Peers};
use halka_cluster::Replica;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How another member answers, as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Up,
    Down,
    /// It answers, but computes placement from another member list or replication factor:
    /// the two nodes disagree on which nodes hold which keys.
    OtherPlacement,
}

impl PeerState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Up => "up",
            PeerState::Down => "down",
            PeerState::OtherPlacement => "other-placement",
        }
    }
}

/// How long a report waits for a member's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(300);

/// Asks every peer for its placement fingerprint and compares it with `placement`. A
/// member that does not answer within `ANSWER_TIMEOUT` counts as down.
pub async fn states(peers: &[Peer], placement: u64) -> BTreeMap<String, PeerState> {
    let asks = peers.iter().map(|p| async move {
        let state = match tokio::time::timeout(ANSWER_TIMEOUT, p.remote.hello()).await {
            Ok(Ok(theirs)) if theirs == placement || !p.from_static_list => PeerState::Up,
            Ok(Ok(_)) => PeerState::OtherPlacement,
            _ => PeerState::Down,
        };
        (Replica::id(&p.remote).to_string(), state)
    });
    futures::future::join_all(asks).await.into_iter().collect()
}

/// How often a node asks the other members how they are.
const PEER_CHECK: Duration = Duration::from_secs(10);

/// How often a starting node asks until every member answers.
const STARTUP_CHECK: Duration = Duration::from_millis(100);

/// Waits until every other member answers, logs it once (from then on a request may
/// need any of them), and returns how they answered; after `PEER_CHECK`, returns how they
/// answer then. Asks every `STARTUP_CHECK`; a member not started yet refuses at once,
/// which costs nothing (see `RpcClientConfig::redial_min`).
async fn until_every_member_answers(peers: &[Peer], placement: u64) -> BTreeMap<String, PeerState> {
    let started = tokio::time::Instant::now();
    loop {
        let states = states(peers, placement).await;
        if states.values().all(|s| *s != PeerState::Down) {
            tracing::info!(
                members = peers.len() + 1,
                ms = started.elapsed().as_millis() as u64,
                "halka node sees every member"
            );
            return states;
        }
        if started.elapsed() >= PEER_CHECK {
            return states;
        }
        tokio::time::sleep(STARTUP_CHECK).await;
    }
}

fn log_change(peer: &str, now: PeerState) {
    match now {
        PeerState::Up => tracing::info!(%peer, "member answers again"),
        PeerState::Down => tracing::warn!(%peer, "member does not answer"),
        PeerState::OtherPlacement => tracing::error!(
            %peer,
            "member computes placement from another member list or replication factor: the \
             two nodes disagree on which nodes hold which keys; give every node the same \
             [[members]] and replication"
        ),
    }
}

/// Logs when every member first answers, then each change in how the other members
/// answer, until `shutdown`: a member going down or coming back, and — loudly — one that
/// computes placement from another member list, which static membership cannot survive
/// quietly (each side would send keys to replicas the other does not read).
pub async fn watch(peers: Peers, placement: u64, shutdown: CancellationToken) {
    let first = peers.snapshot();
    let known = tokio::select! {
        () = shutdown.cancelled() => return,
        known = until_every_member_answers(&first, placement) => known,
    };
    for (peer, state) in &known {
        if *state != PeerState::Up {
            log_change(peer, *state);
        }
    }
    let mut known = known;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PEER_CHECK, PEER_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (peer, now) in states(&peers.snapshot(), placement).await {
            let before = known.insert(peer.clone(), now);
            if before != Some(now) {
                log_change(&peer, now);
            }
        }
    }
}
