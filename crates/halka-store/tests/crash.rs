//! A process SIGKILLed in the middle of writes loses none of the writes it acknowledged,
//! with either sync policy: `Always` fsyncs before acknowledging, `Periodic` hands the
//! journal to the OS (here with an fsync interval far longer than the test, so only that
//! hand-over can save the writes). The writer is this test binary re-executed as a child
//! process.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_store::{Engine, FjallEngine, FjallOptions, NodeId, SyncPolicy, VersionVector, Write};
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "HALKA_CRASH_WRITER_DIR";
const POLICY_ENV: &str = "HALKA_CRASH_WRITER_SYNC";

fn policy(name: &str) -> SyncPolicy {
    match name {
        "always" => SyncPolicy::Always,
        _ => SyncPolicy::Periodic { interval_ms: 3_600_000 },
    }
}

fn open(path: &std::path::Path, sync: SyncPolicy) -> FjallEngine {
    FjallEngine::open(FjallOptions { sync, ..FjallOptions::new(path) }).unwrap()
}

/// The child: writes keys forever from four threads, printing each one after it is acked.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only does work when launched by the parent test.
    };
    let sync = policy(&std::env::var(POLICY_ENV).unwrap_or_default());
    let engine = std::sync::Arc::new(open(dir.as_ref(), sync));
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1024);
    for t in 0..4 {
        let (engine, tx) = (engine.clone(), tx.clone());
        std::thread::spawn(move || {
            let node = NodeId::new("n");
            for i in 0.. {
                let key = format!("k-{t}-{i}");
                let write = Write {
                    overwrite: false,
                    ..Write::value(
                        Some(Bytes::from(format!("v-{t}-{i}"))),
                        Some(VersionVector::new()),
                        i,
                    )
                };
                engine.apply_write(key.as_bytes(), &node, &write).unwrap();
                if tx.send(key).is_err() {
                    return;
                }
            }
        });
    }
    let mut out = std::io::stdout().lock();
    for key in rx {
        // A line is printed only after its write returned: that is the acknowledgement.
        writeln!(out, "ack {key}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_loses_no_acknowledged_write_with_sync_always() {
    sigkill_loses_no_acknowledged_write("always");
}

#[test]
fn sigkill_loses_no_acknowledged_write_with_sync_periodic() {
    sigkill_loses_no_acknowledged_write("periodic");
}

fn sigkill_loses_no_acknowledged_write(sync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .env(POLICY_ENV, sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 400 {
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(key) = line.strip_prefix("ack ") {
            acked.push(key.to_string());
        }
    }
    child.kill().unwrap(); // SIGKILL, while the writers are mid-flight
    child.wait().unwrap();
    // Acks already in the pipe are acknowledged writes too.
    for line in lines.map_while(Result::ok) {
        if let Some(key) = line.strip_prefix("ack ") {
            acked.push(key.to_string());
        }
    }

    let engine = open(dir.path(), policy(sync));
    let lost: Vec<&String> =
        acked.iter().filter(|k| engine.get(k.as_bytes()).unwrap().is_none()).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}
