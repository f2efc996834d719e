//! Per-command counts and time (`INFO commandstats`): one slot of atomics per command in
//! the command table, so counting costs no lock and no allocation; commands the table
//! does not know are not counted (Redis does not count them either).

use super::cmd::table;
use std::sync::atomic::{AtomicU64, Ordering};

/// Calls, microseconds and failures of each known command.
#[derive(Debug)]
pub struct CommandStats {
    slots: Vec<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    calls: AtomicU64,
    micros: AtomicU64,
    failed: AtomicU64,
}

impl Default for CommandStats {
    fn default() -> Self {
        Self { slots: table::COMMANDS.iter().map(|_| Slot::default()).collect() }
    }
}

impl CommandStats {
    /// Counts one call of the command at `index` in the table.
    pub fn note(&self, index: usize, took: std::time::Duration, failed: bool) {
        if let Some(slot) = self.slots.get(index) {
            slot.calls.fetch_add(1, Ordering::Relaxed);
            slot.micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
            slot.failed.fetch_add(u64::from(failed), Ordering::Relaxed);
        }
    }

    /// The `# Commandstats` section, as Redis writes it: commands called at least once.
    #[must_use]
    pub fn info_section(&self) -> String {
        let mut out = String::from("# Commandstats\r\n");
        for (spec, slot) in table::COMMANDS.iter().zip(&self.slots) {
            let calls = slot.calls.load(Ordering::Relaxed);
            if calls == 0 {
                continue;
            }
            let micros = slot.micros.load(Ordering::Relaxed);
            out.push_str(&format!(
                "cmdstat_{}:calls={calls},usec={micros},usec_per_call={:.2},rejected_calls=0,failed_calls={}\r\n",
                spec.name.to_ascii_lowercase(),
                micros as f64 / calls as f64,
                slot.failed.load(Ordering::Relaxed),
            ));
        }
        out.push_str("\r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_time_and_failures_show_per_command_in_redis_form() {
        let stats = CommandStats::default();
        let get = table::position("GET").unwrap();
        stats.note(get, std::time::Duration::from_micros(10), false);
        stats.note(get, std::time::Duration::from_micros(30), true);
        let section = stats.info_section();
        assert!(
            section.contains("cmdstat_get:calls=2,usec=40,usec_per_call=20.00,rejected_calls=0,failed_calls=1\r\n"),
            "{section}"
        );
        assert!(!section.contains("cmdstat_set"), "{section}");
    }
}
