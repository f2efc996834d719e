//! One node's membership: the layouts it has installed (kept in its store before it acts
//! on them), the replicas and peer admission they need, its votes on the next version,
//! and the changes an operator staged on it.

use super::ballot::{Ballot, Vote};
use super::spec::{LayoutSpec, MemberSpec};
use super::staging::Change;
use super::store::{MembershipStore, Saved};
use super::{MembershipRequest, MembershipResponse};
use crate::view::ViewHandle;
use crate::{HistoryError, KeepView, Members, Replica, View};
use halka_ring::{Layout, PlacementError};
use halka_store::NodeId;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Makes the replica that reaches another member.
pub type Connect = Arc<dyn Fn(&MemberSpec) -> Arc<dyn Replica> + Send + Sync>;

/// Sets which nodes may connect to this one's peer port: every member of an installed
/// layout that has not left.
pub type Admit = Arc<dyn Fn(BTreeSet<NodeId>) + Send + Sync>;

/// How a node takes part in membership.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// How long one call to a peer may take.
    pub deadline: Duration,
    /// How often an installed change is offered to members that have not installed it.
    pub retry: Duration,
    /// How often, with no change under way, another member is asked for newer layouts.
    pub pull: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(5),
            retry: Duration::from_secs(1),
            pull: Duration::from_secs(5),
        }
    }
}

/// Why a membership action failed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("cannot keep the membership state: {0}")]
    Store(#[from] std::io::Error),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(
        "layout version {version} here is {ours}, and a peer offered {theirs}: two layouts \
         under one version (this is a bug; nothing was installed)"
    )]
    Conflict { version: u64, ours: String, theirs: String },
    #[error("no layout to install")]
    Empty,
    #[error(
        "the layout keeps {theirs} copies of each key and this node was started with \
         replication {ours}: start it with `--replication {theirs}`"
    )]
    Replication { ours: usize, theirs: usize },
    #[error("{0}")]
    Settings(#[from] crate::settings::SettingError),
    #[error("this node keeps no cluster settings")]
    NoSettings,
}

/// One node's membership.
pub struct Membership {
    me: MemberSpec,
    replication: usize,
    config: MembershipConfig,
    members: Members,
    connect: Connect,
    admit: Admit,
    store: Arc<dyn MembershipStore>,
    saved: Mutex<Saved>,
    views: OnceLock<ViewHandle>,
    /// Answers peers' gossip (see `gossip`), once attached.
    gossip: OnceLock<Arc<crate::gossip::Gossip>>,
    /// Answers peers comparing settings (see `settings`), once attached.
    settings: OnceLock<Arc<crate::settings::Settings>>,
    pub(super) staged: Mutex<Vec<Change>>,
    /// The static member list, as version 1 (`None` for a node waiting to be joined):
    /// installed only once the other static members settle that it is the cluster's (see
    /// `start`).
    initial: Option<LayoutSpec>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership").field("me", &self.me.id).finish_non_exhaustive()
    }
}

