//! Watches for the one storage failure that only reopening the engine cures.
//!
//! After a failed journal write or fsync the engine refuses writes: it no longer knows
//! what reached the disk (see `halka_store`'s fjall engine). Reopening replays the
//! journal and learns it, but on a disk that is still full the replay's own writes would
//! fail again, so the reopen waits until the data directory's filesystem has room.
//! Reads go on meanwhile.

use crate::state::NodeState;
use std::time::Duration;

/// How often the engine is asked whether it refuses writes. A poisoned engine refuses
/// every write until the reopen, so this bounds how long writes fail after space returns.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Free bytes a reopen needs at least: room for the journal's replay to be flushed.
const MIN_ROOM: u64 = 4 << 20;

/// Returns the engine's error once it refuses writes and the disk has room to reopen it.
pub(crate) async fn until_reopen_is_due(state: &NodeState) -> String {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let needed = (state.config.storage.min_free_mb << 20).max(MIN_ROOM);
    let mut reported = false;
    loop {
        tick.tick().await;
        let Some(why) = state.engine.poisoned() else { continue };
        match halka_store::engine::space::free_bytes(&state.config.data_dir) {
            Ok(free) if free < needed => {
                if !reported {
                    tracing::error!(
                        error = %why,
                        free,
                        needed,
                        "storage refuses writes until the disk has room; reads go on"
                    );
                    reported = true;
                }
            }
            // A filesystem that cannot be asked gets the reopen tried: its errors say more.
            _ => return why,
        }
    }
}
