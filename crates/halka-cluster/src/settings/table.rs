//! The cluster's settings as one node holds them, and how two nodes' tables merge.
//!
//! Every setting is a named value written by one node at one time; a later write wins, and
//! a removal is a write of nothing (kept, so that a node that missed the removal cannot
//! bring the old value back). Ties on time go to the larger node id. Merging keeps, for
//! each name, the entry with the larger stamp: tables merged in any order, any number of
//! times, end the same, which is what lets them spread by anti-entropy.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most settings a table holds: a peer's table with more is taken only in part
/// (peers are authenticated, but a bug must not make every node's memory grow).
pub const MAX_SETTINGS: usize = 10_000;
/// The longest value one setting may hold.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// When, and by which node, a setting was written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Microseconds since the epoch, raised past the entry it replaces when clocks lag.
    pub micros: u64,
    pub node: String,
}

/// One setting: its value, or `None` once removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub stamp: Stamp,
    pub value: Option<String>,
}

/// Why a setting was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("a setting holds at most {MAX_VALUE_BYTES} bytes; this one has {0}")]
    TooLarge(usize),
    #[error("the cluster holds at most {MAX_SETTINGS} settings")]
    Full,
    #[error("the settings cannot be kept: {0}")]
    Store(String),
    #[error(
        "only {reached} of the {members} members answered, and a change needs a majority \
         ({needed}) to be sure it wins over earlier ones: nothing was changed"
    )]
    NoMajorityToRead { reached: usize, needed: usize, members: usize },
    #[error(
        "the change is kept on {reached} of the {members} members, short of a majority \
         ({needed}): it reaches the others as they come back, but a change made meanwhile \
         through another node may win over it"
    )]
    NoMajorityToWrite { reached: usize, needed: usize, members: usize },
}

/// Every setting a node knows, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsTable {
    entries: BTreeMap<String, Setting>,
}

impl SettingsTable {
    /// Writes `value` (or removes the setting) as node `node` at `now` µs: the stamp is
    /// later than any the setting had, so the write wins wherever it arrives.
    ///
    /// # Errors
    /// The value is too large, or the table is full.
    pub fn write(
        &mut self,
        name: &str,
        value: Option<String>,
        node: &str,
        now: u64,
    ) -> Result<Setting, SettingError> {
        if let Some(v) = &value
            && v.len() > MAX_VALUE_BYTES
        {
            return Err(SettingError::TooLarge(v.len()));
        }
        if !self.entries.contains_key(name) && self.entries.len() >= MAX_SETTINGS {
            return Err(SettingError::Full);
        }
        let after = self.entries.get(name).map_or(0, |s| s.stamp.micros.saturating_add(1));
        let setting = Setting { stamp: Stamp { micros: now.max(after), node: node.into() }, value };
        self.entries.insert(name.to_string(), setting.clone());
        Ok(setting)
    }

    /// Keeps each of `theirs` that is newer than what the table holds; the names changed.
    pub fn merge(&mut self, theirs: Vec<(String, Setting)>) -> Vec<String> {
        let mut changed = Vec::new();
        for (name, setting) in theirs {
            if setting.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
                continue;
            }
            let full = self.entries.len() >= MAX_SETTINGS;
            match self.entries.get_mut(&name) {
                Some(ours) if setting.stamp > ours.stamp => *ours = setting,
                Some(_) => continue,
                None if !full => {
                    self.entries.insert(name.clone(), setting);
                }
                None => {
                    tracing::warn!(setting = name, "settings table full: setting not taken");
                    continue;
                }
            }
            changed.push(name);
        }
        changed
    }

    /// A fingerprint of the whole table: two tables with the same one hold the same
    /// entries.
    #[must_use]
    pub fn digest(&self) -> u64 {
        let mut hasher = blake3::Hasher::new();
        for (name, s) in &self.entries {
            for part in [name.as_bytes(), s.stamp.node.as_bytes()] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
            hasher.update(&s.stamp.micros.to_le_bytes());
        }
        let hash = hasher.finalize();
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
    }

    /// The value of `name`, unless it is missing or removed.
    #[must_use]
    pub fn value(&self, name: &str) -> Option<&str> {
        self.entries.get(name).and_then(|s| s.value.as_deref())
    }

    /// Whether `name` was ever written (a removal counts).
    #[must_use]
    pub fn written(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The live values whose names start with `prefix`, in name order.
    pub fn values_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.entries
            .range(prefix.to_string()..)
            .take_while(move |(name, _)| name.starts_with(prefix))
            .filter_map(|(name, s)| Some((name.as_str(), s.value.as_deref()?)))
    }

    /// Every entry, removals included: what a peer is sent.
    #[must_use]
    pub fn entries(&self) -> Vec<(String, Setting)> {
        self.entries.iter().map(|(n, s)| (n.clone(), s.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_write_wins_over_an_entry_stamped_later_by_a_fast_clock() {
        let mut t = SettingsTable::default();
        t.write("a", Some("1".into()), "n1", 100).unwrap();
        let second = t.write("a", Some("2".into()), "n2", 50).unwrap();
        assert_eq!(second.stamp.micros, 101);
        assert_eq!(t.value("a"), Some("2"));
    }

    #[test]
    fn a_removal_is_kept_and_beats_the_older_value_arriving_late() {
        let mut old = SettingsTable::default();
        old.write("a", Some("1".into()), "n1", 100).unwrap();
        let mut t = old.clone();
        t.write("a", None, "n2", 200).unwrap();
        assert!(t.merge(old.entries()).is_empty());
        assert_eq!(t.value("a"), None);
        assert!(t.written("a"));
    }

    #[test]
    fn a_value_over_the_limit_is_refused_saying_the_limit() {
        let mut t = SettingsTable::default();
        let e = t.write("a", Some("x".repeat(MAX_VALUE_BYTES + 1)), "n", 1).unwrap_err();
        assert!(e.to_string().contains(&MAX_VALUE_BYTES.to_string()), "{e}");
    }

    #[test]
    fn values_under_a_prefix_skip_removed_and_other_names() {
        let mut t = SettingsTable::default();
        t.write("acl/a", Some("1".into()), "n", 1).unwrap();
        t.write("acl/b", None, "n", 1).unwrap();
        t.write("acm", Some("3".into()), "n", 1).unwrap();
        let got: Vec<_> = t.values_under("acl/").collect();
        assert_eq!(got, vec![("acl/a", "1")]);
    }

    fn writes() -> impl Strategy<Value = Vec<(u8, Option<u8>, u8, u64)>> {
        prop::collection::vec((0u8..4, prop::option::of(0u8..3), 0u8..3, 0u64..20), 0..12)
    }

    /// A table written by nodes `first..first + 3` (two tables' writers never share an
    /// id, as two nodes never do).
    fn table(writes: &[(u8, Option<u8>, u8, u64)], first: u8) -> SettingsTable {
        let mut t = SettingsTable::default();
        for (name, value, node, at) in writes {
            let node = (first + node).to_string();
            let _ = t.write(&name.to_string(), value.map(|v| v.to_string()), &node, *at);
        }
        t
    }

    proptest! {
        #[test]
        fn merging_in_either_order_ends_the_same(a in writes(), b in writes()) {
            let (ta, tb) = (table(&a, 0), table(&b, 3));
            let mut ab = ta.clone();
            ab.merge(tb.entries());
            let mut ba = tb;
            ba.merge(ta.entries());
            prop_assert_eq!(ab.digest(), ba.digest());
            prop_assert_eq!(ab, ba);
        }
    }
}
