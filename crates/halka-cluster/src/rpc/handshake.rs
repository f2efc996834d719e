//! The peer handshake: before any request is served, both ends of a connection prove that
//! they know the cluster secret, and the server learns whether the client is a member
//! (a node that knows the secret but is not one may only gossip: see [`Standing`]).
//!
//! ```text
//! client                                   server
//!   ClientHello { node, nonce_c }   ──▶      is `node` a member?
//!                                   ◀──    ServerHello { node, nonce_s } | Refused
//!   the node expected?
//!   ClientProof { proof_c }         ──▶      proof_c right?
//!                                   ◀──    ServerProof { proof_s } | Refused { reason }
//!   proof_s right?
//! ```
//!
//! The client proves first so that the server, which is the side an operator watches for
//! intruders, sees (and counts) every wrong secret.
//!
//! Each proof is a BLAKE3 MAC, under a key derived from the secret, of the whole exchange
//! (both nonces, both node ids) and the prover's role, so a proof cannot be replayed on
//! another connection or reflected back to its sender, and the secret never crosses the
//! wire. Messages are ordinary frames (postcard in the length-delimited codec) capped at
//! [`MAX_HANDSHAKE_FRAME_BYTES`], so a stranger can make the server read at most that
//! much; the exchange runs over any byte stream, so TLS can later wrap it unchanged.

use crate::secret::ClusterSecret;
use futures::{SinkExt, StreamExt};
use halka_store::NodeId;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest handshake message; the real frame limit applies only after authentication.
pub const MAX_HANDSHAKE_FRAME_BYTES: usize = 1024;

/// Says "this is halka's peer protocol" before anything else is parsed.
const MAGIC: [u8; 4] = *b"HLKA";
const VERSION: u8 = 1;
const PURPOSE: &str = "peer handshake v1";

/// Who this node is, which peers it accepts, and the key that proves membership.
#[derive(Clone)]
pub struct PeerAuth {
    node: NodeId,
    key: [u8; 32],
    /// Node ids allowed to connect, shared by every clone and changed while the node
    /// runs (a member joins, one is replaced); `None` accepts any node that knows the
    /// secret.
    members: Arc<RwLock<Option<BTreeSet<NodeId>>>>,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAuth")
            .field("node", &self.node)
            .field("members", &self.members)
            .finish()
    }
}

impl PeerAuth {
    /// `node` proving membership with `secret`; only `members` may connect to it.
    #[must_use]
    pub fn new(node: NodeId, secret: &ClusterSecret, members: Option<Vec<NodeId>>) -> Self {
        let members = members.map(|m| m.into_iter().collect());
        Self { node, key: secret.key(PURPOSE), members: Arc::new(RwLock::new(members)) }
    }

    /// Lets `node` connect from now on (a member that joined). Without a member list
    /// every node that knows the secret is let in already.
    pub fn admit(&self, node: NodeId) {
        if let Some(members) = self.members.write().as_mut() {
            members.insert(node);
        }
    }

    /// Refuses `node` from now on (a member that left or was replaced); connections it
    /// already has are not closed here.
    pub fn expel(&self, node: &NodeId) {
        if let Some(members) = self.members.write().as_mut() {
            members.remove(node);
        }
    }

    /// Accepts exactly `members` from now on (a node that installed a layout: its
    /// members), including on a node that accepted anyone with the secret until then.
    pub fn restrict_to(&self, members: BTreeSet<NodeId>) {
        *self.members.write() = Some(members);
    }

    /// This node's id.
    #[must_use]
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    fn proof(&self, role: &str, exchange: &Exchange<'_>) -> [u8; 32] {
        let transcript = postcard::to_allocvec(&(role, exchange)).unwrap_or_default();
        *blake3::keyed_hash(&self.key, &transcript).as_bytes()
    }

    /// Whether `node` may connect as a member (see [`Standing`]).
    #[must_use]
    pub fn is_member(&self, node: &NodeId) -> bool {
        self.members.read().as_ref().is_none_or(|m| m.contains(node))
    }
}

/// What an authenticated client may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A member: anything.
    Member,
    /// A node that knows the secret but is not a member (one started with seeds, waiting
    /// to be joined; or one that left): it may gossip and say who it is, nothing more.
    Guest,
}

