//! Users and permissions over the Redis protocol, as a Redis client meets them: `AUTH`,
//! `HELLO … AUTH`, `ACL SETUSER` on one node reaching the others, `NOPERM` naming what
//! was refused, `ACL LOG`, and protected mode beyond loopback.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

mod common;

use common::{BIN, Raw, TestCluster};
use std::time::{Duration, Instant};

const REQUIREPASS: &str = "requirepass = \"s3cret-default\"\n";

/// Logs in on node `i` as `user`, retrying until the user reaches it (a change spreads
/// in gossip rounds), for at most a minute; the last reply.
fn log_in_eventually(c: &TestCluster, i: usize, user: &str, password: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut conn = Raw::connect(&c.redis_addr(i));
        let reply = conn.cmd(&["AUTH", user, password]);
        if reply == "+OK\r\n" || Instant::now() > deadline {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_node_with_requirepass_answers_noauth_until_the_password_is_given() {
    let c = TestCluster::start_with(1, "periodic", REQUIREPASS);
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["GET", "k"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(
        conn.cmd(&["AUTH", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(conn.cmd(&["AUTH", "s3cret-default"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["ACL", "WHOAMI"]), "$7\r\ndefault\r\n");
}

#[test]
fn hello_with_auth_logs_in_and_switches_protocol_at_once() {
    let c = TestCluster::start_with(1, "periodic", REQUIREPASS);
    let mut conn = Raw::connect(&c.redis_addr(0));
    let refused = conn.cmd(&["HELLO", "3"]);
    assert!(refused.starts_with("-NOAUTH HELLO must be called"), "{refused}");
    let wrong = conn.cmd(&["HELLO", "3", "AUTH", "default", "nope"]);
    assert!(wrong.starts_with("-WRONGPASS"), "{wrong}");
    let hello = conn.cmd(&["HELLO", "3", "AUTH", "default", "s3cret-default"]);
    assert!(hello.starts_with('%'), "a RESP3 map: {hello}");
    assert_eq!(conn.cmd(&["GET", "missing"]), "_\r\n", "RESP3 null");
}

#[test]
fn a_redis_client_with_username_and_password_in_its_url_works() {
    let c = TestCluster::start_with(1, "periodic", REQUIREPASS);
    let mut admin = Raw::connect(&c.redis_addr(0));
    admin.cmd(&["AUTH", "s3cret-default"]);
    let made = admin.cmd(&["ACL", "SETUSER", "app", "on", ">app-pass", "~app:*", "+@all"]);
    assert_eq!(made, "+OK\r\n");
    let port = c.nodes[0].redis_port;
    let client = redis::Client::open(format!("redis://app:app-pass@127.0.0.1:{port}/")).unwrap();
    let mut conn = client.get_connection().unwrap();
    let () = redis::cmd("SET").arg("app:1").arg("v").query(&mut conn).unwrap();
    let got: String = redis::cmd("GET").arg("app:1").query(&mut conn).unwrap();
    assert_eq!(got, "v");
    let bad = redis::Client::open(format!("redis://app:wrong@127.0.0.1:{port}/")).unwrap();
    let e = bad.get_connection().err().expect("a wrong password is refused");
    assert_eq!(e.kind(), redis::ErrorKind::AuthenticationFailed, "{e}");
}

#[test]
fn noperm_names_the_command_or_key_refused_and_acl_log_lists_it() {
    let c = TestCluster::start(1, "periodic");
    let mut admin = Raw::connect(&c.redis_addr(0));
    let rules = ["ACL", "SETUSER", "reader", "on", ">pw", "%R~cache:*", "~own:*", "+@read"];
    assert_eq!(admin.cmd(&rules), "+OK\r\n");
    admin.cmd(&["ACL", "SETUSER", "reader", "+set"]);
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["AUTH", "reader", "pw"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["GET", "cache:1"]), "$-1\r\n");
    assert_eq!(conn.cmd(&["SET", "own:1", "v"]), "+OK\r\n");
    assert_eq!(
        conn.cmd(&["SET", "cache:1", "v"]),
        "-NOPERM User reader has no permissions to access the 'cache:1' key\r\n"
    );
    assert_eq!(
        conn.cmd(&["DEL", "own:1"]),
        "-NOPERM User reader has no permissions to run the 'del' command\r\n"
    );
    assert_eq!(
        conn.cmd(&["GET", "other"]),
        "-NOPERM User reader has no permissions to access the 'other' key\r\n"
    );
    let log = admin.cmd(&["ACL", "LOG"]);
    for seen in ["cache:1", "del", "other", "reader", "reason"] {
        assert!(log.contains(seen), "{seen} not in ACL LOG: {log}");
    }
}

#[test]
fn a_command_refused_inside_multi_aborts_the_transaction() {
    let c = TestCluster::start(1, "periodic");
    let mut admin = Raw::connect(&c.redis_addr(0));
    admin.cmd(&["ACL", "SETUSER", "w", "on", ">pw", "~*", "+@all", "-del"]);
    let mut conn = Raw::connect(&c.redis_addr(0));
    conn.cmd(&["AUTH", "w", "pw"]);
    assert_eq!(conn.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(conn.cmd(&["SET", "a", "1"]), "+QUEUED\r\n");
    assert!(conn.cmd(&["DEL", "a"]).starts_with("-NOPERM"));
    assert!(conn.cmd(&["EXEC"]).starts_with("-EXECABORT"));
    assert_eq!(conn.cmd(&["EXISTS", "a"]), ":0\r\n", "nothing of the batch ran");
}

#[test]
fn a_user_made_on_one_node_logs_in_on_every_node() {
    let c = TestCluster::start(3, "periodic");
    let mut first = Raw::connect(&c.redis_addr(0));
    assert_eq!(first.cmd(&["ACL", "SETUSER", "alice", "on", ">wonder", "~*", "+@all"]), "+OK\r\n");
    assert_eq!(log_in_eventually(&c, 2, "alice", "wonder"), "+OK\r\n");
    assert_eq!(log_in_eventually(&c, 1, "alice", "wonder"), "+OK\r\n");
}

#[test]
fn a_node_down_during_a_user_change_takes_it_when_back_and_after_restarts() {
    let mut c = TestCluster::start(3, "periodic");
    c.kill(2);
    let mut first = Raw::connect(&c.redis_addr(0));
    assert_eq!(first.cmd(&["ACL", "SETUSER", "bob", "on", ">builder", "+@all"]), "+OK\r\n");
    c.launch(2);
    assert_eq!(log_in_eventually(&c, 2, "bob", "builder"), "+OK\r\n");
    // Kept on node-3's disk: right after a restart, before any peer is asked.
    c.kill(2);
    c.kill(1);
    c.kill(0);
    c.start_process(2);
    let mut conn = Raw::connect(&c.redis_addr(2));
    assert_eq!(conn.cmd(&["AUTH", "bob", "builder"]), "+OK\r\n");
}

#[test]
fn a_deleted_user_can_no_longer_log_in_and_default_cannot_be_deleted() {
    let c = TestCluster::start(1, "periodic");
    let mut admin = Raw::connect(&c.redis_addr(0));
    admin.cmd(&["ACL", "SETUSER", "tmp", "on", ">pw", "+@all"]);
    assert_eq!(admin.cmd(&["ACL", "DELUSER", "tmp", "nobody"]), ":1\r\n");
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert!(conn.cmd(&["AUTH", "tmp", "pw"]).starts_with("-WRONGPASS"));
    let e = admin.cmd(&["ACL", "DELUSER", "default"]);
    assert_eq!(e, "-ERR The 'default' user cannot be removed\r\n");
}

#[test]
fn wrong_passwords_are_counted_and_logged() {
    let c = TestCluster::start_with(1, "periodic", REQUIREPASS);
    let mut conn = Raw::connect(&c.redis_addr(0));
    for _ in 0..3 {
        assert!(conn.cmd(&["AUTH", "intruder", "guess"]).starts_with("-WRONGPASS"));
    }
    // Metrics, too, are read as a user once the default user has a password.
    let auth = basic("default", "s3cret-default");
    let (_, text) =
        common::http("GET", &c.http_url(0, "/metrics"), b"", &[("Authorization", &auth)]);
    assert!(text.lines().any(|l| l == "halka_auth_failures_total 3"), "{text}");
    conn.cmd(&["AUTH", "s3cret-default"]);
    let log = conn.cmd(&["ACL", "LOG", "1"]);
    assert!(log.contains("intruder") && log.contains("auth"), "{log}");
    assert!(log.contains(":3\r\n"), "three failures in one entry: {log}");
}

#[test]
fn acl_list_and_getuser_show_rules_and_never_a_password() {
    let c = TestCluster::start(1, "periodic");
    let mut admin = Raw::connect(&c.redis_addr(0));
    admin.cmd(&["ACL", "SETUSER", "carol", "on", ">plain-text-pw", "%R~r:*", "+@read"]);
    let list = admin.cmd(&["ACL", "LIST"]);
    assert!(list.contains("user carol on #"), "{list}");
    assert!(list.contains("%R~r:* -@all +@read"), "{list}");
    assert!(list.contains("user default on nopass ~* +@all"), "{list}");
    let got = admin.cmd(&["ACL", "GETUSER", "carol"]);
    assert!(!list.contains("plain-text-pw") && !got.contains("plain-text-pw"), "{got}");
    let bad = admin.cmd(&["ACL", "SETUSER", "carol", "+nosuchcommand"]);
    assert_eq!(bad, "-ERR Error in ACL SETUSER modifier '+nosuchcommand': Unknown command\r\n");
}

/// Starts `halka server` with `config`; its exit status and what it printed, or `None`
/// once it serves (it is then stopped).
fn start_alone(config: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    let data = dir.path().join("data");
    std::fs::write(&path, format!("data_dir = \"{}\"\n{config}", data.display())).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["server", "--config"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut printed = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
        if line.contains("halka node serving") {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        printed += &line;
        printed.push('\n');
    }
    child.wait().unwrap();
    Some(printed)
}

fn beyond_loopback(extra: &str) -> String {
    let (redis, http, peer) = (common::free_port(), common::free_port(), common::free_port());
    format!(
        "redis_addr = \"0.0.0.0:{redis}\"\nhttp_addr = \"127.0.0.1:{http}\"\npeer_addr = \
         \"127.0.0.1:{peer}\"\ncluster_secret = \"{}\"\n{extra}",
        common::SECRET
    )
}

#[test]
fn protected_mode_refuses_an_address_beyond_loopback_while_no_password_is_needed() {
    let printed = start_alone(&beyond_loopback("")).expect("the node must not start");
    assert!(printed.contains("redis_addr") && printed.contains("requirepass"), "{printed}");
}

#[test]
fn protected_mode_serves_beyond_loopback_once_the_default_user_has_a_password() {
    assert_eq!(start_alone(&beyond_loopback(REQUIREPASS)), None);
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

#[test]
fn http_needs_the_users_credentials_once_the_default_user_has_a_password() {
    let c = TestCluster::start_with(1, "periodic", REQUIREPASS);
    let url = c.http_url(0, "/v1/kv/k");
    let (status, body) = common::http("PUT", &url, b"v", &[]);
    assert_eq!(status, 401, "{body}");
    let wrong = basic("default", "nope");
    assert_eq!(common::http("PUT", &url, b"v", &[("Authorization", &wrong)]).0, 401);
    let right = basic("default", "s3cret-default");
    assert_eq!(common::http("PUT", &url, b"v", &[("Authorization", &right)]).0, 200);
    assert_eq!(common::http("GET", &c.http_url(0, "/health"), b"", &[]).0, 200);
}

#[test]
fn http_honours_the_same_key_and_command_rules_as_resp() {
    let c = TestCluster::start(1, "periodic");
    let mut admin = Raw::connect(&c.redis_addr(0));
    admin.cmd(&["ACL", "SETUSER", "web", "on", ">pw", "%R~pub:*", "~web:*", "+@all", "-@admin"]);
    let auth = basic("web", "pw");
    let h = [("Authorization", auth.as_str())];
    assert_eq!(common::http("PUT", &c.http_url(0, "/v1/kv/web:1"), b"v", &h).0, 200);
    assert_eq!(common::http("GET", &c.http_url(0, "/v1/kv/pub:1"), b"", &h).0, 404);
    let (status, body) = common::http("PUT", &c.http_url(0, "/v1/kv/pub:1"), b"v", &h);
    assert_eq!(status, 403);
    assert!(body.contains("NOPERM") && body.contains("pub:1"), "{body}");
    let (status, body) = common::http("POST", &c.http_url(0, "/v1/cluster/commit"), b"{}", &h);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("halka.cluster"), "{body}");
}

#[test]
fn halka_status_and_cluster_status_log_in_with_a_password() {
    let c = TestCluster::start_with(1, "periodic", REQUIREPASS);
    let addr = c.redis_addr(0);
    let status = |extra: &[&str], env: Option<&str>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["status", "--addr", &addr]).args(extra).env_remove("HALKA_PASSWORD");
        if let Some(pw) = env {
            cmd.env("HALKA_PASSWORD", pw);
        }
        cmd.output().unwrap()
    };
    let refused = status(&[], None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("NOAUTH"));
    assert!(status(&["--pass", "s3cret-default"], None).status.success());
    let wrong = status(&["--pass", "nope"], None);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("WRONGPASS"));
    let cluster = std::process::Command::new(BIN)
        .args(["cluster", "status", "--addr", &addr])
        .env("HALKA_PASSWORD", "s3cret-default")
        .output()
        .unwrap();
    assert!(cluster.status.success(), "{}", String::from_utf8_lossy(&cluster.stderr));
}

#[test]
fn a_user_change_acknowledged_just_before_a_crash_survives_it() {
    let mut c = TestCluster::start(1, "periodic");
    let mut admin = Raw::connect(&c.redis_addr(0));
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "kept", "on", ">pw", "+@all"]), "+OK\r\n");
    assert_eq!(admin.cmd(&["ACL", "SETUSER", "gone", "on", ">pw", "+@all"]), "+OK\r\n");
    assert_eq!(admin.cmd(&["ACL", "DELUSER", "gone"]), ":1\r\n");
    c.kill(0);
    c.start_process(0);
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["AUTH", "kept", "pw"]), "+OK\r\n");
    assert!(conn.cmd(&["AUTH", "gone", "pw"]).starts_with("-WRONGPASS"), "a deleted user is back");
}

