//! Hashes in the simulation: clients set and remove fields, delete whole hashes and read
//! them through random nodes with random quorums, through every fault the nemesis makes,
//! using the same operations the Redis commands use (`halka_cluster::collection`).
//!
//! The checker judges member keys and heads by the rules it holds every key to (no lost
//! write, no resurrection, converged owners), and adds one of its own: a field written
//! into a hash's lifetime may disappear with that lifetime only if a delete of the hash
//! that had seen the lifetime's head survives.

use crate::history::{Event, Op, Outcome, Version, member_parts};
use crate::world::{N, World};
use bytes::Bytes;
use halka_cluster::WriteQuorum;
use halka_cluster::WriteRequest;
use halka_cluster::collection::Collection;
use halka_store::{Change, Expiry, Kind, Record};

/// Hash keys: few, so clients collide on them.
pub const HASH_KEYS: u64 = 2;
/// Fields per hash.
const FIELDS: u64 = 3;

pub fn hash_key(i: u64) -> String {
    format!("h{i}")
}

/// Whether the history's key `name` is a hash's head or one of its members.
pub fn is_hash_name(name: &str) -> bool {
    (0..HASH_KEYS).any(|i| name == hash_key(i)) || member_parts(name).is_some()
}

/// One client operation on a hash through `node`, recorded.
pub async fn operate(world: &World, client: usize, serial: u64, node: usize) {
    let key = hash_key(world.draw(0..HASH_KEYS));
    let field = format!("f{}", world.draw(0..FIELDS));
    let quorum = world.draw(1..N as u64 + 1) as usize;
    let mut op = Op {
        client,
        start_us: world.now_us(),
        ..crate::workload::blank(node, key.clone(), quorum)
    };
    if let Some(coordinator) = world.coordinator(node) {
        let hash = Collection::new(
            &coordinator,
            Bytes::from(key),
            quorum,
            WriteQuorum { w: quorum, pw: 0 },
        );
        op.outcome = match world.draw(0..100) {
            0..50 => {
                let value = format!("c{client}-{serial}");
                set_field(world, &hash, &mut op, &field, value).await
            }
            50..70 => {
                op.write = Some(None);
                remove_field(&hash, &field).await
            }
            70..80 => {
                op.write = Some(None);
                delete(&coordinator, &hash, quorum).await
            }
            _ => read_all(&hash).await,
        };
    }
    op.end_us = world.now_us();
    world.record(Event::Op(op));
}

