//! One node's assembly: its local replica, the members it reaches, the view over the
//! layout, the coordinator, and the services beside it (hinted handoff, anti-entropy,
//! tombstone collection, partition transfers) sharing one repair budget.
//!
//! The server and the simulator assemble a node here, so the simulator runs the wiring
//! production runs; they differ only in what they hand in: how a peer is reached (a TCP
//! link or a simulated one), the clock, and the engine.

use crate::gossip::{Gossip, GossipSpec, LayoutVersion, Watched};
use crate::membership::{
    Admit, Connect, LayoutSpec, MemberSpec, MembershipConfig, MembershipStore,
};
use crate::settings::{Settings, SettingsSpec};
use crate::stream::Checkpoints;
use crate::transfers::KeepView;
use crate::view::ViewHandle;
use crate::{
    AntiEntropy, AntiEntropyConfig, Clock, ClusterError, Collector, CollectorConfig, Coordinator,
    CoordinatorConfig, Handoff, HandoffConfig, LocalReplica, Members, Membership, RepairBudget,
    Replica, TransferConfig, Transfers,
};
use halka_ring::{Layout, Member};
use halka_store::{Engine, HintStore, NodeId};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Makes the replica the coordinator uses for this node's own store (the simulator
/// records its calls).
pub type ServeLocal = Box<dyn FnOnce(LocalReplica) -> Arc<dyn Replica> + Send>;

/// What a node is assembled from.
pub struct NodeSpec {
    pub id: NodeId,
    /// The actor this incarnation numbers its writes with.
    pub actor: NodeId,
    /// The store, with the indexes anti-entropy and tombstone collection need.
    pub engine: Arc<dyn Engine>,
    /// Where hints for other members are kept (used when `handoff` is on).
    pub hints: Arc<dyn HintStore>,
    pub layout: Layout,
    /// `local_node` is set to `id` by the assembly.
    pub coordinator: CoordinatorConfig,
    /// `None`: no hints kept, no stand-ins.
    pub handoff: Option<HandoffConfig>,
    /// `None`: no anti-entropy. Its rates are the node's repair budget.
    pub anti_entropy: Option<AntiEntropyConfig>,
    /// `None`: tombstones stay until overwritten.
    pub collector: Option<CollectorConfig>,
    /// `None`: the node streams no partitions when the layout changes (and a change then
    /// never completes: every member must run transfers).
    pub transfers: Option<TransferSpec>,
    /// `None`: the node runs `layout` until told otherwise (`Coordinator::swap_view`).
    /// Otherwise its membership decides the layouts, starting from what it kept (or
    /// `layout` when it kept nothing) and keeping the views its changes move it to.
    pub membership: Option<MembershipSpec>,
    /// `None`: no gossip, and no failure detector (paths learn that a member is down
    /// from their own failed calls only). Needs `membership`.
    pub gossip: Option<GossipSpec>,
    /// The cluster's shared settings (users, for one); needs membership. `None`: the
    /// node keeps none.
    pub settings: Option<crate::settings::SettingsSpec>,
    /// Timestamps for writes and tombstone ages.
    pub clock: Clock,
    /// Let concurrent writes share an fsync (see `LocalReplica::with_shared_flushes`).
    pub shared_flushes: bool,
    /// The replica the coordinator uses for this node (default: the local replica).
    pub serve_local: Option<ServeLocal>,
    /// The engine tombstone collection removes through (default: `engine`).
    pub collector_engine: Option<Arc<dyn Engine>>,
}

impl std::fmt::Debug for NodeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSpec")
            .field("id", &self.id)
            .field("actor", &self.actor)
            .field("layout", &self.layout.version())
            .finish_non_exhaustive()
    }
}

/// How a node transfers partitions in a layout change, and where it keeps its streams'
/// checkpoints.
pub struct TransferSpec {
    pub config: TransferConfig,
    pub checkpoints: Arc<dyn Checkpoints>,
    /// Where the node keeps the view a change moves it to (see `KeepView`).
    pub keep: Option<KeepView>,
}

impl std::fmt::Debug for TransferSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferSpec").field("config", &self.config).finish_non_exhaustive()
    }
}

/// How a node takes part in membership (see `Membership`).
pub struct MembershipSpec {
    /// Who this node is and where it is reached.
    pub me: MemberSpec,
    pub config: MembershipConfig,
    pub store: Arc<dyn MembershipStore>,
    pub connect: Connect,
    pub admit: Admit,
    /// The layout a node that kept none starts from (a static member list, as version
    /// 1); `None` for a node that waits to be joined.
    pub initial: Option<LayoutSpec>,
}

impl std::fmt::Debug for MembershipSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipSpec").field("me", &self.me.id).finish_non_exhaustive()
    }
}

