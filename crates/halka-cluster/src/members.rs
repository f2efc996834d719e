//! The live member registry: the replica this node reaches each member through, by id.
//!
//! A layout says which members own what; the registry says how to reach them. Views are
//! built from the two (`Members::view`), so a layout that names a member this node has no
//! replica for is refused instead of routing to the wrong node. Members are added and
//! removed while the node runs (a join, a replace); a view built earlier keeps the
//! replicas it was built with until it is retired.

use crate::{ClusterError, Replica, View};
use halka_ring::{Layout, Placement};
use halka_store::NodeId;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Members by id, each with the replica that reaches it. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Members {
    inner: Arc<RwLock<BTreeMap<NodeId, Arc<dyn Replica>>>>,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.inner.read().keys()).finish()
    }
}

impl Members {
    /// Adds `replica` under its id, replacing any replica the id had (a member that came
    /// back at another address). Returns the one replaced.
    pub fn add(&self, replica: Arc<dyn Replica>) -> Option<Arc<dyn Replica>> {
        self.inner.write().insert(replica.id().clone(), replica)
    }

    /// Removes member `id`; returns its replica.
    pub fn remove(&self, id: &NodeId) -> Option<Arc<dyn Replica>> {
        self.inner.write().remove(id)
    }

    #[must_use]
    pub fn get(&self, id: &NodeId) -> Option<Arc<dyn Replica>> {
        self.inner.read().get(id).cloned()
    }

    /// Member ids, sorted.
    #[must_use]
    pub fn ids(&self) -> Vec<NodeId> {
        self.inner.read().keys().cloned().collect()
    }

    /// A view over `layout`: its owning members' replicas, in the layout's member order.
    ///
    /// # Errors
    /// [`ClusterError::Config`] naming a member of the layout that is not registered.
    pub fn view(&self, layout: Layout, replication: usize) -> Result<View, ClusterError> {
        let members = self.inner.read();
        let replicas = layout
            .members()
            .iter()
            .map(|m| {
                members.get(&NodeId::new(&m.id)).cloned().ok_or_else(|| {
                    ClusterError::Config(format!(
                        "layout version {} names member {:?}, which this node cannot reach",
                        layout.version(),
                        m.id
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        drop(members);
        Ok(View::new(Some(layout), replicas, replication))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalReplica;
    use halka_ring::{DEFAULT_PARTITIONS, Member};
    use halka_store::MemoryEngine;

    fn replica(id: &str) -> Arc<dyn Replica> {
        Arc::new(LocalReplica::new(NodeId::new(id), Arc::new(MemoryEngine::default())))
    }

    fn layout(ids: &[&str]) -> Layout {
        let members: Vec<Member> = ids.iter().map(|id| Member::new(*id)).collect();
        Layout::active(1, &members, 3, DEFAULT_PARTITIONS).unwrap()
    }

    #[test]
    fn a_view_holds_the_layouts_members_in_its_order() {
        let members = Members::default();
        for id in ["c", "a", "b", "d"] {
            members.add(replica(id));
        }
        let view = members.view(layout(&["b", "c", "a"]), 3).unwrap();
        let ids: Vec<&str> = view.replicas().iter().map(|r| r.id().as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(view.epoch(), 1);
    }

    #[test]
    fn a_layout_naming_an_unknown_member_is_refused() {
        let members = Members::default();
        members.add(replica("a"));
        let err = members.view(layout(&["a", "x"]), 3).unwrap_err();
        assert!(err.to_string().contains("\"x\""), "{err}");
    }

    #[test]
    fn a_removed_member_is_gone_and_a_readded_one_replaces_the_old() {
        let members = Members::default();
        members.add(replica("a"));
        assert!(members.add(replica("a")).is_some());
        assert!(members.remove(&NodeId::new("a")).is_some());
        assert!(members.ids().is_empty());
    }
}
