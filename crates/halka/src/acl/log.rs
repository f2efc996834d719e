//! `ACL LOG`: recent refusals (failed logins, commands and keys a user may not use),
//! newest first, repeated ones counted in one entry as Redis does.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Entries kept (Redis's `acllog-max-len` default).
pub const MAX_ENTRIES: usize = 128;
/// A refusal like one within this long before counts in its entry.
const GROUP_WITHIN: Duration = Duration::from_secs(60);

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Auth,
    Command,
    Key,
}

impl Reason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Command => "command",
            Self::Key => "key",
        }
    }
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub count: u64,
    pub reason: Reason,
    /// `toplevel`, or `multi` inside a transaction.
    pub context: &'static str,
    /// The command or key refused; for a failed login, `AUTH`.
    pub object: String,
    pub username: String,
    /// The client's address.
    pub client: String,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// The log.
#[derive(Debug, Default)]
pub struct AclLog {
    entries: Mutex<VecDeque<Entry>>,
    next_id: Mutex<u64>,
}

impl AclLog {
    /// Notes a refusal.
    pub fn note(
        &self,
        reason: Reason,
        context: &'static str,
        object: &str,
        user: &str,
        client: &str,
    ) {
        let now = now_ms();
        let mut entries = self.entries.lock();
        let same = entries.iter_mut().find(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == user
                && e.client == client
                && now.saturating_sub(e.updated_ms) < GROUP_WITHIN.as_millis() as u64
        });
        if let Some(e) = same {
            e.count += 1;
            e.updated_ms = now;
            return;
        }
        let id = {
            let mut next = self.next_id.lock();
            *next += 1;
            *next - 1
        };
        entries.push_front(Entry {
            id,
            count: 1,
            reason,
            context,
            object: object.into(),
            username: user.into(),
            client: client.into(),
            created_ms: now,
            updated_ms: now,
        });
        entries.truncate(MAX_ENTRIES);
    }

    /// The newest `n` entries, newest first.
    #[must_use]
    pub fn recent(&self, n: usize) -> Vec<Entry> {
        self.entries.lock().iter().take(n).cloned().collect()
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_refusal_counts_in_one_entry() {
        let log = AclLog::default();
        log.note(Reason::Auth, "toplevel", "AUTH", "alice", "10.0.0.1:5000");
        log.note(Reason::Auth, "toplevel", "AUTH", "alice", "10.0.0.1:5000");
        log.note(Reason::Key, "toplevel", "secret", "alice", "10.0.0.1:5000");
        let recent = log.recent(10);
        assert_eq!(recent.len(), 2);
        assert_eq!((recent[0].reason, recent[1].count), (Reason::Key, 2));
    }

    #[test]
    fn the_log_keeps_only_the_newest_entries() {
        let log = AclLog::default();
        for i in 0..MAX_ENTRIES + 5 {
            log.note(Reason::Command, "toplevel", &i.to_string(), "u", "c");
        }
        let recent = log.recent(usize::MAX);
        assert_eq!(recent.len(), MAX_ENTRIES);
        assert_eq!(recent[0].object, (MAX_ENTRIES + 4).to_string());
    }
}
