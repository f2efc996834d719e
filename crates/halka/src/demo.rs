//! `halka demo`: the seed project's example, run on the embedded cluster, then siblings and
//! a causal put that resolves them, then the per-node spread of a few thousand keys.

use bytes::Bytes;
use halka_cluster::{Cluster, GetResult, NodeStats};
use halka_store::VersionVector;
use std::fmt::Write as _;

const NODES: [&str; 6] = ["foo", "bar", "bazz", "zapp", "zucc", "bars"];

/// The seed's map: replica → value, ordered by replica name.
#[must_use]
pub fn replies_map(result: &GetResult) -> String {
    let mut entries: Vec<(String, String)> = result
        .replies
        .iter()
        .map(|(node, record)| {
            let value = record
                .as_ref()
                .and_then(|r| r.value_at(result.now_us))
                .map_or_else(|| "<none>".to_string(), |v| String::from_utf8_lossy(&v).into_owned());
            (node.to_string(), value)
        })
        .collect();
    entries.sort();
    let body: Vec<String> = entries.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    format!("{{{}}}", body.join(", "))
}

fn values(result: &GetResult) -> String {
    let mut v: Vec<String> =
        result.values().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
    v.sort();
    format!("[{}]", v.join(", "))
}

/// A table of per-node keys and operations.
#[must_use]
pub fn node_table(stats: &[NodeStats]) -> String {
    let mut s = format!("{:<10} {:>9} {:>10} {:>10}\n", "node", "keys", "reads", "writes");
    for n in stats {
        let _ = writeln!(s, "{:<10} {:>9} {:>10} {:>10}", n.id, n.keys, n.reads, n.writes);
    }
    s
}

/// Runs the demo and returns its transcript.
///
/// # Errors
/// Any cluster error (none are expected on a healthy embedded cluster).
pub async fn run() -> anyhow::Result<String> {
    let mut out = String::new();
    let cluster = Cluster::builder().replication(5).build()?;
    for node in NODES {
        cluster.add_node(node).await?;
    }
    writeln!(out, "nodes: {}   replication N=5", NODES.join(" "))?;

    let put = cluster.put("Mahmut", "Ozer", 3).await?;
    let acked: Vec<String> = put.acked.iter().map(ToString::to_string).collect();
    writeln!(out, "put(\"Mahmut\", \"Ozer\", w=3)  acknowledged by {}", acked.join(", "))?;
    let got = cluster.get("Mahmut", 3).await?;
    writeln!(out, "get(\"Mahmut\", r=3)          {}", replies_map(&got))?;

    writeln!(out, "\nsiblings: two clients write \"cart\" without having seen each other")?;
    cluster.put_with_context("cart", "milk", VersionVector::new(), 3).await?;
    cluster.put_with_context("cart", "eggs", VersionVector::new(), 3).await?;
    let got = cluster.get("cart", 3).await?;
    writeln!(out, "get(\"cart\", r=3)            siblings {}", values(&got))?;
    let merged = Bytes::from("eggs,milk");
    cluster.put_with_context("cart", merged, got.context().clone(), 3).await?;
    let got = cluster.get("cart", 3).await?;
    writeln!(out, "put with that context, get  {}", values(&got))?;

    for i in 0..6000 {
        cluster.put(format!("key-{i:012}"), "v", 3).await?;
    }
    writeln!(out, "\nafter 6000 more keys (N=5 copies each), per node:")?;
    out.push_str(&node_table(&cluster.node_stats()));
    Ok(out)
}
