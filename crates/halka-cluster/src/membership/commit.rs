//! Committing staged changes: choosing the next layout version among the current
//! layout's owners (see `ballot`), then installing it on every member; and offering an
//! installed change to members that missed it.

use super::ballot::{self, Ballot, Prepared, Vote};
use super::service::{Membership, MembershipError};
use super::spec::{LayoutSpec, MemberSpec};
use super::staging::{self, Change, Plan, StageError};
use super::{MembershipRequest, MembershipResponse};
use crate::{Replica, ReplicaError};
use std::sync::Arc;

/// Ballots a commit tries before it gives up.
const ATTEMPTS: u32 = 5;

/// A commit's result: the version chosen, and whether it is the one this commit proposed
/// (otherwise a racing commit's layout was chosen, and this node's changes stay staged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub layout: LayoutSpec,
    pub ours: bool,
}

/// Why changes cannot be staged or committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("this node is not in a cluster yet: join it from a member (`halka cluster join`)")]
    NoLayout,
    #[error(
        "partitions are still moving to layout version {0}: commit once `halka cluster \
         status` shows the change done"
    )]
    Changing(u64),
    #[error(
        "only {granted} of the {voters} owners of layout version {version} voted for version \
         {next}; a commit needs {needed}{}. Members that accepted it may still finish it \
         once enough answer: see `halka cluster status` before committing again",
        reasons_suffix(.reasons)
    )]
    NoMajority {
        version: u64,
        next: u64,
        voters: usize,
        granted: usize,
        needed: usize,
        reasons: Vec<String>,
    },
    #[error("layout version {0} was installed meanwhile: stage the changes again against it")]
    Superseded(u64),
    #[error("cannot reach node at {addr} to join it: {error}")]
    Unreachable { addr: String, error: String },
    #[error(transparent)]
    Membership(#[from] MembershipError),
}

fn reasons_suffix(reasons: &[String]) -> String {
    if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join("; ")) }
}

impl Membership {
    /// Stages `change` after the changes already staged here.
    ///
    /// # Errors
    /// The changes staged with it do not make a layout.
    pub fn stage(&self, change: Change) -> Result<LayoutSpec, CommitError> {
        let current = self.newest().ok_or(CommitError::NoLayout)?;
        let mut staged = self.staged.lock();
        let mut changes = staged.clone();
        changes.push(change);
        let next = staging::next_layout(&current, &changes)?;
        *staged = changes;
        Ok(next)
    }

    #[must_use]
    pub fn staged(&self) -> Vec<Change> {
        self.staged.lock().clone()
    }

    pub fn clear_staged(&self) {
        self.staged.lock().clear();
    }

    /// What committing the staged changes would move.
    ///
    /// # Errors
    /// Nothing is staged, or the changes no longer apply to the newest layout.
    pub fn plan(&self) -> Result<Plan, CommitError> {
        let current = self.newest().ok_or(CommitError::NoLayout)?;
        let next = staging::next_layout(&current, &self.staged())?;
        Ok(staging::plan(&current, &next)?)
    }

    /// Asks the node whose peer address is `addr` who it is (to join it).
    ///
    /// # Errors
    /// It does not answer.
    pub async fn describe(
        &self,
        probe: Arc<dyn Replica>,
        addr: &str,
    ) -> Result<MemberSpec, CommitError> {
        let unreachable =
            |error: String| CommitError::Unreachable { addr: addr.to_string(), error };
        match self.ask(&probe, MembershipRequest::Describe).await {
            Ok(MembershipResponse::Described(spec)) => Ok(spec),
            Ok(other) => Err(unreachable(format!("unexpected answer {other:?}"))),
            Err(e) => Err(unreachable(e.to_string())),
        }
    }

