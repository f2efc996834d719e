//! `halka dev`, the README's first command: a whole local cluster from one process.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{BIN, Raw, free_ports, http};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Nine consecutive free loopback ports: Redis, HTTP and peer ports for three nodes.
fn port_block() -> u16 {
    free_ports(9)
}

struct Dev {
    child: Child,
    base: u16,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Dev {
    fn spawn(base: u16, data: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["dev", "--nodes", "3"])
            .args(["--port", &base.to_string()])
            .args(["--http-port", &(base + 3).to_string()])
            .args(["--peer-port", &(base + 6).to_string()])
            .args(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self { child, base, stdout, stderr }
    }

    /// Waits for the banner's last line; returns the banner.
    fn wait_banner(&self) -> String {
        let mut banner = String::new();
        loop {
            let line = self.stdout.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
                panic!("no banner; stdout so far:\n{banner}\nstderr:\n{}", self.errors())
            });
            banner += &line;
            banner.push('\n');
            if line.contains("Ctrl-C stops the cluster") {
                return banner;
            }
        }
    }

    /// Ctrl-C, as a terminal sends it, and how `halka dev` then exits.
    fn ctrl_c(&mut self) -> ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT).unwrap();
        self.wait_exit(Duration::from_secs(30))
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "halka dev still running after {within:?}; stderr:\n{}",
                self.errors()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the cluster printed on stderr so far.
    fn errors(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    fn redis(&self, i: u16) -> String {
        format!("127.0.0.1:{}", self.base + i)
    }

    fn all_ports_closed(&self) -> bool {
        (0..9).all(|i| TcpStream::connect(("127.0.0.1", self.base + i)).is_err())
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn pid_of_node(config: &Path) -> Pid {
    let needle = config.to_str().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().map_while(Result::ok) {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.split(|b| *b == 0).any(|arg| arg == needle.as_bytes()) {
            return Pid::from_raw(entry.file_name().to_str().unwrap().parse().unwrap());
        }
    }
    panic!("no process runs with {needle}");
}

#[test]
fn dev_cluster_serves_every_interface_and_stops_on_ctrl_c() {
    let mut dev = Dev::spawn(port_block(), &["--ephemeral"]);
    let banner = dev.wait_banner();
    assert!(banner.contains(&format!("redis-cli -p {}", dev.base)), "{banner}");

    assert_eq!(Raw::connect(&dev.redis(0)).cmd(&["SET", "greeting", "merhaba"]), "+OK\r\n");
    assert_eq!(Raw::connect(&dev.redis(2)).cmd(&["GET", "greeting"]), "$7\r\nmerhaba\r\n");
    let (status, body) =
        http("GET", &format!("127.0.0.1:{}/v1/kv/greeting", dev.base + 4), b"", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("merhaba"), "{body}");

    let status = dev.ctrl_c();
    assert!(status.success(), "{status:?}: {}", dev.errors());
    assert!(dev.all_ports_closed(), "a node outlived halka dev");
}

/// A script that starts `halka dev` and writes with W=3 as soon as the banner appears
/// must not meet a node that does not see another yet.
#[test]
fn dev_prints_its_banner_once_every_node_sees_every_other() {
    let mut dev = Dev::spawn(port_block(), &["--ephemeral"]);
    let banner = dev.wait_banner();
    assert!(!banner.contains("still connecting"), "{banner}");
    for i in 0..3 {
        let key = format!("first-{i}");
        let reply = Raw::connect(&dev.redis(i)).cmd(&["HALKA.SET", &key, "v", "3"]);
        assert_eq!(reply, "+OK\r\n", "W=3 through node-{}", i + 1);
    }
    assert!(dev.ctrl_c().success(), "{}", dev.errors());
}

#[test]
fn dev_refuses_a_port_in_use_and_starts_nothing() {
    let base = port_block();
    let _taken = TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
    let mut dev = Dev::spawn(base, &["--ephemeral"]);
    let status = dev.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    let errors = dev.errors();
    assert!(
        errors.contains(&format!("127.0.0.1:{} (node-2 Redis port) cannot be used", base + 1)),
        "{errors}"
    );
    assert!(TcpStream::connect(("127.0.0.1", base)).is_err(), "node-1 was started");
}

#[test]
fn dev_reports_a_dead_node_and_the_others_keep_serving() {
    let data = tempfile::tempdir().unwrap();
    let mut dev = Dev::spawn(port_block(), &["--data-dir", data.path().to_str().unwrap()]);
    dev.wait_banner();
    kill(pid_of_node(&data.path().join("node-2.toml")), Signal::SIGKILL).unwrap();
    let report = loop {
        let line = dev.stderr.recv_timeout(Duration::from_secs(30)).expect("no report");
        if line.starts_with("halka dev:") {
            break line;
        }
    };
    assert_eq!(
        report,
        "halka dev: node-2 exited (signal: 9 (SIGKILL)); the other nodes keep serving"
    );
    // W=2 of N=3 still succeeds on the two live nodes; W=3 cannot.
    let mut conn = Raw::connect(&dev.redis(0));
    assert_eq!(conn.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["HALKA.CONSISTENCY", "2", "3"]), "+OK\r\n");
    let reply = conn.cmd(&["SET", "k", "v"]);
    assert!(reply.starts_with("-NOQUORUM write quorum not reached: w=3"), "{reply}");
    assert!(reply.contains("node-2 (unreachable"), "{reply}");
    assert_eq!(Raw::connect(&dev.redis(2)).cmd(&["GET", "k"]), "$1\r\nv\r\n");

    let status = dev.ctrl_c();
    assert!(status.success(), "{status:?}: {}", dev.errors());
    assert!(dev.all_ports_closed(), "a node outlived halka dev");
}

#[test]
fn dev_warns_when_a_data_directory_comes_back_under_another_placement() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let stop = |mut dev: Dev| {
        assert!(dev.ctrl_c().success());
        dev.errors()
    };
    let first = Dev::spawn(port_block(), &["--data-dir", dir, "--replication", "2"]);
    first.wait_banner();
    let logs = stop(first);
    assert!(!logs.contains("placement changed"), "a new directory has no history: {logs}");

    let same = Dev::spawn(port_block(), &["--data-dir", dir, "--replication", "2"]);
    same.wait_banner();
    let logs = stop(same);
    assert!(!logs.contains("placement changed"), "nothing changed: {logs}");

    let changed = Dev::spawn(port_block(), &["--data-dir", dir, "--replication", "3"]);
    changed.wait_banner();
    let logs = stop(changed);
    let warnings = logs.lines().filter(|l| l.contains("placement changed")).count();
    assert_eq!(warnings, 3, "one warning per node: {logs}");
    assert!(logs.contains("previous=replication = 2") && logs.contains("now=replication = 3"));
}

/// Runs a command line the banner printed (`redis-cli …`, `curl …`); its output.
fn run_printed(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let out = Command::new(words[0]).args(&words[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn dev_with_tls_prints_redis_cli_and_curl_lines_that_work() {
    let base = free_ports(12);
    let tls_port = (base + 9).to_string();
    let mut dev = Dev::spawn(base, &["--ephemeral", "--tls", "--tls-port", &tls_port]);
    let banner = dev.wait_banner();
    let printed: Vec<&str> = banner
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("redis-cli") || l.starts_with("curl"))
        .collect();
    assert_eq!(printed.len(), 4, "{banner}");
    assert!(printed[0].contains("--tls --cacert"), "{banner}");
    assert_eq!(run_printed(printed[0]), "OK");
    assert_eq!(run_printed(printed[1]), "merhaba");
    assert!(run_printed(printed[2]).contains("\"acked\""), "{banner}");
    assert!(run_printed(printed[3]).contains("Ozer"), "{banner}");
    assert!(dev.ctrl_c().success(), "{}", dev.errors());
}
