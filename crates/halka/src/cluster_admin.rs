//! The operator's membership actions on one node, shared by the Redis protocol
//! (`HALKA.CLUSTER ...`, what `halka cluster` sends) and HTTP (`/v1/cluster/...`): the
//! layout and its change as this node sees them, staging joins, leaves and replaces,
//! the plan, and the commit.

use crate::membership::peers::PeerState;
use crate::state::NodeState;
use halka_cluster::membership::{Change, CommitError, LayoutSpec, MemberSpec, Plan, StateSpec};
use halka_cluster::rpc::RemoteReplica;
use halka_cluster::{ChangePhase, Progress, Replica};
use halka_store::NodeId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How long `status` waits for each member's phase.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The cluster's layout as one node sees it (`halka cluster status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayoutStatus {
    /// The node that answered.
    pub node: String,
    /// The newest layout version (0: this node waits to be joined).
    pub layout_version: u64,
    /// Versions still active: more than one while partitions move.
    pub active_versions: Vec<u64>,
    /// Whether reads moved to the newest layout.
    pub reads_newest: bool,
    pub nodes: Vec<NodeEntry>,
    /// This node's transfers in the change under way.
    pub transfers: Transfers,
    /// Changes staged on this node, not yet committed.
    pub staged: Vec<Change>,
    /// Nodes that announced themselves by gossip and are in no active layout: started
    /// with seeds and waiting to be joined (`halka cluster join ID`), or gone.
    #[serde(default)]
    pub announced: Vec<Announced>,
}

/// A node known by gossip only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announced {
    pub id: String,
    pub peer_addr: String,
    pub redis_addr: String,
    pub zone: String,
    pub weight: u32,
    /// Whether the failure detector holds it alive.
    pub alive: bool,
    pub phi: Option<f64>,
}

/// One member of the newest layout (and members of older active ones).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeEntry {
    pub id: String,
    pub peer_addr: String,
    pub redis_addr: String,
    pub http_addr: String,
    pub zone: String,
    pub weight: u32,
    /// joining, active, leaving or left.
    pub state: String,
    /// It answers now, and the failure detector does not hold it down.
    pub alive: bool,
    /// The failure detector's phi for it (`None`: the node answering, or not heard of yet).
    #[serde(default)]
    pub phi: Option<f64>,
    /// How far it has come in the newest layout version: unaware, streaming, synced,
    /// reading-new, retired (the change is over there), gone (replaced), or unknown (it
    /// does not answer).
    pub phase: String,
    /// Its transfers in the change under way.
    #[serde(default)]
    pub transfers: Transfers,
}

/// Partition transfers in the change under way: a member's, or every member's together.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Transfers {
    /// Partitions gained and not held yet.
    pub pending: usize,
    /// Of those, the ones streaming in now.
    pub active: usize,
    pub done: usize,
    /// Records streamed in so far.
    pub records: u64,
    /// Their size, as batches are weighed (keys, values, per-version overhead).
    pub bytes_done: u64,
    /// What every gained partition will have moved, estimated from those done (their mean
    /// size): `null` until one is done where partitions are pending.
    pub bytes_total: Option<u64>,
}

/// Why an action failed: what kind of failure (an HTTP status says it), and the message.
#[derive(Debug)]
pub struct AdminError(pub Failure, pub String);

/// The kinds of [`AdminError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The changes asked for do not apply (a member that is not one, too few left...).
    Invalid,
    /// The cluster is not in a state to take it now (a change under way, a racing
    /// commit, too few owners answering): try again later.
    Conflict,
    /// The node to join does not answer.
    Unreachable,
    /// This node could not keep its state.
    Internal,
}

impl From<CommitError> for AdminError {
    fn from(e: CommitError) -> Self {
        let failure = match &e {
            CommitError::Stage(_) | CommitError::NoLayout => Failure::Invalid,
            CommitError::Changing(_)
            | CommitError::NoMajority { .. }
            | CommitError::Superseded(_) => Failure::Conflict,
            CommitError::Unreachable { .. } => Failure::Unreachable,
            _ => Failure::Internal,
        };
        AdminError(failure, e.to_string())
    }
}

