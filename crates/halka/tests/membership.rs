//! Changing a running cluster's shape through `halka cluster`: real server processes on
//! loopback, a node started with `--join` joined, a member leaving, racing commits, and a
//! restart after a change.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{BIN, Raw, TestCluster};
use serde_json::Value;

/// Runs `halka cluster ARGS --addr ADDR --json`; the JSON answer, or the error text.
fn cluster(addr: &str, args: &[&str]) -> Result<Value, String> {
    let out = std::process::Command::new(BIN)
        .arg("cluster")
        .args(args)
        .args(["--addr", addr, "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_str(&stdout).unwrap_or(Value::String(stdout)))
}

fn write_keys(c: &TestCluster, i: usize, keys: std::ops::Range<usize>) {
    let mut conn = Raw::connect(&c.redis_addr(i));
    for k in keys {
        assert_eq!(conn.cmd(&["SET", &format!("key-{k}"), &format!("value-{k}")]), "+OK\r\n");
    }
}

/// Every key of `keys` reads back at R=2 through node `i`.
fn assert_readable(c: &TestCluster, i: usize, keys: std::ops::Range<usize>) {
    let mut conn = Raw::connect(&c.redis_addr(i));
    for k in keys {
        let want = format!("value-{k}");
        let got = conn.cmd(&["HALKA.GET", &format!("key-{k}"), "2"]);
        assert_eq!(got, format!("${}\r\n{want}\r\n", want.len()), "key-{k} through node {i}");
    }
}

/// Joins the waiting node `new` through member `via`, committing and waiting until every
/// partition has moved.
fn join(c: &TestCluster, via: usize, new: usize) -> Value {
    let plan = cluster(&c.redis_addr(via), &["join", &c.peer_addr(new)]).unwrap();
    let id = c.nodes[new].id.as_str();
    let entry = plan["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap().clone();
    assert_eq!(entry["state"], "joining", "{plan}");
    cluster(&c.redis_addr(via), &["commit", "--wait"]).unwrap()
}

/// Waits until node `i` reports every member done with layout `version`.
fn until_every_node_retired(c: &TestCluster, i: usize, version: u64) {
    loop {
        let s = status(c, i);
        let phases: Vec<&str> =
            s["nodes"].as_array().unwrap().iter().map(|n| n["phase"].as_str().unwrap()).collect();
        if s["layout_version"] == version && phases.iter().all(|p| *p == "retired") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn status(c: &TestCluster, i: usize) -> Value {
    cluster(&c.redis_addr(i), &["status"]).unwrap()
}

#[test]
fn a_node_waiting_to_be_joined_refuses_clients_saying_so() {
    let mut c = TestCluster::start(3, "periodic");
    let new = c.add_joining("");
    let reply = Raw::connect(&c.redis_addr(new)).cmd(&["GET", "k"]);
    assert!(reply.starts_with("-CLUSTERDOWN") && reply.contains("halka cluster join"), "{reply}");
    assert_eq!(status(&c, new)["layout_version"], 0);
}

#[test]
fn a_joined_node_serves_its_share_and_no_key_is_lost() {
    let mut c = TestCluster::start(3, "periodic");
    write_keys(&c, 0, 0..300);
    let new = c.add_joining("");
    let committed = join(&c, 0, new);
    assert_eq!(committed["layout_version"], 2);
    assert_eq!(committed["ours"], true);
    for i in 0..4 {
        assert_readable(&c, i, 0..300);
    }
    let s = status(&c, new);
    assert_eq!(
        (s["layout_version"].as_u64(), s["active_versions"].as_array().map(Vec::len)),
        (Some(2), Some(1))
    );
    let states: Vec<&str> =
        s["nodes"].as_array().unwrap().iter().map(|n| n["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["active"; 4], "{s}");
    let held =
        (0..300).filter(|k| common::own_values(&c, new, &format!("key-{k}")).is_some()).count();
    assert!((180..=270).contains(&held), "the new node owns about 3/4 of the keys, not {held}");
}

/// Old owners serving streams at 1 MB/s (their `[transfers]` limit) make the change
/// last long enough to be watched.
#[test]
fn status_shows_each_members_transfers_and_their_total_while_partitions_move() {
    let slow = "[transfers]\nmax_mb_per_second = 1\nbusy_mb_per_second = 1\n";
    let mut c = TestCluster::start_with(3, "periodic", slow);
    let value = "v".repeat(10_000);
    let mut conn = Raw::connect(&c.redis_addr(0));
    for k in 0..1_000 {
        assert_eq!(conn.cmd(&["SET", &format!("key-{k}"), &value]), "+OK\r\n");
    }
    let new = c.add_joining("");
    cluster(&c.redis_addr(0), &["join", &c.peer_addr(new)]).unwrap();
    let wait = std::process::Command::new(BIN)
        .args(["cluster", "commit", "--wait", "--addr", &c.redis_addr(0)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until some of the new node's partitions are in and some are not.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (total, mine) = loop {
        let s = status(&c, 0);
        let total = s["transfers"].clone();
        let id = c.nodes[new].id.as_str();
        // (Not listed before the commit installs the new layout.)
        let nodes = s["nodes"].as_array().unwrap();
        let mine = nodes.iter().find(|n| n["id"] == id).cloned().unwrap_or_default();
        // Some bytes in, too: the first partitions done may be empty ones.
        if mine["transfers"]["done"].as_u64() > Some(0)
            && mine["transfers"]["pending"].as_u64() > Some(0)
            && mine["transfers"]["bytes_done"].as_u64() > Some(0)
        {
            break (total, mine["transfers"].clone());
        }
        assert!(std::time::Instant::now() < deadline, "never saw the change half done: {s}");
    };
    assert!(total["done"].as_u64() >= mine["done"].as_u64(), "{total} {mine}");
    // The gauge follows the partitions as they come in, not only once all are.
    let gauge = common::metric(&c, new, "halka_transfer_partitions_pending");
    let gained = (mine["pending"].as_u64().unwrap() + mine["done"].as_u64().unwrap()) as f64;
    assert!(gauge > 0.0 && gauge < gained, "gauge {gauge} of {gained} gained: {mine}");
    assert!(mine["active"].as_u64() <= Some(4), "at most [transfers] concurrency: {mine}");
    let (done, estimate) = (mine["bytes_done"].as_u64().unwrap(), mine["bytes_total"].as_u64());
    assert!(estimate.is_some_and(|t| t >= done && done > 0), "{mine}");
    let out = wait.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("partitions") && shown.contains("MB"), "{shown}");
    assert!(shown.contains("every partition has moved"), "{shown}");
}

#[test]
fn a_member_that_leaves_hands_every_key_to_the_others() {
    let mut c = TestCluster::start(3, "periodic");
    let new = c.add_joining("");
    join(&c, 0, new);
    write_keys(&c, 1, 0..200);
    cluster(&c.redis_addr(new), &["leave", "node-1"]).unwrap();
    let committed = cluster(&c.redis_addr(new), &["commit", "--wait"]).unwrap();
    assert_eq!(committed["layout_version"], 3);
    c.kill(0);
    for i in 1..4 {
        assert_readable(&c, i, 0..200);
    }
    let s = status(&c, 2);
    let left = s["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "node-1").unwrap();
    assert_eq!(left["state"], "left", "{s}");
}

#[test]
fn a_cluster_cannot_shrink_below_its_replication_factor() {
    let c = TestCluster::start(3, "periodic");
    let err = cluster(&c.redis_addr(0), &["leave", "node-2"]).unwrap_err();
    assert!(err.contains("fewer than the replication factor 3"), "{err}");
}

#[test]
fn two_racing_commits_end_in_one_layout_on_every_node() {
    let mut c = TestCluster::start(3, "periodic");
    let (d, e) = (c.add_joining(""), c.add_joining(""));
    cluster(&c.redis_addr(0), &["join", &c.peer_addr(d)]).unwrap();
    cluster(&c.redis_addr(1), &["join", &c.peer_addr(e)]).unwrap();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| cluster(&c.redis_addr(0), &["commit"]));
        let b = s.spawn(|| cluster(&c.redis_addr(1), &["commit"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    // Each commit either chose version 2 (its own layout or the other's) or was told a
    // change is under way; at most one can be "ours".
    let won: Vec<&Value> = [&a, &b]
        .into_iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| r["ours"] == true)
        .collect();
    assert_eq!(won.len(), 1, "{a:?} {b:?}");
    let chosen = won[0]["layout"].clone();
    for i in 0..3 {
        // Every member installs the chosen layout (offered again until it has).
        loop {
            let s = status(&c, i);
            if s["layout_version"] == 2 {
                let ids: Vec<&str> = s["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["id"].as_str().unwrap())
                    .collect();
                let want: Vec<&str> = chosen["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["id"].as_str().unwrap())
                    .collect();
                assert_eq!(ids, want, "node {i} installed another layout");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn a_member_restarted_after_a_change_comes_back_to_the_new_layout() {
    let mut c = TestCluster::start(3, "periodic");
    let new = c.add_joining("");
    join(&c, 0, new);
    c.kill(1);
    c.start_process(1);
    let s = status(&c, 1);
    assert_eq!(s["layout_version"], 2, "{s}");
    write_keys(&c, 1, 0..50);
    assert_readable(&c, new, 0..50);
}

#[test]
fn a_member_lost_with_its_data_is_replaced_and_every_key_has_n_copies_again() {
    let mut c = TestCluster::start(3, "periodic");
    write_keys(&c, 0, 0..200);
    c.kill(2);
    std::fs::remove_dir_all(c.dir.path().join("node-3")).unwrap();
    let new = c.add_joining("");
    cluster(&c.redis_addr(0), &["replace", "node-3", &c.peer_addr(new)]).unwrap();
    let committed = cluster(&c.redis_addr(0), &["commit", "--wait"]).unwrap();
    assert_eq!(committed["layout_version"], 2);
    for k in 0..200 {
        let key = format!("key-{k}");
        for i in [0, 1, new] {
            let held = common::own_values(&c, i, &key);
            assert_eq!(held, Some(vec![format!("value-{k}")]), "{key} on node {i}");
        }
    }
}

#[test]
fn a_node_is_joined_over_http_with_json_in_and_out() {
    let mut c = TestCluster::start(3, "periodic");
    let new = c.add_joining("");
    let body = format!(r#"{{"peer_addr": "{}", "weight": 2}}"#, c.peer_addr(new));
    let (code, plan) = common::http(
        "POST",
        &c.http_url(1, "/v1/cluster/join"),
        body.as_bytes(),
        &[("content-type", "application/json")],
    );
    assert_eq!(code, 200, "{plan}");
    let plan: Value = serde_json::from_str(&plan).unwrap();
    let joining = plan["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "node-4").unwrap();
    assert_eq!(
        joining["ideal"].as_f64().unwrap().round(),
        (4096.0 * 3.0 * 2.0 / 5.0_f64).round(),
        "{plan}"
    );
    let (code, committed) = common::http("POST", &c.http_url(1, "/v1/cluster/commit"), b"", &[]);
    assert_eq!(code, 200, "{committed}");
    let (code, status) = common::http("GET", &c.http_url(1, "/v1/cluster/status"), b"", &[]);
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["layout_version"], 2, "{status}");
    let node = status["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "node-4").unwrap();
    for field in ["peer_addr", "redis_addr", "http_addr", "zone", "weight", "state", "alive"] {
        assert!(node.get(field).is_some(), "{field} missing from {node}");
    }
    assert_eq!(node["weight"], 2);
}

#[test]
fn a_malformed_cluster_request_is_refused_saying_what_is_expected() {
    let c = TestCluster::start(3, "periodic");
    let (code, body) = common::http(
        "POST",
        &c.http_url(0, "/v1/cluster/leave"),
        br#"{"nod": "x"}"#,
        &[("content-type", "application/json")],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains(r#"expected a JSON body like {\"node\""#), "{body}");
    let (code, body) = common::http("POST", &c.http_url(0, "/v1/cluster/commit"), b"", &[]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("nothing is staged"), "{body}");
}

#[test]
fn a_member_down_at_the_commit_gets_the_layout_when_back_and_the_change_waits_for_it() {
    let mut c = TestCluster::start(3, "periodic");
    write_keys(&c, 0, 0..100);
    let new = c.add_joining("");
    c.kill(2);
    cluster(&c.redis_addr(0), &["join", &c.peer_addr(new)]).unwrap();
    let committed = cluster(&c.redis_addr(0), &["commit"]).unwrap();
    assert_eq!(committed["layout_version"], 2, "two of three owners choose the version");
    cluster(&c.redis_addr(1), &["leave", "node-1"]).unwrap();
    let (code, refused) = common::http("POST", &c.http_url(1, "/v1/cluster/commit"), b"", &[]);
    assert_eq!(code, 409, "{refused}");
    assert!(refused.contains("still moving to layout version 2"), "{refused}");
    assert_readable(&c, new, 0..100);
    c.launch(2);
    until_every_node_retired(&c, 1, 2);
    let done = cluster(&c.redis_addr(1), &["commit", "--wait"]).unwrap();
    assert_eq!(done["layout_version"], 3, "{done}");
    assert_eq!(status(&c, 2)["layout_version"], 3);
    for i in 1..4 {
        assert_readable(&c, i, 0..100);
    }
}

/// One command on a fresh connection to `addr`; `None` when the node does not answer
/// (it may be down: the test kills nodes while clients run).
fn try_cmd(addr: &str, args: &[&str]) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out += &format!("${}\r\n{a}\r\n", a.len());
    }
    s.write_all(out.as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        let Some(end) = text.find("\r\n") else { continue };
        let complete = match text.strip_prefix('$') {
            Some(rest) => match rest[..end - 1].parse::<i64>() {
                Ok(len) if len >= 0 => text.len() >= end + 2 + len as usize + 2,
                _ => true,
            },
            None => true,
        };
        if complete {
            return Some(text);
        }
    }
}

/// Clients writing and reading while the cluster changes shape: a writer through every
/// given node at W=2 (recording what was acknowledged), and a reader of the keys written
/// before, at R=2 through every given node, counting any answered as missing.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<usize>>>,
    missing: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

impl Load {
    fn start(addrs: Vec<String>, before: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let missing = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let (stop, acked, addrs) = (Arc::clone(&stop), Arc::clone(&acked), addrs.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let (key, value) = (format!("during-{n}"), format!("value-{n}"));
                    let reply = try_cmd(&addrs[n % addrs.len()], &["SET", &key, &value]);
                    if reply.as_deref() == Some("+OK\r\n") {
                        acked.lock().unwrap().push(n);
                    }
                }
            })
        };
        let reader = {
            let (stop, missing) = (Arc::clone(&stop), Arc::clone(&missing));
            std::thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let (addr, key) = (&addrs[n % addrs.len()], format!("key-{}", n % before));
                    if try_cmd(addr, &["HALKA.GET", &key, "2"]).as_deref() == Some("$-1\r\n") {
                        missing.lock().unwrap().push(format!("{key} through {addr}"));
                    }
                }
            })
        };
        Self { stop, acked, missing, threads: vec![writer, reader] }
    }

    /// Stops the clients; returns the writes acknowledged.
    fn stop(self) -> Vec<usize> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let missing = self.missing.lock().unwrap();
        assert!(missing.is_empty(), "read as missing while the cluster changed: {missing:?}");
        self.acked.lock().unwrap().clone()
    }
}

#[test]
fn a_cluster_grows_to_five_and_shrinks_to_three_under_writes_through_a_crash() {
    let mut c = TestCluster::start(3, "periodic");
    write_keys(&c, 0, 0..300);
    let (d, e) = (c.add_joining(""), c.add_joining(""));
    let load = Load::start(vec![c.redis_addr(0), c.redis_addr(1), c.redis_addr(2)], 300);
    cluster(&c.redis_addr(0), &["join", &c.peer_addr(d)]).unwrap();
    let plan = cluster(&c.redis_addr(0), &["join", &c.peer_addr(e)]).unwrap();
    for node in plan["nodes"].as_array().unwrap() {
        let (after, ideal) = (node["after"].as_f64().unwrap(), node["ideal"].as_f64().unwrap());
        assert!((after - ideal).abs() <= ideal * 0.1, "share off its ideal by over 10%: {node}");
    }
    assert_eq!(cluster(&c.redis_addr(0), &["commit"]).unwrap()["layout_version"], 2);
    // A new node dies in the middle of its transfers and comes back.
    c.kill(d);
    c.start_process(d);
    until_every_node_retired(&c, 0, 2);
    cluster(&c.redis_addr(1), &["leave", "node-1"]).unwrap();
    cluster(&c.redis_addr(1), &["leave", &c.nodes[e].id]).unwrap();
    assert_eq!(cluster(&c.redis_addr(1), &["commit", "--wait"]).unwrap()["layout_version"], 3);
    let acked = load.stop();
    assert!(!acked.is_empty(), "the writer got no write through");
    for gone in [0, e] {
        c.kill(gone);
        std::fs::remove_dir_all(c.dir.path().join(&c.nodes[gone].id)).unwrap();
    }
    for i in [1, 2, d] {
        assert_readable(&c, i, 0..300);
        let mut conn = Raw::connect(&c.redis_addr(i));
        for &n in &acked {
            let want = format!("value-{n}");
            let got = conn.cmd(&["HALKA.GET", &format!("during-{n}"), "2"]);
            assert_eq!(got, format!("${}\r\n{want}\r\n", want.len()), "during-{n} via {i}");
        }
    }
}

/// Routing by its static list (version 1) would write to nodes that no longer own the
/// keys: the simulator lost an acknowledged write that way when the members holding the
/// newer layout did not answer.
#[test]
fn a_member_whose_data_directory_was_lost_waits_for_a_member_that_knows_the_layout() {
    let mut c = TestCluster::start(3, "periodic");
    let new = c.add_joining("");
    join(&c, 0, new);
    for i in [0, 1, 2, new] {
        c.kill(i);
    }
    std::fs::remove_dir_all(c.dir.path().join("node-2")).unwrap();
    c.spawn_process(1);
    c.wait_logged(1, "waiting for a static member that kept its state");
    assert!(!c.startup_log(1).contains("halka node serving"), "{}", c.startup_log(1));
    // node-1 kept its state: it serves at once, and tells node-2 of version 2.
    c.start_process(0);
    c.wait_serving(1);
    assert_eq!(status(&c, 1)["layout_version"], 2);
}

#[test]
fn a_member_whose_data_directory_was_lost_takes_the_clusters_layout_before_serving() {
    let mut c = TestCluster::start(3, "periodic");
    let new = c.add_joining("");
    join(&c, 0, new);
    c.kill(1);
    std::fs::remove_dir_all(c.dir.path().join("node-2")).unwrap();
    c.start_process(1);
    let s = status(&c, 1);
    assert_eq!(s["layout_version"], 2, "it restarted from its static list, version 1: {s}");
    let log = c.startup_log(1);
    assert!(log.contains("took the cluster's layout from a member"), "{log}");
}

/// Waits until `done` holds, asking again every 50 ms.
fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_node_started_with_a_seed_is_joined_by_its_id_and_serves_its_share() {
    let mut c = TestCluster::start(3, "periodic");
    write_keys(&c, 0, 0..300);
    let new = c.add_outside("", &["--seed".into(), c.peer_addr(1)]);
    let id = c.nodes[new].id.clone();
    // Node 0 is not its seed: it hears of the new node by gossip from node 1.
    until(|| status(&c, 0)["announced"].as_array().unwrap().iter().any(|a| a["id"] == id));
    let plan = cluster(&c.redis_addr(0), &["join", &id]).unwrap();
    let entry = plan["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap().clone();
    assert_eq!(entry["state"], "joining", "{plan}");
    assert_eq!(cluster(&c.redis_addr(0), &["commit", "--wait"]).unwrap()["layout_version"], 2);

    assert_readable(&c, new, 0..300);
    write_keys(&c, new, 300..400);
    for i in 0..4 {
        assert_readable(&c, i, 0..400);
    }
    let held =
        (0..400).filter(|k| common::own_values(&c, new, &format!("key-{k}")).is_some()).count();
    assert!((240..=360).contains(&held), "the new node owns about 3/4 of the keys, not {held}");
    assert!(status(&c, 0)["announced"].as_array().unwrap().is_empty(), "it is a member now");
}

#[test]
fn joining_a_node_nobody_has_heard_of_names_the_nodes_gossip_knows() {
    let c = TestCluster::start(3, "periodic");
    let err = cluster(&c.redis_addr(0), &["join", "node-9"]).unwrap_err();
    assert!(err.contains("no node \"node-9\" has announced itself"), "{err}");
    assert!(err.contains("(known: ") && err.contains("--seed"), "{err}");
}

#[test]
fn a_killed_member_is_held_down_by_the_failure_detector_with_its_phi() {
    let mut c = TestCluster::start(3, "periodic");
    let phi_of = |s: &Value, id: &str| {
        s["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap()["phi"].as_f64()
    };
    until(|| phi_of(&status(&c, 0), "node-3").is_some());
    c.kill(2);
    until(|| {
        let s = status(&c, 0);
        let n3 = s["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "node-3").unwrap();
        n3["alive"] == false && n3["phi"].as_f64().is_some_and(|phi| phi > 8.0)
    });
    let text = std::process::Command::new(BIN)
        .args(["status", "--addr", &c.redis_addr(0)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("node-3 down (failure detector: down, phi"), "{text}");
    assert!(phi_of(&status(&c, 0), "node-2").is_some_and(|phi| phi < 8.0));
    assert_eq!(common::metric(&c, 0, "halka_members_down"), 1.0);
}

#[test]
fn a_member_replaced_while_down_learns_it_when_back_and_sends_clients_to_the_members() {
    let mut c = TestCluster::start(3, "periodic");
    write_keys(&c, 0, 0..100);
    c.kill(2);
    let new = c.add_joining("");
    cluster(&c.redis_addr(0), &["replace", "node-3", &c.peer_addr(new)]).unwrap();
    assert_eq!(cluster(&c.redis_addr(0), &["commit", "--wait"]).unwrap()["layout_version"], 2);
    write_keys(&c, 0, 100..200);
    // Back with its data, and with layout version 1, in which it still owns a share.
    c.start_process(2);
    until(|| status(&c, 2)["layout_version"] == 2);
    let s = status(&c, 2);
    let node3 = s["nodes"].as_array().unwrap().iter().find(|n| n["id"] == "node-3").unwrap();
    assert_eq!(node3["state"], "left", "{s}");
    // The members no longer take its requests: it says so, naming them.
    let reply = Raw::connect(&c.redis_addr(2)).cmd(&["GET", "key-1"]);
    assert!(
        reply.starts_with("-CLUSTERDOWN this node was replaced in layout version 2"),
        "{reply}"
    );
    assert!(reply.contains("node-1, node-2, node-4"), "{reply}");
    assert_readable(&c, new, 0..200);
}
