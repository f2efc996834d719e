//! Counter states join like a CRDT, float parts included: replicas that saw increments in
//! any order and joined in any order agree on the state and on the value, and no
//! increment is lost.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use halka_store::{Counter, NodeId, Number};
use proptest::prelude::*;

const NODES: [&str; 3] = ["a", "b", "c"];

/// An increment through node `.0`: an integer, or a float in halves (exact in binary, so
/// the expected sum is exact too).
#[derive(Debug, Clone, Copy)]
enum Step {
    Int(usize, i64),
    Halves(usize, i32),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            (0_usize..3, -50_i64..50).prop_map(|(n, d)| Step::Int(n, d)),
            (0_usize..3, -50_i32..50).prop_map(|(n, h)| Step::Halves(n, h)),
        ],
        0..30,
    )
}

/// Each node's own replica after the steps it coordinated (a node sees only its own).
fn replicas(steps: &[Step]) -> Vec<Counter> {
    let mut replicas = vec![Counter::starting(None, 0); NODES.len()];
    for step in steps {
        match *step {
            Step::Int(n, d) => {
                // An integer increment on a value with a fraction is refused, as INCR is.
                let _ = replicas[n].add(&NodeId::new(NODES[n]), d);
            }
            Step::Halves(n, h) => {
                replicas[n].add_float(&NodeId::new(NODES[n]), f64::from(h) / 2.0).unwrap();
            }
        }
    }
    replicas
}

fn as_f64(n: Number) -> f64 {
    match n {
        Number::Int(i) => i as f64,
        Number::Float(f) => f,
    }
}

proptest! {
    #[test]
    fn joins_in_any_order_agree_and_count_every_increment(steps in steps()) {
        let r = replicas(&steps);
        let expected: f64 = r.iter().map(|c| as_f64(c.value().unwrap())).sum();
        let mut abc = r[0].clone();
        abc.join(&r[1]);
        abc.join(&r[2]);
        let mut cba = r[2].clone();
        cba.join(&r[1]);
        cba.join(&r[0]);
        prop_assert_eq!(&abc, &cba);
        let mut again = abc.clone();
        again.join(&r[1]);
        prop_assert_eq!(&again, &abc, "idempotent");
        prop_assert_eq!(abc.value().unwrap(), cba.value().unwrap());
        prop_assert_eq!(as_f64(abc.value().unwrap()), expected);
        prop_assert!(abc.validate().is_ok());
    }
}
