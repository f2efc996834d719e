//! Where a server keeps the cluster's shared settings (its users): `data_dir/settings.json`
//! beside its data, compared with a member's at the gossip pace.

use crate::config::{EngineChoice, NodeConfig};
use halka_cluster::settings::{FileSettings, MemorySettings, SettingsSpec, SettingsStore};
use std::sync::Arc;

/// The file in `data_dir` a node keeps the cluster's settings in.
pub const FILE: &str = "settings.json";

/// The node's settings: kept in a file, or in memory with the memory engine (which keeps
/// nothing across restarts: such a node takes the cluster's settings from a member).
#[must_use]
pub fn settings_spec(config: &NodeConfig) -> SettingsSpec {
    let store: Arc<dyn SettingsStore> = match config.storage.engine {
        EngineChoice::Memory => Arc::new(MemorySettings::default()),
        EngineChoice::Fjall => Arc::new(FileSettings::new(&config.data_dir.join(FILE))),
    };
    let gossip = config.gossip.apply();
    SettingsSpec {
        store,
        interval: gossip.interval,
        deadline: gossip.deadline,
        // Which member each round picks needs no secrecy, only to differ between nodes.
        rng_seed: rand::random(),
    }
}
