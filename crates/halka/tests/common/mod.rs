//! Test harness: real `halka server` processes on loopback.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_halka");

/// Log lines kept of each node's most recent (see `wait_logged_lately`).
const TAIL_LINES: usize = 1000;

/// Settings under which a node never passes over a slow first owner (a loaded machine can
/// make it look down): for tests whose write follows a delete coordinated there.
pub const FIRST_OWNER_WAITS: &str = "timeout_ms = 600000\nread_hedge_ms = 600000";

/// The cluster secret every test cluster's nodes share.
pub const SECRET: &str = "test-cluster-secret-0123456789";

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    free_ports(1)
}

/// `n` consecutive free loopback ports; returns the first. They lie below the kernel's
/// ephemeral range, so no client connection can take one as its local port while its node
/// is down for a restart (that made a restarted node fail to bind), and this process never
/// hands a port out twice, so parallel tests cannot collide either.
pub fn free_ports(n: u16) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    const LOW: u32 = 10_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral.saturating_sub(LOW + u32::from(n)).max(1);
    let mut given = GIVEN.lock().unwrap();
    // Start where the process id says, so test binaries run side by side (nextest) tend
    // to look in different places.
    let start = std::process::id().wrapping_mul(7919) % span;
    for step in 0..span {
        let base = u16::try_from(LOW + (start + step) % span).unwrap();
        let ports = base..base + n;
        if ports.clone().any(|p| given.contains(&p)) {
            continue;
        }
        if ports.clone().all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
            && ports.clone().all(reserve)
        {
            given.extend(ports);
            return base;
        }
    }
    panic!("no {n} consecutive free ports below {ephemeral}");
}

/// Reserves `port` against other test processes (nextest runs each test in its own) until
/// this one exits: an exclusive lock on a file named for the port, held for the process's
/// life and released by the kernel when it ends.
fn reserve(port: u16) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    static HELD: std::sync::Mutex<Vec<Flock<std::fs::File>>> = std::sync::Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("halka-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(port.to_string()))
    else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            HELD.lock().unwrap().push(lock);
            true
        }
        Err(_) => false,
    }
}

pub struct NodeProc {
    pub id: String,
    pub config: PathBuf,
    pub redis_port: u16,
    pub http_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
    /// Lines the running process has logged so far.
    log_lines: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// What it logged until it served.
    startup_log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Its most recent lines (the last `TAIL_LINES`), before and after it served.
    tail: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    /// Signalled once it logs that it serves (taken by `wait_serving`).
    serving: Option<std::sync::Mutex<mpsc::Receiver<()>>>,
    /// Flags after `--config FILE`.
    args: Vec<String>,
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeProc>,
}

impl TestCluster {
    /// Starts `n` nodes with replication `n.min(3)`, R=W=2 by default, and `sync`.
    pub fn start(n: usize, sync: &str) -> Self {
        Self::start_with(n, sync, "")
    }

    pub fn start_with(n: usize, sync: &str, extra: &str) -> Self {
        Self::start_in(&std::env::temp_dir(), n, sync, extra, "")
    }

    /// As [`TestCluster::start_with`], with the nodes' data directories under `base` and
    /// `storage` added to the `[storage]` table.
    pub fn start_in(
        base: &std::path::Path,
        n: usize,
        sync: &str,
        extra: &str,
        storage: &str,
    ) -> Self {
        let mut cluster = Self::configure(base, n, sync, extra, storage);
        // All at once: a node that kept no layout serves only once the others answer.
        for i in 0..n {
            cluster.spawn_process(i);
        }
        for i in 0..n {
            cluster.wait_serving(i);
        }
        // A test's first request may need every replica: it waits for the whole mesh.
        for i in 0..n {
            cluster.wait_seen_up(i);
        }
        cluster
    }

    /// Writes the nodes' configuration files and starts none of them.
    pub fn configure(
        base: &std::path::Path,
        n: usize,
        sync: &str,
        extra: &str,
        storage: &str,
    ) -> Self {
        let dir = tempfile::tempdir_in(base).unwrap();
        let ports: Vec<(u16, u16, u16)> =
            (0..n).map(|_| (free_port(), free_port(), free_port())).collect();
        let mut members = String::new();
        for (i, (_, _, peer)) in ports.iter().enumerate() {
            members += &format!(
                "[[members]]\nid = \"node-{}\"\npeer_addr = \"127.0.0.1:{peer}\"\n",
                i + 1
            );
        }
        // Replica calls end after 500 ms unless `extra` says otherwise.
        let timeout = if extra.lines().any(|l| l.starts_with("timeout_ms")) {
            ""
        } else {
            "timeout_ms = 500"
        };
        let mut nodes = Vec::new();
        for (i, (redis, http, peer)) in ports.iter().enumerate() {
            let id = format!("node-{}", i + 1);
            let data = dir.path().join(&id);
            let config = dir.path().join(format!("{id}.toml"));
            let text = format!(
                "node_id = \"{id}\"\ndata_dir = \"{}\"\nredis_addr = \"127.0.0.1:{redis}\"\nhttp_addr = \"127.0.0.1:{http}\"\npeer_addr = \"127.0.0.1:{peer}\"\n{timeout}\ncluster_secret = \"{SECRET}\"\n{extra}\n[storage]\nsync = \"{sync}\"\n{storage}\n{members}",
                data.display()
            );
            std::fs::write(&config, text).unwrap();
            nodes.push(NodeProc {
                id,
                config,
                redis_port: *redis,
                http_port: *http,
                peer_port: *peer,
                child: None,
                log_lines: std::sync::Arc::default(),
                startup_log: std::sync::Arc::default(),
                tail: std::sync::Arc::default(),
                serving: None,
                args: Vec::new(),
            });
        }
        Self { dir, nodes }
    }

