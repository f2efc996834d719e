//! The users a node starts with: the cluster's, kept in its settings, seeded at the
//! cluster's first start from the config file's `requirepass` (the default user's
//! password, as in Redis) and `aclfile` (Redis's format: `user NAME rule …` per line).
//! Once the cluster has a user, the files no longer change it: `ACL SETUSER` does.
//!
//! Also protected mode's check: a node whose default user needs no password serves
//! clients on loopback only.

use super::registry::{Acl, DEFAULT_USER};
use super::user::User;
use crate::config::NodeConfig;
use anyhow::Context as _;
use halka_cluster::settings::Settings;
use std::path::Path;
use std::sync::Arc;

/// The node's users, over the settings among its `services`, seeded from `config`, once
/// protected mode allowed its client addresses (see [`check_exposure`]).
///
/// # Errors
/// As [`open`] and [`check_exposure`], or the node keeps no settings.
pub fn for_node(
    config: &NodeConfig,
    services: &halka_cluster::Services,
) -> anyhow::Result<Arc<Acl>> {
    let settings = services.settings.clone().context("the node keeps no cluster settings")?;
    let acl = open(config, settings)?;
    check_exposure(config, &acl)?;
    Ok(Arc::new(acl))
}

/// The node's users over `settings`, seeded from `config` where the cluster has none.
///
/// # Errors
/// The aclfile cannot be read or has a bad line (named), or a user cannot be kept.
pub fn open(config: &NodeConfig, settings: Arc<Settings>) -> anyhow::Result<Acl> {
    let acl = Acl::new(settings);
    if let Some(path) = &config.aclfile {
        for (name, user) in read_aclfile(path)? {
            acl.seed(&name, &user).with_context(|| format!("keeping user {name}"))?;
        }
    }
    if let Some(password) = &config.requirepass {
        let mut user = User::unrestricted();
        user.apply(b"resetpass")?;
        user.apply(format!(">{}", password.0).as_bytes())?;
        acl.seed(DEFAULT_USER, &user).context("keeping the default user's password")?;
    }
    Ok(acl)
}

/// The users an aclfile describes.
///
/// # Errors
/// The file cannot be read, or a line is not `user NAME rule …` with valid rules.
pub fn read_aclfile(path: &Path) -> anyhow::Result<Vec<(String, User)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading aclfile {}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        match words.next() {
            None => continue,
            Some(w) if w.starts_with('#') => continue,
            Some("user") => {}
            Some(other) => anyhow::bail!(
                "{}:{}: a line starts with `user NAME`, not `{other}`",
                path.display(),
                n + 1
            ),
        }
        let name = words
            .next()
            .with_context(|| format!("{}:{}: `user` without a name", path.display(), n + 1))?;
        let mut user = User::new();
        for rule in words {
            user.apply(rule.as_bytes())
                .with_context(|| format!("{}:{}: user {name}", path.display(), n + 1))?;
        }
        users.push((name.to_string(), user));
    }
    Ok(users)
}

/// Protected mode: refuses client addresses beyond loopback while a client that never
/// authenticates could run commands.
///
/// # Errors
/// An address beyond loopback with protected mode on and a default user needing no
/// password; the error says how to add one.
pub fn check_exposure(config: &NodeConfig, acl: &Acl) -> anyhow::Result<()> {
    if !config.protected_mode || !acl.default_needs_no_password() {
        return Ok(());
    }
    let tls_redis = config.tls.redis_addr.as_ref().map(|a| ("tls.redis_addr", a));
    let addrs = [("redis_addr", &config.redis_addr), ("http_addr", &config.http_addr)];
    for (field, addr) in addrs.into_iter().chain(tls_redis) {
        if !addr.is_empty() && !crate::config::is_loopback(addr) {
            anyhow::bail!(
                "{field} {addr} is reachable beyond this host, and clients need no password: \
                 set `requirepass` in the config file (the default user's password), or add \
                 users (`aclfile`, or `ACL SETUSER` on a node) and turn the default user off \
                 (`ACL SETUSER default off`); or set `protected_mode = false` to serve every \
                 client unauthenticated"
            );
        }
    }
    Ok(())
}
