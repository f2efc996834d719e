//! The cluster secret: what nodes prove they know before they talk, and the root of the
//! keys that authenticate what the cluster hands out (causal-context tokens).
//!
//! The secret itself never leaves the node and never crosses the wire. Each use gets its own
//! key, derived from the secret with a purpose string (BLAKE3's key derivation mode), so a
//! value computed for one purpose can never stand in for another.

use std::fmt;

/// Shortest secret accepted, in bytes: 128 bits of hex or base64 text.
pub const MIN_SECRET_BYTES: usize = 16;

/// A cluster's shared secret. There is no default: a key anyone can derive would let
/// anyone in (see the node's configuration for where a secret comes from).
#[derive(Clone)]
pub struct ClusterSecret {
    root: [u8; 32],
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("ClusterSecret").finish_non_exhaustive()
    }
}

/// Fewest distinct bytes a secret must use: a secret of one repeated character, or two,
/// is guessed whatever its length.
pub const MIN_DISTINCT_BYTES: usize = 8;

/// A secret too weak to resist guessing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WeakSecret {
    #[error(
        "cluster secret is {len} bytes; use at least {MIN_SECRET_BYTES} random bytes (`halka secret` prints one)"
    )]
    TooShort { len: usize },
    #[error(
        "cluster secret uses only {distinct} distinct characters; use at least \
         {MIN_DISTINCT_BYTES}, randomly chosen (`halka secret` prints one)"
    )]
    Repetitive { distinct: usize },
}

impl ClusterSecret {
    /// The secret configured for this cluster.
    ///
    /// # Errors
    /// The secret is too short to resist guessing.
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret::TooShort { len: secret.len() });
        }
        let distinct = secret.iter().collect::<std::collections::BTreeSet<_>>().len();
        if distinct < MIN_DISTINCT_BYTES {
            return Err(WeakSecret::Repetitive { distinct });
        }
        Ok(Self { root: blake3::derive_key("halka cluster secret v1", secret) })
    }

    /// The key for one `purpose` (a fixed, unique string per use).
    #[must_use]
    pub fn key(&self, purpose: &str) -> [u8; 32] {
        let mut material = Vec::with_capacity(32 + purpose.len());
        material.extend_from_slice(&self.root);
        material.extend_from_slice(purpose.as_bytes());
        blake3::derive_key("halka cluster key v1", &material)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_purpose_and_by_secret() {
        let a = ClusterSecret::new(b"0123456789abcdef").unwrap();
        let b = ClusterSecret::new(b"0123456789abcdeg").unwrap();
        assert_ne!(a.key("x"), a.key("y"));
        assert_ne!(a.key("x"), b.key("x"));
        assert_eq!(a.key("x"), ClusterSecret::new(b"0123456789abcdef").unwrap().key("x"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(ClusterSecret::new(b"short").unwrap_err(), WeakSecret::TooShort { len: 5 });
        assert_eq!(
            ClusterSecret::new(b"abababababababababababab").unwrap_err(),
            WeakSecret::Repetitive { distinct: 2 }
        );
        let debug = format!("{:?}", ClusterSecret::new(b"0123456789abcdef").unwrap());
        assert!(!debug.contains("root"), "{debug}");
    }
}