    /// Starts one more node, outside the cluster (`join = true`), waiting to be joined by
    /// a member; returns its index. `extra` is added to its configuration.
    pub fn add_joining(&mut self, extra: &str) -> usize {
        self.add_outside(&format!("join = true\n{extra}"), &[])
    }

    /// Starts one more node with no member list, configured with `extra` and started with
    /// `args` after its `--config` (`join = true`, or `--seed`); returns its index.
    pub fn add_outside(&mut self, extra: &str, args: &[String]) -> usize {
        let i = self.nodes.len();
        let (redis, http, peer) = (free_port(), free_port(), free_port());
        let id = format!("node-{}", i + 1);
        let data = self.dir.path().join(&id);
        let config = self.dir.path().join(format!("{id}.toml"));
        let text = format!(
            "node_id = \"{id}\"\ndata_dir = \"{}\"\nredis_addr = \"127.0.0.1:{redis}\"\nhttp_addr = \"127.0.0.1:{http}\"\npeer_addr = \"127.0.0.1:{peer}\"\ntimeout_ms = 500\ncluster_secret = \"{SECRET}\"\n{extra}\n",
            data.display()
        );
        std::fs::write(&config, text).unwrap();
        self.nodes.push(NodeProc {
            id,
            config,
            redis_port: redis,
            http_port: http,
            peer_port: peer,
            child: None,
            log_lines: std::sync::Arc::default(),
            startup_log: std::sync::Arc::default(),
            tail: std::sync::Arc::default(),
            serving: None,
            args: args.to_vec(),
        });
        self.start_process(i);
        i
    }

    /// Waits until every other running node answers that node `i` is up.
    pub fn wait_seen_up(&self, i: usize) {
        self.wait_seen(i, &["up"]);
    }

    /// Waits until every other running node reports node `i` in one of `states`
    /// (`/v1/cluster`; asking makes the node dial `i`, so this also opens the links).
    fn wait_seen(&self, i: usize, states: &[&str]) {
        for j in (0..self.nodes.len()).filter(|&j| j != i && self.nodes[j].child.is_some()) {
            self.wait_sees(j, i, states);
        }
    }

