//! What a node knows of the cluster's members: how each answers now (`peers`), the
//! placement inputs the members of a static list must agree on (`placement_memo`), and
//! how the server takes part in versioned layouts (`layout`; the protocol itself is
//! `halka_cluster::membership`), gossips (`gossip`) and keeps the cluster's shared
//! settings (`settings`).

pub mod gossip;
pub mod layout;
pub mod peers;
pub mod placement_memo;
pub mod settings;
