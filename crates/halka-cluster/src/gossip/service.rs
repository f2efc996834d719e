//! One node's part in gossip: every round it raises its heartbeat and swaps whole tables
//! with a few peers chosen at random (push-pull), and it judges every node it hears of
//! with a phi-accrual detector, publishing who is down in [`Liveness`].
//!
//! Whole tables, not digests and deltas (Scuttlebutt, as chitchat does): an announcement
//! is a few dozen bytes, so a hundred nodes' table is a few kilobytes a round, and a
//! table sent whole needs no second trip.
//!
//! Peers are the members this node reaches (its registry), every node a table names, and
//! the seed addresses: one seed no node here has announced itself from yet is added to
//! every round until one answers, so a node started with seeds only is known to the
//! cluster (and can be joined by id) within a round or two.

use super::detector::{Arrivals, DetectorConfig};
use super::liveness::{Judged, Liveness};
use super::table::{Announcement, Table};
use crate::membership::{MemberSpec, MembershipRequest, MembershipResponse};
use crate::{Clock, Members, Replica};
use halka_store::NodeId;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Makes the replica that reaches a node known only by its peer address (and its id,
/// when known: `None` accepts whichever node answers there and proves the secret).
pub type Reach = Arc<dyn Fn(Option<&NodeId>, &str) -> Arc<dyn Replica> + Send + Sync>;

/// The newest layout version this node has installed (0: none).
pub type LayoutVersion = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The members a node watches and gossips with: those owning partitions in a layout it
/// holds. Others (a member that left once the change is over, one replaced) are judged
/// only while news of them comes, and forgotten once it stops.
pub type Watched = Arc<dyn Fn() -> Vec<NodeId> + Send + Sync>;

/// How a node gossips.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// How often a round starts.
    pub interval: Duration,
    /// Peers a round swaps tables with.
    pub fanout: usize,
    /// How long one swap may take.
    pub deadline: Duration,
    pub detector: DetectorConfig,
    /// How long a node that is no member (one that left, was replaced, or was never
    /// joined) stays known after the last news of it; then it is forgotten.
    pub forget_after: Duration,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            fanout: 3,
            deadline: Duration::from_secs(2),
            detector: DetectorConfig::default(),
            forget_after: Duration::from_secs(3600),
        }
    }
}

/// What a node gossips with.
pub struct GossipSpec {
    pub config: GossipConfig,
    /// Peer addresses to announce this node to until one answers.
    pub seeds: Vec<String>,
    pub reach: Reach,
    /// Seeds the choice of peers (the simulator passes its own, so a run replays).
    pub rng_seed: u64,
}

impl std::fmt::Debug for GossipSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipSpec").field("seeds", &self.seeds).finish_non_exhaustive()
    }
}

/// A node known by gossip, with the detector's judgement of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub announcement: Announcement,
    pub judged: Option<Judged>,
}

/// One node's gossip.
pub struct Gossip {
    config: GossipConfig,
    me: Mutex<Announcement>,
    heard: Mutex<Heard>,
    liveness: Liveness,
    seeds: Vec<String>,
    members: Members,
    /// Who is watched; `None`: every member of the registry.
    watched: Option<Watched>,
    reach: Reach,
    layout_version: LayoutVersion,
    /// Replicas reaching nodes outside the registry, by peer address.
    links: Mutex<HashMap<String, Arc<dyn Replica>>>,
    rng: Mutex<SmallRng>,
}

/// The table and when each node's news arrived.
#[derive(Default)]
struct Heard {
    table: Table,
    arrivals: HashMap<String, Arrivals>,
    /// When each forgotten node was forgotten here.
    forgotten: HashMap<String, Instant>,
}

impl std::fmt::Debug for Gossip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossip").field("me", &self.me.lock().member.id).finish_non_exhaustive()
    }
}

/// A peer a round swaps tables with.
enum Peer {
    Member(NodeId),
    Node(NodeId, String),
    Seed(String),
}

impl Gossip {
    /// Node `me`'s gossip; `members` is the registry of members it reaches.
    #[must_use]
    pub fn new(
        me: MemberSpec,
        spec: GossipSpec,
        members: Members,
        clock: &Clock,
        layout_version: LayoutVersion,
    ) -> Self {
        let announcement = Announcement {
            member: me,
            generation: clock.now_us(),
            heartbeat: 0,
            layout_version: layout_version(),
        };
        Self {
            config: spec.config,
            me: Mutex::new(announcement),
            heard: Mutex::default(),
            liveness: Liveness::default(),
            seeds: spec.seeds,
            members,
            watched: None,
            reach: spec.reach,
            layout_version,
            links: Mutex::default(),
            rng: Mutex::new(SmallRng::seed_from_u64(spec.rng_seed)),
        }
    }