    /// Waits until node `j` reports node `i` in one of `states` (`/v1/cluster`; asking
    /// makes `j` dial `i`).
    pub fn wait_sees(&self, j: usize, i: usize, states: &[&str]) {
        let id = &self.nodes[i].id;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = http("GET", &self.http_url(j, "/v1/cluster"), b"", &[]);
            let status: serde_json::Value = serde_json::from_str(&body).unwrap();
            let seen = status["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == id.as_str() && states.iter().any(|s| m["state"] == *s));
            if seen {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {j} never saw {id} as {states:?}: {body}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `i` (after a kill or a stop) and waits until it serves and every
    /// other running node reaches it again (up, or answering with another placement).
    pub fn launch(&mut self, i: usize) {
        self.start_process(i);
        self.wait_seen(i, &["up", "other-placement"]);
    }

    /// Starts node `i` and waits for its "serving" log line.
    pub fn start_process(&mut self, i: usize) {
        self.spawn_process(i);
        self.wait_serving(i);
    }

    /// Starts node `i`, without waiting (see [`TestCluster::wait_serving`]).
    pub fn spawn_process(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut child = Command::new(BIN)
            .args(["server", "--config"])
            .arg(&node.config)
            .args(&node.args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Until the node serves, its log is kept to explain a failed start.
        let early = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&early);
        node.log_lines = std::sync::Arc::default();
        let lines = std::sync::Arc::clone(&node.log_lines);
        let tail = std::sync::Arc::clone(&node.tail);
        tail.lock().unwrap().clear();
        std::thread::spawn(move || {
            let mut ready = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                {
                    let mut tail = tail.lock().unwrap();
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                }
                if ready.is_some() {
                    log.lock().unwrap().push(line.clone());
                }
                if line.contains("halka node serving")
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(());
                }
                if std::env::var_os("HALKA_TEST_LOGS").is_some() {
                    eprintln!("[child] {line}");
                }
            }
        });
        node.child = Some(child);
        node.startup_log = early;
        node.serving = Some(std::sync::Mutex::new(rx));
    }

    /// Waits for the "serving" log line of node `i`, started by
    /// [`TestCluster::spawn_process`].
    pub fn wait_serving(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let Some(serving) = node.serving.take() else { return };
        serving.into_inner().unwrap().recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            panic!("{} did not start:\n{}", node.id, node.startup_log.lock().unwrap().join("\n"))
        });
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Sends `signal` to node `i` (SIGSTOP hangs it: its sockets stay open, nothing answers).
    pub fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        let child = self.nodes[i].child.as_ref().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    }

    /// SIGTERM node `i` and return its exit status.
    pub fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        self.signal(i, nix::sys::signal::Signal::SIGTERM);
        self.nodes[i].child.take().unwrap().wait().unwrap()
    }

    /// What node `i` logged as it last started, until it served.
    pub fn startup_log(&self, i: usize) -> String {
        self.nodes[i].startup_log.lock().unwrap().join("\n")
    }

    /// Waits until node `i`, started but not serving yet, logs a line containing `text`.
    pub fn wait_logged(&self, i: usize, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !self.startup_log(i).contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "{} never logged {text:?}:\n{}",
                self.nodes[i].id,
                self.startup_log(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until node `i`, serving or not, logs a line containing `text` (among its
    /// last `TAIL_LINES`).
    pub fn wait_logged_lately(&self, i: usize, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let tail = self.nodes[i].tail.lock().unwrap().iter().cloned().collect::<Vec<_>>();
            if tail.iter().any(|l| l.contains(text)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never logged {text:?}:\n{}",
                self.nodes[i].id,
                tail.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many lines node `i` has logged since it last started.
    pub fn log_lines(&self, i: usize) -> usize {
        self.nodes[i].log_lines.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Node `i`'s process id.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.as_ref().unwrap().id()
    }

    /// The most memory node `i` has held resident so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self, i: usize) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid(i))).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    /// An async Redis connection to node `i`.
    pub async fn connect(&self, i: usize) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://{}/", self.redis_addr(i))).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    /// A connection to node `i` that reads from `r` replicas and writes to `w`.
    pub async fn connect_with(
        &self,
        i: usize,
        r: usize,
        w: usize,
    ) -> redis::aio::MultiplexedConnection {
        let mut n = self.connect(i).await;
        let _: () =
            redis::cmd("HALKA.CONSISTENCY").arg(r).arg(w).query_async(&mut n).await.unwrap();
        n
    }

    pub fn redis_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].redis_port)
    }

    pub fn peer_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].peer_port)
    }

    pub fn http_url(&self, i: usize, path: &str) -> String {
        format!("127.0.0.1:{}{path}", self.nodes[i].http_port)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A blocking RESP connection for tests that want to see raw replies.
pub struct Raw(pub TcpStream);

impl Raw {
    pub fn connect(addr: &str) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw(s)
    }

    pub fn send(&mut self, bytes: &[u8]) -> String {
        self.0.write_all(bytes).unwrap();
        let mut buf = vec![0_u8; 64 * 1024];
        let n = self.0.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    pub fn cmd(&mut self, args: &[&str]) -> String {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out += &format!("${}\r\n{a}\r\n", a.len());
        }
        self.send(out.as_bytes())
    }

    /// Sends a command and reads until `len` bytes of reply have arrived: for replies
    /// too long to count on one read.
    pub fn cmd_reply_of(&mut self, args: &[&str], len: usize) -> String {
        let mut reply = self.cmd(args).into_bytes();
        let mut buf = vec![0_u8; 64 * 1024];
        while reply.len() < len {
            let n = self.0.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// True once the server has closed the connection (a close that met bytes we had
    /// sent shows as a reset).
    pub fn closed(&mut self) -> bool {
        let mut buf = [0_u8; 64];
        match self.0.read(&mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}

/// A minimal HTTP/1.1 request; returns (status, body).
pub fn http(method: &str, url: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let answer = http_answer(method, url, body, headers);
    (answer.status, String::from_utf8_lossy(&answer.body).into_owned())
}

/// An HTTP answer with its headers (names in lower case) and its body's bytes.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

pub fn http_answer(method: &str, url: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
    let (host, path) = url.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap();
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    // One write: a server that answers before reading the body (404, 413) and closes
    // would otherwise reset the connection under a second write, losing its answer.
    let mut request = req.into_bytes();
    request.extend_from_slice(body);
    s.write_all(&request).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let body = resp.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer { status: status.unwrap_or(0), headers, body }
}

/// The live values node `i` itself holds for `key` (read at R=1 through node `i`, which
/// asks itself first, so no read repair touches them); `None` if it does not own the key.
pub fn own_values(c: &TestCluster, i: usize, key: &str) -> Option<Vec<String>> {
    let (_, body) = http("GET", &c.http_url(i, &format!("/v1/kv/{key}?r=1")), b"", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = format!("node-{}", i + 1);
    let own = v["replicas"].as_array().unwrap().iter().find(|r| r["node"] == id.as_str())?;
    let versions = own["versions"].as_array().unwrap();
    Some(versions.iter().filter_map(|v| v["value"].as_str().map(str::to_string)).collect())
}

/// The value of one Prometheus series (name and labels, exactly as exported) on node `i`.
pub fn metric(c: &TestCluster, i: usize, series: &str) -> f64 {
    let (_, text) = http("GET", &c.http_url(i, "/metrics"), b"", &[]);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}
