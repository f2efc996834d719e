//! Placement invariants, checked over random member lists and keys.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use halka_ring::stats::moved;
use halka_ring::{Member, Placement, PreferenceList, Strategy};
use proptest::prelude::*;

const STRATEGIES: [Strategy; 6] = [
    Strategy::Modulo,
    Strategy::Ring,
    Strategy::VnodeRing { vnodes: 16 },
    Strategy::Partitioned { partitions: 256 },
    Strategy::Jump,
    Strategy::Rendezvous,
];

fn members(count: usize) -> Vec<Member> {
    (0..count).map(|i| Member::new(format!("n{i:03}"))).collect()
}

fn ids(p: &dyn Placement, pl: &PreferenceList) -> Vec<String> {
    pl.iter().map(|&i| p.members()[usize::from(i)].id.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn preference_lists_hold_distinct_nodes(count in 1_usize..12, n in 1_usize..6, keys in prop::collection::vec(any::<u64>(), 1..64)) {
        for s in STRATEGIES {
            let p = s.build(&members(count), n).unwrap();
            let mut pl = PreferenceList::new();
            for &h in &keys {
                p.preference_list_into(h, n, &mut pl);
                prop_assert_eq!(pl.len(), n.min(count), "{}", s.name());
                let mut sorted = pl.to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), pl.len(), "{} repeated a node", s.name());
                prop_assert_eq!(pl[0], p.owner(h));
            }
        }
    }

    #[test]
    fn placement_ignores_member_order(count in 2_usize..10, seed in any::<u64>(), keys in prop::collection::vec(any::<u64>(), 1..64)) {
        let mut shuffled = members(count);
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for s in STRATEGIES {
            let a = s.build(&members(count), 3).unwrap();
            let b = s.build(&shuffled, 3).unwrap();
            for &h in &keys {
                prop_assert_eq!(a.preference_list(&h.to_le_bytes(), 3), b.preference_list(&h.to_le_bytes(), 3));
            }
        }
    }

    #[test]
    fn rings_move_keys_only_to_a_joining_node(count in 1_usize..10, keys in prop::collection::vec(any::<u64>(), 1..200)) {
        for s in [Strategy::Ring, Strategy::VnodeRing { vnodes: 16 }, Strategy::Rendezvous] {
            let before = s.build(&members(count), 1).unwrap();
            let mut grown = members(count);
            grown.push(Member::new("joiner"));
            let after = s.build(&grown, 1).unwrap();
            for &h in &keys {
                let old = &before.members()[usize::from(before.owner(h))].id;
                let new = &after.members()[usize::from(after.owner(h))].id;
                prop_assert!(old == new || new == "joiner", "{}: {old} -> {new}", s.name());
            }
        }
    }

    #[test]
    fn rings_move_only_a_leaving_nodes_keys(count in 2_usize..10, leaver in 0_usize..10, keys in prop::collection::vec(any::<u64>(), 1..200)) {
        let leaver = leaver % count;
        for s in [Strategy::Ring, Strategy::VnodeRing { vnodes: 16 }, Strategy::Rendezvous] {
            let all = members(count);
            let before = s.build(&all, 3).unwrap();
            let mut shrunk = all.clone();
            let gone = shrunk.remove(leaver).id;
            let after = s.build(&shrunk, 3).unwrap();
            for &h in &keys {
                let old = &before.members()[usize::from(before.owner(h))].id;
                let new = &after.members()[usize::from(after.owner(h))].id;
                prop_assert!(old == new || *old == gone, "{}: {old} -> {new}", s.name());
                // Survivors keep their relative order in the preference list.
                let old_list: Vec<String> = ids(before.as_ref(), &before.preference_list(&h.to_le_bytes(), 3)).into_iter().filter(|id| *id != gone).collect();
                let new_list = ids(after.as_ref(), &after.preference_list(&h.to_le_bytes(), 3));
                prop_assert_eq!(&new_list[..old_list.len()], &old_list[..]);
            }
        }
    }

    #[test]
    fn partitioned_replicas_span_zones(zones in 3_usize..5, per_zone in 1_usize..4, keys in prop::collection::vec(any::<u64>(), 1..100)) {
        let members: Vec<Member> = (0..zones * per_zone)
            .map(|i| Member::new(format!("n{i:03}")).with_zone(format!("z{}", i % zones)))
            .collect();
        let p = Strategy::Partitioned { partitions: 256 }.build(&members, 3).unwrap();
        for &h in &keys {
            let pl = p.preference_list(&h.to_le_bytes(), 3);
            let mut z: Vec<&str> = pl.iter().map(|&i| p.members()[usize::from(i)].zone.as_str()).collect();
            z.sort_unstable();
            z.dedup();
            prop_assert_eq!(z.len(), 3);
        }
    }

    #[test]
    fn partitioned_moves_near_ideal_and_stays_balanced(count in 4_usize..12) {
        let before = Strategy::Partitioned { partitions: 4096 }.build(&members(count), 3).unwrap();
        let mut grown = members(count);
        grown.push(Member::new("joiner"));
        let after = Strategy::Partitioned { partitions: 4096 }.build(&grown, 3).unwrap();
        // One key per partition: the movement of the table itself.
        let hashes: Vec<u64> = (0..4096_u64).map(|p| p << 52).collect();
        let (keys, slots) = moved(before.as_ref(), after.as_ref(), &hashes, 3);
        let ideal = 1.0 / (count as f64 + 1.0);
        prop_assert!(keys <= 1.15 * ideal, "keys moved {keys} ideal {ideal}");
        prop_assert!(slots <= 1.15 * ideal, "slots moved {slots} ideal {ideal}");
        let (primary, slot_loads) = halka_ring::stats::loads(after.as_ref(), &hashes, 3);
        let fair = 4096.0 / (count as f64 + 1.0);
        prop_assert!(primary.iter().all(|&c| (c as f64 - fair).abs() <= 2.0), "{primary:?}");
        prop_assert!(slot_loads.iter().all(|&c| (c as f64 - 3.0 * fair).abs() <= 4.0), "{slot_loads:?}");
    }

    #[test]
    fn weights_scale_partitioned_share(heavy in 2_u32..4) {
        let mut m = members(4);
        m[0].weight = heavy;
        let p = Strategy::Partitioned { partitions: 4096 }.build(&m, 1).unwrap();
        let hashes: Vec<u64> = (0..4096_u64).map(|p| p << 52).collect();
        let (primary, _) = halka_ring::stats::loads(p.as_ref(), &hashes, 1);
        let expected = 4096.0 * f64::from(heavy) / (f64::from(heavy) + 3.0);
        prop_assert!((primary[0] as f64 - expected).abs() <= 1.0, "{primary:?}");
    }
}

#[test]
fn rejects_bad_member_lists() {
    for s in STRATEGIES {
        assert!(s.build(&[], 3).is_err());
        assert!(s.build(&[Member::new("a"), Member::new("a")], 3).is_err());
        assert!(s.build(&[Member::new("a").with_weight(0)], 3).is_err());
    }
}

#[test]
fn seed_example_places_mahmut_on_five_of_six() {
    let names = ["foo", "bar", "bazz", "zapp", "zucc", "bars"];
    let m: Vec<Member> = names.iter().map(|&n| Member::new(n)).collect();
    let p = Strategy::default().build(&m, 5).unwrap();
    assert_eq!(p.preference_list(b"Mahmut", 5).len(), 5);
}