/// The layout as this node sees it, each member asked how far it has come.
pub async fn status(state: &NodeState) -> LayoutStatus {
    let membership = &state.membership;
    let (layouts, reads_newest) = membership.current();
    let peers = state.peer_states().await;
    let view = state.coordinator.view();
    let (version, changing) = (view.epoch(), view.is_changing());
    let mut members: Vec<&MemberSpec> =
        layouts.iter().rev().flat_map(|l| l.members.iter()).collect();
    let mut seen = std::collections::BTreeSet::new();
    members.retain(|m| seen.insert(m.id.clone()));
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let asks = members.iter().map(|m| {
        let replica = view.replicas().iter().find(|r| r.id().as_str() == m.id).cloned();
        // A replaced member is not asked: it is gone.
        let reach =
            replica.or_else(|| state.peers.replica(&m.id)).filter(|_| m.state != StateSpec::Left);
        ask_member(reach, m.state == StateSpec::Left, version, changing)
    });
    let answers = futures::future::join_all(asks).await;
    let me = &state.config.node_id;
    let transfers = Transfers::sum(answers.iter().map(|(_, t)| t));
    let liveness = state.coordinator.view_handle().liveness().clone();
    let nodes = members
        .iter()
        .zip(answers)
        .map(|(m, (phase, transfers))| {
            let judged = (m.id != *me).then(|| liveness.judged(&NodeId::new(&m.id))).flatten();
            let answers = peers.get(&m.id).is_some_and(|p| *p != PeerState::Down);
            // A member of a static list is written down without its client addresses;
            // it announces them by gossip.
            let told = membership.gossip().and_then(|g| g.announced(&m.id)).map(|a| a.member);
            let or_told = |ours: &str, theirs: Option<&str>| {
                if ours.is_empty() { theirs.unwrap_or_default() } else { ours }.to_string()
            };
            NodeEntry {
                id: m.id.clone(),
                peer_addr: m.addresses.peer.clone(),
                redis_addr: or_told(
                    &m.addresses.redis,
                    told.as_ref().map(|t| t.addresses.redis.as_str()),
                ),
                http_addr: or_told(
                    &m.addresses.http,
                    told.as_ref().map(|t| t.addresses.http.as_str()),
                ),
                zone: m.zone.clone(),
                weight: m.weight,
                state: settled_state(m.state, changing).to_string(),
                alive: m.id == *me || (answers && !judged.is_some_and(|j| j.convicted)),
                phi: judged.map(|j| rounded(j.phi)),
                phase,
                transfers,
            }
        })
        .collect();
    let announced = announced(state, &seen);
    LayoutStatus {
        node: me.clone(),
        layout_version: layouts.last().map_or(0, |l| l.version),
        active_versions: layouts.iter().map(|l| l.version).collect(),
        reads_newest,
        nodes,
        transfers,
        staged: membership.staged(),
        announced,
    }
}

/// Nodes gossip knows of that no active layout names (`members`).
fn announced(state: &NodeState, members: &std::collections::BTreeSet<String>) -> Vec<Announced> {
    let Some(gossip) = state.membership.gossip() else { return Vec::new() };
    gossip
        .known()
        .into_iter()
        .filter(|k| !members.contains(k.announcement.id()))
        .map(|k| {
            let m = k.announcement.member;
            Announced {
                id: m.id,
                peer_addr: m.addresses.peer,
                redis_addr: m.addresses.redis,
                zone: m.zone,
                weight: m.weight,
                alive: k.judged.is_some_and(|j| !j.convicted),
                phi: k.judged.map(|j| rounded(j.phi)),
            }
        })
        .collect()
}

/// Phi to two decimals: what an operator reads.
fn rounded(phi: f64) -> f64 {
    (phi * 100.0).round() / 100.0
}

/// A member's phase in the change to `version`, and its transfers in it (none once no
/// change is under way here).
async fn ask_member(
    reach: Option<Arc<dyn Replica>>,
    gone: bool,
    version: u64,
    changing: bool,
) -> (String, Transfers) {
    let Some(r) = reach else {
        return (if gone { "gone" } else { "unknown" }.to_string(), Transfers::default());
    };
    let (phase, progress) = tokio::join!(
        tokio::time::timeout(ASK_TIMEOUT, r.transfer_status(version)),
        tokio::time::timeout(ASK_TIMEOUT, r.transfer_progress()),
    );
    let progress = progress.ok().and_then(Result::ok).filter(|p| changing && p.version == version);
    let transfers = progress.map_or_else(Transfers::default, |p| Transfers::from(&p));
    (phase_name(phase.ok().and_then(Result::ok)), transfers)
}

impl From<&Progress> for Transfers {
    fn from(p: &Progress) -> Self {
        // Partitions differ little in size: the ones done so far stand for the rest.
        let bytes_total = (p.done > 0).then(|| p.bytes * p.gained as u64 / p.done as u64);
        Self {
            pending: p.gained - p.done,
            active: p.active,
            done: p.done,
            records: p.records,
            bytes_done: p.bytes,
            bytes_total,
        }
    }
}