    /// Watches the members `watched` names rather than every member of the registry.
    #[must_use]
    pub fn watching(mut self, watched: Watched) -> Self {
        self.watched = Some(watched);
        self
    }

    fn watched(&self) -> Vec<NodeId> {
        match &self.watched {
            Some(watched) => watched(),
            None => self.members.ids(),
        }
    }

    /// Who is down, as the detector last judged.
    #[must_use]
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// Every node known, with its judgement.
    #[must_use]
    pub fn known(&self) -> Vec<Known> {
        let heard = self.heard.lock();
        heard
            .table
            .iter()
            .map(|a| Known {
                announcement: a.clone(),
                judged: self.liveness.judged(&NodeId::new(a.id())),
            })
            .collect()
    }

    /// The node announced as `id`, if known.
    #[must_use]
    pub fn announced(&self, id: &str) -> Option<Announcement> {
        self.heard.lock().table.get(id).cloned()
    }

    /// Takes a peer's table and answers with this node's.
    #[must_use]
    pub fn answer(&self, theirs: Vec<Announcement>) -> Vec<Announcement> {
        self.take(theirs);
        self.announcements()
    }

    fn announcements(&self) -> Vec<Announcement> {
        let me = self.me.lock().clone();
        let heard = self.heard.lock();
        std::iter::once(me).chain(heard.table.iter().cloned()).collect()
    }

    fn take(&self, theirs: Vec<Announcement>) {
        let now = Instant::now();
        let me = self.me.lock().member.id.clone();
        let mut heard = self.heard.lock();
        let merged = heard.table.merge(&me, theirs);
        let detector = &self.config.detector;
        for id in merged.heard.into_iter().chain(merged.new) {
            heard
                .arrivals
                .entry(id)
                .and_modify(|a| a.heartbeat(now, detector))
                .or_insert_with(|| Arrivals::new(now, detector));
        }
    }

