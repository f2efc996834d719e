//! The internal RPC: remote replicas over real loopback sockets.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_cluster::membership::MembershipRequest;
use halka_cluster::rpc::{PeerAuth, RemoteReplica, RpcClientConfig, RpcServerConfig, serve};
use halka_cluster::{ClusterSecret, LocalReplica, Replica, ReplicaError};
use halka_store::{MemoryEngine, NodeId, VersionVector, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const SECRET: &[u8] = b"a secret for the rpc tests";

fn auth(node: &str, secret: &[u8]) -> PeerAuth {
    PeerAuth::new(NodeId::new(node), &ClusterSecret::new(secret).unwrap(), None)
}

fn client_config() -> RpcClientConfig {
    RpcClientConfig::new(auth("cli", SECRET))
}

async fn server(
    max_frame_bytes: usize,
) -> (String, LocalReplica, oneshot::Sender<()>, tokio::task::JoinHandle<TcpListener>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let local = LocalReplica::new(NodeId::new("srv"), Arc::new(MemoryEngine::default()));
    let (stop, stopped) = oneshot::channel::<()>();
    let config = RpcServerConfig { max_frame_bytes, ..RpcServerConfig::new(auth("srv", SECRET)) };
    let task = tokio::spawn(serve(listener, Arc::new(local.clone()), config, async {
        let _ = stopped.await;
    }));
    (addr, local, stop, task)
}

/// A server for node "srv" on `addr` (a peer coming back on its old address).
async fn serve_forever_on(addr: std::net::SocketAddr) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let local = LocalReplica::new(NodeId::new("srv"), Arc::new(MemoryEngine::default()));
    tokio::spawn(serve(
        listener,
        Arc::new(local),
        RpcServerConfig::new(auth("srv", SECRET)),
        futures::future::pending(),
    ));
}

fn write(v: &'static str) -> Write {
    Write {
        overwrite: true,
        ..Write::value(Some(Bytes::from_static(v.as_bytes())), Some(VersionVector::new()), 1)
    }
}

#[tokio::test]
async fn remote_replica_round_trips_every_call() {
    let (addr, _local, _stop, _task) = server(1 << 20).await;
    let remote = RemoteReplica::new(NodeId::new("srv"), addr, client_config());
    remote.ping().await.unwrap();
    let record =
        remote.coordinate_write(&Bytes::from_static(b"k"), &write("v")).await.unwrap().record;
    assert_eq!(record.lww_value(), Some(&Bytes::from_static(b"v")));
    let got = remote.get(&Bytes::from_static(b"k")).await.unwrap().unwrap();
    assert_eq!(got, record);
    remote.merge(&Bytes::from_static(b"k2"), &record).await.unwrap();
    assert!(remote.get(&Bytes::from_static(b"k2")).await.unwrap().is_some());
    // Pipelining: many requests in flight on the one connection.
    let calls: Vec<_> = (0..500).map(|i| remote.get(&Bytes::from(format!("k{i}")))).collect();
    for c in futures::future::join_all(calls).await {
        c.unwrap();
    }
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let (addr, _local, _stop, _task) = server(1024).await;
    let good = RemoteReplica::new(NodeId::new("srv"), addr.clone(), client_config());
    good.ping().await.unwrap();

    // A frame that does not decode.
    let mut garbage = TcpStream::connect(&addr).await.unwrap();
    garbage.write_all(&[0, 0, 0, 3, 9, 9, 9]).await.unwrap();
    // A frame over the size limit.
    let mut huge = TcpStream::connect(&addr).await.unwrap();
    huge.write_all(&[0, 1, 0, 0]).await.unwrap();
    for mut s in [garbage, huge] {
        let mut buf = [0_u8; 16];
        let n = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "the server closed the offending connection");
    }
    good.ping().await.unwrap();
    // An oversized request from a client fails that request's connection, not the server.
    let big = Write::value(Some(Bytes::from(vec![0_u8; 4096])), None, 1);
    assert!(good.coordinate_write(&Bytes::from_static(b"k"), &big).await.is_err());
    let again = RemoteReplica::new(NodeId::new("srv"), addr, client_config());
    again.ping().await.unwrap();
}

#[tokio::test]
async fn a_request_over_the_frame_limit_fails_alone() {
    let (addr, _local, _stop, _task) = server(1 << 20).await;
    let config = RpcClientConfig { max_frame_bytes: 1024, ..client_config() };
    let remote = RemoteReplica::new(NodeId::new("srv"), addr, config);
    remote.ping().await.unwrap();
    let big = Write::value(Some(Bytes::from(vec![0_u8; 4096])), None, 1);
    let error = remote.coordinate_write(&Bytes::from_static(b"k"), &big).await.unwrap_err();
    assert!(
        matches!(&error, ReplicaError::Rejected(m) if m.contains("over the 1024-byte limit")),
        "{error:?}"
    );
    // The connection is not torn down: the next request is answered on it.
    remote.coordinate_write(&Bytes::from_static(b"k"), &write("small")).await.unwrap();
}

