//! `halka dev`: a local multi-node cluster in one command. Each node is a real
//! `halka server` process on loopback, with its own data directory.

use crate::config::{
    MemberConfig, NodeConfig, SecretString, StorageConfig, SyncChoice, TlsSettings,
};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct DevOptions {
    pub nodes: usize,
    pub port: u16,
    pub http_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub replication: usize,
    pub sync: SyncChoice,
    /// The nodes' shared cluster secret (see [`crate::secret_file`]).
    pub secret: String,
    /// With TLS: the directory of the CA and node certificates
    /// (`tls::certs::throwaway`).
    pub tls: Option<PathBuf>,
    /// The first node's Redis TLS port.
    pub tls_port: u16,
}

/// The configs of the dev cluster's nodes: node i listens on `port + i`, `http_port + i`
/// and `peer_port + i`.
///
/// # Errors
/// Ports that would overflow, or an invalid replication factor.
pub fn configs(opts: &DevOptions) -> anyhow::Result<Vec<NodeConfig>> {
    if opts.nodes == 0 || opts.nodes > 64 {
        bail!("--nodes must be between 1 and 64");
    }
    let port = |base: u16, i: usize| -> anyhow::Result<u16> {
        u16::try_from(usize::from(base) + i).context("port number out of range")
    };
    let members: Vec<MemberConfig> = (0..opts.nodes)
        .map(|i| {
            Ok(MemberConfig {
                id: format!("node-{}", i + 1),
                peer_addr: format!("127.0.0.1:{}", port(opts.peer_port, i)?),
                zone: String::new(),
                weight: 1,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let replication = opts.replication.min(opts.nodes);
    // The nodes share this host's cores: threads beyond them only preempt each other
    // (measured, three nodes on two cores: GET +20-30% with one worker per node, and a
    // lower SET p99 with one storage background thread per node).
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let worker_threads = (cores / opts.nodes).max(1);
    let quorum = replication / 2 + 1;
    (0..opts.nodes)
        .map(|i| {
            let config = NodeConfig {
                node_id: members[i].id.clone(),
                data_dir: opts.data_dir.join(&members[i].id),
                redis_addr: format!("127.0.0.1:{}", port(opts.port, i)?),
                http_addr: format!("127.0.0.1:{}", port(opts.http_port, i)?),
                peer_addr: members[i].peer_addr.clone(),
                replication,
                r: quorum,
                w: quorum,
                storage: StorageConfig {
                    sync: opts.sync,
                    background_threads: worker_threads,
                    ..StorageConfig::default()
                },
                members: members.clone(),
                worker_threads,
                cluster_secret: Some(SecretString(opts.secret.clone())),
                tls: tls_settings(opts, &members[i].id, port(opts.tls_port, i)?),
                ..NodeConfig::default()
            };
            Ok(config.finish("halka dev")?)
        })
        .collect()
}

/// TLS everywhere with the throwaway certificates, or none.
fn tls_settings(opts: &DevOptions, id: &str, tls_port: u16) -> TlsSettings {
    let Some(dir) = &opts.tls else { return TlsSettings::default() };
    TlsSettings {
        cert_file: Some(dir.join(format!("{id}.crt"))),
        key_file: Some(dir.join(format!("{id}.key"))),
        ca_file: Some(dir.join("ca.crt")),
        redis_addr: Some(format!("127.0.0.1:{tls_port}")),
        http: true,
        peers: true,
        ..TlsSettings::default()
    }
}

/// A node process of the dev cluster.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub child: Child,
}

/// Fails, naming the port and its owner, if any address a node would listen on is taken:
/// a node that cannot bind exits, and a client meeting whatever holds the port instead
/// would be talking to something else.
///
/// # Errors
/// An address is in use or cannot be bound.
pub fn check_ports(configs: &[NodeConfig]) -> anyhow::Result<()> {
    for c in configs {
        for (what, addr) in
            [("Redis", &c.redis_addr), ("HTTP", &c.http_addr), ("peer", &c.peer_addr)]
        {
            std::net::TcpListener::bind(addr).map_err(|e| {
                anyhow::anyhow!(
                    "{addr} ({} {what} port) cannot be used: {e}; is another cluster running? \
                     --port, --http-port and --peer-port choose other ports",
                    c.node_id
                )
            })?;
        }
    }
    Ok(())
}

/// Writes each node's config file under the data directory and starts the nodes.
///
/// # Errors
/// A config cannot be written or a node cannot be started.
pub fn start(exe: &Path, configs: &[NodeConfig], data_dir: &Path) -> anyhow::Result<Vec<Node>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut nodes = Vec::new();
    for c in configs {
        let path = data_dir.join(format!("{}.toml", c.node_id));
        write_private(&path, &toml::to_string(c).context("encoding config")?)
            .with_context(|| format!("writing {}", path.display()))?;
        let child = Command::new(exe)
            .arg("server")
            .arg("--config")
            .arg(&path)
            // A node left behind by an early error would hold its ports and data.
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", c.node_id))?;
        nodes.push(Node { id: c.node_id.clone(), child });
    }
    Ok(nodes)
}

/// Writes a file only its owner can read: node configs hold the cluster secret.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file from an earlier run keeps its mode through `open`: narrow it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// Runs the cluster: starts the nodes, prints `banner` once all of them serve, and stops
/// them when `shutdown` is cancelled. A node that exits while starting fails the whole
/// start; one that exits later (killed, say, to watch the quorums cope) is reported and the
/// others keep serving.
///
/// # Errors
/// A port is taken, a node cannot start or does not come up in time, or every node has
/// exited.
pub async fn run(
    exe: &Path,
    configs: &[NodeConfig],
    data_dir: &Path,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    check_ports(configs)?;
    let mut nodes = start(exe, configs, data_dir)?;
    let ready = tokio::select! {
        ready = wait_ready(configs, READY_TIMEOUT) => ready,
        (id, status) = first_exit(&mut nodes) => {
            Err(anyhow::anyhow!("{id} exited while starting ({status}); stopped the others"))
        }
        () = shutdown.cancelled() => Err(anyhow::anyhow!("interrupted while starting")),
    };
    let outcome = match ready {
        Ok(()) => {
            // Until every node sees every other, a request needing all N replicas could
            // fail: the banner waits for the mesh, or says who is still connecting.
            let unseen = tokio::select! {
                unseen = wait_mesh(configs, MESH_TIMEOUT) => unseen,
                () = shutdown.cancelled() => Vec::new(),
            };
            let mut text = banner(configs, data_dir);
            if !unseen.is_empty() {
                text = format!(
                    "halka dev: still connecting ({}); requests that need every replica may \
                     fail until then\n{text}",
                    unseen.join(", ")
                );
            }
            crate::output::emit(text.as_bytes())?;
            supervise(&mut nodes, &shutdown).await
        }
        Err(e) => Err(e),
    };
    stop(&mut nodes).await;
    outcome
}

/// Reports nodes that exit until `shutdown`, or until none is left.
async fn supervise(nodes: &mut Vec<Node>, shutdown: &CancellationToken) -> anyhow::Result<()> {
    while !nodes.is_empty() {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            (id, status) = first_exit(nodes) => {
                eprintln!("halka dev: {id} exited ({status}); the other nodes keep serving");
                nodes.retain(|n| n.id != id);
            }
        }
    }
    bail!("every node has exited")
}

const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the banner waits for every node to see every other.
const MESH_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a node may take over its graceful shutdown before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves when the first node exits: its id and how it ended.
async fn first_exit(nodes: &mut [Node]) -> (String, String) {
    let waits = nodes.iter_mut().map(|n| Box::pin(async move { (&n.id, n.child.wait().await) }));
    let ((id, status), _, _) = futures::future::select_all(waits).await;
    let status = match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("cannot watch it: {e}"),
    };
    (id.clone(), status)
}

