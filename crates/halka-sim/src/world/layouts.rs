//! The layouts the simulated cluster runs: each node's membership (the server's, over
//! simulated links and kept on the node's simulated disk), and the layouts the checker
//! holds to, as the changes committed through the nodes made them.

use super::{N, World};
use halka_cluster::gossip::{DetectorConfig, GossipConfig, GossipSpec, Reach};
use halka_cluster::membership::{
    Addresses, Connect, LayoutSpec, MemberSpec, MembershipConfig, MembershipStore,
};
use halka_cluster::settings::{SettingsSpec, SettingsStore};
use halka_cluster::{Membership, MembershipSpec, Replica};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member, Placement};
use halka_store::NodeId;
use std::sync::Arc;
use std::time::Duration;

impl World {
    /// Running nodes whose view still holds more than one layout.
    pub fn changing_nodes(&self) -> usize {
        let coordinators = (0..self.nodes.len()).filter_map(|i| self.coordinator(i));
        coordinators.filter(|c| c.view().is_changing()).count()
    }

    /// Running nodes whose view is not `version`'s layout alone.
    pub fn nodes_not_at(&self, version: u64) -> usize {
        let coordinators = (0..self.nodes.len()).filter_map(|i| self.coordinator(i));
        coordinators.filter(|c| c.view().is_changing() || c.view().epoch() != version).count()
    }

    /// The newest layout the checker holds to (version 1, every simulated member, until
    /// a change is committed).
    pub fn layout(&self) -> Layout {
        self.layouts.lock().last().cloned().expect("a layout")
    }

    /// Whether node `i` owns partitions in the newest layout the commits chose.
    pub fn owns_any(&self, i: usize) -> bool {
        let id = self.nodes[i].id.as_str();
        self.layout().members().iter().any(|m| m.id == id)
    }

    /// Records the active layouts a commit made (the checker's owners follow the newest).
    pub fn record_layouts(&self, layouts: Vec<Layout>) {
        *self.layouts.lock() = layouts;
    }

    /// Node `i`'s membership, while it runs.
    pub fn membership(&self, i: usize) -> Option<Arc<Membership>> {
        self.nodes[i].running.lock().as_ref().and_then(|r| r.membership.clone())
    }

    /// Simulated member `i` as a layout names it (its id is its address).
    pub fn member_spec(&self, i: usize) -> MemberSpec {
        let m = &self.members[i];
        let addresses = Addresses { peer: m.id.clone(), ..Addresses::default() };
        MemberSpec {
            zone: m.zone.clone(),
            weight: m.weight,
            ..MemberSpec::active(&m.id, addresses)
        }
    }

    /// Waits (in simulated time) until node `i` serves: it holds a layout, which a node
    /// that lost its disk learns from the others first. Gives up after a minute: a node
    /// cut off from every other may wait longer, and the run judges what follows.
    pub async fn until_serving(&self, i: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            match self.coordinator(i) {
                Some(c) if c.view().layout().is_some() => return,
                None => return,
                Some(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Node `i`'s membership as the server's, with the simulator's timings: kept on its
    /// disk (lost with it), reaching members over simulated links.
    pub(super) fn membership_spec(self: &Arc<Self>, i: usize) -> MembershipSpec {
        let world = Arc::downgrade(self);
        let connect: Connect = Arc::new(move |m: &MemberSpec| -> Arc<dyn Replica> {
            let world = world.upgrade().expect("the world outlives its nodes");
            let j = world.nodes.iter().position(|n| n.id.as_str() == m.id).expect("a member");
            world.link(i, j)
        });
        let store = Arc::clone(&self.nodes[i].disk.lock().membership) as Arc<dyn MembershipStore>;
        MembershipSpec {
            me: self.member_spec(i),
            config: MembershipConfig {
                deadline: Duration::from_millis(500),
                retry: Duration::from_millis(100),
                pull: Duration::from_secs(2),
            },
            store,
            connect,
            admit: Arc::new(|_| {}),
            initial: Some(static_spec(&self.members)),
        }
    }

    /// Node `i`'s shared settings, kept on its disk and compared with a member's every
    /// 200 ms (the server compares at its gossip pace; slower here keeps the simulated
    /// network's traffic to what the runs are about).
    pub(super) fn settings_spec(self: &Arc<Self>, i: usize) -> SettingsSpec {
        let store = Arc::clone(&self.nodes[i].disk.lock().settings) as Arc<dyn SettingsStore>;
        SettingsSpec {
            store,
            interval: Duration::from_millis(200),
            deadline: Duration::from_millis(500),
            rng_seed: self.draw(0..u64::MAX),
        }
    }

    /// Node `i`'s gossip, over simulated links (a simulated node's id is its address),
    /// at the simulator's pace: rounds every 50 ms, so a node silent for about a second
    /// is convicted. Its peers are chosen from the seed.
    pub(super) fn gossip_spec(self: &Arc<Self>, i: usize) -> GossipSpec {
        let world = Arc::downgrade(self);
        let reach: Reach = Arc::new(move |_: Option<&NodeId>, addr: &str| -> Arc<dyn Replica> {
            let world = world.upgrade().expect("the world outlives its nodes");
            let j = world.nodes.iter().position(|n| n.id.as_str() == addr).expect("a node");
            world.link(i, j)
        });
        let interval = Duration::from_millis(50);
        GossipSpec {
            config: GossipConfig {
                interval,
                deadline: Duration::from_millis(200),
                detector: DetectorConfig {
                    prior: interval,
                    max_gap: Duration::from_secs(1),
                    ..DetectorConfig::default()
                },
                ..GossipConfig::default()
            },
            seeds: Vec::new(),
            reach,
            rng_seed: self.draw(0..u64::MAX),
        }
    }

    /// The owners of `key`, by index.
    pub fn owners(&self, key: &[u8]) -> Vec<usize> {
        let layout = self.layout();
        let members = layout.members();
        let index_of = |id: &str| self.nodes.iter().position(|n| n.id.as_str() == id);
        let owners = layout.preference_list(key, N);
        owners.iter().filter_map(|&i| index_of(&members[usize::from(i)].id)).collect()
    }
}

/// A simulated member as a layout names it (its id is its address).
fn member_spec(m: &Member) -> MemberSpec {
    let addresses = Addresses { peer: m.id.clone(), ..Addresses::default() };
    MemberSpec { zone: m.zone.clone(), weight: m.weight, ..MemberSpec::active(&m.id, addresses) }
}

/// Every simulated member, as layout version 1: the static member list.
pub(super) fn static_spec(members: &[Member]) -> LayoutSpec {
    LayoutSpec::new(1, N, DEFAULT_PARTITIONS, members.iter().map(member_spec).collect())
}
