//! The sloppy quorum's stand-ins for one write: members beyond the key's owners that keep
//! the write as a hint for an owner that did not answer.

use crate::Durability;
use crate::fanout::Fanout;
use crate::quorum::Tally;
use crate::view::View;
use bytes::Bytes;
use halka_ring::PreferenceList;
use halka_store::{NodeId, Record};
use std::sync::Arc;

/// The stand-ins of one write's key, engaged one per failed owner: the best one left in
/// the failed owner's zone, so the write keeps its spread over zones, else the best one
/// left.
pub(super) struct StandIns {
    /// Computed on first use (the key's hash too): most writes never need one.
    order: Option<PreferenceList>,
    /// Positions in `order` already engaged (`order` is at most `MAX_REPLICAS` long).
    used: u32,
    enabled: bool,
}

impl StandIns {
    pub(super) fn new(enabled: bool) -> Self {
        Self { order: None, used: 0, enabled }
    }

    /// Asks a stand-in, if any is left, to keep `record` for `owner`.
    pub(super) fn engage(
        &mut self,
        view: &View,
        owner: &NodeId,
        key: &Bytes,
        record: &Arc<Record>,
        tally: &mut Tally,
        fanout: &mut Fanout<Durability>,
    ) {
        if !self.enabled {
            return;
        }
        let order = self.order.get_or_insert_with(|| view.stand_ins(halka_ring::key_hash(key)));
        let zone = |idx: usize| view.members().get(idx).map(|m| m.zone.as_str());
        let owner_zone = view.replicas().iter().position(|r| r.id() == owner).and_then(zone);
        let free = |pos: &usize| self.used & (1 << pos) == 0;
        let pick = (0..order.len())
            .filter(free)
            .find(|&pos| zone(usize::from(order[pos])) == owner_zone)
            .or_else(|| (0..order.len()).find(free));
        let Some(pos) = pick else { return };
        self.used |= 1 << pos;
        let stand_in = view.replica(order[pos]);
        tally.standing_in(owner, stand_in.id().clone());
        fanout.start(stand_in.id().clone(), stand_in.keep_hint(owner, key, record));
    }
}
