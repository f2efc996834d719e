//! Internal RPC between nodes.
//!
//! One TCP connection per peer pair carries every request between them: frames are
//! length-delimited (a 4-byte big-endian length, then the body), each body a format byte
//! followed by a postcard-encoded [`Envelope`]. Requests carry ids, so many are in flight
//! at once and answers come back in any order (pipelining). A frame over the size limit or
//! one that does not decode closes that connection with a logged error; the node keeps
//! serving every other connection.
//!
//! With [`tls`] configured, each connection is first wrapped in mutual TLS (certificates
//! of the cluster's CA on both sides); the rest runs unchanged over it ([`link`]).
//!
//! Before any request, both ends run the [`handshake`]: each proves it knows the cluster
//! secret and the client proves it is a member, so a stranger on the peer port can read
//! or write nothing.
//!
//! [`RemoteReplica`] is the client side and implements [`crate::Replica`]; [`serve`] is the
//! server side, answering from the node's [`crate::LocalReplica`].

mod admission;
mod client;
pub mod handshake;
pub mod link;
mod message;
mod rejections;
mod remote;
mod server;
pub mod tls;

pub use admission::source_of;
pub use client::{RemoteReplica, RpcClientConfig, TcpPeer};
pub use handshake::{HandshakeError, PeerAuth};
pub use message::{Envelope, FORMAT, Request, Response, decode, encode};
pub use remote::{MessageReplica, Transport};
pub use server::{RpcServerConfig, handle, serve};
pub use tls::PeerTls;

/// Largest frame accepted by default: a record of a few maximum-size siblings.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
