//! Admission: the caps on open client connections, in total
//! (`server.max_connections`) and per client IP
//! (`server.max_connections_per_ip`).
//!
//! Input: each accepted connection's peer, decided in the accept loop before
//! any byte is read, any TLS or HTTP state exists or a worker task is
//! spawned. Output: a [`Slot`] that travels with the connection to its worker
//! and gives its place back when dropped, or a [`Refusal`]: the caller then
//! closes the socket at once, and the other connections go on being served.
//!
//! The counts live in the accept loop alone: a plain map, no lock, nothing
//! on the request path. Connections end on the worker threads; their slots
//! come back over a channel that the accept loop drains before each decision.
//! The map holds only the addresses that have a connection open, so it never
//! has more than `max_connections` entries.
//!
//! Clients are counted by IPv4 address, by IPv6 /64 (what one host or one
//! subscriber usually gets: counting single IPv6 addresses would let one
//! client open a connection from each of its 2^64 addresses), and an
//! IPv4-mapped IPv6 address as its IPv4 address. Trusted proxies
//! (`server.trusted_proxies`) are exempt from the per-IP cap: a load balancer
//! in front carries many clients' connections from one address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::ops::metrics;

/// Why a connection was refused (the `reason` label of
/// `gateway_connections_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `server.max_connections` connections are open.
    Global,
    /// This client already has `server.max_connections_per_ip` open.
    PerIp,
}

/// At most one warning about a full gateway per this period: a flood of
/// refusals must not become a flood of log lines.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The open-connection counts, owned by the accept loop.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    /// 0: no per-IP cap.
    max_per_ip: usize,
    open: usize,
    per_client: HashMap<IpAddr, usize>,
    give_back: mpsc::UnboundedSender<Option<IpAddr>>,
    returned: mpsc::UnboundedReceiver<Option<IpAddr>>,
    warned_full: Option<Instant>,
}

/// One admitted connection's place; dropping it (wherever the connection
/// ends) gives the place back.
#[derive(Debug)]
pub struct Slot {
    client: Option<IpAddr>,
    give_back: mpsc::UnboundedSender<Option<IpAddr>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Fails only once the accept loop is gone, when nothing is counted.
        let _ = self.give_back.send(self.client);
    }
}

impl Admission {
    /// Caps of `max_total` connections and `max_per_ip` per client (0: none).
    pub fn new(max_total: usize, max_per_ip: usize) -> Admission {
        let (give_back, returned) = mpsc::unbounded_channel();
        Admission {
            max_total,
            max_per_ip,
            open: 0,
            per_client: HashMap::new(),
            give_back,
            returned,
            warned_full: None,
        }
    }

    /// Admits a connection from `peer`, or says why not (counted in the
    /// metric and logged). `trusted` peers are exempt from the per-IP cap.
    pub fn admit(&mut self, peer: IpAddr, trusted: bool) -> Result<Slot, Refusal> {
        while let Ok(client) = self.returned.try_recv() {
            self.release(client);
        }
        if self.open >= self.max_total {
            metrics::connections().refused_global.increment(1);
            let now = Instant::now();
            if self
                .warned_full
                .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
            {
                self.warned_full = Some(now);
                tracing::warn!(
                    max_connections = self.max_total,
                    "server.max_connections reached: refusing new connections \
                     (counted in gateway_connections_refused_total)"
                );
            }
            return Err(Refusal::Global);
        }
        let client = (self.max_per_ip > 0 && !trusted).then(|| client_key(peer));
        if let Some(key) = client {
            let open = self.per_client.entry(key).or_insert(0);
            if *open >= self.max_per_ip {
                metrics::connections().refused_per_ip.increment(1);
                tracing::debug!(client = %key, "server.max_connections_per_ip reached, refusing");
                return Err(Refusal::PerIp);
            }
            *open += 1;
        }
        self.open += 1;
        Ok(Slot {
            client,
            give_back: self.give_back.clone(),
        })
    }

    fn release(&mut self, client: Option<IpAddr>) {
        self.open = self.open.saturating_sub(1);
        if let Some(key) = client {
            if let Some(open) = self.per_client.get_mut(&key) {
                *open -= 1;
                if *open == 0 {
                    self.per_client.remove(&key);
                }
            }
        }
    }
}

/// The address a client is counted by (see the module docs).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn clients_are_counted_by_ipv4_address_and_ipv6_64() {
        assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
    }

    #[tokio::test]
    async fn per_ip_cap_counts_each_client_and_slots_come_back() {
        let mut admission = Admission::new(10, 2);
        let a = ip("192.0.2.1");
        let first = admission.admit(a, false).expect("first");
        let _second = admission.admit(a, false).expect("second");
        assert_eq!(admission.admit(a, false).err(), Some(Refusal::PerIp));
        // Another client, a trusted proxy and another /64 are not affected.
        assert!(admission.admit(ip("192.0.2.2"), false).is_ok());
        assert!(admission.admit(a, true).is_ok());
        drop(first);
        let _third = admission.admit(a, false).expect("a slot came back");
        assert_eq!(admission.admit(a, false).err(), Some(Refusal::PerIp));
    }

    #[tokio::test]
    async fn global_cap_and_the_map_holds_only_open_clients() {
        let mut admission = Admission::new(2, 0);
        let one = admission.admit(ip("192.0.2.1"), false).expect("one");
        let two = admission.admit(ip("192.0.2.2"), false).expect("two");
        assert_eq!(
            admission.admit(ip("192.0.2.3"), false).err(),
            Some(Refusal::Global)
        );
        assert!(admission.per_client.is_empty(), "no per-IP cap, no map");
        drop((one, two));

        let mut admission = Admission::new(100, 1);
        let slots: Vec<Slot> = (0..50)
            .map(|i| {
                admission
                    .admit(ip(&format!("10.0.0.{i}")), false)
                    .expect("admitted")
            })
            .collect();
        assert_eq!(admission.per_client.len(), 50);
        drop(slots);
        let _last = admission.admit(ip("10.0.1.1"), false).expect("admitted");
        assert_eq!(
            admission.per_client.len(),
            1,
            "closed clients are forgotten"
        );
        assert_eq!(admission.open, 1);
    }
}
