//! Users and what they may do: Redis's ACL model (`AUTH`, `ACL SETUSER`), checked on
//! every command over RESP and every request over HTTP.
//!
//! - [`user`]: a user's passwords and rules, and the check of a command against them.
//! - [`command`]: each command's categories and keys, as the rules see them.
//! - [`password`]: how passwords are kept (salted SHA-256).
//! - [`Acl`]: the node's users, rebuilt from the cluster's shared settings whenever they
//!   change, so that a user made on any node logs in on every node.

pub mod command;
pub mod log;
pub mod login;
pub mod password;
mod registry;
pub mod throttle;
pub mod user;

pub use registry::{Acl, AclError, DEFAULT_USER, MAX_NAME_BYTES};
pub mod seed;
