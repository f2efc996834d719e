//! Size limits, checked before anything is stored.

use crate::{Record, Refusal};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Maximum sizes of keys and values.
///
/// Defaults: keys up to 1 KiB, values up to 1 MiB — Dynamo's guidance for objects, and small
/// enough that a value travels in one RPC frame and a record's siblings fit comfortably in
/// memory. Raise them in configuration if your data needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest key, in bytes. Empty keys are always rejected.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Largest record, in bytes: the values of every version a key holds at once
    /// (concurrent writes are kept side by side as siblings). A write that would make a
    /// record larger is refused, so a record always fits one message between nodes and
    /// one write never rewrites more than this.
    pub max_record_bytes: usize,
    /// Largest reply to one multi-key command (MGET), in bytes: a short request naming a
    /// large value many times must not make the node build a huge reply.
    pub max_reply_bytes: usize,
    /// Largest request one client may send (the sum of its arguments), in bytes; a
    /// longer one is refused and the connection closed, as at Redis's query-buffer limit.
    pub max_request_bytes: usize,
    /// Request bytes all Redis connections of a node may hold at once (requests not yet
    /// complete, and complete ones not yet run); a connection that would take the node
    /// past it is closed with an error naming this limit.
    pub max_buffered_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            max_record_bytes: 4 * 1024 * 1024,
            max_reply_bytes: 64 << 20,
            max_request_bytes: 512 << 20,
            max_buffered_bytes: 1 << 30,
        }
    }
}

/// A key or value outside the configured limits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LimitError {
    #[error("key must not be empty")]
    EmptyKey,
    #[error("key is {size} bytes; the maximum is {max} bytes")]
    KeyTooLarge { size: usize, max: usize },
    #[error("value is {size} bytes; the maximum is {max} bytes")]
    ValueTooLarge { size: usize, max: usize },
    #[error(
        "a field or member is {size} bytes; the maximum is {max} bytes (limits.max_key_bytes: \
         each is stored under a key of its own)"
    )]
    MemberTooLarge { size: usize, max: usize },
    #[error(
        "the key would hold {versions} versions of {size} bytes in all; the maximum is {max} \
         bytes (limits.max_record_bytes). They are concurrent writes kept side by side: read \
         the key and write with the context the read returned to replace them"
    )]
    RecordTooLarge { size: usize, versions: usize, max: usize },
    #[error(
        "every owner of the key has numbered the most writes to it a node can \
         ({}); its causal context was forged by a peer holding the cluster secret. \
         Restarting an owner without a clean shutdown gives it a fresh actor that can \
         write the key again",
        crate::MAX_NUMBERED
    )]
    CounterExhausted,
}

impl Limits {
    /// # Errors
    /// The key is empty or longer than `max_key_bytes`.
    pub fn check_key(&self, key: &[u8]) -> Result<(), LimitError> {
        if key.is_empty() {
            return Err(LimitError::EmptyKey);
        }
        // A member key holds its collection's key and the member, each bounded alone.
        if let Some((collection, _, member)) = crate::collection::split_member_key(key) {
            self.check_key(collection)?;
            if member.len() > self.max_key_bytes {
                return Err(LimitError::MemberTooLarge {
                    size: member.len(),
                    max: self.max_key_bytes,
                });
            }
            return Ok(());
        }
        if key.len() > self.max_key_bytes {
            return Err(LimitError::KeyTooLarge { size: key.len(), max: self.max_key_bytes });
        }
        Ok(())
    }

    /// Why a write may not turn a record of `before` value bytes into `after`, if it may
    /// not: `after` is over `max_record_bytes` and larger still. A write that only shrinks
    /// a record (a delete, or one that replaces siblings) is always let through.
    #[must_use]
    pub fn record_refusal(&self, before: usize, after: &Record) -> Option<Refusal> {
        let size = after.value_bytes();
        (size > self.max_record_bytes && size > before).then(|| Refusal::RecordTooLarge {
            size: size as u64,
            versions: u32::try_from(after.versions().len()).unwrap_or(u32::MAX),
            max: self.max_record_bytes as u64,
        })
    }

    /// # Errors
    /// The value is longer than `max_value_bytes`.
    pub fn check_value(&self, value: &[u8]) -> Result<(), LimitError> {
        if value.len() > self.max_value_bytes {
            return Err(LimitError::ValueTooLarge { size: value.len(), max: self.max_value_bytes });
        }
        Ok(())
    }
}
