//! Writing a setting so that any write made after it, through any node, wins over it.
//!
//! Stamps are wall-clock times, and node clocks differ: a node whose clock is behind
//! would stamp a later change older than one it has not heard of yet, and the earlier
//! change would win everywhere. So a write first learns what a majority of members hold
//! (taking anything newer into its own table, so its stamp comes after it), then writes
//! here and tells the others, and is acknowledged once a majority holds it. Any two
//! majorities share a member, so a write acknowledged this way is learned by every later
//! write's first step, which then stamps after it: the order of acknowledged writes is
//! the order they were made in, whatever the clocks say (the two steps of an ABD
//! register). Writes racing each other end with one of them everywhere.

use super::{Setting, SettingError, Settings};
use crate::Replica;
use crate::membership::{MembershipRequest, MembershipResponse};
use futures::stream::{FuturesUnordered, StreamExt as _};
use std::sync::Arc;

impl Settings {
    /// Writes `value` to `name` (`None` removes it) cluster-wide: acknowledged once a
    /// majority of the members holds it (see the module's comment).
    ///
    /// # Errors
    /// The value is refused or cannot be kept, or no majority of members answered (the
    /// error says whether the change was made).
    pub async fn write(
        self: &Arc<Self>,
        name: &str,
        value: Option<String>,
    ) -> Result<(), SettingError> {
        let peers = self.peers();
        let members = peers.len() + 1;
        let needed = members / 2 + 1;
        let heard = self.exchange(&peers, needed - 1, None).await + 1;
        if heard < needed {
            return Err(SettingError::NoMajorityToRead { reached: heard, needed, members });
        }
        let setting = self.write_here(name, value).await?;
        let entry = vec![(name.to_string(), setting)];
        let holding = self.exchange(&peers, needed - 1, Some(entry)).await + 1;
        if holding < needed {
            return Err(SettingError::NoMajorityToWrite { reached: holding, needed, members });
        }
        Ok(())
    }

    /// Sends this node's digest to every peer (with `entries`, to be kept), takes what
    /// they answer, and counts the peers that answered, until `enough` did or the
    /// deadline passed.
    async fn exchange(
        self: &Arc<Self>,
        peers: &[Arc<dyn Replica>],
        enough: usize,
        entries: Option<Vec<(String, Setting)>>,
    ) -> usize {
        if enough == 0 {
            return 0;
        }
        let digest = self.read(super::SettingsTable::digest);
        let mut asked: FuturesUnordered<_> = peers
            .iter()
            .map(|peer| {
                let request = MembershipRequest::Settings { digest, entries: entries.clone() };
                peer.membership(request)
            })
            .collect();
        let mut answered = 0;
        let deadline = tokio::time::sleep(self.deadline());
        tokio::pin!(deadline);
        while answered < enough {
            let answer = tokio::select! {
                () = &mut deadline => break,
                answer = asked.next() => match answer { Some(a) => a, None => break },
            };
            let Ok(MembershipResponse::Settings(theirs)) = answer else { continue };
            if let Some(theirs) = theirs
                && self.off_thread(move |this| this.merge(theirs)).await.is_err()
            {
                continue;
            }
            answered += 1;
        }
        answered
    }
}