/// What both proofs cover.
#[derive(Serialize)]
struct Exchange<'a> {
    client: &'a NodeId,
    server: &'a NodeId,
    client_nonce: [u8; 32],
    server_nonce: [u8; 32],
}

#[derive(Debug, Serialize, Deserialize)]
enum Message {
    ClientHello { magic: [u8; 4], version: u8, node: NodeId, nonce: [u8; 32] },
    ServerHello { node: NodeId, nonce: [u8; 32] },
    ClientProof { proof: [u8; 32] },
    ServerProof { proof: [u8; 32] },
    Refused { reason: String },
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("not a halka peer (bad first message: {0})")]
    NotAPeer(String),
    #[error(
        "the TLS session ended in the handshake: {0} (the peer refused this node's \
         certificate: is it signed by the cluster's CA, and not expired?)"
    )]
    Tls(String),
    #[error("the peer claims to be node {0}, this node's own id: check its node_id")]
    OwnId(String),
    #[error("wrong cluster secret")]
    WrongSecret,
    #[error("expected node {expected}, found node {found}: check the member list's peer_addr")]
    WrongNode { expected: String, found: String },
    #[error("refused by the peer: {0}")]
    Refused(String),
    #[error("connection failed during the handshake: {0}")]
    Io(String),
}

impl HandshakeError {
    /// The `reason` label of the rejected-peer metric.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::NotAPeer(_) => "not_a_peer",
            HandshakeError::Tls(_) => "tls",
            HandshakeError::OwnId(_) => "own_id",
            HandshakeError::WrongSecret => "wrong_secret",
            HandshakeError::WrongNode { .. } => "wrong_node",
            HandshakeError::Refused(_) => "refused",
            HandshakeError::Io(_) => "io",
        }
    }
}

fn nonce() -> [u8; 32] {
    // Nonces must be unpredictable, so they come from the OS, not a seeded generator.
    rand::random()
}

async fn send<S>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    m: &Message,
) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bytes = postcard::to_allocvec(m).map_err(|e| HandshakeError::Io(e.to_string()))?;
    framed
        .send(bytes::Bytes::from(bytes))
        .await
        .map_err(|e: std::io::Error| HandshakeError::Io(e.to_string()))
}

async fn receive<S>(framed: &mut Framed<S, LengthDelimitedCodec>) -> Result<Message, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match framed.next().await {
        Some(Ok(bytes)) => {
            postcard::from_bytes(&bytes).map_err(|e| HandshakeError::NotAPeer(e.to_string()))
        }
        // An alert from the peer's TLS arrives as the first read fails.
        Some(Err(e))
            if e.get_ref().is_some_and(|inner| inner.is::<tokio_rustls::rustls::Error>()) =>
        {
            Err(HandshakeError::Tls(e.to_string()))
        }
        Some(Err(e)) => Err(HandshakeError::NotAPeer(e.to_string())),
        None => Err(HandshakeError::Io("closed by the other side".into())),
    }
}

fn framed<S: AsyncRead + AsyncWrite>(stream: S) -> Framed<S, LengthDelimitedCodec> {
    // Called with `&mut` streams: the caller keeps the connection.
    let codec =
        LengthDelimitedCodec::builder().max_frame_length(MAX_HANDSHAKE_FRAME_BYTES).new_codec();
    Framed::new(stream, codec)
}

/// Runs the client side on a new connection to `expected` (an empty id: whichever
/// member answers, as when a node to be joined is probed by address); the stream is then
/// ready for requests.
///
/// # Errors
/// The server does not know the secret, is another node, or refused this one.
pub async fn client<S>(
    stream: &mut S,
    auth: &PeerAuth,
    expected: &NodeId,
) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = framed(stream);
    let client_nonce = nonce();
    let hello = Message::ClientHello {
        magic: MAGIC,
        version: VERSION,
        node: auth.node.clone(),
        nonce: client_nonce,
    };
    send(&mut framed, &hello).await?;
    let (server, server_nonce) = match receive(&mut framed).await? {
        Message::ServerHello { node, nonce } => (node, nonce),
        Message::Refused { reason } => return Err(HandshakeError::Refused(reason)),
        other => return Err(HandshakeError::NotAPeer(format!("{other:?}"))),
    };
    if !expected.as_str().is_empty() && server != *expected {
        return Err(HandshakeError::WrongNode {
            expected: expected.to_string(),
            found: server.to_string(),
        });
    }
    let exchange = Exchange { client: &auth.node, server: &server, client_nonce, server_nonce };
    send(&mut framed, &Message::ClientProof { proof: auth.proof("client", &exchange) }).await?;
    match receive(&mut framed).await? {
        Message::ServerProof { proof } if equal(&auth.proof("server", &exchange), &proof) => {
            unframed(framed)
        }
        Message::ServerProof { .. } => Err(HandshakeError::WrongSecret),
        Message::Refused { reason } => Err(HandshakeError::Refused(reason)),
        other => Err(HandshakeError::NotAPeer(format!("{other:?}"))),
    }
}

