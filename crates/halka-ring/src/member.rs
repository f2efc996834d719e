use crate::PlacementError;

/// Index of a node in [`crate::Placement::members`] (members sorted by id).
pub type NodeIdx = u16;

/// A physical node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// Unique, stable name. Placement hashes it, so renaming a node moves its data.
    pub id: String,
    /// Failure domain (rack, availability zone). Replicas of a key go to distinct zones when
    /// there are at least as many zones as replicas.
    pub zone: String,
    /// Relative capacity; a node of weight 2 holds twice the data of weight 1 (Partitioned,
    /// Rendezvous and VnodeRing honour it).
    pub weight: u32,
}

impl Member {
    /// A member with weight 1 in the default zone.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), zone: String::new(), weight: 1 }
    }

    #[must_use]
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }

    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
}

/// Validates members and returns them sorted by id: the canonical order every strategy uses.
pub(crate) fn canonical(members: &[Member]) -> Result<Vec<Member>, PlacementError> {
    if members.is_empty() {
        return Err(PlacementError::NoMembers);
    }
    let max = usize::from(NodeIdx::MAX);
    if members.len() > max {
        return Err(PlacementError::TooManyMembers { count: members.len(), max });
    }
    let mut sorted = members.to_vec();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for m in &sorted {
        if m.id.is_empty() {
            return Err(PlacementError::EmptyMemberId);
        }
        if m.weight == 0 {
            return Err(PlacementError::ZeroWeight(m.id.clone()));
        }
    }
    if let Some(w) = sorted.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(PlacementError::DuplicateMember(w[0].id.clone()));
    }
    Ok(sorted)
}

/// `NodeIdx` for position `i` of a canonical member list (checked by `canonical`).
#[inline]
pub(crate) fn idx(i: usize) -> NodeIdx {
    NodeIdx::try_from(i).unwrap_or(NodeIdx::MAX)
}
