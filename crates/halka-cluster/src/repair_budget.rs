//! A node's budget for repair work: anti-entropy's own exchanges and the repairs its
//! peers ask of it (listing keys, reading and merging batches of records) spend the same
//! budget, so a node serving clients slows every repair it takes part in, not only those
//! it starts. Before, a peer that had no clients of its own — typically the one being
//! refilled — pulled records from a busy node at the full rate.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A node's client load as a running count of operations (see [`RepairBudget::new`]).
pub type Load = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Client operations per second at or above which a node counts as busy.
pub const BUSY_OPS_PER_SECOND: u64 = 100;

/// How long a load sample spans.
const LOAD_WINDOW: Duration = Duration::from_millis(250);

/// Spaces out a node's repairs to a rate: each batch waits until the previous ones' share
/// of time has passed. Its unit is a key for repairs, a byte for partition transfers
/// (each has a budget of its own). The rate is the busy one while the node served at least
/// [`BUSY_OPS_PER_SECOND`] client operations a second over the last sample — Dynamo's
/// admission control in its simplest form: background work yields to foreground work.
pub struct RepairBudget {
    per_key: Duration,
    per_key_busy: Duration,
    next: parking_lot::Mutex<Instant>,
    load: Option<Load>,
    /// The last load sample: when, the count then, and whether the node was busy.
    sample: parking_lot::Mutex<(Instant, u64, bool)>,
}

impl std::fmt::Debug for RepairBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepairBudget").field("per_key", &self.per_key).finish_non_exhaustive()
    }
}

impl RepairBudget {
    /// `per_second` keys a second, `busy_per_second` while `load` — a running count of
    /// the client operations this node serves, such as `LocalReplica::foreground_ops` —
    /// grows by [`BUSY_OPS_PER_SECOND`] or more.
    #[must_use]
    pub fn new(per_second: u32, busy_per_second: u32, load: Option<Load>) -> Self {
        let count = load.as_ref().map_or(0, |l| l());
        Self {
            per_key: Duration::from_secs(1) / per_second.max(1),
            per_key_busy: Duration::from_secs(1) / busy_per_second.max(1),
            next: parking_lot::Mutex::new(Instant::now()),
            load,
            sample: parking_lot::Mutex::new((Instant::now(), count, false)),
        }
    }

    /// Whether clients keep the node busy, sampled at most once per [`LOAD_WINDOW`].
    fn busy(&self) -> bool {
        let Some(load) = &self.load else { return false };
        let mut sample = self.sample.lock();
        let elapsed = sample.0.elapsed();
        if elapsed >= LOAD_WINDOW {
            let count = load();
            let ops = count.saturating_sub(sample.1);
            let per_second = ops.saturating_mul(1000) / (elapsed.as_millis().max(1) as u64);
            *sample = (Instant::now(), count, per_second >= BUSY_OPS_PER_SECOND);
        }
        sample.2
    }

    /// Waits for this batch of `keys` repairs' turn.
    pub async fn take(&self, keys: u64) {
        let per_key = if self.busy() { self.per_key_busy } else { self.per_key };
        let at = {
            let mut next = self.next.lock();
            let now = Instant::now();
            // Unused time does not pile up into a burst beyond a tenth of a second.
            let floor = now.checked_sub(Duration::from_millis(100)).unwrap_or(now);
            let start = (*next).max(floor);
            *next = start + per_key * u32::try_from(keys).unwrap_or(u32::MAX);
            start
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test(start_paused = true)]
    async fn repairs_slow_to_the_busy_rate_while_clients_keep_the_node_busy() {
        let ops = Arc::new(AtomicU64::new(0));
        let load: Load = {
            let ops = Arc::clone(&ops);
            Arc::new(move || ops.load(Ordering::Relaxed))
        };
        let pacer = RepairBudget::new(1_000, 100, Some(load));
        // Three batches of 100 keys: the first spends the tenth of a second of slack, so
        // the third waits out the second's share.
        let timed = async || {
            let started = Instant::now();
            for _ in 0..3 {
                pacer.take(100).await;
            }
            started.elapsed()
        };
        tokio::time::sleep(LOAD_WINDOW).await;
        assert_eq!(timed().await, Duration::from_millis(100), "quiet: 1,000 keys a second");
        // 1,000 client operations in the next window: busy, 100 keys a second.
        tokio::time::sleep(LOAD_WINDOW).await;
        ops.store(1_000, Ordering::Relaxed);
        assert_eq!(timed().await, Duration::from_millis(1_900), "busy: 100 keys a second");
        // No client since: back to the full rate.
        tokio::time::sleep(LOAD_WINDOW * 2).await;
        assert_eq!(timed().await, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_load_the_full_rate_always_applies() {
        let pacer = RepairBudget::new(1_000, 1, None);
        let started = Instant::now();
        for _ in 0..3 {
            pacer.take(100).await;
        }
        // No slack at the start: the second and third batches each wait 100 ms.
        assert_eq!(started.elapsed(), Duration::from_millis(200));
    }
}
