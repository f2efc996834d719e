//! The client subcommands (`get`, `put`, `del`, `status`) and `server`'s flag handling.

use crate::cli::{ClientArgs, DelArgs, GetArgs, PutArgs, ServerArgs, StatusArgs};
use crate::client::RespClient;
use crate::config::{MemberConfig, NodeConfig};
use crate::resp::frame::Frame;
use anyhow::{Context, bail};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The server's configuration: file (if any), then flags.
///
/// # Errors
/// An unreadable or invalid file, or invalid flags.
pub fn server_config(args: &ServerArgs) -> anyhow::Result<NodeConfig> {
    let (mut c, origin) = match &args.config {
        Some(path) => (NodeConfig::from_file(path)?, path.display().to_string()),
        None => (NodeConfig::default(), "command-line flags".to_string()),
    };
    if let Some(v) = &args.node_id {
        c.node_id.clone_from(v);
        if args.config.is_none() && args.data_dir.is_none() {
            c.data_dir = format!("halka-data/{v}").into();
        }
    }
    if let Some(v) = &args.data_dir {
        c.data_dir.clone_from(v);
    }
    if let Some(v) = &args.redis_addr {
        c.redis_addr.clone_from(v);
    }
    if let Some(v) = &args.http_addr {
        c.http_addr.clone_from(v);
    }
    if let Some(v) = &args.peer_addr {
        c.peer_addr.clone_from(v);
    }
    if !args.members.is_empty() {
        c.members = args
            .members
            .iter()
            .map(|m| {
                let (id, addr) = m
                    .split_once('=')
                    .with_context(|| format!("--members entry {m:?}: expected id=host:port"))?;
                Ok(MemberConfig {
                    id: id.into(),
                    peer_addr: addr.into(),
                    zone: String::new(),
                    weight: 1,
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    c.join |= args.join;
    if !args.seeds.is_empty() {
        c.seeds.clone_from(&args.seeds);
    }
    if let Some(path) = &args.cluster_secret_file {
        let secret = std::fs::read_to_string(path)
            .with_context(|| format!("reading the cluster secret from {}", path.display()))?;
        c.cluster_secret = Some(crate::config::SecretString(secret.trim().to_string()));
    }
    if let Some(v) = &args.zone {
        c.zone.clone_from(v);
    }
    if let Some(v) = args.weight {
        c.weight = v;
    }
    if let Some(v) = args.replication {
        c.replication = v;
    }
    if let Some(v) = args.r {
        c.r = v;
    }
    if let Some(v) = args.w {
        c.w = v;
    }
    if let Some(v) = args.sync {
        c.storage.sync = v.into();
    }
    if let Some(v) = args.engine {
        c.storage.engine = v.into();
    }
    if let Some(v) = args.worker_threads {
        c.worker_threads = v;
    }
    Ok(c.finish(&origin)?)
}

async fn connect(c: &ClientArgs) -> anyhow::Result<RespClient> {
    let mut client = RespClient::connect(&c.addr, Duration::from_millis(c.timeout_ms)).await?;
    if let Some(password) = &c.password {
        client.log_in(&c.user, password).await?;
    }
    Ok(client)
}

pub(crate) fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Frame::Simple(s) => Some(s.clone()),
        Frame::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

pub(crate) fn check(frame: Frame) -> anyhow::Result<Frame> {
    match frame {
        Frame::Error(e) => bail!("{e}"),
        other => Ok(other),
    }
}

/// Sets the connection's write quorum, keeping its read quorum.
async fn set_w(client: &mut RespClient, w: usize) -> anyhow::Result<()> {
    let current = check(client.call(&[b"HALKA.CONSISTENCY"]).await?)?;
    let Frame::Array(items) = current else { bail!("unexpected reply to HALKA.CONSISTENCY") };
    let r = items.get(1).and_then(text).unwrap_or_else(|| "1".into());
    let w = w.to_string();
    check(client.call(&[b"HALKA.CONSISTENCY", r.as_bytes(), w.as_bytes()]).await?)?;
    Ok(())
}

/// Whether JSON can show these values as text; when any is not UTF-8, all are shown as
/// base64 (`encoding` says which), so binary values round-trip exactly.
fn all_utf8<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> bool {
    values.all(|v| std::str::from_utf8(v).is_ok())
}

/// `halka get`: the value's bytes, or with `--json` the value and each replica's answer.
///
/// # Errors
/// Connection failures, an error reply, or a missing key.
pub async fn get(args: &GetArgs) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let mut client = connect(&args.client).await?;
    let r = args.r.map(|r| r.to_string());
    let mut cmd: Vec<&[u8]> = vec![b"HALKA.GETALL", args.key.as_bytes()];
    if let Some(r) = &r {
        cmd.push(r.as_bytes());
    }
    let Frame::Array(items) = check(client.call(&cmd).await?)? else {
        bail!("unexpected reply to HALKA.GETALL")
    };
    let mut replicas = BTreeMap::new();
    let mut resolved = None;
    for pair in items.chunks(2) {
        let name = text(&pair[0]).unwrap_or_default();
        let value = match pair.get(1) {
            Some(Frame::Bulk(b)) => Some(b.clone()),
            _ => None,
        };
        if name == "resolved" {
            resolved = value;
        } else {
            replicas.insert(name, value);
        }
    }
    if args.client.json {
        let all = resolved.iter().chain(replicas.values().flatten()).map(|b| &b[..]);
        let utf8 = all_utf8(all);
        let encoding = if utf8 { "utf8" } else { "base64" };
        let show = |v: &bytes::Bytes| {
            if utf8 {
                String::from_utf8_lossy(v).into_owned()
            } else {
                base64::engine::general_purpose::STANDARD.encode(v)
            }
        };
        let replicas: BTreeMap<_, _> =
            replicas.iter().map(|(k, v)| (k, v.as_ref().map(show))).collect();
        let value = resolved.as_ref().map(show);
        let out =
            json!({ "key": args.key, "value": value, "encoding": encoding, "replicas": replicas });
        return Ok(out.to_string().into_bytes());
    }
    match resolved {
        Some(v) => Ok(v.to_vec()),
        None => bail!("key {:?} not found", args.key),
    }
}

/// `halka put`.
///
/// # Errors
/// Connection failures or an error reply.
pub async fn put(args: &PutArgs) -> anyhow::Result<String> {
    let mut client = connect(&args.client).await?;
    if let Some(w) = args.w {
        set_w(&mut client, w).await?;
    }
    let value = match &args.value {
        Some(v) => v.clone().into_bytes(),
        None => {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                .context("reading the value from standard input")?;
            v
        }
    };
    check(client.call(&[b"SET", args.key.as_bytes(), &value]).await?)?;
    Ok(if args.client.json {
        json!({ "key": args.key, "ok": true }).to_string()
    } else {
        "OK".into()
    })
}

/// `halka del`.
///
/// # Errors
/// Connection failures or an error reply.
pub async fn del(args: &DelArgs) -> anyhow::Result<String> {
    let mut client = connect(&args.client).await?;
    if let Some(w) = args.w {
        set_w(&mut client, w).await?;
    }
    let n = text(&check(client.call(&[b"DEL", args.key.as_bytes()]).await?)?).unwrap_or_default();
    Ok(if args.client.json {
        json!({ "key": args.key, "deleted": n == "1" }).to_string()
    } else {
        format!("(integer) {n}")
    })
}

/// `halka status`: the node's status (`HALKA.STATUS`), as text or JSON.
///
/// # Errors
/// Connection failures, an error reply, or a reply that is not a node status.
pub async fn status(args: &StatusArgs) -> anyhow::Result<String> {
    let mut client = connect(&args.client).await?;
    let json = text(&check(client.call(&[b"HALKA.STATUS"]).await?)?).unwrap_or_default();
    if args.client.json {
        return Ok(json);
    }
    let status: crate::status::NodeStatus =
        serde_json::from_str(&json).context("reading the node's status")?;
    Ok(status.to_text())
}
