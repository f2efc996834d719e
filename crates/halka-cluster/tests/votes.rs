//! A member that lost its Paxos votes with its data directory: it takes its layout from
//! the others, but does not vote on the next version until it has heard what they
//! promised and accepted for it, so a layout chosen with its lost vote is not overruled.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use halka_cluster::membership::ballot::{Ballot, Votes};
use halka_cluster::membership::{
    Addresses, Change, Connect, LayoutSpec, MemberSpec, Membership, MembershipConfig,
    MembershipStore, MemoryStore, Saved,
};
use halka_cluster::{FaultPlan, FaultyReplica, LocalReplica, Members, Replica};
use halka_store::{MemoryEngine, NodeId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn member(id: &str) -> MemberSpec {
    MemberSpec::active(id, Addresses { peer: format!("{id}:7380"), ..Addresses::default() })
}

fn layout(version: u64, ids: &[&str]) -> LayoutSpec {
    LayoutSpec::new(version, 2, 16, ids.iter().map(|id| member(id)).collect())
}

/// Three members of layout 1, each reached through a link that can be taken down.
struct Three {
    links: BTreeMap<String, FaultyReplica>,
    nodes: BTreeMap<String, Arc<Membership>>,
}

impl Three {
    /// `kept`: each node's membership state as its disk kept it (a node missing here
    /// lost its data directory).
    fn start(kept: &[(&str, Saved)]) -> Self {
        let ids = ["a", "b", "c"];
        // d, which version 2 names, never answers.
        let locals: BTreeMap<String, LocalReplica> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| {
                let engine = Arc::new(MemoryEngine::default());
                (id.to_string(), LocalReplica::new(NodeId::new(id), engine))
            })
            .collect();
        let links: BTreeMap<String, FaultyReplica> = locals
            .iter()
            .enumerate()
            .map(|(i, (id, local))| {
                let link =
                    FaultyReplica::new(Arc::new(local.clone()), FaultPlan::default(), i as u64);
                (id.clone(), link)
            })
            .collect();
        links["d"].set_plan(FaultPlan::down());
        let mut nodes = BTreeMap::new();
        for id in ids {
            let all = links.clone();
            let connect: Connect = Arc::new(move |m: &MemberSpec| -> Arc<dyn Replica> {
                Arc::new(all[&m.id].clone())
            });
            let store = Arc::new(MemoryStore::default());
            if let Some((_, saved)) = kept.iter().find(|(k, _)| *k == id) {
                store.save(saved).unwrap();
            }
            let config = MembershipConfig {
                deadline: Duration::from_millis(200),
                ..MembershipConfig::default()
            };
            let membership = Membership::open(
                member(id),
                2,
                config,
                Members::default(),
                connect,
                Arc::new(|_| {}),
                store,
                Some(layout(1, &ids)),
            )
            .unwrap();
            let membership = Arc::new(membership);
            locals[id].serve_membership(&membership);
            nodes.insert(id.to_string(), membership);
        }
        Self { links, nodes }
    }

    fn set(&self, id: &str, plan: FaultPlan) {
        self.links[id].set_plan(plan);
    }
}

/// Version 2 as accepted by a and c before a lost its disk: chosen, installed nowhere
/// (its proposer stopped halfway).
fn chosen_before() -> LayoutSpec {
    layout(2, &["a", "b", "c", "d"])
}

fn kept(votes: Votes) -> Saved {
    Saved { layouts: vec![layout(1, &["a", "b", "c"])], votes, ..Saved::default() }
}

#[tokio::test(start_paused = true)]
async fn a_member_that_lost_its_votes_does_not_let_a_second_layout_be_chosen_for_a_version() {
    let ballot = Ballot { round: 1, node: "c".into() };
    let accepted = Votes {
        version: 2,
        promised: Some(ballot.clone()),
        accepted: Some((ballot.clone(), chosen_before())),
    };
    let cluster = Three::start(&[("b", kept(Votes::default())), ("c", kept(accepted))]);
    // a lost its data directory: it takes layout 1 from b and c.
    cluster.nodes["a"].catch_up_at_start().await;
    assert_eq!(cluster.nodes["a"].newest().unwrap().version, 1);

    // With c down, b commits another change: a and b would be a majority, but a does
    // not know what it accepted before, and c (which does) has not answered it.
    cluster.set("c", FaultPlan::down());
    let b = &cluster.nodes["b"];
    b.stage(Change::Leave("a".into())).unwrap();
    let refused = b.commit().await.unwrap_err().to_string();
    assert!(refused.contains("node a started without its votes"), "{refused}");
    assert!(b.newest().unwrap().version == 1, "nothing was chosen");

    // c is back: a hears what c accepted, and the commit carries that layout on.
    cluster.set("c", FaultPlan::default());
    assert!(cluster.nodes["a"].recover_votes().await);
    let committed = b.commit().await.unwrap();
    assert_eq!(committed.layout, chosen_before());
    assert!(!committed.ours, "the layout chosen before wins; b's change stays staged");
}
