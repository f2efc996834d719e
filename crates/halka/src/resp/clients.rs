//! The Redis clients connected to this node, for `CLIENT LIST`, `CLIENT INFO` and
//! `CLIENT KILL`.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Every connected client, by id.
#[derive(Debug, Default)]
pub struct Clients {
    map: Mutex<BTreeMap<u64, Arc<Client>>>,
}

/// What `CLIENT LIST` shows of one client, and how to close it.
#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub addr: SocketAddr,
    pub local: Option<SocketAddr>,
    connected: Instant,
    /// Milliseconds after `connected` of the last command.
    last_active_ms: AtomicU64,
    name: Mutex<Option<Bytes>>,
    /// `CLIENT SETINFO`'s library name and version.
    lib: Mutex<(Option<Bytes>, Option<Bytes>)>,
    last_command: Mutex<String>,
    /// The protocol version, and the commands an open MULTI has queued (-1: none), as
    /// of the last command.
    resp: AtomicU64,
    multi: AtomicI64,
    /// Whether the connection is waiting for the client's next request (nothing of it
    /// buffered, no command running): only such a client may be displaced.
    waiting: AtomicBool,
    /// Milliseconds after `connected` when it began waiting.
    waiting_since_ms: AtomicU64,
    /// Cancelled by `CLIENT KILL` or to make room: the connection closes (at once while it
    /// waits, after its command otherwise).
    pub kill: CancellationToken,
}

/// Removes its client from the registry when the connection ends.
#[derive(Debug)]
pub struct Registration<'a> {
    clients: &'a Clients,
    pub client: Arc<Client>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.clients.map.lock().remove(&self.client.id);
    }
}

impl Clients {
    pub fn register(
        &self,
        id: u64,
        addr: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Registration<'_> {
        let client = Arc::new(Client {
            id,
            addr,
            local,
            connected: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            name: Mutex::new(None),
            lib: Mutex::default(),
            last_command: Mutex::new("NULL".into()),
            resp: AtomicU64::new(2),
            multi: AtomicI64::new(-1),
            waiting: AtomicBool::new(false),
            waiting_since_ms: AtomicU64::new(0),
            kill: CancellationToken::new(),
        });
        self.map.lock().insert(id, Arc::clone(&client));
        Registration { clients: self, client }
    }

    #[must_use]
    pub fn all(&self) -> Vec<Arc<Client>> {
        self.map.lock().values().cloned().collect()
    }

    /// Closes the client that has waited longest for its next request, if it has waited
    /// at least `min`, to make room for a new one. Returns whether one was closed.
    pub fn displace_idle(&self, min: Duration) -> bool {
        let candidates = self.map.lock().values().cloned().collect::<Vec<_>>();
        let waits = candidates.iter().filter_map(|c| Some((c.waited()?, c)));
        let victim = longest_wait(waits, min);
        if let Some(client) = &victim {
            tracing::info!(addr = %client.addr, id = client.id, "closing an idle client to make room for a new one (max_connections)");
            client.kill.cancel();
        }
        victim.is_some()
    }
}

/// Of clients and how long each has waited, the one that waited longest, at least `min`
/// (the lower id on a tie, so the choice does not depend on the map's order).
fn longest_wait<'a>(
    waits: impl Iterator<Item = (Duration, &'a Arc<Client>)>,
    min: Duration,
) -> Option<Arc<Client>> {
    waits
        .filter(|(waited, _)| *waited >= min)
        .max_by(|(a, x), (b, y)| a.cmp(b).then(y.id.cmp(&x.id)))
        .map(|(_, c)| Arc::clone(c))
}

impl Client {
    /// Notes a command about to run, and the session's protocol and MULTI queue.
    pub fn touch(&self, command: &[u8], resp3: bool, multi: Option<usize>) {
        let ms = self.connected.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
        self.resp.store(if resp3 { 3 } else { 2 }, Ordering::Relaxed);
        self.multi.store(multi.map_or(-1, |n| n as i64), Ordering::Relaxed);
        *self.last_command.lock() = String::from_utf8_lossy(command).to_ascii_lowercase();
    }

    /// Notes that the connection now waits for the client's next request (`true`), or
    /// that one arrived (`false`).
    pub fn set_waiting(&self, waiting: bool) {
        if waiting {
            let ms = self.connected.elapsed().as_millis() as u64;
            self.waiting_since_ms.store(ms, Ordering::Relaxed);
        }
        self.waiting.store(waiting, Ordering::Relaxed);
    }

    /// How long the connection has waited for the client's next request; `None` while a
    /// request arrives or runs, or once the client is being closed.
    fn waited(&self) -> Option<Duration> {
        if !self.waiting.load(Ordering::Relaxed) || self.kill.is_cancelled() {
            return None;
        }
        let now = self.connected.elapsed().as_millis() as u64;
        Some(Duration::from_millis(
            now.saturating_sub(self.waiting_since_ms.load(Ordering::Relaxed)),
        ))
    }

    pub fn set_name(&self, name: Option<Bytes>) {
        *self.name.lock() = name;
    }

    /// Records `CLIENT SETINFO lib-name|lib-ver value` (checked by the caller).
    pub fn set_lib(&self, attr: &str, value: Bytes) {
        let mut lib = self.lib.lock();
        if attr == "lib-name" {
            lib.0 = Some(value);
        } else {
            lib.1 = Some(value);
        }
    }

    /// One `CLIENT LIST` line, without its newline.
    #[must_use]
    pub fn line(&self) -> String {
        let multi = self.multi.load(Ordering::Relaxed);
        let resp = self.resp.load(Ordering::Relaxed);
        let age = self.connected.elapsed().as_secs();
        let idle_ms = (self.connected.elapsed().as_millis() as u64)
            .saturating_sub(self.last_active_ms.load(Ordering::Relaxed));
        let text = |v: Option<&Bytes>| {
            v.map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default()
        };
        let name = text(self.name.lock().as_ref());
        let (lib_name, lib_ver) = {
            let lib = self.lib.lock();
            (text(lib.0.as_ref()), text(lib.1.as_ref()))
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "id={} addr={} laddr={} fd=-1 name={name} age={age} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi={multi} cmd={} user=default resp={resp} lib-name={lib_name} lib-ver={lib_ver}",
            self.id,
            self.addr,
            self.local.map(|a| a.to_string()).unwrap_or_default(),
            idle_ms / 1000,
            self.last_command.lock(),
        );
        out
    }
}