/// Runs the server side on an accepted connection; returns the authenticated peer's id. A
/// refused peer is told why; the caller closes the connection (after counting it).
/// `named_member` is called once the client has named a member (before it has proved
/// anything): the waiting room lets such connections outlast silent ones.
///
/// # Errors
/// The client is not a halka node, not a member, or does not know the secret.
pub async fn server<S>(
    stream: &mut S,
    auth: &PeerAuth,
    named_member: impl FnOnce(),
) -> Result<(NodeId, Standing), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = framed(stream);
    let (client, client_nonce) = match receive(&mut framed).await? {
        Message::ClientHello { magic, version, node, nonce }
            if magic == MAGIC && version == VERSION =>
        {
            (node, nonce)
        }
        other => return Err(HandshakeError::NotAPeer(format!("{other:?}"))),
    };
    if client == auth.node {
        let error = HandshakeError::OwnId(client.to_string());
        let _ = send(&mut framed, &Message::Refused { reason: error.to_string() }).await;
        return Err(error);
    }
    // A guest still proves the secret, but gives way first in a full waiting room.
    let standing = if auth.is_member(&client) {
        named_member();
        Standing::Member
    } else {
        Standing::Guest
    };
    let server_nonce = nonce();
    send(&mut framed, &Message::ServerHello { node: auth.node.clone(), nonce: server_nonce })
        .await?;
    let proof = match receive(&mut framed).await? {
        Message::ClientProof { proof } => proof,
        other => return Err(HandshakeError::NotAPeer(format!("{other:?}"))),
    };
    let exchange = Exchange { client: &client, server: &auth.node, client_nonce, server_nonce };
    if !equal(&auth.proof("client", &exchange), &proof) {
        let _ =
            send(&mut framed, &Message::Refused { reason: "wrong cluster secret".into() }).await;
        return Err(HandshakeError::WrongSecret);
    }
    send(&mut framed, &Message::ServerProof { proof: auth.proof("server", &exchange) }).await?;
    unframed(framed)?;
    Ok((client, standing))
}

/// The stream under the handshake's framing. Neither side sends before the handshake is
/// over, so nothing may be buffered; anything that is was sent out of turn.
fn unframed<S>(framed: Framed<S, LengthDelimitedCodec>) -> Result<(), HandshakeError> {
    if !framed.read_buffer().is_empty() {
        return Err(HandshakeError::NotAPeer("sent requests before the handshake ended".into()));
    }
    Ok(())
}

