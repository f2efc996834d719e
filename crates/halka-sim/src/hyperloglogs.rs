//! HyperLogLogs in the simulation: clients add elements to one HyperLogLog (`PFADD`)
//! through random nodes with random W, through every fault, and the checker holds its
//! final registers to what was added. Each element raises one register to one value, so
//! the check is exact, not statistical: every acknowledged add's register must hold at
//! least its value (unless every replica that acknowledged it lost its disk), and no
//! register may hold more than the largest value any add offered it.

use crate::checker::{Verdict, final_record};
use crate::history::{Event, History, Op, Outcome};
use crate::world::{N, World};
use halka_cluster::WriteRequest;
use halka_store::Change;
use halka_store::hll::{live, observe};
use std::collections::BTreeMap;

/// The one HyperLogLog key.
pub const KEY: &str = "hll0";

/// One `PFADD hll0 element` through `node`, recorded.
pub(crate) async fn pfadd(world: &World, client: usize, serial: u64, node: usize) {
    let element = format!("c{client}-{serial}");
    let w = world.draw(1..N as u64 + 1) as usize;
    let (index, value) = observe(element.as_bytes());
    let op =
        Op { client, observe: Some(element), ..crate::workload::blank(node, KEY.to_string(), w) };
    let request = WriteRequest::new(Change::Registers(vec![(index, value)]), None);
    crate::workload::apply_recorded(world, op, request).await;
}

/// The final registers against the adds.
pub(crate) fn check(
    world: &World,
    history: &History,
    erasures: &[(&str, u64)],
    verdict: &mut Verdict,
) {
    // Per register: the highest value an acknowledged add needs, and any add offered.
    let (mut needed, mut offered) = (BTreeMap::new(), BTreeMap::new());
    for event in history {
        let Event::Op(op) = event else { continue };
        let Some(element) = &op.observe else { continue };
        let (index, value) = observe(element.as_bytes());
        let attempted = matches!(op.outcome, Outcome::Acked | Outcome::Failed(_));
        if attempted {
            let most = offered.entry(index).or_insert(0);
            *most = value.max(*most);
        }
        if op.outcome == Outcome::Acked {
            verdict.acked_hll_adds += 1;
            if crate::checker::erased_everywhere(op, erasures) {
                verdict.lost_with_disks += 1;
            } else {
                let least = needed.entry(index).or_insert(0);
                *least = value.max(*least);
            }
        }
    }
    let record = final_record(world, KEY, verdict);
    let registers = match live(&record, u64::MAX / 2) {
        Ok(r) => r.unwrap_or_default(),
        Err(e) => {
            verdict.wrong_registers.push(format!("{KEY}: not a HyperLogLog ({e})"));
            return;
        }
    };
    for (&index, &least) in &needed {
        if registers.get(index) < least {
            let held = registers.get(index);
            verdict.wrong_registers.push(format!(
                "{KEY}: register {index} holds {held}, an acknowledged add raised it to {least}"
            ));
        }
    }
    for (index, held) in registers.set() {
        if offered.get(&index).is_none_or(|&most| held > most) {
            verdict
                .wrong_registers
                .push(format!("{KEY}: register {index} holds {held}, more than any add offered"));
        }
    }
}