#[tokio::test]
async fn an_answer_over_the_frame_limit_fails_its_request_alone() {
    let (addr, local, _stop, _task) = server(1024).await;
    let big = Write::value(Some(Bytes::from(vec![0_u8; 4096])), None, 1);
    local.coordinate_write(&Bytes::from_static(b"big"), &big).await.unwrap();
    let remote = RemoteReplica::new(NodeId::new("srv"), addr, client_config());
    let small = remote.coordinate_write(&Bytes::from_static(b"k"), &write("v"));
    let (big_answer, small_answer) = tokio::join!(remote.get(&Bytes::from_static(b"big")), small);
    let error = big_answer.unwrap_err();
    assert!(
        matches!(&error, ReplicaError::Rejected(m) if m.contains("over the 1024-byte limit")),
        "{error:?}"
    );
    small_answer.unwrap();
    assert!(remote.get(&Bytes::from_static(b"k")).await.unwrap().is_some());
}

/// A free loopback address with nothing listening on it.
async fn refusing_addr() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn a_peer_that_refuses_fails_every_request_as_unavailable() {
    let addr = refusing_addr().await;
    let remote = RemoteReplica::new(NodeId::new("srv"), addr.to_string(), client_config());
    for _ in 0..3 {
        let err = remote.ping().await.unwrap_err();
        assert!(matches!(err, ReplicaError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
    }
}

/// A node that binds its peer port a moment after its peers first dialled it (a cluster
/// starting) is used by the first request that needs it, however long the backoff and
/// the probe interval are.
#[tokio::test]
async fn a_peer_that_binds_after_refusing_is_used_by_the_next_request() {
    let addr = refusing_addr().await;
    let hour = Duration::from_secs(3600);
    let config = RpcClientConfig {
        backoff_min: hour,
        backoff_max: hour,
        probe_interval: hour,
        ..client_config()
    };
    let remote = RemoteReplica::new(NodeId::new("srv"), addr.to_string(), config);
    assert!(remote.ping().await.is_err());
    serve_forever_on(addr).await;
    remote.ping().await.unwrap();
    assert!(remote.is_connected());
}

/// A peer that accepts connections but never answers costs a request a connect timeout;
/// within the backoff that follows, requests fail at once instead of each waiting again.
#[tokio::test]
async fn a_silent_peer_is_not_dialled_again_by_each_request() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let config = RpcClientConfig {
        connect_timeout: Duration::from_millis(50),
        backoff_min: Duration::from_secs(3600),
        ..client_config()
    };
    let remote = RemoteReplica::new(NodeId::new("srv"), addr.to_string(), config);
    let err = remote.ping().await.unwrap_err();
    assert!(err.to_string().contains("handshake timed out"), "{err}");
    let err = remote.ping().await.unwrap_err();
    assert!(err.to_string().contains("retrying in"), "in backoff: {err}");
    drop(silent);
}

#[tokio::test]
async fn server_shutdown_fails_pending_calls_instead_of_hanging() {
    let (addr, _local, stop, task) = server(1 << 20).await;
    let remote = RemoteReplica::new(NodeId::new("srv"), addr, client_config());
    remote.ping().await.unwrap();
    stop.send(()).unwrap();
    task.await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), remote.ping()).await.expect("no hang");
    assert!(err.is_err());
}

/// The 14-byte `Get` that used to read any record from the peer port, sent by a stranger
/// who skips the handshake.
#[tokio::test]
async fn a_request_without_the_handshake_reads_nothing() {
    let (addr, local, _stop, _task) = server(1 << 20).await;
    local.coordinate_write(&Bytes::from_static(b"secret-key"), &write("v")).await.unwrap();
    let frame = halka_cluster::rpc::encode(&halka_cluster::rpc::Envelope {
        id: 1,
        body: halka_cluster::rpc::Request::Get { key: Bytes::from_static(b"secret-key") },
    })
    .unwrap();
    let mut stranger = TcpStream::connect(&addr).await.unwrap();
    let mut bytes = u32::try_from(frame.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(&frame);
    stranger.write_all(&bytes).await.unwrap();
    let mut reply = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stranger, &mut reply).await.unwrap();
    assert!(reply.is_empty(), "a stranger got an answer: {reply:?}");
}

#[tokio::test]
async fn a_node_with_another_secret_can_neither_read_nor_write() {
    let (addr, local, _stop, _task) = server(1 << 20).await;
    let intruder = RemoteReplica::new(
        NodeId::new("srv"),
        addr,
        RpcClientConfig::new(auth("cli", b"not the cluster secret")),
    );
    let err = intruder.coordinate_write(&Bytes::from_static(b"k"), &write("evil")).await;
    assert!(err.unwrap_err().to_string().contains("wrong cluster secret"));
    let err = intruder.get(&Bytes::from_static(b"k")).await.unwrap_err();
    assert!(matches!(err, ReplicaError::Unavailable(_)), "{err}");
    assert_eq!(local.get(&Bytes::from_static(b"k")).await.unwrap(), None);
}

