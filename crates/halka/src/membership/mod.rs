//! What a node knows of the cluster's members: how each answers now (`peers`), and the
//! placement inputs the members must agree on (`placement_memo`). Static today: the
//! member list comes from the configuration. Gossip, failure detection and versioned
//! layouts (join, leave, replace) will live here.

pub mod peers;
pub mod placement_memo;
