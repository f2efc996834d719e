//! Causal metadata from outside cannot hide later writes: whatever record a peer sends,
//! either the replica refuses it or a write acknowledged afterwards stays readable on
//! every replica that has seen both.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_store::{
    Dot, Engine, Limits, MAX_NUMBERED, MemoryEngine, NodeId, Record, Refusal, Version, Write,
};
use proptest::prelude::*;
use std::sync::Arc;

const NODES: [&str; 3] = ["a", "b", "c"];

/// Counters anywhere in u64, with a bias towards the edges an attacker would pick.
fn counter() -> impl Strategy<Value = u64> {
    prop_oneof![
        0_u64..8,
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1 << 62),
        Just(1 << 63),
        any::<u64>()
    ]
}

/// A record decoded from arbitrary bytes-level parts, as a peer's message would be:
/// unsorted, repeated, oversized and out-of-context parts included.
fn hostile_record() -> impl Strategy<Value = Record> {
    (
        prop::collection::vec((0_usize..3, counter()), 0..6),
        prop::collection::vec((0_usize..3, counter(), any::<bool>()), 0..80),
    )
        .prop_map(|(context, versions)| {
            #[derive(serde::Serialize)]
            struct Raw {
                context: Vec<(NodeId, u64)>,
                versions: Vec<Version>,
            }
            let raw = Raw {
                context: context.into_iter().map(|(n, c)| (NodeId::new(NODES[n]), c)).collect(),
                versions: versions
                    .into_iter()
                    .map(|(n, c, live)| {
                        Version::new(
                            Dot { node: NodeId::new(NODES[n]), counter: c },
                            u64::MAX,
                            live.then(|| Bytes::from_static(b"evil")),
                        )
                    })
                    .collect(),
            };
            postcard::from_bytes(&postcard::to_allocvec(&raw).unwrap()).unwrap()
        })
}

fn set(value: &'static [u8]) -> Write {
    Write {
        overwrite: true,
        ..Write::value(Some(Bytes::from_static(value)), Some(halka_store::VersionVector::new()), 10)
    }
}

proptest! {
    #[test]
    fn merging_a_hostile_record_never_hides_a_later_acknowledged_write(
        hostile in hostile_record(),
        coordinator in 0_usize..3,
    ) {
        let node = NodeId::new(NODES[coordinator]);
        let (coord, other) = (
            MemoryEngine::new(Limits::default()),
            MemoryEngine::new(Limits::default()),
        );
        coord.apply_write(b"k", &node, &set(b"before")).unwrap();
        let hostile = Arc::new(hostile);
        let accepted = coord.merge(b"k", &hostile).is_ok();
        prop_assert_eq!(accepted, hostile.validate().is_ok());
        let _ = other.merge(b"k", &hostile);
        // The write a client is told succeeded...
        let (record, outcome) = coord.apply_write(b"k", &node, &set(b"after")).unwrap();
        // A record claiming the node already numbered the largest counter allowed
        // leaves it nothing to number with: the write is refused, with an error —
        // never acknowledged and then lost.
        if outcome.refused == Some(Refusal::CounterExhausted) {
            prop_assert!(accepted && hostile.context().get(&node) == MAX_NUMBERED);
            return Ok(());
        }
        prop_assert_eq!(outcome.refused, None);
        other.merge(b"k", &record).unwrap();
        // ...is a live version on both replicas.
        for engine in [&coord, &other] {
            let stored = engine.get(b"k").unwrap().unwrap();
            prop_assert!(
                stored.values().any(|v| v.as_ref() == b"after"),
                "acknowledged write hidden: {:?}", stored
            );
            prop_assert!(stored.versions().len() <= halka_store::MAX_SIBLINGS);
        }
    }
}