/// `HSET key field value`: the op is named for the member key it wrote, so the checker
/// judges it as any write.
async fn set_field(
    world: &World,
    hash: &Collection<'_>,
    op: &mut Op,
    field: &str,
    value: String,
) -> Outcome {
    op.write = Some(Some(value.clone()));
    let lifetime = match hash.make(Kind::Hash).await {
        Ok(head) if world.settings.stray_lifetimes => head.lifetimes[0] ^ 1,
        Ok(head) => head.lifetimes[0],
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    op.key = crate::history::key_name(&halka_store::collection::member_key(
        hash.key(),
        lifetime,
        field.as_bytes(),
    ));
    let change = Change::Put { value: Bytes::from(value), expiry: Expiry::Never };
    match hash.write_member(lifetime, field.as_bytes(), WriteRequest::new(change, None)).await {
        Ok(put) if put.outcome.refused.is_none() => {
            op.acked_by = put.acked.iter().map(ToString::to_string).collect();
            op.stand_ins =
                put.stand_ins.iter().map(|(s, o)| (s.to_string(), o.to_string())).collect();
            Outcome::Acked
        }
        Ok(put) => Outcome::Failed(format!("refused: {:?}", put.outcome.refused)),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// `HDEL key field`.
async fn remove_field(hash: &Collection<'_>, field: &str) -> Outcome {
    let head = match hash.head(Kind::Hash).await {
        Ok(Some(head)) => head,
        Ok(None) => return Outcome::Acked,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    match hash.remove(&head, field.as_bytes()).await {
        Ok(_) => Outcome::Acked,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// `DEL key` of the whole hash: its head's lifetimes end.
async fn delete(
    coordinator: &halka_cluster::Coordinator,
    hash: &Collection<'_>,
    w: usize,
) -> Outcome {
    let request = WriteRequest::new(Change::Delete, None);
    match coordinator.apply(hash.key().clone(), request, WriteQuorum { w, pw: 0 }).await {
        Ok(put) if put.outcome.refused.is_none() => Outcome::Acked,
        Ok(put) => Outcome::Failed(format!("refused: {:?}", put.outcome.refused)),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// `HGETALL key`, as `field=value` strings.
async fn read_all(hash: &Collection<'_>) -> Outcome {
    let head = match hash.head(Kind::Hash).await {
        Ok(Some(head)) => head,
        Ok(None) => return Outcome::Read(Vec::new()),
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    match hash.members(&head, usize::MAX).await {
        Ok(fields) => Outcome::Read(
            fields
                .iter()
                .map(|(f, v)| {
                    format!("{}={}", String::from_utf8_lossy(f), String::from_utf8_lossy(v))
                })
                .collect(),
        ),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Why the member write named `name` is gone with its hash's lifetime though nothing that
/// ended the lifetime survives (see `ended`), or `None` when the lifetime lives on or was
/// ended.
pub fn lifetime_lost(
    name: &str,
    head: &Record,
    head_versions: &[&Version],
    head_seen: &halka_store::VersionVector,
) -> Option<String> {
    let (_, lifetime, _) = member_parts(name)?;
    let now = crate::sim_clock_us();
    let live = head.head_at(now);
    if live.as_ref().is_some_and(|h| h.lifetimes.contains(&lifetime)) {
        return None;
    }
    // A delete concurrent with the head, later by its coordinator's clock, wins over it
    // as it would over a string's value: the head stays in the record, unread.
    let kept = head
        .versions()
        .iter()
        .any(|v| v.collection.as_ref().is_some_and(|h| h.lifetimes.contains(&lifetime)));
    if kept && live.is_none() {
        return None;
    }
    let ended = ended(lifetime, head_versions, head_seen);
    (!ended).then(|| format!("{name}: lifetime {lifetime:016x} ended with nothing that saw it"))
}

/// Lifetimes of the hash `name`'s final head (`head`) that a surviving version of the
/// head had ended (it saw a head holding the lifetime and does not hold it): the fields
/// of a deleted hash back. Only `EXPIRE` would carry a lifetime into a new head version,
/// and clients here never expire a hash, so each lifetime has one head.
pub fn revived(
    name: &str,
    head: &Record,
    head_versions: &[&Version],
    head_seen: &halka_store::VersionVector,
) -> Vec<String> {
    let Some(live) = head.head_at(crate::sim_clock_us()) else { return Vec::new() };
    live.lifetimes
        .iter()
        .filter(|&&lifetime| ended(lifetime, head_versions, head_seen))
        .map(|lifetime| format!("{name}: lifetime {lifetime:016x} lives again after it ended"))
        .collect()
}

/// Whether a surviving version of the head ended `lifetime`: one that had seen a head
/// holding it, does not hold it, and is covered by what the head's owners ended up having
/// seen (`head_seen`).
fn ended(
    lifetime: u64,
    head_versions: &[&Version],
    head_seen: &halka_store::VersionVector,
) -> bool {
    let holders: Vec<&&Version> =
        head_versions.iter().filter(|v| v.lifetimes.contains(&lifetime)).collect();
    head_versions.iter().any(|u| {
        !u.lifetimes.contains(&lifetime)
            && holders.iter().any(|h| u.saw(&h.dot))
            && head_seen.covers(&crate::checker::dot(&u.dot))
    })
}
