//! The merge of records is a join: commutative, associative, idempotent. Records are drawn
//! from a universe where each dot names exactly one version, as in a real cluster.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use bytes::Bytes;
use halka_store::{Dot, NodeId, Record, Version, VersionVector};
use proptest::prelude::*;

const NODES: [&str; 3] = ["a", "b", "c"];

fn version(node: usize, counter: u64) -> Version {
    // Content is a function of the dot, as uniqueness of dots guarantees.
    Version::new(
        Dot { node: NodeId::new(NODES[node]), counter },
        counter * 7 + node as u64,
        (!counter.is_multiple_of(4)).then(|| Bytes::from(format!("{}{counter}", NODES[node]))),
    )
}

fn record() -> impl Strategy<Value = Record> {
    (prop::collection::vec(0_u64..6, 3), prop::collection::vec((0_usize..3, 1_u64..6), 0..5))
        .prop_map(|(ctx, dots)| {
            let context: VersionVector =
                NODES.iter().zip(ctx).map(|(n, c)| (NodeId::new(n), c)).collect();
            Record::from_parts(context, dots.into_iter().map(|(n, c)| version(n, c)).collect())
        })
}

proptest! {
    #[test]
    fn merge_is_commutative(a in record(), b in record()) {
        prop_assert_eq!(a.merge(&b), b.merge(&a));
    }

    #[test]
    fn merge_is_associative(a in record(), b in record(), c in record()) {
        prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
    }

    #[test]
    fn merge_is_idempotent(a in record(), b in record()) {
        prop_assert_eq!(&a.merge(&a), &a);
        let ab = a.merge(&b);
        prop_assert_eq!(ab.merge(&b), ab);
    }

    #[test]
    fn merge_keeps_every_unseen_version(a in record(), b in record()) {
        let m = a.merge(&b);
        for v in a.versions() {
            if !b.context().covers(&v.dot) || b.versions().contains(v) {
                prop_assert!(m.versions().contains(v));
            }
        }
        prop_assert!(m.context().dominates(a.context()) && m.context().dominates(b.context()));
    }
}
