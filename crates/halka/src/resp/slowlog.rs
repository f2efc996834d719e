//! `SLOWLOG`: the most recent commands that took longer than a threshold, as Redis keeps
//! them.
//!
//! An entry keeps the command name and its first argument (the key, for most commands),
//! with the count of the rest — as Redis shortens long argument lists — so that noting a
//! command costs one reference-count increment rather than a copy of its arguments.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest argument kept in an entry, as in Redis.
const MAX_ARG_BYTES: usize = 128;

#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    /// Unix seconds when the command finished.
    pub at: u64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub client_addr: String,
    pub client_name: Bytes,
}

#[derive(Debug)]
pub struct SlowLog {
    /// Commands slower than this are kept; `None` keeps none.
    threshold: Option<Duration>,
    max_len: usize,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

impl SlowLog {
    /// `slower_than_us` as Redis's `slowlog-log-slower-than`: negative keeps nothing, 0
    /// keeps every command.
    #[must_use]
    pub fn new(slower_than_us: i64, max_len: usize) -> Self {
        Self {
            threshold: u64::try_from(slower_than_us).ok().map(Duration::from_micros),
            max_len,
            next_id: AtomicU64::new(0),
            entries: Mutex::default(),
        }
    }

    /// Whether a command that took `took` is kept.
    #[must_use]
    pub fn is_slow(&self, took: Duration) -> bool {
        self.threshold.is_some_and(|t| took >= t) && self.max_len > 0
    }

    /// Keeps a slow command: its name, first argument and how many more it had.
    pub fn note(
        &self,
        name: &str,
        first: Option<&Bytes>,
        more: usize,
        took: Duration,
        client: (String, Bytes),
    ) {
        let mut args = vec![Bytes::copy_from_slice(name.as_bytes())];
        if let Some(first) = first {
            args.push(first.slice(..first.len().min(MAX_ARG_BYTES)));
        }
        if more > 0 {
            args.push(Bytes::from(format!("... ({more} more arguments)")));
        }
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            at,
            micros: took.as_micros() as u64,
            args,
            client_addr: client.0,
            client_name: client.1,
        };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(self.max_len);
    }

    /// The newest `count` entries, newest first.
    #[must_use]
    pub fn newest(&self, count: usize) -> Vec<Entry> {
        self.entries.lock().iter().take(count).cloned().collect()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}
