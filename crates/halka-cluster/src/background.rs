//! Owned, bounded background work: the stragglers of requests that already returned, and
//! read repairs. Every task is tracked (so shutdown and tests can wait for them) and the
//! number in flight is capped; past the cap new work is dropped and counted rather than
//! queued without bound.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone)]
pub struct Background {
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
    dropped: Arc<AtomicU64>,
}

impl Background {
    /// At most `max_tasks` background tasks run at once.
    #[must_use]
    pub fn new(max_tasks: usize) -> Self {
        Self {
            tracker: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(max_tasks)),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Runs `work` in the background if there is room; otherwise drops it (cancelling it)
    /// and returns false.
    pub fn spawn<F>(&self, work: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(crate::telemetry::BACKGROUND_DROPPED).increment(1);
            return false;
        };
        self.tracker.spawn(async move {
            work.await;
            drop(permit);
        });
        true
    }

    /// Tasks running now.
    #[must_use]
    pub fn active(&self) -> usize {
        self.tracker.len()
    }

    /// Work dropped because the cap was reached.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every task spawned so far has finished.
    pub async fn drain(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }
}
