//! How an installed layout reaches every member, including one that was down when it was
//! chosen: while a change is under way, every member offers it to those that have not
//! installed it (push); and every member asks another, now and then, for the layouts it
//! installed, taking a newer one (pull: a node that kept no state, or one that missed a
//! whole change it was not part of, catches up before long). A node that hears by gossip
//! of a newer layout pulls it from that node at once.
//!
//! Only chosen layouts are ever installed (see `commit`), so taking a peer's newer
//! layouts is safe: they are the same everywhere.

use super::service::Membership;
use super::spec::{LayoutSpec, MemberSpec};
use super::{MembershipRequest, MembershipResponse};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl Membership {
    /// Offers the active layouts `history` to every member of them that has not
    /// installed the newest, once each.
    pub(super) async fn offer(&self, history: &[LayoutSpec]) {
        let Some(newest) = history.last() else { return };
        let me = self.me().id.clone();
        let mut ids: Vec<&MemberSpec> = history.iter().flat_map(|s| s.present()).collect();
        ids.sort_by(|a, b| a.id.cmp(&b.id));
        ids.dedup_by(|a, b| a.id == b.id);
        let asks = ids.into_iter().filter(|m| m.id != me).map(|m| {
            let replica = self.reach(m);
            async move {
                let behind = match self.ask(&replica, MembershipRequest::Current).await {
                    Ok(MembershipResponse::Current { layouts, .. }) => {
                        layouts.last().is_none_or(|l| l.version < newest.version)
                    }
                    _ => return,
                };
                if behind {
                    let install = MembershipRequest::Install { layouts: history.to_vec() };
                    if let Err(e) = self.ask(&replica, install).await {
                        tracing::info!(node = %m.id, error = %e, "layout not installed there yet");
                    }
                }
            }
        });
        futures::future::join_all(asks).await;
    }

    /// Asks `members` for the layouts they installed and installs the newest found if it
    /// is newer than this node's; returns whether it did.
    pub async fn pull(&self, members: &[MemberSpec]) -> bool {
        let answers = self.ask_current(members.iter()).await;
        let newest = answers
            .into_iter()
            .flatten()
            .filter(|l| !l.is_empty())
            .max_by_key(|l| l.last().map_or(0, |s| s.version));
        let ours = self.newest().map_or(0, |s| s.version);
        let Some(layouts) = newest.filter(|l| l.last().is_some_and(|s| s.version > ours)) else {
            return false;
        };
        let versions: Vec<u64> = layouts.iter().map(|l| l.version).collect();
        match self.install(layouts) {
            Ok(installed) => {
                tracing::info!(?versions, "took a newer layout from a member");
                installed
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take a member's newer layout");
                false
            }
        }
    }

    /// Asks each of `members` but this node for the layouts it installed (`None`: no
    /// answer).
    pub(super) async fn ask_current<'a>(
        &self,
        members: impl Iterator<Item = &'a MemberSpec>,
    ) -> Vec<Option<Vec<LayoutSpec>>> {
        let me = self.me().id.clone();
        let asks = members.filter(|m| m.id != me).map(|m| {
            let replica = self.reach(m);
            async move {
                match self.ask(&replica, MembershipRequest::Current).await {
                    Ok(MembershipResponse::Current { layouts, .. }) => Some(layouts),
                    _ => None,
                }
            }
        });
        futures::future::join_all(asks).await
    }

    /// Carries on a layout this node accepted for the next version and has not seen
    /// installed for a while (its proposer may have stopped between choosing it and
    /// installing it): runs the choice again, which chooses it (or whatever was chosen
    /// instead), and installs the result.
    async fn finish_accepted(&self, accepted: LayoutSpec) {
        let (layouts, _) = self.current();
        let Some(current) = layouts.last().cloned() else { return };
        let version = accepted.version;
        match self.choose_and_install(current, accepted).await {
            Ok(chosen) => {
                tracing::info!(version, layout = %chosen.fingerprint(), "finished a layout change its proposer left halfway");
            }
            Err(e) => {
                tracing::info!(version, error = %e, "a layout accepted here is not chosen yet");
            }
        }
    }

    /// Every member of the installed layouts but this node.
    /// A node that announced (by gossip) a newer layout than this node's newest, if any.
    /// A node without a layout takes none this way: it waits to be joined, or for its
    /// static members to settle its first (see `start`).
    fn announced_ahead(&self) -> Option<MemberSpec> {
        let ours = self.newest()?.version;
        let gossip = self.gossip()?;
        let known = gossip.known();
        let ahead = known.into_iter().map(|k| k.announcement);
        ahead.filter(|a| a.layout_version > ours).max_by_key(|a| a.layout_version).map(|a| a.member)
    }

    fn others(&self) -> Vec<MemberSpec> {
        let (layouts, _) = self.current();
        let mut all: Vec<MemberSpec> = layouts.iter().flat_map(|l| l.present()).cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all.dedup_by(|a, b| a.id == b.id);
        all.retain(|m| m.id != self.me().id);
        all
    }

    /// Until `stop`: while a change is under way, offers it every `retry` to the members
    /// that have not installed it; otherwise asks one member (in turn) every `pull`
    /// whether it has a newer layout.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut turn = 0_usize;
        let mut pulled = tokio::time::Instant::now();
        let mut pending: Option<(u64, tokio::time::Instant)> = None;
        loop {
            let (layouts, _) = self.current();
            let others = self.others();
            let accepted = self.accepted_next();
            let since = match (&accepted, pending) {
                (Some(spec), Some((v, at))) if v == spec.version => Some(at),
                (Some(spec), _) => {
                    pending = Some((spec.version, tokio::time::Instant::now()));
                    None
                }
                (None, _) => None,
            };
            let step = async {
                if self.recovering().is_some() {
                    self.recover_votes().await;
                } else if layouts.len() > 1 {
                    self.offer(&layouts).await;
                } else if let (Some(spec), Some(at)) = (accepted, since)
                    && at.elapsed() >= self.config().pull
                {
                    self.finish_accepted(spec).await;
                } else if let Some(ahead) = self.announced_ahead() {
                    // Gossip says a node installed a newer layout: take it now rather
                    // than at the next turn (a node back from down, or replaced while
                    // away, stops routing by its old layout within a round or two).
                    pulled = tokio::time::Instant::now();
                    self.pull(&[ahead]).await;
                } else if !others.is_empty() && pulled.elapsed() >= self.config().pull {
                    pulled = tokio::time::Instant::now();
                    turn = turn.wrapping_add(1);
                    self.pull(&others[turn % others.len()..=turn % others.len()]).await;
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = step => {}
            }
            // A node recovering its votes holds commits back: it asks again soon.
            let pause = if self.recovering().is_some() {
                self.config().retry.min(std::time::Duration::from_millis(100))
            } else {
                self.config().retry
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
