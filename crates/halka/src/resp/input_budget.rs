//! The node's budget for request bytes that its Redis connections hold at once.
//!
//! Each connection is bounded by `limits.max_request_bytes`, but a few connections each
//! sending most of that limit and never finishing would add up to more memory than the
//! node has. So every byte a connection holds of requests not yet run (its input buffer
//! and the arguments parsed so far) is counted against one node-wide budget,
//! `limits.max_buffered_bytes`; a connection that would take the node past it is told so
//! and closed, and the others go on.

use std::sync::Arc;
use tokio::sync::Semaphore;

/// Budget unit: permits count KiB, so that a budget of many GiB fits a semaphore's count.
const UNIT: usize = 1024;

/// The node-wide budget.
#[derive(Debug, Clone)]
pub struct InputBudget {
    permits: Arc<Semaphore>,
    max_bytes: usize,
}

impl InputBudget {
    #[must_use]
    pub fn new(max_bytes: usize) -> Self {
        let units = max_bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        Self { permits: Arc::new(Semaphore::new(units)), max_bytes }
    }

    /// The budget in bytes, for error messages.
    #[must_use]
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Bytes the connections hold now (in whole KiB per connection), for `INFO`.
    #[must_use]
    pub fn held_bytes(&self) -> usize {
        let total = self.max_bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        total.saturating_sub(self.permits.available_permits()) * UNIT
    }

    /// A connection's share, holding nothing yet.
    #[must_use]
    pub fn share(&self) -> Share {
        Share { permits: Arc::clone(&self.permits), units: 0 }
    }
}

/// What one connection holds of the budget; returned when dropped.
#[derive(Debug)]
pub struct Share {
    permits: Arc<Semaphore>,
    units: usize,
}

impl Share {
    /// Makes this share cover `bytes`, taking or returning the difference; false (and
    /// nothing taken) when the node's budget cannot cover the growth.
    pub fn cover(&mut self, bytes: usize) -> bool {
        let units = bytes.div_ceil(UNIT);
        if units > self.units {
            let more = u32::try_from(units - self.units).unwrap_or(u32::MAX);
            match self.permits.try_acquire_many(more) {
                // Held by the count in `units`, returned by `add_permits`.
                Ok(permit) => permit.forget(),
                Err(_) => return false,
            }
        } else {
            self.permits.add_permits(self.units - units);
        }
        self.units = units;
        true
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.permits.add_permits(self.units);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_take_from_one_budget_and_give_back() {
        let budget = InputBudget::new(10 * UNIT);
        let (mut a, mut b) = (budget.share(), budget.share());
        assert!(a.cover(6 * UNIT));
        assert!(!b.cover(5 * UNIT), "6 + 5 KiB is over a 10 KiB budget");
        assert!(b.cover(4 * UNIT));
        assert!(a.cover(UNIT), "shrinking gives back");
        assert!(b.cover(9 * UNIT));
        drop(b);
        assert!(a.cover(10 * UNIT));
    }
}