    /// Gossips every `interval` until `stop`. Swaps run beside the rounds, at most
    /// `fanout` twice over at once, so a peer that hangs delays no round.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut rounds = tokio::time::interval(self.config.interval);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut swaps = JoinSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                Some(answer) = swaps.join_next(), if !swaps.is_empty() => {
                    if let Ok(Some(theirs)) = answer {
                        self.take(theirs);
                    }
                }
                _ = rounds.tick() => {
                    self.judge();
                    let ours = self.beat();
                    for replica in self.round_peers() {
                        if swaps.len() >= 2 * self.config.fanout.max(1) {
                            break;
                        }
                        swaps.spawn(swap(replica, ours.clone(), self.config.deadline));
                    }
                }
            }
        }
        swaps.shutdown().await;
    }

    /// Raises this node's heartbeat; its table, ready to send.
    fn beat(&self) -> Vec<Announcement> {
        {
            let mut me = self.me.lock();
            me.heartbeat += 1;
            me.layout_version = (self.layout_version)();
        }
        self.announcements()
    }

    /// The replicas this round swaps tables with.
    fn round_peers(&self) -> Vec<Arc<dyn Replica>> {
        let (peers, seed) = self.candidates();
        let mut rng = self.rng.lock();
        let mut chosen: Vec<&Peer> = peers.choose_multiple(&mut *rng, self.config.fanout).collect();
        let seed = seed.or_else(|| {
            // Alone: keep asking the seeds.
            (peers.is_empty() && !self.seeds.is_empty())
                .then(|| Peer::Seed(self.seeds[rng.random_range(0..self.seeds.len())].clone()))
        });
        drop(rng);
        chosen.extend(seed.as_ref());
        chosen.into_iter().filter_map(|p| self.replica(p)).collect()
    }

    /// Every peer known, and one seed not yet heard from (chosen at random).
    fn candidates(&self) -> (Vec<Peer>, Option<Peer>) {
        let me = self.me.lock().member.clone();
        let mut peers: Vec<Peer> = Vec::new();
        let registered = self.watched();
        for id in &registered {
            if id.as_str() != me.id {
                peers.push(Peer::Member(id.clone()));
            }
        }
        let heard = self.heard.lock();
        for a in heard.table.iter() {
            let id = NodeId::new(a.id());
            if !registered.contains(&id) && !a.member.addresses.peer.is_empty() {
                peers.push(Peer::Node(id, a.member.addresses.peer.clone()));
            }
        }
        let unmet: Vec<&String> = self
            .seeds
            .iter()
            .filter(|s| **s != me.addresses.peer)
            .filter(|s| !heard.table.iter().any(|a| a.member.addresses.peer == **s))
            .collect();
        drop(heard);
        let seed = unmet.choose(&mut *self.rng.lock()).map(|s| Peer::Seed((*s).clone()));
        (peers, seed)
    }

    fn replica(&self, peer: &Peer) -> Option<Arc<dyn Replica>> {
        let (id, addr) = match peer {
            Peer::Member(id) => return self.members.get(id),
            Peer::Node(id, addr) => (Some(id), addr),
            Peer::Seed(addr) => (None, addr),
        };
        let mut links = self.links.lock();
        if let Some(r) = links.get(addr)
            && id.is_none_or(|id| r.id() == id)
        {
            return Some(Arc::clone(r));
        }
        let r = (self.reach)(id, addr);
        // Bounded like the table: one link per address a table named.
        if links.len() >= super::table::MAX_NODES {
            links.clear();
        }
        links.insert(addr.clone(), Arc::clone(&r));
        Some(r)
    }

    /// Judges every node watched (and starts watching members not heard of yet, as if
    /// heard now: one that never answers is convicted after `threshold / log10(e)`
    /// priors), and publishes the judgement.
    fn judge(&self) {
        let now = Instant::now();
        let me = NodeId::new(&self.me.lock().member.id);
        let detector = &self.config.detector;
        let members = self.watched();
        let mut heard = self.heard.lock();
        for id in &members {
            if *id != me {
                heard
                    .arrivals
                    .entry(id.to_string())
                    .or_insert_with(|| Arrivals::new(now, detector));
            }
        }
        self.forget_departed(&mut heard, &members, now);
        let judged: BTreeMap<NodeId, Judged> = heard
            .arrivals
            .iter()
            .map(|(id, arrivals)| {
                let phi = arrivals.phi(now);
                (NodeId::new(id), Judged { phi, convicted: phi > detector.threshold })
            })
            .collect();
        drop(heard);
        let before = self.liveness.all();
        for (id, now) in &judged {
            let was = before.get(id).is_some_and(|j| j.convicted);
            if now.convicted && !was {
                tracing::warn!(node = %id, phi = now.phi, "failure detector: node is down");
            } else if was && !now.convicted {
                tracing::info!(node = %id, "failure detector: node is up again");
            }
        }
        let down = judged.values().filter(|j| j.convicted).count();
        metrics::gauge!(crate::telemetry::MEMBERS_DOWN).set(down as f64);
        self.liveness.publish(judged);
    }
}

impl Gossip {
    /// Forgets each node that is no member and has not been heard of for
    /// `forget_after`: one that left, was replaced, or was never joined would otherwise
    /// stay in every table, convicted, for good. Its old announcements are refused for
    /// another `forget_after`, by when every peer has forgotten it too (they stopped
    /// hearing of it at about the same time).
    fn forget_departed(&self, heard: &mut Heard, members: &[NodeId], now: Instant) {
        let forget_after = self.config.forget_after;
        let departed: Vec<String> = heard
            .arrivals
            .iter()
            .filter(|(id, arrivals)| {
                arrivals.silence(now) > forget_after && !members.iter().any(|m| m.as_str() == *id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in departed {
            heard.arrivals.remove(&id);
            if let Some(a) = heard.table.get(&id) {
                self.links.lock().remove(&a.member.addresses.peer);
            }
            heard.table.forget(&id);
            heard.forgotten.insert(id.clone(), now);
            tracing::info!(node = %id, "gossip: forgot a node that is no member and fell silent");
        }
        let table = &mut heard.table;
        heard.forgotten.retain(|id, at| {
            let keep = now.saturating_duration_since(*at) <= forget_after;
            if !keep {
                table.unmark(id);
            }
            keep
        });
    }
}

/// Swaps tables with `replica`; its table, if it answered in time.
async fn swap(
    replica: Arc<dyn Replica>,
    ours: Vec<Announcement>,
    deadline: Duration,
) -> Option<Vec<Announcement>> {
    let call = replica.membership(MembershipRequest::Gossip(ours));
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(MembershipResponse::Gossip(theirs))) => Some(theirs),
        Ok(Ok(_)) | Err(_) => None,
        Ok(Err(e)) => {
            tracing::debug!(peer = %replica.id(), error = %e, "gossip swap failed");
            None
        }
    }
}