/// SIGTERMs every node still running (Ctrl-C reaches them anyway, through the process
/// group, but a SIGTERM to `halka dev` alone does not) and waits for each to finish its
/// graceful shutdown.
async fn stop(nodes: &mut [Node]) {
    for node in nodes.iter() {
        if let Some(pid) = node.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for node in nodes.iter_mut() {
        if tokio::time::timeout(STOP_TIMEOUT, node.child.wait()).await.is_err() {
            eprintln!("{} did not stop within {STOP_TIMEOUT:?}; killing it", node.id);
            let _ = node.child.kill().await;
        }
    }
}

/// Waits until every node accepts Redis-protocol connections.
///
/// # Errors
/// A node did not come up within `timeout`.
pub async fn wait_ready(configs: &[NodeConfig], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for c in configs {
        loop {
            if tokio::net::TcpStream::connect(&c.redis_addr).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not start listening on {} within {:?}",
                    c.node_id,
                    c.redis_addr,
                    timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Waits until every node reports every other member alive (`HALKA.STATUS`), or
/// `timeout`. Returns what is still missing then, as "node-1 does not see node-3".
pub async fn wait_mesh(configs: &[NodeConfig], timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut unseen = Vec::new();
        for c in configs {
            match unseen_by(&c.redis_addr).await {
                Ok(missing) => unseen
                    .extend(missing.into_iter().map(|m| format!("{} does not see {m}", c.node_id))),
                Err(e) => unseen.push(format!("{} does not answer: {e:#}", c.node_id)),
            }
        }
        if unseen.is_empty() || Instant::now() > deadline {
            return unseen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The members the node at `redis_addr` does not see alive.
async fn unseen_by(redis_addr: &str) -> anyhow::Result<Vec<String>> {
    let mut client = crate::client::RespClient::connect(redis_addr, Duration::from_secs(2)).await?;
    let crate::resp::frame::Frame::Bulk(json) = client.call(&[b"HALKA.STATUS"]).await? else {
        bail!("HALKA.STATUS did not answer with a status");
    };
    let status: serde_json::Value = serde_json::from_slice(&json)?;
    let members = status["members"].as_array().context("a status without members")?;
    Ok(members
        .iter()
        .filter(|m| m["alive"] != true)
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect())
}

/// How to connect, for the terminal.
#[must_use]
pub fn banner(configs: &[NodeConfig], data_dir: &Path) -> String {
    use std::fmt::Write;
    let mut s = format!(
        "halka dev: {} nodes, N={}, R={}, W={}, data in {}\n",
        configs.len(),
        configs[0].replication,
        configs[0].r,
        configs[0].w,
        data_dir.display()
    );
    for c in configs {
        let _ = writeln!(
            s,
            "  {}  redis {}  http {}  peer {}",
            c.node_id, c.redis_addr, c.http_addr, c.peer_addr
        );
    }
    if let Some(tls) = configs[0].tls.redis_addr.as_ref() {
        let ca = configs[0].tls.ca_file.clone().unwrap_or_default();
        let port = tls.rsplit(':').next().unwrap_or("6390");
        let _ = write!(
            s,
            "\nTLS everywhere (plain Redis ports stay open on loopback). Try:\n  redis-cli -p {port} --tls --cacert {ca} set greeting merhaba\n  redis-cli -p {port} --tls --cacert {ca} get greeting\n  curl --cacert {ca} -X PUT --data-binary Ozer https://{}/v1/kv/Mahmut\n  curl --cacert {ca} https://{}/v1/kv/Mahmut\n\nCtrl-C stops the cluster.\n",
            configs[0].http_addr,
            configs[configs.len() - 1].http_addr,
            ca = ca.display(),
        );
        return s;
    }
    let redis_port = configs[0].redis_addr.rsplit(':').next().unwrap_or("6380");
    let _ = write!(
        s,
        "\nTry:\n  redis-cli -p {redis_port} set greeting merhaba\n  redis-cli -p {redis_port} get greeting\n  curl -X PUT --data-binary Ozer http://{}/v1/kv/Mahmut\n  curl http://{}/v1/kv/Mahmut\n  curl http://{}/v1/cluster\n\nCtrl-C stops the cluster.\n",
        configs[0].http_addr,
        configs[configs.len() - 1].http_addr,
        configs[0].http_addr,
    );
    s
}