#[test]
fn failed_logins_over_http_are_slowed_like_failed_auths() {
    let c = TestCluster::start_with(1, "periodic", REQUIREPASS);
    let url = c.http_url(0, "/v1/kv/k");
    let wrong = basic("default", "guess");
    for _ in 0..=acl_free_failures() {
        let (status, _) = common::http("GET", &url, b"", &[("Authorization", &wrong)]);
        assert_eq!(status, 401);
    }
    let right = basic("default", "s3cret-default");
    let (_, text) =
        common::http("GET", &c.http_url(0, "/metrics"), b"", &[("Authorization", &right)]);
    let throttled = text
        .lines()
        .find_map(|l| l.strip_prefix("halka_auth_throttled_total{protocol=\"http\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(throttled.is_some_and(|n| n >= 1.0), "{text}");
}

/// Failures a source may have before it is slowed (`acl::throttle::FREE`).
fn acl_free_failures() -> u32 {
    halka::acl::throttle::FREE
}

#[test]
fn protected_mode_counts_the_tls_redis_port_too() {
    let certs = tempfile::tempdir().unwrap();
    common::tls::certificates(certs.path(), 1);
    let tls = format!(
        "\n[tls]\nredis_addr = \"0.0.0.0:{}\"\ncert_file = \"{1}/node-1.crt\"\nkey_file = \"{1}/node-1.key\"\n",
        common::free_port(),
        certs.path().display()
    );
    let (redis, http, peer) = (common::free_port(), common::free_port(), common::free_port());
    let config = format!(
        "redis_addr = \"127.0.0.1:{redis}\"\nhttp_addr = \"127.0.0.1:{http}\"\npeer_addr = \
         \"127.0.0.1:{peer}\"\ncluster_secret = \"{}\"\n{tls}",
        common::SECRET
    );
    let printed = start_alone(&config).expect("the node must not start");
    assert!(printed.contains("tls.redis_addr") && printed.contains("requirepass"), "{printed}");
}

#[test]
fn an_aclfile_seeds_the_users_at_first_start_and_a_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.acl");
    let users = "# the cluster's first users\nuser default off\nuser ops on >ops-pw ~* +@all\n\nuser app on >app-pw ~app:* +@read +@write\n";
    std::fs::write(&file, users).unwrap();
    let c = TestCluster::start_with(1, "periodic", &format!("aclfile = \"{}\"", file.display()));
    let mut conn = Raw::connect(&c.redis_addr(0));
    assert_eq!(conn.cmd(&["GET", "k"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(conn.cmd(&["AUTH", "app", "app-pw"]), "+OK\r\n");
    assert!(conn.cmd(&["GET", "other"]).starts_with("-NOPERM"));
    assert_eq!(conn.cmd(&["AUTH", "ops", "ops-pw"]), "+OK\r\n");

    std::fs::write(&file, "user broken on +nosuchcommand\n").unwrap();
    let (redis, http, peer) = (common::free_port(), common::free_port(), common::free_port());
    let config = format!(
        "redis_addr = \"127.0.0.1:{redis}\"\nhttp_addr = \"127.0.0.1:{http}\"\npeer_addr = \
         \"127.0.0.1:{peer}\"\naclfile = \"{}\"\n",
        file.display()
    );
    let printed = start_alone(&config).expect("a bad aclfile must stop the node");
    assert!(printed.contains("users.acl:1") && printed.contains("+nosuchcommand"), "{printed}");
}
