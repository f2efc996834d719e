//! Sorted sets combined: `ZUNION`, `ZINTER`, `ZDIFF`, their `STORE` forms and
//! `ZINTERCARD`. Each input is read whole; a set counts as a sorted set whose every
//! member scores 1, as in Redis.

use super::zrange::{store, with_scores};
use super::{Args, Session, cluster_error};
use crate::resp::frame::Frame;
use crate::state::NodeState;
use bytes::Bytes;
use futures::future::try_join_all;
use halka_store::{Kind, Score};
use std::collections::BTreeMap;

/// How the inputs combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Union,
    Inter,
    Diff,
}

/// How the scores of a member found in several inputs combine (`AGGREGATE`).
#[derive(Debug, Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            // `inf + -inf` is 0 in Redis, not NaN.
            Aggregate::Sum => Some(a + b).filter(|x| !x.is_nan()).unwrap_or(0.0),
            Aggregate::Min => a.min(b),
            Aggregate::Max => a.max(b),
        }
    }
}

/// A combination as written after the command name (and the destination).
#[derive(Debug)]
struct Combination {
    keys: Vec<Bytes>,
    weights: Vec<f64>,
    aggregate: Aggregate,
    with_scores: bool,
}

impl Combination {
    /// `numkeys key [key …] [WEIGHTS w …] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`, the
    /// options as `how` and `stored` allow them.
    fn parse(args: &mut Args, how: How, stored: bool) -> Result<Self, Frame> {
        let keys = counted_keys(args)?;
        let mut this = Self {
            weights: vec![1.0; keys.len()],
            keys,
            aggregate: Aggregate::Sum,
            with_scores: false,
        };
        while args.remaining() > 0 {
            let word = args.next_string()?.to_ascii_uppercase();
            match word.as_str() {
                "WEIGHTS" if how != How::Diff => {
                    for weight in &mut this.weights {
                        let text = args.next_bytes().map_err(|_| syntax())?;
                        *weight = Score::parse(&text)
                            .map_err(|_| Frame::error("ERR weight value is not a float"))?
                            .0;
                    }
                }
                "AGGREGATE" if how != How::Diff => {
                    this.aggregate = match args.next_string()?.to_ascii_uppercase().as_str() {
                        "SUM" => Aggregate::Sum,
                        "MIN" => Aggregate::Min,
                        "MAX" => Aggregate::Max,
                        _ => return Err(syntax()),
                    };
                }
                "WITHSCORES" if !stored => this.with_scores = true,
                _ => return Err(syntax()),
            }
        }
        Ok(this)
    }
}

fn syntax() -> Frame {
    Frame::error("ERR syntax error")
}

/// `numkeys key [key …]`: the keys, refused as Redis refuses a count that is not one.
fn counted_keys(args: &mut Args) -> Result<Vec<Bytes>, Frame> {
    let n = args.next_i64()?;
    if n < 1 {
        return Err(Frame::error(format!(
            "ERR at least 1 input key is needed for '{}' command",
            args.name.to_lowercase()
        )));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > args.remaining() {
        return Err(syntax());
    }
    (0..n).map(|_| args.next_bytes()).collect()
}

/// The members of `key` with their scores: a sorted set's, a set's at 1, none when it
/// holds nothing; `WRONGTYPE` for anything else.
async fn input(state: &NodeState, s: &Session, key: &Bytes) -> Result<BTreeMap<Bytes, f64>, Frame> {
    let got = state.coordinator.get(key.clone(), s.r).await.map_err(|e| cluster_error(&e))?;
    let head = match got.head() {
        Some(head) if matches!(head.kind, Kind::Set | Kind::SortedSet) => head,
        None if got.value().is_none() => return Ok(BTreeMap::new()),
        _ => return Err(super::collection::wrong_type()),
    };
    let members = super::collection::fields(state, s, key, &head).await?;
    Ok(match head.kind {
        Kind::SortedSet => {
            halka_store::score::ranked(members).into_iter().map(|(m, x)| (m, x.0)).collect()
        }
        _ => members.into_iter().map(|(m, _)| (m, 1.0)).collect(),
    })
}

/// The combination's members in the set order, with their scores.
async fn combined(
    state: &NodeState,
    s: &Session,
    c: &Combination,
    how: How,
) -> Result<Vec<(Bytes, Score)>, Frame> {
    let inputs = try_join_all(c.keys.iter().map(|k| input(state, s, k))).await?;
    // A weight times an infinite score may be NaN (0 × inf): Redis makes it 0.
    let weigh = |x: f64, w: f64| Some(x * w).filter(|x| !x.is_nan()).unwrap_or(0.0);
    let mut inputs = inputs.into_iter().zip(c.weights.iter().copied());
    let (first, w) = inputs.next().unwrap_or_default();
    let mut out: BTreeMap<Bytes, f64> = first.into_iter().map(|(m, x)| (m, weigh(x, w))).collect();
    for (input, w) in inputs {
        match how {
            How::Union => {
                for (m, x) in input {
                    let x = weigh(x, w);
                    out.entry(m).and_modify(|y| *y = c.aggregate.apply(*y, x)).or_insert(x);
                }
            }
            How::Inter => {
                out.retain(|m, _| input.contains_key(m));
                for (m, y) in &mut out {
                    *y = c.aggregate.apply(*y, weigh(input[m], w));
                }
            }
            How::Diff => out.retain(|m, _| !input.contains_key(m)),
        }
    }
    let ranked = out.into_iter().map(|(m, x)| (m, Bytes::from(Score(x).stored())));
    Ok(halka_store::score::ranked(ranked.collect()))
}

/// `ZUNION`, `ZINTER`, `ZDIFF numkeys key [key …] …`.
pub async fn zcombine(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    how: How,
) -> Result<Frame, Frame> {
    let c = Combination::parse(args, how, false)?;
    let items = combined(state, s, &c, how).await?;
    Ok(if c.with_scores {
        with_scores(items, s.resp3)
    } else {
        Frame::Array(items.into_iter().map(|(m, _)| Frame::Bulk(m)).collect())
    })
}

/// `ZUNIONSTORE`, `ZINTERSTORE`, `ZDIFFSTORE destination numkeys key [key …] …`: the
/// result replaces whatever `destination` held; how many members it has.
pub async fn zcombine_store(
    state: &NodeState,
    s: &Session,
    args: &mut Args,
    how: How,
) -> Result<Frame, Frame> {
    let destination = args.next_bytes()?;
    let c = Combination::parse(args, how, true)?;
    let items = combined(state, s, &c, how).await?;
    store(state, s, destination, items).await
}

/// `ZINTERCARD numkeys key [key …] [LIMIT limit]`.
pub async fn zintercard(state: &NodeState, s: &Session, args: &mut Args) -> Result<Frame, Frame> {
    let keys = counted_keys(args)?;
    let limit = match args.remaining() {
        0 => 0,
        2 if args.next_string()?.eq_ignore_ascii_case("LIMIT") => usize::try_from(args.next_i64()?)
            .map_err(|_| Frame::error("ERR LIMIT can't be negative"))?,
        _ => return Err(syntax()),
    };
    let c = Combination {
        weights: vec![1.0; keys.len()],
        keys,
        aggregate: Aggregate::Sum,
        with_scores: false,
    };
    let n = combined(state, s, &c, How::Inter).await?.len();
    let n = if limit > 0 { n.min(limit) } else { n };
    Ok(Frame::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
}