/// An assembled node, not yet running its services.
#[derive(Debug)]
pub struct AssembledNode {
    pub coordinator: Arc<Coordinator>,
    pub local: LocalReplica,
    /// The local replica as the coordinator and peers use it.
    pub replica: Arc<dyn Replica>,
    /// Every member, this node included, with the replica that reaches it.
    pub members: Members,
    /// Every repair this node takes part in spends it: its own exchanges, and what
    /// peers' exchanges ask of it (see `RepairBudget`).
    pub repair_budget: Arc<RepairBudget>,
    /// What serving new owners' streams spends, in bytes (see `TransferConfig`).
    pub transfer_budget: Arc<RepairBudget>,
    pub services: Services,
}

/// The services beside a node's coordinator, each reading the current view: hinted
/// handoff, anti-entropy, tombstone collection and partition transfers (each `None` when
/// turned off).
#[derive(Debug, Clone, Default)]
pub struct Services {
    pub handoff: Option<Arc<Handoff>>,
    pub anti_entropy: Option<Arc<AntiEntropy>>,
    pub collector: Option<Arc<Collector>>,
    pub transfers: Option<Arc<Transfers>>,
    pub membership: Option<Arc<Membership>>,
    pub gossip: Option<Arc<Gossip>>,
    pub settings: Option<Arc<Settings>>,
}

impl NodeSpec {
    /// Assembles the node; `peer` makes the replica that reaches another member.
    ///
    /// # Errors
    /// The layout names a member this node cannot reach.
    pub fn assemble(
        mut self,
        mut peer: impl FnMut(&Member) -> Arc<dyn Replica>,
    ) -> Result<AssembledNode, ClusterError> {
        let mut local =
            LocalReplica::new(self.id.clone(), Arc::clone(&self.engine)).with_actor(self.actor);
        if self.shared_flushes {
            local = local.with_shared_flushes();
        }
        // Standing in for other owners needs somewhere to keep their hints.
        if self.handoff.is_some() {
            local = local.with_hints(Arc::clone(&self.hints));
        }
        let members = Members::default();
        let membership = match self.membership.take() {
            Some(spec) => {
                Some(Arc::new(open_membership(spec, &members, self.coordinator.replication)?))
            }
            None => None,
        };
        let gossip = match (&membership, self.gossip.take()) {
            (Some(m), Some(spec)) => Some(start_gossip(m, spec, &members, &self.clock)),
            _ => None,
        };
        let settings = match (&membership, self.settings.take()) {
            (Some(m), Some(spec)) => Some(open_settings(m, spec, &members, &self.clock)?),
            _ => None,
        };
        let transfer_config = self.transfers.as_ref().map(|spec| spec.config.clone());
        let transfers = self.transfers.take().map(|spec| {
            let transfers = Transfers::new(self.id.clone(), spec.config, spec.checkpoints);
            let keep = spec.keep.or_else(|| membership.as_ref().map(Membership::keep_view));
            Arc::new(match keep {
                Some(keep) => transfers.keeping_views(keep),
                None => transfers,
            })
        });
        if let Some(t) = &transfers {
            local = local.with_transfers(Arc::clone(t));
        }
        let replica = match self.serve_local.take() {
            Some(serve) => serve(local.clone()),
            None => Arc::new(local.clone()),
        };
        let view = match &membership {
            Some(m) => {
                local.serve_membership(m);
                m.initial_view(&replica).map_err(|e| ClusterError::Config(e.to_string()))?
            }
            None => {
                for m in self.layout.roster() {
                    let id = NodeId::new(&m.member.id);
                    members.add(if id == self.id { Arc::clone(&replica) } else { peer(&m.member) });
                }
                members.view(self.layout, self.coordinator.replication)?
            }
        };
        let repair_budget = repair_budget(self.anti_entropy.as_ref(), &local);
        let transfer_budget = transfer_budget(transfer_config.as_ref(), &local);
        let handoff = self.handoff.map(|config| Handoff::new(self.hints, config));
        let mut coordinator = Coordinator::new(
            view,
            CoordinatorConfig { local_node: Some(self.id.clone()), ..self.coordinator },
        )
        .with_clock(self.clock.clone());
        if let Some(g) = &gossip {
            coordinator = coordinator.with_liveness(g.liveness().clone());
        }
        let coordinator = Arc::new(match &handoff {
            Some(h) => coordinator.with_handoff(Arc::clone(h)),
            None => coordinator,
        });
        if let Some(m) = &membership {
            m.attach(coordinator.view_handle());
        }
        let anti_entropy = self.anti_entropy.map(|config| {
            AntiEntropy::assembled(
                self.id.clone(),
                config,
                self.clock.clone(),
                Arc::clone(&repair_budget),
            )
        });
        let collector = self.collector.and_then(|config| {
            let engine = self.collector_engine.unwrap_or(self.engine);
            Collector::new(self.id.clone(), engine, config)
        });
        Ok(AssembledNode {
            coordinator,
            local,
            replica,
            members,
            repair_budget,
            transfer_budget,
            services: Services {
                handoff,
                anti_entropy,
                collector,
                transfers,
                membership,
                gossip,
                settings,
            },
        })
    }
}

