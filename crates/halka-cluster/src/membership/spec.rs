//! A layout as it is written down: what nodes send each other, keep on disk and show an
//! operator. [`LayoutSpec`] names every member with its state, zone, weight and
//! addresses; the partition table is not part of it, because `Layout::new` computes the
//! same table from the same roster on every node.

use halka_ring::{Layout, LayoutMember, Member, MemberState, PlacementError};
use serde::{Deserialize, Serialize};

/// Where a member is reached. The Redis and HTTP addresses are shown to operators (a
/// member started from a static list without them leaves them empty); the peer address
/// is how other members reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Addresses {
    pub peer: String,
    #[serde(default)]
    pub redis: String,
    #[serde(default)]
    pub http: String,
}

/// A member's state as written down (see `halka_ring::MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateSpec {
    Joining,
    Active,
    Leaving,
    Left,
}

impl From<StateSpec> for MemberState {
    fn from(s: StateSpec) -> Self {
        match s {
            StateSpec::Joining => MemberState::Joining,
            StateSpec::Active => MemberState::Active,
            StateSpec::Leaving => MemberState::Leaving,
            StateSpec::Left => MemberState::Left,
        }
    }
}

impl StateSpec {
    /// Whether a member in this state owns partitions.
    #[must_use]
    pub fn owns(self) -> bool {
        MemberState::from(self).owns()
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        MemberState::from(self).as_str()
    }
}

/// One member of a layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberSpec {
    pub id: String,
    #[serde(default)]
    pub zone: String,
    pub weight: u32,
    pub state: StateSpec,
    pub addresses: Addresses,
}

impl MemberSpec {
    /// An active member.
    #[must_use]
    pub fn active(id: impl Into<String>, addresses: Addresses) -> Self {
        Self { id: id.into(), zone: String::new(), weight: 1, state: StateSpec::Active, addresses }
    }

    #[must_use]
    pub fn member(&self) -> Member {
        Member { id: self.id.clone(), zone: self.zone.clone(), weight: self.weight }
    }
}

/// One version of the layout, written down.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayoutSpec {
    pub version: u64,
    pub replication: usize,
    pub partitions: u32,
    /// Sorted by id.
    pub members: Vec<MemberSpec>,
}

impl LayoutSpec {
    /// `members` sorted by id, under `version`.
    #[must_use]
    pub fn new(
        version: u64,
        replication: usize,
        partitions: u32,
        mut members: Vec<MemberSpec>,
    ) -> Self {
        members.sort_by(|a, b| a.id.cmp(&b.id));
        Self { version, replication, partitions, members }
    }

    /// The layout this describes.
    ///
    /// # Errors
    /// The roster does not make a layout (no owning member, a duplicate id, weight 0...).
    pub fn layout(&self) -> Result<Layout, PlacementError> {
        let roster = self
            .members
            .iter()
            .map(|m| LayoutMember { member: m.member(), state: m.state.into() })
            .collect();
        Layout::new(self.version, roster, self.replication, self.partitions)
    }

    #[must_use]
    pub fn member(&self, id: &str) -> Option<&MemberSpec> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Members that have not left: the nodes this layout's members talk to.
    pub fn present(&self) -> impl Iterator<Item = &MemberSpec> {
        self.members.iter().filter(|m| m.state != StateSpec::Left)
    }

    /// Members owning partitions in this version.
    pub fn owning(&self) -> impl Iterator<Item = &MemberSpec> {
        self.members.iter().filter(|m| m.state.owns())
    }

    /// A short fingerprint of the whole layout, shown when two proposals for one version
    /// are told apart.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        blake3::hash(&bytes).to_hex()[..12].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ids: &[&str]) -> LayoutSpec {
        let members = ids
            .iter()
            .map(|id| {
                MemberSpec::active(
                    *id,
                    Addresses { peer: format!("{id}:1"), ..Addresses::default() },
                )
            })
            .collect();
        LayoutSpec::new(3, 3, 64, members)
    }

    #[test]
    fn the_same_spec_makes_the_same_table_on_every_node() {
        let a = spec(&["c", "a", "b", "d"]).layout().unwrap();
        let b = spec(&["d", "b", "a", "c"]).layout().unwrap();
        assert!((0..64).all(|p| a.owner_ids(p) == b.owner_ids(p)));
        assert_eq!(a.version(), 3);
    }

    #[test]
    fn a_spec_round_trips_through_json_and_keeps_its_fingerprint() {
        let mut s = spec(&["a", "b"]);
        s.members[1].state = StateSpec::Leaving;
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"leaving\""), "{text}");
        let back: LayoutSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.fingerprint(), s.fingerprint());
        assert_ne!(spec(&["a", "b"]).fingerprint(), s.fingerprint());
    }

    #[test]
    fn a_spec_with_no_owning_member_is_not_a_layout() {
        let mut s = spec(&["a"]);
        s.members[0].state = StateSpec::Leaving;
        assert!(s.layout().is_err());
    }
}