impl Transfers {
    /// The transfers of every member together.
    fn sum<'a>(all: impl Iterator<Item = &'a Transfers>) -> Self {
        let all: Vec<&Transfers> = all.collect();
        // Unknown while any member with partitions pending has finished none.
        let bytes_total = all
            .iter()
            .map(|t| t.bytes_total.or_else(|| (t.pending == 0).then_some(t.bytes_done)))
            .sum();
        Transfers {
            pending: all.iter().map(|t| t.pending).sum(),
            active: all.iter().map(|t| t.active).sum(),
            done: all.iter().map(|t| t.done).sum(),
            records: all.iter().map(|t| t.records).sum(),
            bytes_done: all.iter().map(|t| t.bytes_done).sum(),
            bytes_total,
        }
    }
}

/// A member's state as an operator reads it: once no change is under way, a member that
/// joined is active and one that left is gone (the layout records what the change did).
fn settled_state(state: StateSpec, changing: bool) -> &'static str {
    match state {
        StateSpec::Joining if !changing => "active",
        StateSpec::Leaving if !changing => "left",
        other => other.as_str(),
    }
}

fn phase_name(phase: Option<ChangePhase>) -> String {
    match phase {
        None => "unknown",
        Some(ChangePhase::Unaware) => "unaware",
        Some(ChangePhase::Streaming) => "streaming",
        Some(ChangePhase::Synced) => "synced",
        Some(ChangePhase::ReadingNew) => "reading-new",
        Some(ChangePhase::Retired) => "retired",
    }
    .to_string()
}

/// Stages joining `node`: its peer address, or the id it announced by gossip (a node
/// started with seeds). It describes itself, and `zone` or `weight` override what it
/// says. Returns the plan so far.
pub async fn join(
    state: &NodeState,
    node: &str,
    zone: Option<String>,
    weight: Option<u32>,
) -> Result<Plan, AdminError> {
    let mut spec = describe(state, &peer_addr_of(state, node)?).await?;
    if let Some(z) = zone {
        spec.zone = z;
    }
    if let Some(w) = weight {
        spec.weight = w;
    }
    stage(state, Change::Join(spec))
}

/// Stages member `id` leaving.
pub fn leave(state: &NodeState, id: &str) -> Result<Plan, AdminError> {
    stage(state, Change::Leave(id.to_string()))
}

/// Stages the node at `peer_addr` taking member `old`'s place.
pub async fn replace(state: &NodeState, old: &str, node: &str) -> Result<Plan, AdminError> {
    let new = describe(state, &peer_addr_of(state, node)?).await?;
    stage(state, Change::Replace { old: old.to_string(), new })
}

fn stage(state: &NodeState, change: Change) -> Result<Plan, AdminError> {
    state.membership.stage(change)?;
    Ok(state.membership.plan()?)
}

/// The peer address of `node`: itself when it is one, else what the node of that id
/// announced by gossip.
fn peer_addr_of(state: &NodeState, node: &str) -> Result<String, AdminError> {
    if node.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(node.to_string());
    }
    let gossip = state.membership.gossip();
    if let Some(a) = gossip.and_then(|g| g.announced(node)) {
        return Ok(a.member.addresses.peer);
    }
    let known: Vec<String> = gossip
        .map(|g| g.known().into_iter().map(|k| k.announcement.member.id).collect())
        .unwrap_or_default();
    Err(AdminError(
        Failure::Invalid,
        format!(
            "no node {node:?} has announced itself by gossip (known: {}): give its peer \
             address (host:port), or start it with `--seed` and a member's peer address",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ),
    ))
}

/// Asks the node at `peer_addr` who it is.
async fn describe(state: &NodeState, peer_addr: &str) -> Result<MemberSpec, AdminError> {
    // An empty expected id: whichever node answers there (it proves the secret).
    let probe: Arc<dyn Replica> =
        Arc::new(RemoteReplica::new(NodeId::new(""), peer_addr.to_string(), state.rpc.clone()));
    Ok(state.membership.describe(probe, peer_addr).await?)
}

/// What committing the staged changes would move.
pub fn plan(state: &NodeState) -> Result<Plan, AdminError> {
    Ok(state.membership.plan()?)
}

/// The result of a commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitReport {
    pub layout_version: u64,
    /// Whether the version chosen is this commit's (otherwise a racing commit won, and
    /// this node's changes stay staged).
    pub ours: bool,
    pub layout: LayoutSpec,
}

/// Commits the staged changes as the next layout version.
pub async fn commit(state: &NodeState) -> Result<CommitReport, AdminError> {
    let committed = state.membership.commit().await?;
    Ok(CommitReport {
        layout_version: committed.layout.version,
        ours: committed.ours,
        layout: committed.layout,
    })
}

/// Drops the changes staged on this node.
pub fn clear(state: &NodeState) {
    state.membership.clear_staged();
}
