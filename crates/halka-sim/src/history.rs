//! What happened in a run, in order: client operations with their outcomes, the versions
//! coordinating replicas created (with what each creator had seen), and the faults.
//! Printed as JSON lines, the same seed gives the same bytes.

use serde::Serialize;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A client operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Op {
    pub client: usize,
    pub node: usize,
    pub key: String,
    /// `Some(value)` for a write, `None` for a delete; absent for a read or an increment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<Option<String>>,
    /// The amount an `INCRBY` added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add: Option<i64>,
    /// The element a `PFADD` added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observe: Option<String>,
    /// When a written value expires (coordinator microseconds): after that it may be gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_us: Option<u64>,
    /// W for writes, R for reads.
    pub quorum: usize,
    /// PW for writes: acknowledgements that had to come from owners.
    #[serde(skip_serializing_if = "is_zero")]
    pub pw: usize,
    pub start_us: u64,
    pub end_us: u64,
    pub outcome: Outcome,
    /// Replicas that acknowledged an acknowledged write.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acked_by: Vec<String>,
    /// The stand-ins among them, each with the owner it kept the write for (and handed
    /// it to: the copy then lives there).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stand_ins: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A write or delete acknowledged by W replicas.
    Acked,
    /// A read: the live values it returned.
    Read(Vec<String>),
    /// Failed; a write may still have been applied somewhere.
    Failed(String),
    /// The node was down: nothing was applied.
    Refused,
}

/// A version a coordinating replica created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub key: String,
    /// (actor, counter).
    pub dot: (String, u64),
    /// `None` for a tombstone.
    pub value: Option<String>,
    /// The creator's causal context, its own dot included.
    pub seen: Vec<(String, u64)>,
    pub at_us: u64,
    /// A collection's head: the lifetimes it holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lifetimes: Vec<u64>,
}

impl Version {
    /// Whether this version's creator had seen `dot` (other than its own).
    #[must_use]
    pub fn saw(&self, dot: &(String, u64)) -> bool {
        *dot != self.dot && self.seen.iter().any(|(n, c)| *n == dot.0 && *c >= dot.1)
    }
}

/// A tombstone a node's collector removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Collected {
    pub node: String,
    pub key: String,
    /// The removed record's causal context.
    pub seen: Vec<(String, u64)>,
    pub at_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Op(Op),
    Version(Version),
    Collected(Collected),
    Fault {
        at_us: u64,
        what: String,
        /// The node whose disk this fault erased.
        #[serde(skip_serializing_if = "Option::is_none")]
        erased: Option<String>,
    },
}

pub type History = Vec<Event>;

/// How the history names a stored key: a collection's member key as
/// `key/lifetime/member` (lifetime in hex), any other key as its text. The simulator's
/// keys hold no `/`, so the name gives the key back (`key_bytes`).
#[must_use]
pub fn key_name(key: &[u8]) -> String {
    match halka_store::collection::split_member_key(key) {
        Some((collection, lifetime, member)) => format!(
            "{}/{lifetime:016x}/{}",
            String::from_utf8_lossy(collection),
            String::from_utf8_lossy(member)
        ),
        None => String::from_utf8_lossy(key).into_owned(),
    }
}

/// The key `name` names (see `key_name`).
#[must_use]
pub fn key_bytes(name: &str) -> Vec<u8> {
    match member_parts(name) {
        Some((collection, lifetime, member)) => {
            halka_store::collection::member_key(collection.as_bytes(), lifetime, member.as_bytes())
        }
        None => name.as_bytes().to_vec(),
    }
}

/// The collection, lifetime and member a member key's name names.
#[must_use]
pub fn member_parts(name: &str) -> Option<(&str, u64, &str)> {
    let mut parts = name.splitn(3, '/');
    let (collection, lifetime, member) = (parts.next()?, parts.next()?, parts.next()?);
    Some((collection, u64::from_str_radix(lifetime, 16).ok()?, member))
}

/// The history as JSON lines.
#[must_use]
pub fn to_json_lines(history: &History) -> String {
    let mut out = String::new();
    for event in history {
        out.push_str(&serde_json::to_string(event).unwrap_or_default());
        out.push('\n');
    }
    out
}