/// Constant-time comparison, so timing does not reveal how much of a proof was right.
fn equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    blake3::Hash::from_bytes(*a) == blake3::Hash::from_bytes(*b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(node: &str, secret: &[u8], members: Option<&[&str]>) -> PeerAuth {
        PeerAuth::new(
            NodeId::new(node),
            &ClusterSecret::new(secret).unwrap(),
            members.map(|m| m.iter().map(|n| NodeId::new(n)).collect()),
        )
    }

    async fn run(
        client_auth: PeerAuth,
        server_auth: PeerAuth,
        expected: &str,
    ) -> (Result<(), HandshakeError>, Result<(NodeId, Standing), HandshakeError>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let expected = NodeId::new(expected);
        // Each side closes its end when done, as a real connection does.
        tokio::join!(async move { client(&mut a, &client_auth, &expected).await }, async move {
            server(&mut b, &server_auth, || {}).await
        })
    }

    const SECRET: &[u8] = b"0123456789abcdef";

    #[tokio::test]
    async fn members_with_the_secret_are_accepted() {
        let (c, s) = run(auth("a", SECRET, None), auth("b", SECRET, Some(&["a", "b"])), "b").await;
        assert_eq!(c, Ok(()));
        assert_eq!(s, Ok((NodeId::new("a"), Standing::Member)));
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_on_both_sides() {
        let (c, s) = run(auth("a", b"another secret!!", None), auth("b", SECRET, None), "b").await;
        assert_eq!(c, Err(HandshakeError::Refused("wrong cluster secret".into())));
        assert_eq!(s, Err(HandshakeError::WrongSecret), "the server counts it");
    }

    #[tokio::test]
    async fn a_node_outside_the_member_list_with_the_secret_is_only_a_guest() {
        let (c, s) = run(auth("x", SECRET, None), auth("b", SECRET, Some(&["a", "b"])), "b").await;
        assert_eq!(c, Ok(()));
        assert_eq!(s, Ok((NodeId::new("x"), Standing::Guest)));
    }

    #[tokio::test]
    async fn a_node_outside_the_member_list_without_the_secret_is_refused() {
        let server = auth("b", SECRET, Some(&["a", "b"]));
        let (_, s) = run(auth("x", b"another secret!!", None), server, "b").await;
        assert_eq!(s, Err(HandshakeError::WrongSecret));
    }

    #[tokio::test]
    async fn a_client_claiming_the_servers_own_id_is_refused() {
        let (_, s) = run(auth("b", SECRET, None), auth("b", SECRET, None), "b").await;
        assert_eq!(s, Err(HandshakeError::OwnId("b".into())));
    }

    #[tokio::test]
    async fn a_node_admitted_after_start_is_accepted() {
        let server = auth("b", SECRET, Some(&["a", "b"]));
        // A clone, as the RPC server holds one: admission is shared.
        server.clone().admit(NodeId::new("x"));
        let (c, s) = run(auth("x", SECRET, None), server, "b").await;
        assert_eq!((c, s), (Ok(()), Ok((NodeId::new("x"), Standing::Member))));
    }

    #[tokio::test]
    async fn an_expelled_member_is_only_a_guest() {
        let server = auth("b", SECRET, Some(&["a", "b"]));
        server.clone().expel(&NodeId::new("a"));
        let (_, s) = run(auth("a", SECRET, None), server, "b").await;
        assert_eq!(s, Ok((NodeId::new("a"), Standing::Guest)));
    }

    #[tokio::test]
    async fn a_server_with_another_secret_is_refused_by_the_client() {
        // An impostor that accepts any client still cannot produce the right proof.
        let (mut a, b) = tokio::io::duplex(4096);
        let impostor = async move {
            let mut framed = framed(b);
            receive(&mut framed).await.unwrap();
            let hello = Message::ServerHello { node: NodeId::new("b"), nonce: [7; 32] };
            send(&mut framed, &hello).await.unwrap();
            receive(&mut framed).await.unwrap();
            send(&mut framed, &Message::ServerProof { proof: [0; 32] }).await.unwrap();
            framed
        };
        let (client_auth, expected) = (auth("a", SECRET, None), NodeId::new("b"));
        let (c, _) = tokio::join!(client(&mut a, &client_auth, &expected), impostor);
        assert_eq!(c, Err(HandshakeError::WrongSecret));
    }

    #[tokio::test]
    async fn a_server_that_is_another_node_is_refused() {
        let (c, _) = run(auth("a", SECRET, None), auth("c", SECRET, None), "b").await;
        assert!(matches!(c, Err(HandshakeError::WrongNode { .. })), "{c:?}");
    }

    #[tokio::test]
    async fn a_stranger_speaking_another_protocol_is_not_a_peer() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let server_auth = auth("b", SECRET, None);
        let (_, s) = tokio::join!(
            async {
                use tokio::io::AsyncWriteExt;
                a.write_all(b"\0\0\0\x05hello").await.unwrap();
                a
            },
            server(&mut b, &server_auth, || {})
        );
        assert!(matches!(s, Err(HandshakeError::NotAPeer(_))), "{s:?}");
    }
}
