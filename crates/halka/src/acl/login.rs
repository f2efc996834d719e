//! Logging in, the same way on every protocol: slowed when the client's address keeps
//! failing (see `throttle`), and every failure counted and listed in `ACL LOG`.

use super::Acl;
use super::log::{AclLog, Reason};
use super::throttle::Throttle;
use std::net::SocketAddr;
use std::time::Instant;

/// What a login checks against and notes in.
#[derive(Debug, Clone, Copy)]
pub struct Door<'a> {
    pub acl: &'a Acl,
    pub throttle: &'a Throttle,
    pub log: &'a AclLog,
}

impl Door<'_> {
    /// Whether `password` logs `user` in, for a client at `source` over `protocol`
    /// (`toplevel` for RESP, as Redis names it, or `http`).
    pub async fn log_in(
        &self,
        source: Option<SocketAddr>,
        protocol: &'static str,
        user: &str,
        password: &[u8],
    ) -> bool {
        if let Some(ip) = source.map(|s| s.ip()) {
            let wait = self.throttle.delay(ip, Instant::now());
            if !wait.is_zero() {
                metrics::counter!("halka_auth_throttled_total", "protocol" => protocol)
                    .increment(1);
                tokio::time::sleep(wait).await;
            }
        }
        if self.acl.authenticate(user, password).is_some() {
            if let Some(s) = source {
                self.throttle.succeeded(s.ip());
            }
            return true;
        }
        metrics::counter!("halka_auth_failures_total").increment(1);
        let client = source.map(|s| s.to_string()).unwrap_or_default();
        self.log.note(Reason::Auth, protocol, "AUTH", user, &client);
        if let Some(s) = source {
            self.throttle.failed(s.ip(), Instant::now());
        }
        false
    }
}