/// A peer that comes back is used as soon as it accepts connections, not when the
/// client's backoff (here an hour) would end.
#[tokio::test]
async fn a_restarted_peer_is_used_before_the_backoff_ends() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let hour = Duration::from_secs(3600);
    let config = RpcClientConfig {
        backoff_min: hour,
        backoff_max: hour,
        probe_interval: Duration::from_millis(10),
        ..client_config()
    };
    let remote = RemoteReplica::new(NodeId::new("srv"), addr.to_string(), config);
    assert!(remote.ping().await.is_err());

    serve_forever_on(addr).await;
    // No request asks: the probe finds the peer by itself. Polls the client's own state; the bound only guards against a hang.
    let mut attempts = 0;
    while !remote.is_connected() {
        attempts += 1;
        assert!(attempts < 500, "the probe never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    remote.ping().await.unwrap();
}

#[tokio::test]
async fn a_coordinated_write_whose_fsync_fails_reads_as_applied_but_not_durable() {
    use halka_store::{FjallEngine, FjallOptions, SyncPolicy};
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        FjallEngine::open(FjallOptions {
            sync: SyncPolicy::Always,
            ..FjallOptions::new(dir.path())
        })
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let local = LocalReplica::new(NodeId::new("srv"), engine.clone());
    let config = RpcServerConfig::new(auth("srv", SECRET));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Arc::new(local), config, async {
        let _ = stopped.await;
    }));
    let remote = RemoteReplica::new(NodeId::new("srv"), addr, client_config());
    engine.inject_sync_failure();
    // Applied (the coordinator must not hand an `INCR` to the next owner and count it
    // twice); only its durability failed.
    let (coordinated, durable) =
        remote.coordinate_write_deferred(&Bytes::from_static(b"k"), &write("v")).await.unwrap();
    assert!(coordinated.applied());
    let err = durable.await.unwrap_err();
    assert!(err.to_string().contains("injected fsync failure"), "{err}");
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn a_range_streams_from_a_peer_page_by_page() {
    use halka_cluster::stream::{MemoryCheckpoints, stream_range};
    let (addr, local, _stop, _task) = server(8 << 20).await;
    let value = Bytes::from(vec![b'v'; 1024]);
    for i in 0..2500 {
        let write = Write::value(Some(value.clone()), None, 1);
        local.coordinate_write(&Bytes::from(format!("k{i}")), &write).await.unwrap();
    }
    let remote = RemoteReplica::new(NodeId::new("srv"), addr, client_config());
    let target = LocalReplica::new(NodeId::new("new"), Arc::new(MemoryEngine::default()));
    let checkpoints = MemoryCheckpoints::default();
    let range = halka_store::HashRange::ALL;
    let streamed =
        stream_range(&remote, &target, range, &checkpoints, Duration::from_secs(60)).await.unwrap();
    assert!(streamed.pages >= 2, "{streamed:?}");
    for i in 0..2500 {
        let key = Bytes::from(format!("k{i}"));
        assert_eq!(target.get(&key).await.unwrap(), local.get(&key).await.unwrap());
    }
}

/// A server for "srv" whose member list is "srv" and "a": anyone else is a guest.
async fn members_only_server() -> (String, LocalReplica, PeerAuth) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let local = LocalReplica::new(NodeId::new("srv"), Arc::new(MemoryEngine::default()));
    let members = Some(vec![NodeId::new("srv"), NodeId::new("a")]);
    let auth = PeerAuth::new(NodeId::new("srv"), &ClusterSecret::new(SECRET).unwrap(), members);
    let config = RpcServerConfig::new(auth.clone());
    tokio::spawn(serve(listener, Arc::new(local.clone()), config, futures::future::pending()));
    (addr, local, auth)
}

#[tokio::test]
async fn a_guest_with_the_secret_may_ask_who_a_node_is_but_not_read_or_write() {
    let (addr, local, _) = members_only_server().await;
    let guest = RemoteReplica::new(NodeId::new("srv"), addr, client_config());
    // The request reaches the replica (which, alone here, takes no part in membership).
    let described = guest.membership(MembershipRequest::Describe).await.unwrap_err();
    assert!(described.to_string().contains("takes no part in membership"), "{described}");
    let err = guest.coordinate_write(&Bytes::from_static(b"k"), &write("v")).await.unwrap_err();
    assert!(err.to_string().contains("not a member of the cluster's layout"), "{err}");
    assert!(guest.get(&Bytes::from_static(b"k")).await.is_err());
    assert_eq!(local.get(&Bytes::from_static(b"k")).await.unwrap(), None);
}

#[tokio::test]
async fn a_guest_admitted_while_connected_is_served_as_a_member_on_the_same_connection() {
    let (addr, _local, auth) = members_only_server().await;
    let guest = RemoteReplica::new(NodeId::new("srv"), addr, client_config());
    assert!(guest.get(&Bytes::from_static(b"k")).await.is_err());
    auth.admit(NodeId::new("cli"));
    assert_eq!(guest.get(&Bytes::from_static(b"k")).await.unwrap(), None);
}
