//! Group commit for async callers.
//!
//! Writers to a durable engine need "tell me when write N is on disk". Giving each writer a
//! blocking thread to wait in the engine makes dozens of threads wake one after another
//! behind every fsync. Instead, each engine gets one syncer task: writers record the
//! highest write they need and wait on a watch channel; the syncer fsyncs through the
//! highest request on the blocking pool — one fsync for everything queued — and publishes
//! the result, waking every covered writer at once. When waiting does not block (the
//! journal only has to reach the OS), the syncer flushes inline, after yielding once so
//! that the writes of every task ready at the time share the flush.

use halka_store::{Engine, SyncToken};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Notify, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

/// What the syncer has made durable, or why it cannot.
#[derive(Debug, Clone, Default)]
struct Synced {
    through: u64,
    failed: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Syncer {
    requested: Arc<AtomicU64>,
    wake: Arc<Notify>,
    synced: watch::Receiver<Synced>,
    _stop: DropGuard,
}

impl Syncer {
    /// Starts the syncer task for `engine`; it stops when the `Syncer` is dropped.
    pub(crate) fn start(engine: Arc<dyn Engine>) -> Self {
        let requested = Arc::new(AtomicU64::new(0));
        let wake = Arc::new(Notify::new());
        let (tx, synced) = watch::channel(Synced::default());
        let stop = CancellationToken::new();
        let (req, w, cancel) = (Arc::clone(&requested), Arc::clone(&wake), stop.clone());
        tokio::spawn(async move {
            let blocking = engine.is_blocking();
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = w.notified() => {}
                }
                // Keep syncing while requests arrive faster than fsyncs complete.
                loop {
                    if !blocking {
                        // A journal buffer flush, quick enough to run here — after the tasks
                        // ready now have run, so that it covers their writes too.
                        tokio::task::yield_now().await;
                    }
                    let want = req.load(Ordering::Acquire);
                    if want <= tx.borrow().through {
                        break;
                    }
                    let result = if blocking {
                        let engine = Arc::clone(&engine);
                        tokio::task::spawn_blocking(move || engine.wait_durable(SyncToken(want)))
                            .await
                    } else {
                        Ok(engine.wait_durable(SyncToken(want)))
                    };
                    let failed = match result {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(e) => Some(format!("fsync task failed: {e}")),
                    };
                    let stop_now = failed.is_some();
                    tx.send_modify(|s| {
                        if failed.is_none() {
                            s.through = s.through.max(want);
                        }
                        s.failed = failed;
                    });
                    if stop_now {
                        // The engine is poisoned: every waiter, now and later, gets the error.
                        return;
                    }
                }
            }
        });
        Self { requested, wake, synced, _stop: stop.drop_guard() }
    }

    /// Resolves when the write behind `token` is durable.
    pub(crate) async fn wait(&self, token: SyncToken) -> Result<(), String> {
        self.requested.fetch_max(token.0, Ordering::AcqRel);
        self.wake.notify_one();
        let mut rx = self.synced.clone();
        let state = rx
            .wait_for(|s| s.through >= token.0 || s.failed.is_some())
            .await
            .map_err(|_| "the fsync task stopped".to_string())?;
        match &state.failed {
            Some(e) if state.through < token.0 => Err(e.clone()),
            _ => Ok(()),
        }
    }
}