/// Opens the node's membership over the registry `members`.
fn open_membership(
    spec: MembershipSpec,
    members: &Members,
    replication: usize,
) -> Result<Membership, ClusterError> {
    Membership::open(
        spec.me,
        replication,
        spec.config,
        members.clone(),
        spec.connect,
        spec.admit,
        spec.store,
        spec.initial,
    )
    .map_err(|e| ClusterError::Config(format!("membership: {e}")))
}

/// The node's gossip, answering peers through `membership` and announcing the newest
/// layout it installed.
fn start_gossip(
    membership: &Arc<Membership>,
    spec: GossipSpec,
    members: &Members,
    clock: &Clock,
) -> Arc<Gossip> {
    let weak = Arc::downgrade(membership);
    let version: LayoutVersion =
        Arc::new(move || weak.upgrade().and_then(|m| m.newest()).map_or(0, |l| l.version));
    let weak = Arc::downgrade(membership);
    let registry = members.clone();
    // Before it holds a layout, a node watches the members it was started with.
    let watched: Watched = Arc::new(move || {
        let owners = weak.upgrade().map(|m| m.owners()).unwrap_or_default();
        if owners.is_empty() { registry.ids() } else { owners }
    });
    let gossip = Gossip::new(membership.me().clone(), spec, members.clone(), clock, version);
    let gossip = Arc::new(gossip.watching(watched));
    membership.attach_gossip(Arc::clone(&gossip));
    gossip
}

/// The node's copy of the cluster's settings, answering peers through `membership`.
fn open_settings(
    membership: &Arc<Membership>,
    spec: SettingsSpec,
    members: &Members,
    clock: &Clock,
) -> Result<Arc<Settings>, ClusterError> {
    let id = NodeId::new(&membership.me().id);
    let settings = Settings::open(id, clock.clone(), members.clone(), spec)
        .map_err(|e| ClusterError::Config(format!("settings: {e}")))?;
    let settings = Arc::new(settings);
    membership.attach_settings(Arc::clone(&settings));
    Ok(settings)
}

/// The node's repair budget: anti-entropy's rates, in keys.
fn repair_budget(config: Option<&AntiEntropyConfig>, local: &LocalReplica) -> Arc<RepairBudget> {
    let defaults = AntiEntropyConfig::default();
    let config = config.unwrap_or(&defaults);
    budget(config.max_keys_per_second, config.busy_keys_per_second, local)
}

/// The node's transfer budget: the bytes a second it serves to new owners streaming from
/// it.
fn transfer_budget(config: Option<&TransferConfig>, local: &LocalReplica) -> Arc<RepairBudget> {
    let defaults = TransferConfig::default();
    let config = config.unwrap_or(&defaults);
    budget(config.max_bytes_per_second, config.busy_bytes_per_second, local)
}

/// A budget of `per_second`, slowing to `busy_per_second` while the local replica serves
/// clients.
fn budget(per_second: u32, busy_per_second: u32, local: &LocalReplica) -> Arc<RepairBudget> {
    let local = local.clone();
    let load: crate::repair_budget::Load = Arc::new(move || local.foreground_ops());
    Arc::new(RepairBudget::new(per_second, busy_per_second, Some(load)))
}

impl Services {
    /// Starts the services; each reads the view from `views` and stops when `stop` is
    /// cancelled. The caller owns the tasks: the server awaits them on shutdown, the
    /// simulator aborts them on a crash.
    #[must_use]
    pub fn spawn(&self, views: &ViewHandle, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(h) = &self.handoff {
            tasks.push(tokio::spawn(Arc::clone(h).run(views.clone(), stop.clone())));
        }
        if let Some(a) = &self.anti_entropy {
            tasks.push(tokio::spawn(Arc::clone(a).run(views.clone(), stop.clone())));
        }
        if let Some(c) = &self.collector {
            tasks.push(tokio::spawn(Arc::clone(c).run(views.clone(), stop.clone())));
        }
        if let Some(t) = &self.transfers {
            tasks.push(tokio::spawn(Arc::clone(t).run(views.clone(), stop.clone())));
        }
        if let Some(m) = &self.membership {
            tasks.push(tokio::spawn(Arc::clone(m).run(stop.clone())));
        }
        if let Some(g) = &self.gossip {
            tasks.push(tokio::spawn(Arc::clone(g).run(stop.clone())));
        }
        if let Some(s) = &self.settings {
            tasks.push(tokio::spawn(Arc::clone(s).run(stop.clone())));
        }
        tasks
    }
}
