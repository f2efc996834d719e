//! Per-thread stripes for counters that every request updates.
//!
//! An atomic that all cores increment moves its cache line from core to core on every
//! update; giving each thread its own line (most of the time: threads share a stripe only
//! beyond [`STRIPES`]) keeps such updates local, and readers add the stripes up.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub(crate) const STRIPES: usize = 16;

/// This thread's stripe: threads are numbered as they first ask.
pub(crate) fn index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

/// A statistics counter (relaxed: readers want a total, not a synchronisation point).
#[derive(Debug, Default)]
pub(crate) struct Counter([CachePadded<AtomicU64>; STRIPES]);

impl Counter {
    pub(crate) fn increment(&self) {
        self.0[index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn total(&self) -> u64 {
        self.0.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}
