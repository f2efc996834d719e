//! Causal-context tokens: the opaque strings the HTTP API hands clients so they can say
//! which versions a write replaces.
//!
//! A token is `base64url(postcard(context) ‖ mac)`, where `mac` is a BLAKE3 MAC under a
//! key derived from the cluster secret, over the key name and the context. A client can
//! only pass back a context the cluster issued for that same key: an altered token, or one
//! issued for another key, would let it claim to have seen writes it never read — and a
//! write with such a context silently replaces them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use halka_cluster::ClusterSecret;
use halka_store::{InvalidRecord, VersionVector};

const PURPOSE: &str = "causal context tokens v1";
const MAC_BYTES: usize = 32;

/// The key tokens are signed with.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("not a causal context token (not base64url)")]
    NotBase64,
    #[error(
        "was not issued by this cluster for this key; pass back the token a read of it returned"
    )]
    Forged,
    #[error("does not decode: {0}")]
    Malformed(String),
    #[error(transparent)]
    Invalid(#[from] InvalidRecord),
}

impl TokenKey {
    #[must_use]
    pub fn new(secret: &ClusterSecret) -> Self {
        Self(secret.key(PURPOSE))
    }

    fn mac(&self, key: &[u8], body: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        // The key's length first, so (key, body) pairs cannot be re-split.
        h.update(&(key.len() as u64).to_be_bytes());
        h.update(key);
        h.update(body);
        h.finalize()
    }

    /// The token for `context` as read from `key`.
    #[must_use]
    pub fn encode(&self, key: &[u8], context: &VersionVector) -> String {
        let mut bytes = postcard::to_allocvec(context).unwrap_or_default();
        let mac = self.mac(key, &bytes);
        bytes.extend_from_slice(mac.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The context in a token this cluster issued for `key`.
    ///
    /// # Errors
    /// The token is not base64url, was not issued for `key` by this cluster, or holds a
    /// context that fails validation.
    pub fn decode(&self, key: &[u8], token: &str) -> Result<VersionVector, TokenError> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| TokenError::NotBase64)?;
        let Some(split) = bytes.len().checked_sub(MAC_BYTES) else {
            return Err(TokenError::Forged);
        };
        let (body, mac) = bytes.split_at(split);
        let mac: [u8; MAC_BYTES] = mac.try_into().map_err(|_| TokenError::Forged)?;
        // `Hash` equality is constant-time.
        if self.mac(key, body) != blake3::Hash::from_bytes(mac) {
            return Err(TokenError::Forged);
        }
        let context: VersionVector =
            postcard::from_bytes(body).map_err(|e| TokenError::Malformed(e.to_string()))?;
        context.validate()?;
        Ok(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halka_store::NodeId;

    fn key() -> TokenKey {
        TokenKey::new(&ClusterSecret::new(b"a cluster secret for tests").unwrap())
    }

    fn context() -> VersionVector {
        [(NodeId::new("node-1"), 3), (NodeId::new("node-2"), 1)].into_iter().collect()
    }

    #[test]
    fn an_issued_token_round_trips() {
        let token = key().encode(b"k", &context());
        assert_eq!(key().decode(b"k", &token), Ok(context()));
    }

    #[test]
    fn a_token_for_another_key_is_refused() {
        let token = key().encode(b"k", &context());
        assert_eq!(key().decode(b"other", &token), Err(TokenError::Forged));
    }

    #[test]
    fn an_altered_or_unsigned_token_is_refused() {
        let forged: VersionVector = [(NodeId::new("node-1"), u64::MAX)].into_iter().collect();
        let unsigned = URL_SAFE_NO_PAD.encode(postcard::to_allocvec(&forged).unwrap());
        assert_eq!(key().decode(b"k", &unsigned), Err(TokenError::Forged));
        let mut bytes = URL_SAFE_NO_PAD.decode(key().encode(b"k", &context())).unwrap();
        bytes[3] ^= 1;
        assert_eq!(key().decode(b"k", &URL_SAFE_NO_PAD.encode(bytes)), Err(TokenError::Forged));
        assert_eq!(key().decode(b"k", "!!"), Err(TokenError::NotBase64));
    }

    #[test]
    fn another_clusters_token_is_refused() {
        let theirs = TokenKey::new(&ClusterSecret::new(b"some other cluster's secret").unwrap());
        let token = theirs.encode(b"k", &context());
        assert_eq!(key().decode(b"k", &token), Err(TokenError::Forged));
    }
}
