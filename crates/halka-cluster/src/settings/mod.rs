//! Settings the whole cluster shares (its users, for one): written on any node, kept by
//! every node across restarts, and spread by anti-entropy, so that a node that was down
//! during a change catches up when it is back.
//!
//! - [`table`]: the settings and how two tables merge (last writer wins per name).
//! - [`store`]: keeping them across restarts.
//! - [`Settings`]: one node's settings, answering peers and comparing its table with a
//!   random member's every round.

mod majority;
mod service;
pub mod store;
pub mod table;

pub use service::{Settings, SettingsSpec};
pub use store::{FileSettings, MemorySettings, SettingsStore};
pub use table::{MAX_SETTINGS, MAX_VALUE_BYTES, Setting, SettingError, SettingsTable, Stamp};