    pub(super) async fn ask(
        &self,
        replica: &Arc<dyn Replica>,
        request: MembershipRequest,
    ) -> Result<MembershipResponse, ReplicaError> {
        let deadline = self.config().deadline;
        match tokio::time::timeout(deadline, replica.membership(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(ReplicaError::Timeout(deadline.as_millis() as u64)),
        }
    }

    /// Asks every voter `request`; an answer that is not a vote counts as none.
    async fn poll(
        &self,
        voters: &[Arc<dyn Replica>],
        request: MembershipRequest,
    ) -> Vec<Option<Vote>> {
        let asks = voters.iter().map(|r| self.ask(r, request.clone()));
        futures::future::join_all(asks)
            .await
            .into_iter()
            .map(|a| match a {
                Ok(MembershipResponse::Vote(v)) => Some(v),
                _ => None,
            })
            .collect()
    }

    /// Commits the staged changes as the next layout version: chooses it with the current
    /// layout's owners, then installs it here and on every member.
    ///
    /// # Errors
    /// See [`CommitError`]; nothing is installed then.
    pub async fn commit(&self) -> Result<Committed, CommitError> {
        let (layouts, _) = self.current();
        let current = layouts.last().cloned().ok_or(CommitError::NoLayout)?;
        if layouts.len() > 1 {
            return Err(CommitError::Changing(current.version));
        }
        let proposal = staging::next_layout(&current, &self.staged())?;
        let chosen = match self.choose_and_install(current.clone(), proposal.clone()).await {
            // A racing proposer found this proposal accepted, got it chosen and installed
            // it before this one finished: the version is installed, and may be ours.
            Err(CommitError::Superseded(v)) if v == proposal.version => {
                self.installed_as(&current, v).await.ok_or(CommitError::Superseded(v))?
            }
            other => other?,
        };
        let ours = chosen == proposal;
        if ours {
            self.clear_staged();
        }
        Ok(Committed { layout: chosen, ours })
    }

    /// Layout `version` as installed here, or else as a member of `current` installed
    /// it; `None` when nobody answers with it.
    async fn installed_as(&self, current: &LayoutSpec, version: u64) -> Option<LayoutSpec> {
        let here = self.current().0.into_iter().find(|l| l.version == version);
        if here.is_some() {
            return here;
        }
        let answers = self.ask_current(current.members.iter()).await;
        answers.into_iter().flatten().flatten().find(|l| l.version == version)
    }

    /// Chooses the layout after `current` with `proposal` as this node's candidate, then
    /// installs the one chosen here and offers it to every member.
    pub(super) async fn choose_and_install(
        &self,
        current: LayoutSpec,
        proposal: LayoutSpec,
    ) -> Result<LayoutSpec, CommitError> {
        for m in proposal.present() {
            self.admit_also(m);
        }
        let voters: Vec<Arc<dyn Replica>> = current.owning().map(|m| self.reach(m)).collect();
        let chosen = self.choose(&current, &voters, proposal).await?;
        let history = vec![current, chosen.clone()];
        self.install(history.clone())?;
        self.offer(&history).await;
        Ok(chosen)
    }

    /// Runs Paxos for `proposal`'s version among `voters`: returns the proposal chosen
    /// (this one, or one a racing commit got accepted first).
    async fn choose(
        &self,
        current: &LayoutSpec,
        voters: &[Arc<dyn Replica>],
        proposal: LayoutSpec,
    ) -> Result<LayoutSpec, CommitError> {
        let version = proposal.version;
        // A proposer that lost its votes is one of its own voters: recover them first.
        self.recover_votes().await;
        let mut round = 0;
        let mut reasons = Vec::new();
        let mut granted = 0;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Two proposers outbidding each other in step would never finish: each
                // waits a while of its own before trying again, so one gets through.
                // Drawn from its id and the attempt rather than a random source, so a
                // simulated cluster replays the same way.
                let most = self.config().deadline.as_millis() as u64 / 10 * u64::from(attempt);
                let draw = format!("{}/{round}/{attempt}", self.me().id);
                let pause = halka_ring::key_hash(draw.as_bytes()) % most.max(1);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            let ballot = self.ballot_above(round);
            let promises = self
                .poll(voters, MembershipRequest::Prepare { version, ballot: ballot.clone() })
                .await;
            reasons = not_now(&promises);
            let value = match ballot::tally_promises(&promises, proposal.clone()) {
                Prepared::Propose(value) => value,
                Prepared::NoMajority { newest: Some(newest), .. } => {
                    return Err(CommitError::Superseded(newest));
                }
                Prepared::NoMajority { promised, outbid, .. } => {
                    // Outbid, or voters too slow to answer: try again (above the ballot
                    // that outbid this one).
                    granted = promised;
                    round = outbid.map_or(round, |Ballot { round: r, .. }| r.max(round));
                    continue;
                }
            };
            let accepts = self
                .poll(voters, MembershipRequest::Accept { ballot, proposal: value.clone() })
                .await;
            if ballot::chosen(&accepts) {
                return Ok(value);
            }
            granted = accepts.iter().flatten().filter(|v| matches!(v, Vote::Accepted)).count();
            round = accepts
                .iter()
                .flatten()
                .filter_map(|v| match v {
                    Vote::Outbid { promised } => Some(promised.round),
                    _ => None,
                })
                .max()
                .unwrap_or(round + 1);
        }
        Err(CommitError::NoMajority {
            version: current.version,
            next: version,
            voters: voters.len(),
            granted,
            needed: ballot::majority(voters.len()),
            reasons,
        })
    }
}

/// The reasons voters gave for not voting now.
fn not_now(votes: &[Option<Vote>]) -> Vec<String> {
    votes
        .iter()
        .flatten()
        .filter_map(|v| match v {
            Vote::NotNow { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}
