//! Passwords as kept: a random salt and SHA-256 of salt and password, never the password.
//!
//! SHA-256, as Redis uses, because a client authenticates on every new connection: a
//! deliberately slow hash (bcrypt, argon2) would cost milliseconds of CPU per connection
//! and hand anyone who can reach the port a way to burn it with wrong passwords. The
//! salt, which Redis does not add, makes a leaked table useless for precomputed lookups
//! and makes two users with one password hash differently. Passwords an operator sets
//! should be long and random (`ACL GENPASS` prints one); against those, a fast hash is
//! no weakness.

use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A password as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Password {
    /// 16 random bytes, hex.
    pub salt: String,
    /// SHA-256 of the salt's bytes and the password, hex.
    pub hash: String,
}

impl Password {
    /// Keeps `password` under a fresh random salt.
    #[must_use]
    pub fn new(password: &[u8]) -> Self {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        Self { salt: hex(&salt), hash: hex(&digest(&salt, password)) }
    }

    /// Whether `password` is this one, in time that does not depend on where they differ.
    #[must_use]
    pub fn matches(&self, password: &[u8]) -> bool {
        let Some(salt) = unhex(&self.salt) else { return false };
        let computed = hex(&digest(&salt, password));
        bool::from(computed.as_bytes().ct_eq(self.hash.as_bytes()))
    }

    /// How `ACL LIST` and `ACL GETUSER` show it.
    #[must_use]
    pub fn shown(&self) -> String {
        format!("{}:{}", self.salt, self.hash)
    }
}

fn digest(salt: &[u8], password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password);
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// A random password for `ACL GENPASS`: `bits` bits of randomness, as hex.
#[must_use]
pub fn generate(bits: usize) -> String {
    let mut bytes = vec![0u8; bits.div_ceil(8)];
    rand::rng().fill_bytes(&mut bytes);
    let mut text = hex(&bytes);
    text.truncate(bits.div_ceil(4));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_password_matches_itself_and_nothing_else() {
        let p = Password::new(b"s3cret");
        assert!(p.matches(b"s3cret"));
        assert!(!p.matches(b"s3cret "));
        assert!(!p.matches(b""));
    }

    #[test]
    fn one_password_kept_twice_hashes_differently() {
        let (a, b) = (Password::new(b"same"), Password::new(b"same"));
        assert_ne!(a.hash, b.hash);
        assert!(a.matches(b"same") && b.matches(b"same"));
    }

    #[test]
    fn the_kept_form_does_not_contain_the_password() {
        let p = Password::new(b"hunter2hunter2");
        let kept = serde_json::to_string(&p).unwrap();
        assert!(!kept.contains("hunter2"), "{kept}");
    }

    #[test]
    fn generated_passwords_have_the_bits_asked_for() {
        assert_eq!(generate(256).len(), 64);
        assert_eq!(generate(5).len(), 2);
        assert_ne!(generate(256), generate(256));
    }
}
