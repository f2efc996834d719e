//! halka's own commands.

use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use halka_cluster::check_quorum;

/// `HALKA.CONSISTENCY` shows this connection's r and w; `HALKA.CONSISTENCY <r> <w>` sets them.
pub fn consistency(state: &NodeState, s: &mut Session, args: &mut Args) -> Result<Frame, Frame> {
    if args.remaining() == 0 {
        return Ok(Frame::Array(vec![
            Frame::bulk("r"),
            Frame::Integer(s.r as i64),
            Frame::bulk("w"),
            Frame::Integer(s.w as i64),
        ]));
    }
    let r = args.next_usize()?;
    let w = args.next_usize()?;
    args.finish()?;
    let n = state.config.replication;
    check_quorum("r", r, n).map_err(|e| cluster_error(&e))?;
    check_quorum("w", w, n).map_err(|e| cluster_error(&e))?;
    s.r = r;
    s.w = w;
    Ok(Frame::ok())
}

/// `HALKA.GETALL <key> [r]`: the value each answering replica holds (last-writer-wins per
/// replica, nil when it has none), as a flat array `node value node value ...`, then the
/// resolved value under the key `resolved`.
pub async fn getall(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let r = if args.remaining() > 0 { args.next_usize()? } else { s.r };
    args.finish()?;
    let got = state.coordinator.get(key, r).await.map_err(|e| cluster_error(&e))?;
    let mut pairs: Vec<(String, Frame)> = got
        .replies
        .iter()
        .map(|(node, rec)| {
            let v =
                rec.as_ref().and_then(|r| r.value_at(got.now_us)).map_or(Frame::Null, Frame::Bulk);
            (node.to_string(), v)
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Frame, Frame)> =
        pairs.into_iter().map(|(n, v)| (Frame::bulk(n), v)).collect();
    out.push((Frame::bulk("resolved"), got.value().map_or(Frame::Null, Frame::Bulk)));
    Ok(Frame::Map(out))
}

/// `HALKA.GET <key> <r> [PR <n>]`: GET with this request's read quorum, so connection pools need
/// no per-connection state (`HALKA.CONSISTENCY` sets it for every later command).
pub async fn get(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let r = args.next_usize()?;
    if args.remaining() > 0 {
        let option = args.next_string()?.to_ascii_uppercase();
        if option != "PR" {
            return Err(Frame::Error(format!(
                "ERR unknown HALKA.GET option '{option}'; allowed: PR <n>"
            )));
        }
        // Only owners ever answer a read in halka, so any PR up to R holds.
        let pr = args.next_usize()?;
        if pr > r {
            return Err(Frame::Error(format!(
                "ERR pr={pr} exceeds r={r}: owners' answers are among the r; allowed range is 0..={r}"
            )));
        }
    }
    args.finish()?;
    let got = state.coordinator.get(key, r).await.map_err(|e| cluster_error(&e))?;
    Ok(got.value().map_or(Frame::Null, Frame::Bulk))
}

/// `HALKA.SET <key> <value> <w> [PW <n>] [RECEIPT]`: SET with this request's write
/// quorum; with RECEIPT, the reply names who acknowledged, who stood in for whom, and who
/// had fsynced the write when it acknowledged (sync policy `always`).
pub async fn set(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    let key = args.next_bytes()?;
    let value = args.next_bytes()?;
    let w = args.next_usize()?;
    let mut pw = 0;
    let mut want_receipt = false;
    while args.remaining() > 0 {
        match args.next_string()?.to_ascii_uppercase().as_str() {
            "PW" => pw = args.next_usize()?,
            "RECEIPT" => want_receipt = true,
            other => {
                return Err(Frame::Error(format!(
                    "ERR unknown HALKA.SET option '{other}'; allowed: PW <n>, RECEIPT"
                )));
            }
        }
    }
    let quorum = halka_cluster::WriteQuorum { w, pw };
    let put = state
        .coordinator
        .write_with(key, Some(value), None, quorum)
        .await
        .map_err(|e| cluster_error(&e))?;
    if !want_receipt {
        return Ok(Frame::ok());
    }
    // `acked`, `stand_ins` (each `stand-in=owner`), then `synced` (the acks made after
    // an fsync), as a flat map.
    let names = |nodes: &[halka_store::NodeId]| {
        Frame::Array(nodes.iter().map(|n| Frame::bulk(n.to_string())).collect())
    };
    Ok(Frame::Array(vec![
        Frame::bulk("acked"),
        names(&put.acked),
        Frame::bulk("stand_ins"),
        Frame::Array(
            put.stand_ins.iter().map(|(by, owner)| Frame::bulk(format!("{by}={owner}"))).collect(),
        ),
        Frame::bulk("synced"),
        names(&put.synced),
    ]))
}

/// `HALKA.STATUS`: this node's status as JSON (what `/v1/cluster` serves and `halka
/// status` prints).
pub async fn status(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    args.finish()?;
    let status = crate::status::NodeStatus::gather(state).await;
    let json = serde_json::to_string(&status)
        .map_err(|e| Frame::Error(format!("ERR cannot encode the status: {e}")))?;
    Ok(Frame::Bulk(json.into()))
}

/// `HALKA.CLUSTER STATUS | JOIN <node> [ZONE <z>] [WEIGHT <w>] | LEAVE <node> |
/// REPLACE <old> <node> | PLAN | COMMIT | CLEAR`: the layout and its changes (what
/// `halka cluster` sends), each answered as JSON. A node to join is named by its peer
/// address or by the id it announced by gossip.
pub async fn cluster(state: &NodeState, args: &mut Args) -> Result<Frame, Frame> {
    use crate::cluster_admin as admin;
    let action = args.next_string()?.to_ascii_uppercase();
    let failed = |e: admin::AdminError| Frame::Error(format!("ERR {}", e.1));
    let json = match action.as_str() {
        "STATUS" => {
            args.finish()?;
            to_json(&admin::status(state).await)
        }
        "JOIN" => {
            let addr = args.next_string()?;
            let (mut zone, mut weight) = (None, None);
            while args.remaining() > 0 {
                match args.next_string()?.to_ascii_uppercase().as_str() {
                    "ZONE" => zone = Some(args.next_string()?),
                    "WEIGHT" => weight = Some(u32::try_from(args.next_usize()?).unwrap_or(0)),
                    other => {
                        return Err(Frame::Error(format!(
                            "ERR unknown HALKA.CLUSTER JOIN option '{other}'; allowed: ZONE <z>, \
                             WEIGHT <w>"
                        )));
                    }
                }
            }
            to_json(&admin::join(state, &addr, zone, weight).await.map_err(failed)?)
        }
        "LEAVE" => {
            let node = args.next_string()?;
            args.finish()?;
            to_json(&admin::leave(state, &node).map_err(failed)?)
        }
        "REPLACE" => {
            let (old, addr) = (args.next_string()?, args.next_string()?);
            args.finish()?;
            to_json(&admin::replace(state, &old, &addr).await.map_err(failed)?)
        }
        "PLAN" => {
            args.finish()?;
            to_json(&admin::plan(state).map_err(failed)?)
        }
        "COMMIT" => {
            args.finish()?;
            to_json(&admin::commit(state).await.map_err(failed)?)
        }
        "CLEAR" => {
            args.finish()?;
            admin::clear(state);
            return Ok(Frame::ok());
        }
        other => {
            return Err(Frame::Error(format!(
                "ERR unknown HALKA.CLUSTER action '{other}'; allowed: STATUS, JOIN, LEAVE, \
                 REPLACE, PLAN, COMMIT, CLEAR"
            )));
        }
    };
    Ok(Frame::Bulk(json?.into()))
}

fn to_json(value: &impl serde::Serialize) -> Result<String, Frame> {
    serde_json::to_string(value).map_err(|e| Frame::Error(format!("ERR cannot encode: {e}")))
}
