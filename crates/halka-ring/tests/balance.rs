//! The balance and movement figures the placement must reach, on node names of equal length
//! (`node-0001`…), where an affine token hash such as CRC-32 would fail.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use halka_ring::stats::{loads, moved, spread};
use halka_ring::{Member, Placement, Strategy, key_hash};

fn nodes(count: usize) -> Vec<Member> {
    (1..=count).map(|i| Member::new(format!("node-{i:04}"))).collect()
}

fn hashes(count: usize) -> Vec<u64> {
    (0..count).map(|i| key_hash(format!("key-{i:012}").as_bytes())).collect()
}

fn cvs(p: &dyn Placement, h: &[u64], n: usize) -> (f64, f64) {
    let (primary, slots) = loads(p, h, n);
    let w = vec![1; primary.len()];
    (spread(&primary, &w).cv, spread(&slots, &w).cv)
}

#[test]
fn partitioned_default_is_balanced_at_six_and_seven_nodes() {
    let h = hashes(1_000_000);
    for count in [6, 7] {
        let p = Strategy::default().build(&nodes(count), 3).unwrap();
        let (primary, slots) = cvs(p.as_ref(), &h, 3);
        eprintln!("partitioned {count} nodes: primary cv {primary:.4} slot cv {slots:.4}");
        assert!(primary <= 0.01, "primary cv {primary} at {count} nodes");
        assert!(slots <= 0.01, "slot cv {slots} at {count} nodes");
    }
}

#[test]
fn partitioned_moves_near_ideal_on_join() {
    let h = hashes(200_000);
    let before = Strategy::default().build(&nodes(6), 3).unwrap();
    let after = Strategy::default().build(&nodes(7), 3).unwrap();
    let (keys, slots) = moved(before.as_ref(), after.as_ref(), &h, 3);
    let ideal = 1.0 / 7.0;
    eprintln!("partitioned 6->7 moved keys {keys:.4} slots {slots:.4} ideal {ideal:.4}");
    assert!(keys <= 1.1 * ideal, "moved {keys} > 1.1 x {ideal}");
    assert!(slots <= 1.1 * ideal, "slot moved {slots} > 1.1 x {ideal}");
}

#[test]
fn vnode_ring_cv_follows_inverse_sqrt_of_vnodes() {
    let h = hashes(200_000);
    for vnodes in [100_u32, 256] {
        let p = Strategy::VnodeRing { vnodes }.build(&nodes(6), 3).unwrap();
        let (primary, _) = cvs(p.as_ref(), &h, 3);
        let expected = 1.0 / f64::from(vnodes).sqrt();
        eprintln!("vnode-ring {vnodes}: cv {primary:.4} expected ~{expected:.4}");
        assert!(primary < 2.0 * expected, "cv {primary} at {vnodes} vnodes");
    }
}

#[test]
fn modulo_moves_most_keys_on_join() {
    let h = hashes(100_000);
    let before = Strategy::Modulo.build(&nodes(6), 3).unwrap();
    let after = Strategy::Modulo.build(&nodes(7), 3).unwrap();
    let (keys, _) = moved(before.as_ref(), after.as_ref(), &h, 3);
    assert!((keys - 6.0 / 7.0).abs() < 0.01, "modulo moved {keys}");
}
