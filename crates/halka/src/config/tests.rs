use super::*;
use halka_store::SyncPolicy;

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, text).unwrap();
    NodeConfig::from_file(&path).and_then(|c| c.finish(&path.display().to_string()))
}

#[test]
fn the_readme_example_configuration_is_valid_and_names_every_section() {
    let readme = include_str!("../../../../README.md");
    let start = readme.find("```toml\n").expect("a toml block in the README") + 8;
    let text = &readme[start..start + readme[start..].find("```").unwrap()];
    let config = parse(text).unwrap();
    let defaults = NodeConfig::default();
    assert_eq!(config.handoff, defaults.handoff);
    assert_eq!(config.anti_entropy, defaults.anti_entropy, "the README shows the defaults");
    assert_eq!(config.http, defaults.http, "the README shows the defaults");
    assert_eq!(config.tombstones, defaults.tombstones, "the README shows the defaults");
    assert_eq!(config.transfers, defaults.transfers, "the README shows the defaults");
    assert_eq!(config.gossip, defaults.gossip, "the README shows the defaults");
    for section in [
        "[storage]",
        "[handoff]",
        "[anti_entropy]",
        "[tombstones]",
        "[transfers]",
        "[gossip]",
        "[http]",
        "[limits]",
        "[[members]]",
    ] {
        assert!(text.contains(section), "the README example lacks {section}");
    }
}

#[test]
fn full_file_parses() {
    let c = parse(
        r#"
        node_id = "a"
        cluster_secret = "0123456789abcdef-full-file"
        replication = 3
        r = 2
        w = 2
        read_fanout = "all"
        read_hedge_ms = 10
        worker_threads = 2
        [storage]
        sync = "always"
        background_threads = 1
        [limits]
        max_value_bytes = 4096
        [[members]]
        id = "a"
        peer_addr = "127.0.0.1:7001"
        zone = "z1"
        [[members]]
        id = "b"
        peer_addr = "127.0.0.1:7002"
        [[members]]
        id = "c"
        peer_addr = "127.0.0.1:7003"
        weight = 2
        "#,
    )
    .unwrap();
    assert_eq!(c.members.len(), 3);
    assert_eq!(c.storage.sync_policy(), SyncPolicy::Always);
    assert_eq!(c.limits.max_value_bytes, 4096);
    assert_eq!(c.limits.max_key_bytes, 1024);
    assert_eq!(c.read_fanout(), ReadFanout::All);
    assert_eq!(c.worker_threads, 2);
    assert_eq!(c.storage.background_threads, 1);
    let defaults = parse("").unwrap();
    assert_eq!(defaults.read_fanout(), ReadFanout::Quorum { hedge: Duration::from_millis(5) });
}

#[test]
fn a_transfer_rate_out_of_range_is_refused_saying_what_is_allowed() {
    for bad in ["max_mb_per_second = 0", "busy_mb_per_second = 5000", "concurrency = 0"] {
        let e = parse(&format!("[transfers]\n{bad}\n")).unwrap_err().to_string();
        assert!(e.contains("transfers") && e.contains("from 1 to 4000"), "{bad}: {e}");
    }
    let c = parse("[transfers]\nmax_mb_per_second = 100\n").unwrap();
    let applied = c.transfers.apply(halka_cluster::TransferConfig::default());
    assert_eq!(applied.max_bytes_per_second, 100 << 20);
}

#[test]
fn errors_name_file_field_and_allowed_values() {
    let e = parse("node_id = \"a\"\nreplicaton = 3\n").unwrap_err().to_string();
    assert!(e.contains("node.toml") && e.contains("replicaton"), "{e}");
    let e = parse("node_id = \"a\"\nreplication = 1\nw = 2\n").unwrap_err().to_string();
    assert!(e.contains("field `w`") && e.contains("1..=1"), "{e}");
    let e = parse("node_id = \"a\"\nredis_addr = \"nowhere\"\n").unwrap_err().to_string();
    assert!(e.contains("redis_addr") && e.contains("socket address"), "{e}");
    let e = parse("node_id = \"x\"\n[[members]]\nid = \"a\"\npeer_addr = \"127.0.0.1:1\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not in the member list"), "{e}");
    let e = parse("[storage]\nsync = \"sometimes\"\n").unwrap_err().to_string();
    assert!(e.contains("sometimes") && e.contains("always"), "{e}");
    let e = parse("[storage]\nbackground_threads = 5000\n").unwrap_err().to_string();
    assert!(e.contains("storage.background_threads"), "{e}");
    let e = parse("worker_threads = 5000\n").unwrap_err().to_string();
    assert!(e.contains("worker_threads") && e.contains("1024"), "{e}");
    let e = parse("read_fanout = \"some\"\n").unwrap_err().to_string();
    assert!(e.contains("some") && e.contains("quorum"), "{e}");
    let e = parse("read_hedge_ms = 5000\n").unwrap_err().to_string();
    assert!(e.contains("read_hedge_ms") && e.contains("1..=1000"), "{e}");
    let e = parse("[storage]\ncache_mb = 99999999999\n").unwrap_err().to_string();
    assert!(e.contains("storage.cache_mb") && e.contains("at most"), "{e}");
    let e = parse("[tombstones]\ngrace_secs = 0\n").unwrap_err().to_string();
    assert!(e.contains("tombstones") && e.contains("enabled = false"), "{e}");
    assert_eq!(parse("").unwrap().replication, 1, "a lone node needs no file");
}

#[test]
fn the_peer_port_beyond_loopback_needs_a_secret() {
    let e = parse("peer_addr = \"0.0.0.0:7380\"\n").unwrap_err().to_string();
    assert!(e.contains("peer_addr") && e.contains("cluster_secret"), "{e}");
    let ok = parse("peer_addr = \"0.0.0.0:7380\"\ncluster_secret = \"0123456789abcdef0123\"\n");
    assert!(ok.unwrap().secret().is_some());
    let e = parse("cluster_secret = \"short\"\n").unwrap_err().to_string();
    assert!(e.contains("cluster_secret") && e.contains("at least 16"), "{e}");
    let e = parse("cluster_secret = \"aaaaaaaaaaaaaaaaaaaaaaaa\"\n").unwrap_err().to_string();
    assert!(e.contains("cluster_secret") && e.contains("1 distinct"), "{e}");
}

#[test]
fn protected_mode_off_needs_a_configured_secret() {
    let e = parse("protected_mode = false\n").unwrap_err().to_string();
    assert!(e.contains("protected_mode") && e.contains("cluster_secret"), "{e}");
}

#[test]
fn a_cluster_of_several_members_needs_a_secret() {
    let members = "node_id = \"a\"\n[[members]]\nid = \"a\"\npeer_addr = \"127.0.0.1:1\"\n\
                   [[members]]\nid = \"b\"\npeer_addr = \"127.0.0.1:2\"\n";
    let e = parse(members).unwrap_err().to_string();
    assert!(e.contains("cluster_secret") && e.contains("2 members"), "{e}");
    let secret = "cluster_secret = \"0123456789abcdef0123\"\n";
    assert!(parse(&format!("{secret}{members}")).is_ok());
}

#[test]
fn the_secret_is_never_printed() {
    let c = parse("cluster_secret = \"0123456789abcdef-very-secret\"\n").unwrap();
    assert!(!format!("{c:?}").contains("very-secret"));
}
