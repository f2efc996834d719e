//! The node's users: rebuilt from the cluster's shared settings (`acl/user/NAME`, one
//! JSON user each) whenever they change here or arrive from a peer, and changed by
//! writing those settings, so that every change reaches every node.

use super::user::{Compiled, RuleError, User};
use arc_swap::ArcSwap;
use bytes::Bytes;
use halka_cluster::settings::{SettingError, Settings, SettingsTable};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where users live among the cluster's settings.
const PREFIX: &str = "acl/user/";
/// The user a connection runs as before it authenticates.
pub const DEFAULT_USER: &str = "default";
/// The longest user name.
pub const MAX_NAME_BYTES: usize = 128;

/// Why a user change failed.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("a user name is 1 to {MAX_NAME_BYTES} bytes with no spaces or control characters")]
    Name,
    #[error("The 'default' user cannot be removed")]
    DeleteDefault,
    #[error("{0}")]
    Setting(#[from] SettingError),
}

/// The users as one snapshot.
#[derive(Debug, Default)]
struct Users {
    by_name: BTreeMap<String, Arc<Compiled>>,
    /// The default user may run anything without a password: what a node with no users
    /// configured serves (the check is then skipped).
    open: bool,
}

/// The node's users.
#[derive(Debug)]
pub struct Acl {
    settings: Arc<Settings>,
    users: Arc<ArcSwap<Users>>,
}

impl Acl {
    /// The users kept in `settings`, followed as they change.
    #[must_use]
    pub fn new(settings: Arc<Settings>) -> Self {
        let users = Arc::new(ArcSwap::from_pointee(Users::default()));
        let follow = Arc::clone(&users);
        settings.observe(move |table| follow.store(Arc::new(build(table))));
        Self { settings, users }
    }

    /// User `name`, if there is one.
    #[must_use]
    pub fn user(&self, name: &str) -> Option<Arc<Compiled>> {
        self.users.load().by_name.get(name).cloned()
    }

    /// Whether the default user runs anything without a password.
    #[must_use]
    pub fn open(&self) -> bool {
        self.users.load().open
    }

    /// Whether a connection that never authenticates runs as the default user (it is on
    /// and needs no password): what protected mode refuses beyond loopback.
    #[must_use]
    pub fn default_needs_no_password(&self) -> bool {
        self.user(DEFAULT_USER).is_some_and(|u| u.user.enabled && u.user.nopass)
    }

    /// Every user's name, in order.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.users.load().by_name.keys().cloned().collect()
    }

    /// User `name` if `password` logs it in: it is on, and the password is one of its
    /// own or it needs none.
    #[must_use]
    pub fn authenticate(&self, name: &str, password: &[u8]) -> Option<Arc<Compiled>> {
        let user = self.user(name)?;
        let ok = user.user.enabled
            && (user.user.nopass || user.user.passwords.iter().any(|p| p.matches(password)));
        ok.then_some(user)
    }

    /// Applies `rules` to user `name` (made when missing) and keeps it cluster-wide.
    ///
    /// # Errors
    /// A rule is refused (nothing is changed), or the change cannot be kept.
    pub async fn set_user(&self, name: &[u8], rules: &[Bytes]) -> Result<(), AclError> {
        let name = valid_name(name)?;
        let mut user = self.user(&name).map_or_else(User::new, |u| u.user.clone());
        for rule in rules {
            user.apply(rule)?;
        }
        let json = serde_json::to_string(&user).expect("a user serializes");
        self.settings.write(&format!("{PREFIX}{name}"), Some(json)).await?;
        Ok(())
    }

    /// Removes the users named; how many there were.
    ///
    /// # Errors
    /// `default` is named (nothing is removed), or the change cannot be kept.
    pub async fn delete_users(&self, names: &[Bytes]) -> Result<usize, AclError> {
        if names.iter().any(|n| n.as_ref() == DEFAULT_USER.as_bytes()) {
            return Err(AclError::DeleteDefault);
        }
        let mut removed = 0;
        for name in names {
            let name = String::from_utf8_lossy(name);
            if self.user(&name).is_some() {
                self.settings.write(&format!("{PREFIX}{name}"), None).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Writes `user` as `name` unless the cluster ever had a user of that name: how a
    /// config file's `requirepass` and `aclfile` seed the cluster at first start.
    ///
    /// # Errors
    /// The name is refused, or the user cannot be kept.
    pub fn seed(&self, name: &str, user: &User) -> Result<bool, AclError> {
        let name = valid_name(name.as_bytes())?;
        let json = serde_json::to_string(user).expect("a user serializes");
        Ok(self.settings.seed(&format!("{PREFIX}{name}"), json)?)
    }
}

fn valid_name(name: &[u8]) -> Result<String, AclError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.iter().any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
    let name = std::str::from_utf8(name).map_err(|_| AclError::Name)?;
    if ok { Ok(name.to_string()) } else { Err(AclError::Name) }
}

/// The users `table` holds, with the default user unrestricted until someone changes it.
fn build(table: &SettingsTable) -> Users {
    let mut by_name = BTreeMap::new();
    for (key, json) in table.values_under(PREFIX) {
        let name = &key[PREFIX.len()..];
        match serde_json::from_str::<User>(json) {
            Ok(user) => {
                by_name.insert(name.to_string(), Arc::new(Compiled::new(user)));
            }
            Err(e) => {
                tracing::warn!(user = name, error = %e, "a kept user does not parse; it cannot log in");
            }
        }
    }
    if !table.written(&format!("{PREFIX}{DEFAULT_USER}")) {
        by_name.insert(DEFAULT_USER.into(), Arc::new(Compiled::new(User::unrestricted())));
    }
    let open = by_name.get(DEFAULT_USER).is_some_and(|d| d.user == User::unrestricted());
    Users { by_name, open }
}
