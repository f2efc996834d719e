//! Wire messages. Changing a variant's layout needs a new format byte; variants are only
//! ever appended, which leaves the earlier ones' encoding as it was.

use crate::ReplicaError;
use bytes::Bytes;
use halka_store::{HashRange, Record, Write};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The format byte that starts every frame body. Format 2: records carry expiry and
/// counters (see `halka_store::codec`), writes carry a `Change`. Format 3: write
/// acknowledgements say how durable the write is (`Response::Stored`,
/// `Response::Coordinated`). Format 4: a replica out of disk space says so
/// (`WireError::NoSpace`), and a write applied but not made durable says so
/// (`Response::CoordinatedNotDurable`). Format 5: a key listing is a page that says where
/// it stopped (`Response::Listed`), and a write can be refused for the size of the record
/// it would make (`Refusal::RecordTooLarge`). Format 6: counters hold a net per node
/// with an epoch (`CounterEntry`, `FloatEntry`), and a write can be refused because its
/// coordinator numbered all it can (`Refusal::CounterExhausted`). Format 7: a version may
/// be a collection's head, a write may create one (`Change::Create`) or be refused for
/// the key's type (`Refusal::WrongType`), and an outcome names the head. Format 8: a
/// write may raise a HyperLogLog's registers (`Change::Registers`) or be refused because
/// the key holds no HyperLogLog (`Refusal::NotAnHll`). An older peer's frames are refused
/// with a message naming the format.
pub const FORMAT: u8 = 8;

/// A message with the id that pairs a response with its request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: u64,
    pub body: T,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    CoordinateWrite {
        key: Bytes,
        write: Write,
    },
    Merge {
        key: Bytes,
        record: Arc<Record>,
    },
    Get {
        key: Bytes,
    },
    Ping,
    /// Asks for the peer's placement fingerprint (see `RpcServerConfig::placement`).
    Hello,
    /// Digests over a hash range, one per `2^-bits` slice (anti-entropy).
    Digests {
        range: HashRange,
        bits: u32,
    },
    /// Each key in a hash range with its entry digest (anti-entropy).
    KeyDigests {
        range: HashRange,
    },
    GetMany {
        keys: Vec<Bytes>,
    },
    MergeMany {
        entries: Vec<(Bytes, Arc<Record>)>,
    },
    /// Keep `record` as a hint for `owner`, which did not answer (sloppy quorum).
    KeepHint {
        owner: halka_store::NodeId,
        key: Bytes,
        record: Arc<Record>,
    },
    /// Whether the node keeps a hint for each of `keys` (tombstone collection).
    Hinted {
        keys: Vec<Bytes>,
    },
    /// Every key held in a hash range, records without values (key listing).
    ListKeys {
        range: HashRange,
    },
    /// The records held in a hash range, values included, one page (streaming a range to
    /// a new owner). Answered with `Listed`.
    ReadRange {
        range: HashRange,
    },
    /// How far the node has come in the layout change to `version`. Answered with
    /// `Phase`.
    TransferStatus {
        version: u64,
    },
    /// A membership request (see `membership`). Answered with `Membership`.
    Membership(Box<crate::membership::MembershipRequest>),
    /// How far the node's transfers have come in the change under way. Answered with
    /// `Progress`.
    TransferProgress,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Record(Arc<Record>),
    MaybeRecord(Option<Arc<Record>>),
    Ack,
    Pong,
    Error(WireError),
    Hello {
        placement: u64,
    },
    Digests(Vec<u64>),
    KeyDigests(Vec<(Bytes, u64)>),
    Records(Vec<Option<Arc<Record>>>),
    Flags(Vec<bool>),
    /// The coordinating replica's answer to `CoordinateWrite`, once the write is durable.
    Coordinated(crate::Coordinated, crate::Durability),
    /// The answer to `ListKeys` and `ReadRange`.
    Listed(crate::KeyPage),
    /// A write (`Merge`, `KeepHint`) acknowledged, and how durable it is.
    Stored(crate::Durability),
    /// The answer to `CoordinateWrite` when the write was applied but could not be made
    /// durable (a journal write or fsync failed). It must not read as "not applied":
    /// the coordinator would retry an `INCR` on the next owner and count it twice.
    /// Boxed: it is rare, and would otherwise make every response larger.
    CoordinatedNotDurable(Box<(crate::Coordinated, WireError)>),
    /// The answer to `TransferStatus`.
    Phase(crate::ChangePhase),
    /// The answer to `Membership`. Boxed: a layout is large, and rare.
    Membership(Box<crate::membership::MembershipResponse>),
    /// The answer to `TransferProgress`.
    Progress(crate::Progress),
}

/// A [`ReplicaError`] as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    Storage(String),
    Rejected(String),
    Unavailable(String),
    NoSpace(String),
}

impl From<ReplicaError> for WireError {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::Storage(m) => WireError::Storage(m),
            ReplicaError::Rejected(m) => WireError::Rejected(m),
            ReplicaError::NoSpace(m) => WireError::NoSpace(m),
            other => WireError::Unavailable(other.to_string()),
        }
    }
}

impl From<WireError> for ReplicaError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Storage(m) => ReplicaError::Storage(m),
            WireError::Rejected(m) => ReplicaError::Rejected(m),
            WireError::Unavailable(m) => ReplicaError::Unavailable(m),
            WireError::NoSpace(m) => ReplicaError::NoSpace(m),
        }
    }
}

/// Encodes a message into a frame body.
///
/// # Errors
/// Only if serialisation fails, which it does not for these types.
pub fn encode<T: Serialize>(msg: &Envelope<T>) -> Result<Bytes, postcard::Error> {
    postcard::to_extend(msg, vec![FORMAT]).map(Bytes::from)
}

/// Decodes a frame body.
///
/// # Errors
/// An unknown format byte or a body that does not decode.
pub fn decode<T: for<'de> Deserialize<'de>>(frame: &[u8]) -> Result<Envelope<T>, String> {
    match frame.split_first() {
        Some((&FORMAT, body)) => postcard::from_bytes(body).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!(
            "unknown frame format {v} (this node speaks format {FORMAT}: \
             every node of a cluster must run a release with the same format)"
        )),
        None => Err("empty frame".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halka_store::VersionVector;

    #[test]
    fn messages_round_trip() {
        let req = Envelope {
            id: 7,
            body: Request::CoordinateWrite {
                key: Bytes::from_static(b"k"),
                write: Write {
                    overwrite: true,
                    ..Write::value(Some(Bytes::from_static(b"v")), Some(VersionVector::new()), 5)
                },
            },
        };
        let bytes = encode(&req).unwrap();
        assert_eq!(bytes[0], FORMAT);
        assert_eq!(decode::<Request>(&bytes).unwrap(), req);
        assert!(decode::<Request>(&[1, 0]).unwrap_err().contains("unknown frame format"));
        assert!(decode::<Request>(&[2, 0]).unwrap_err().contains("unknown frame format 2"));
        assert!(decode::<Request>(&[FORMAT, 200, 200]).is_err());
    }
}
