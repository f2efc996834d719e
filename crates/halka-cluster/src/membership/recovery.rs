//! Votes lost with a data directory.
//!
//! A member's Paxos votes are kept on its disk (`membership.json`). A node that starts
//! without them (a new data directory, or one that was lost) takes its layouts from the
//! other members (see `start`), but it may have promised or accepted a proposal for the
//! next version before: perhaps one that a majority including it chose and no reachable
//! member has installed yet. Voting afresh could then let a second proposal be chosen for
//! that version through it. So it does not vote on the next version until it has asked
//! every other member of its layout what they promised and accepted for it, and takes
//! the highest of those as its own (`ballot::recovered`): any proposal chosen with its
//! lost vote was accepted by another member of that majority too, and is reported on.
//!
//! A member that does not answer holds the recovery back while the failure detector
//! has not convicted it. A convicted one is passed over: waiting for a dead machine would
//! stall every change, including the replace that removes it. The one case this leaves
//! is a proposal chosen by this node and that convicted member alone (a cluster of two
//! or three), installed on neither; should that member come back holding it installed,
//! it refuses the layout chosen meanwhile (`MembershipError::Conflict`) rather than take
//! it, and the operator replaces it.

use super::ballot::{Votes, recovered};
use super::service::Membership;
use super::{MembershipRequest, MembershipResponse};
use halka_store::NodeId;

impl Membership {
    /// If this node is recovering its votes, asks the other members of its layout for
    /// theirs and takes them once every one answered or is convicted. Returns whether
    /// this node may vote on the next version now.
    pub async fn recover_votes(&self) -> bool {
        let Some(version) = self.recovering() else { return true };
        let Some(layout) = self.newest() else { return true };
        let me = self.me().id.clone();
        let others = layout.present().filter(|m| m.id != me).cloned().collect::<Vec<_>>();
        let asks = others.iter().map(|m| {
            let replica = self.reach(m);
            async move {
                match self.ask(&replica, MembershipRequest::Votes { version: version + 1 }).await {
                    Ok(MembershipResponse::Votes(votes)) => Some(votes),
                    _ => None,
                }
            }
        });
        let answers = futures::future::join_all(asks).await;
        let convicted =
            |id: &str| self.gossip().is_some_and(|g| g.liveness().convicted(&NodeId::new(id)));
        let unheard: Vec<&str> = others
            .iter()
            .zip(&answers)
            .filter(|(m, answer)| answer.is_none() && !convicted(&m.id))
            .map(|(m, _)| m.id.as_str())
            .collect();
        if !unheard.is_empty() {
            tracing::info!(
                ?unheard,
                "started without its votes: not voting on layout version {} until these members answer",
                version + 1
            );
            return false;
        }
        let heard: Vec<Votes> = answers.into_iter().flatten().collect();
        let votes = recovered(version + 1, &heard);
        match self.take_recovered(votes) {
            Ok(taken) => {
                if taken {
                    tracing::info!(
                        version = version + 1,
                        "recovered this node's votes from the other members"
                    );
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot keep the recovered votes");
                false
            }
        }
    }
}