impl Membership {
    /// Node `me`'s membership, resuming what `store` kept, else starting with no layout
    /// until [`Membership::catch_up_at_start`] settles one (from `initial`, a static
    /// member list as version 1, or from a member; `None` for a node waiting to be joined).
    ///
    /// # Errors
    /// The store cannot be read or written.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        me: MemberSpec,
        replication: usize,
        config: MembershipConfig,
        members: Members,
        connect: Connect,
        admit: Admit,
        store: Arc<dyn MembershipStore>,
        initial: Option<LayoutSpec>,
    ) -> Result<Self, MembershipError> {
        // A node without kept layouts keeps nothing until it installs one: a restart
        // before then must ask again, not take the static list as settled.
        let saved = store.load()?.filter(|s| !s.layouts.is_empty()).unwrap_or_default();
        Ok(Self {
            me,
            replication,
            config,
            members,
            connect,
            admit,
            store,
            saved: Mutex::new(saved),
            views: OnceLock::new(),
            gossip: OnceLock::new(),
            settings: OnceLock::new(),
            staged: Mutex::default(),
            initial,
        })
    }

    #[must_use]
    pub fn me(&self) -> &MemberSpec {
        &self.me
    }

    /// Whether keeping the state blocks (see `MembershipStore::blocks`).
    #[must_use]
    pub fn store_blocks(&self) -> bool {
        self.store.blocks()
    }

    #[must_use]
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// The view over the kept layouts: what the node starts with. Registers a replica for
    /// each member (this node's own is `own`) and admits them.
    ///
    /// # Errors
    /// A kept layout does not make a view.
    ///
    /// A node that kept no state starts with no layout (refusing clients) until
    /// [`Membership::catch_up_at_start`] has settled one.
    pub fn initial_view(&self, own: &Arc<dyn Replica>) -> Result<View, MembershipError> {
        self.members.add(Arc::clone(own));
        let saved = self.saved.lock().clone();
        if saved.layouts.is_empty() {
            return Ok(View::new(None, Vec::new(), self.replication));
        }
        let view = self.view_over(&saved.layouts)?;
        Ok(if saved.reads_newest { view.reading_newest() } else { view })
    }

    /// The static member list this node started from, if any.
    #[must_use]
    pub(super) fn initial(&self) -> Option<&LayoutSpec> {
        self.initial.as_ref()
    }

    /// Starts installing views through `views` (the coordinator's).
    pub fn attach(&self, views: ViewHandle) {
        let _ = self.views.set(views);
    }

    /// Answers peers' gossip with `gossip` from now on.
    pub fn attach_gossip(&self, gossip: Arc<crate::gossip::Gossip>) {
        let _ = self.gossip.set(gossip);
    }

    /// Answers peers' settings comparisons with `settings` from now on.
    pub fn attach_settings(&self, settings: Arc<crate::settings::Settings>) {
        let _ = self.settings.set(settings);
    }

    /// The node's gossip, once attached.
    #[must_use]
    pub fn gossip(&self) -> Option<&Arc<crate::gossip::Gossip>> {
        self.gossip.get()
    }

    /// The layouts installed, oldest first, and whether reads moved to the newest.
    #[must_use]
    pub fn current(&self) -> (Vec<LayoutSpec>, bool) {
        let saved = self.saved.lock();
        (saved.layouts.clone(), saved.reads_newest)
    }

    /// Every member owning partitions in an installed layout, this node included.
    #[must_use]
    pub fn owners(&self) -> Vec<NodeId> {
        let saved = self.saved.lock();
        let ids = saved.layouts.iter().flat_map(|l| l.owning()).map(|m| NodeId::new(&m.id));
        ids.collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// The newest installed layout.
    #[must_use]
    pub fn newest(&self) -> Option<LayoutSpec> {
        self.saved.lock().layouts.last().cloned()
    }

    /// Keeps the view a layout change moves this node to (see `Transfers::keeping_views`).
    #[must_use]
    pub fn keep_view(self: &Arc<Self>) -> KeepView {
        let membership = Arc::downgrade(self);
        Arc::new(move |layouts: &[Layout], reads_newest| {
            let Some(membership) = membership.upgrade() else { return Ok(()) };
            membership.keep(layouts, reads_newest)
        })
    }

    fn keep(&self, layouts: &[Layout], reads_newest: bool) -> std::io::Result<()> {
        let mut saved = self.saved.lock();
        let versions: Vec<u64> = layouts.iter().map(Layout::version).collect();
        let specs: Vec<LayoutSpec> =
            saved.layouts.iter().filter(|s| versions.contains(&s.version)).cloned().collect();
        if specs.len() != layouts.len() {
            return Err(std::io::Error::other(format!(
                "layout versions {versions:?} are not all installed here"
            )));
        }
        let next = Saved { layouts: specs, reads_newest, ..saved.clone() };
        self.store.save(&next)?;
        self.admit_members(&next.layouts);
        *saved = next;
        Ok(())
    }

    /// A view over `layouts`, connecting to members not reached yet (a replaced member
    /// too: an older layout still names it as an owner, though nothing waits for it).
    fn view_over(&self, layouts: &[LayoutSpec]) -> Result<View, MembershipError> {
        for spec in layouts {
            for m in &spec.members {
                let id = NodeId::new(&m.id);
                if self.members.get(&id).is_none() {
                    self.members.add((self.connect)(m));
                }
            }
        }
        self.admit_members(layouts);
        let built = layouts.iter().map(LayoutSpec::layout).collect::<Result<Vec<_>, _>>()?;
        let reach = |id: &str| self.members.get(&NodeId::new(id));
        Ok(View::with_history(built, &reach, self.replication)?)
    }

    fn admit_members(&self, layouts: &[LayoutSpec]) {
        let ids = layouts.iter().flat_map(|s| s.present()).map(|m| NodeId::new(&m.id));
        let mut ids: BTreeSet<NodeId> = ids.collect();
        ids.remove(&NodeId::new(&self.me.id));
        (self.admit)(ids);
    }

    /// Installs `layouts` (oldest first), unless this node already has the newest one or
    /// a later version. Kept before it is acted on.
    ///
    /// # Errors
    /// A different layout under the same version is installed here, or `layouts` do not
    /// make a view, or they cannot be kept.
    pub fn install(&self, layouts: Vec<LayoutSpec>) -> Result<bool, MembershipError> {
        let newest = layouts.last().ok_or(MembershipError::Empty)?;
        if newest.replication != self.replication {
            return Err(MembershipError::Replication {
                ours: self.replication,
                theirs: newest.replication,
            });
        }
        if let Some(ours) = self.newest() {
            if ours.version > newest.version {
                return Ok(false);
            }
            if ours.version == newest.version {
                if ours == *newest {
                    return Ok(false);
                }
                return Err(MembershipError::Conflict {
                    version: ours.version,
                    ours: ours.fingerprint(),
                    theirs: newest.fingerprint(),
                });
            }
        }
        let view = self.view_over(&layouts)?;
        let keep = |_: &View| {
            let mut saved = self.saved.lock();
            let next = Saved { layouts: layouts.clone(), reads_newest: false, ..saved.clone() };
            self.store.save(&next)?;
            *saved = next;
            Ok(())
        };
        let Some(views) = self.views.get() else {
            keep(&view)?;
            return Ok(true);
        };
        let versions: Vec<u64> = layouts.iter().map(|l| l.version).collect();
        let installed = views.transition(None, keep, view)?;
        tracing::info!(?versions, "layout installed");
        Ok(installed)
    }

    /// Answers a peer.
    ///
    /// # Errors
    /// The state cannot be kept, or the layouts offered cannot be installed.
    pub fn handle(
        &self,
        request: MembershipRequest,
    ) -> Result<MembershipResponse, MembershipError> {
        Ok(match request {
            MembershipRequest::Describe => MembershipResponse::Described(self.me.clone()),
            MembershipRequest::Current => {
                let (layouts, reads_newest) = self.current();
                MembershipResponse::Current { layouts, reads_newest }
            }
            MembershipRequest::Prepare { version, ballot } => MembershipResponse::Vote(
                self.vote(version, |votes| votes.prepare(version, ballot))?,
            ),
            MembershipRequest::Accept { ballot, proposal } => {
                let version = proposal.version;
                MembershipResponse::Vote(
                    self.vote(version, |votes| votes.accept(ballot, proposal))?,
                )
            }
            MembershipRequest::Install { layouts } => {
                self.install(layouts)?;
                MembershipResponse::Installed
            }
            // A node that does not gossip answers with no table: the sender learns
            // nothing, and hears nothing from it.
            MembershipRequest::Gossip(theirs) => MembershipResponse::Gossip(
                self.gossip.get().map(|g| g.answer(theirs)).unwrap_or_default(),
            ),
            MembershipRequest::Settings { digest, entries } => {
                let settings = self.settings.get().ok_or(MembershipError::NoSettings)?;
                MembershipResponse::Settings(settings.answer(digest, entries)?)
            }
            MembershipRequest::Votes { version } => {
                let votes = self.saved.lock().votes.clone();
                let votes = if votes.version == version {
                    votes
                } else {
                    super::ballot::Votes { version, ..Default::default() }
                };
                MembershipResponse::Votes(votes)
            }
        })
    }

    /// Votes on `version` with `cast`, keeping the votes before answering. A node votes
    /// only on the version after its newest, and only once no change is under way here.
    pub(super) fn vote(
        &self,
        version: u64,
        cast: impl FnOnce(&mut super::ballot::Votes) -> Vote,
    ) -> Result<Vote, MembershipError> {
        let mut saved = self.saved.lock();
        let newest = saved.layouts.last().map_or(0, |l| l.version);
        if version <= newest {
            return Ok(Vote::Installed { newest });
        }
        let reason = if version > newest + 1 {
            Some(format!("node {} has installed layout version {newest} only", self.me.id))
        } else if saved.recovering == Some(newest) {
            Some(format!(
                "node {} started without its votes (a new or lost data directory) and has \
                 not yet heard what every other member accepted for version {version}",
                self.me.id
            ))
        } else if saved.layouts.len() > 1 {
            Some(format!(
                "node {} is still moving partitions to layout version {newest}",
                self.me.id
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Ok(Vote::NotNow { reason });
        }
        let mut next = saved.clone();
        let vote = cast(&mut next.votes);
        if next != *saved {
            self.store.save(&next)?;
            *saved = next;
        }
        Ok(vote)
    }

    /// The layout version this node took without its votes, while it has not recovered
    /// them and holds no newer layout.
    pub(super) fn recovering(&self) -> Option<u64> {
        let saved = self.saved.lock();
        let newest = saved.layouts.last()?.version;
        saved.recovering.filter(|v| *v == newest)
    }

    /// Notes that the layouts this node is about to take at start (newest: `version`)
    /// come without the votes it may have cast (see `recovery`). Kept with them when they
    /// are installed: a node that holds no layout keeps nothing.
    pub(super) fn will_recover(&self, version: u64) {
        self.saved.lock().recovering = Some(version);
    }

    /// Takes `votes`, recovered from the other members, as this node's for their
    /// version, if it is still recovering the version before it.
    pub(super) fn take_recovered(
        &self,
        votes: super::ballot::Votes,
    ) -> Result<bool, MembershipError> {
        let mut saved = self.saved.lock();
        let newest = saved.layouts.last().map_or(0, |l| l.version);
        if saved.recovering != Some(newest) || votes.version != newest + 1 {
            return Ok(false);
        }
        let mut next = saved.clone();
        next.votes = votes;
        next.recovering = None;
        self.store.save(&next)?;
        *saved = next;
        Ok(true)
    }

    /// The layout this node accepted for the version after its newest, if any: chosen
    /// perhaps, but not installed here (its proposer may have stopped halfway).
    pub(super) fn accepted_next(&self) -> Option<LayoutSpec> {
        let saved = self.saved.lock();
        let newest = saved.layouts.last()?.version;
        let (_, spec) = saved.votes.accepted.as_ref()?;
        (saved.votes.version == newest + 1 && saved.layouts.len() == 1).then(|| spec.clone())
    }

    /// The highest round this node has seen for the next version.
    pub(super) fn seen_round(&self) -> u64 {
        let saved = self.saved.lock();
        let promised = saved.votes.promised.as_ref().map_or(0, |b| b.round);
        let accepted = saved.votes.accepted.as_ref().map_or(0, |(b, _)| b.round);
        promised.max(accepted)
    }

    /// A ballot above every round seen, of this node.
    pub(super) fn ballot_above(&self, round: u64) -> Ballot {
        Ballot { round: round.max(self.seen_round()) + 1, node: self.me.id.clone() }
    }

    /// The replica reaching member `id`, connecting with `spec` if none does yet.
    pub(super) fn reach(&self, spec: &MemberSpec) -> Arc<dyn Replica> {
        let id = NodeId::new(&spec.id);
        match self.members.get(&id) {
            Some(r) => r,
            None => {
                let r = (self.connect)(spec);
                self.members.add(Arc::clone(&r));
                r
            }
        }
    }

    /// Admits `id` to the peer port ahead of a layout naming it (a node being joined).
    pub(super) fn admit_also(&self, spec: &MemberSpec) {
        let (layouts, _) = self.current();
        let mut ids: BTreeSet<NodeId> =
            layouts.iter().flat_map(|s| s.present()).map(|m| NodeId::new(&m.id)).collect();
        ids.insert(NodeId::new(&spec.id));
        ids.remove(&NodeId::new(&self.me.id));
        (self.admit)(ids);
    }
}
