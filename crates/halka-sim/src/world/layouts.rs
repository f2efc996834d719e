//! The layouts the simulated cluster runs: the change a scenario or a run installs on
//! every node, and the owners the checker holds to.

use super::{N, World};
use halka_cluster::{Replica, View};
use halka_ring::{DEFAULT_PARTITIONS, Layout, Member, Placement};
use std::sync::Arc;

impl World {
    /// Running nodes whose view still holds more than one layout.
    pub fn changing_nodes(&self) -> usize {
        let coordinators = (0..self.nodes.len()).filter_map(|i| self.coordinator(i));
        coordinators.filter(|c| c.view().is_changing()).count()
    }

    /// The newest active layout (version 1, every simulated member, until a change).
    pub fn layout(&self) -> Layout {
        self.layouts.lock().last().cloned().expect("a layout")
    }

    /// The simulated members numbered `which`, as a layout one version past the newest.
    pub fn next_layout(&self, which: &[usize]) -> Layout {
        let version = self.layout().version() + 1;
        let members: Vec<Member> = which.iter().map(|&i| self.members[i].clone()).collect();
        Layout::active(version, &members, N, DEFAULT_PARTITIONS).expect("a layout")
    }

    /// Sets the active layouts, and installs them on every node: kept on its disk, and in
    /// its view if it runs.
    pub fn set_layouts(self: &Arc<Self>, layouts: Vec<Layout>) {
        *self.layouts.lock() = layouts.clone();
        for i in 0..self.nodes.len() {
            self.nodes[i].disk.lock().view = Some((layouts.clone(), false));
            let Some((coordinator, replica)) = self.nodes[i]
                .running
                .lock()
                .as_ref()
                .map(|r| (Arc::clone(&r.coordinator), Arc::clone(&r.replica)))
            else {
                continue;
            };
            coordinator.swap_view(self.view_over(i, &replica, layouts.clone()));
        }
    }

    /// Keeps node `i`'s view on its simulated disk (a crash that loses the disk loses it).
    pub(super) fn keep_view(self: &Arc<Self>, i: usize) -> halka_cluster::KeepView {
        let world = Arc::downgrade(self);
        Arc::new(move |layouts, reads_newest| {
            if let Some(world) = world.upgrade() {
                world.nodes[i].disk.lock().view = Some((layouts.to_vec(), reads_newest));
            }
            Ok(())
        })
    }

    /// Node `i`'s view over `layouts`: its own replica for itself, simulated links to the
    /// others.
    pub(super) fn view_over(
        self: &Arc<Self>,
        i: usize,
        own: &Arc<dyn Replica>,
        layouts: Vec<Layout>,
    ) -> View {
        let reach = |id: &str| -> Option<Arc<dyn Replica>> {
            let j = self.nodes.iter().position(|n| n.id.as_str() == id)?;
            Some(if j == i { Arc::clone(own) } else { self.link(i, j) })
        };
        View::with_history(layouts, &reach, N).expect("the simulated members are reachable")
    }

    /// The owners of `key`, by index.
    pub fn owners(&self, key: &[u8]) -> Vec<usize> {
        let layout = self.layout();
        let members = layout.members();
        let index_of = |id: &str| self.nodes.iter().position(|n| n.id.as_str() == id);
        let owners = layout.preference_list(key, N);
        owners.iter().filter_map(|&i| index_of(&members[usize::from(i)].id)).collect()
    }
}
