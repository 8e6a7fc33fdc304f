//! Live connections of sessions: the tunnels and streaming responses of
//! authenticated requests, each watched with the identity it was opened
//! with, so that a revoked session's connections end within a moment
//! instead of living on.
//!
//! Input: registrations from the request path (a verified [`Identity`] and
//! its app's [`AppAuth`]), each answered with a token to end the connection
//! by and a [`Registration`] that the connection holds, which takes the entry
//! out again when dropped; and the revocation list, through the store.
//! Output: the token of every registered connection whose session is
//! revoked, fired by [`Watchlist::watch`] at most [`SWEEP_EVERY`] after the
//! revocation reached this replica.
//!
//! The steady state costs nothing per connection: the watcher wakes every
//! [`SWEEP_EVERY`], loads the revocation list's generation and sleeps again
//! unless it moved on; only then does it look at every registered
//! connection ([`AppAuth::live`], a few local lookups per session). A
//! registration is one short lock of one of [`SHARDS`] maps (the one of the
//! thread it runs on; no counter shared across threads). The list holds no
//! more entries than there are tunnels and streaming answers open, which
//! the connection, stream and tunnel limits bound.
//!
//! A connection ends with its *session*, not with the JWT it was opened with:
//! it is never cut at the token's `exp`. A WebSocket client cannot refresh
//! cookies over an open socket, so cutting at `exp` would break every
//! long-lived socket once per JWT lifetime. A logout, or any revocation
//! covering the session (its `sid`, its user, its client), ends it;
//! `server.tunnel_max_lifetime` bounds every tunnel anyway. An IdP that
//! issues no `sid` leaves only the token itself to name a session by: a
//! tunnel opened with an earlier token of such a session is ended by a
//! revocation of its user or client, not by a logout made with a later
//! token.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::app::{unix_now, AppAuth};
use super::model::Identity;
use crate::store::Store;

/// How often the watcher looks at the revocation list's generation: a
/// revocation ends its session's connections within this (plus its own
/// delivery to this replica).
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Maps the registrations are spread over: threads take them in turn, so
/// that connections opening and closing on different threads (the gateway's
/// workers each serve their own) rarely meet on one lock.
pub const SHARDS: usize = 32;

/// The registered connections, by shard.
#[derive(Debug)]
pub struct Watchlist {
    shards: Box<[Arc<Mutex<Shard>>]>,
}

/// One shard's connections, by registration number.
#[derive(Debug, Default)]
struct Shard {
    connections: HashMap<u64, Watched, BuildHasherDefault<Numbers>>,
    /// The next registration number.
    next: u64,
}

/// Hashes registration numbers: unique, handed out in order and never
/// chosen by a client, so a multiplication spreads them well enough (no
/// SipHash needed against flooding).
#[derive(Debug, Default)]
struct Numbers(u64);

impl Hasher for Numbers {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(FIBONACCI);
    }
}

/// 2⁶⁴ divided by the golden ratio, made odd: multiplying by it spreads
/// consecutive numbers over the whole range (Fibonacci hashing).
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// One registered connection.
#[derive(Debug)]
struct Watched {
    identity: Arc<Identity>,
    auth: Arc<AppAuth>,
    end: CancellationToken,
}

/// A connection's place on the [`Watchlist`]; dropping it takes the
/// connection off.
#[derive(Debug)]
pub struct Registration {
    shard: Arc<Mutex<Shard>>,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.shard).connections.remove(&self.key);
    }
}

impl Default for Watchlist {
    fn default() -> Watchlist {
        Watchlist {
            shards: (0..SHARDS).map(|_| Arc::default()).collect(),
        }
    }
}

impl Watchlist {
    /// Watches a connection opened by `identity` on the app of `auth`, until
    /// the returned registration is dropped; the token is fired when the
    /// session is revoked (already, if it is by now).
    pub fn register(
        &self,
        identity: Arc<Identity>,
        auth: Arc<AppAuth>,
    ) -> (CancellationToken, Registration) {
        let end = CancellationToken::new();
        let home = &self.shards[home_shard()];
        let mut shard = lock(home);
        let key = shard.next;
        shard.next += 1;
        let watched = shard.connections.entry(key).insert_entry(Watched {
            identity,
            auth,
            end: end.clone(),
        });
        let watched = watched.get();
        // Looked at once more, after the insert: a revocation that arrived
        // since the request's own check may have been swept before this entry
        // was there to be seen. One that arrives from here on moves the
        // generation past what this check read, and the next sweep, which
        // takes this shard's lock after that, sees the entry.
        if !watched.auth.live_now(&watched.identity) {
            end.cancel();
        }
        drop(shard);
        let registration = Registration {
            shard: home.clone(),
            key,
        };
        (end, registration)
    }

    /// Fires the token of every registered connection whose session is
    /// revoked at `now`; returns how many were fired (each once).
    pub fn sweep(&self, now: u64) -> usize {
        let mut fired = 0;
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for watched in shard.connections.values() {
                if !watched.end.is_cancelled() && !watched.auth.live(&watched.identity, now) {
                    watched.end.cancel();
                    fired += 1;
                }
            }
        }
        fired
    }

    /// Sweeps whenever the revocation list of `store` has grown, looking
    /// every [`SWEEP_EVERY`], until `stop` fires.
    pub async fn watch(self: Arc<Self>, store: Arc<Store>, stop: CancellationToken) {
        let mut seen = store.revocations();
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let generation = store.revocations();
            if generation == seen {
                continue;
            }
            seen = generation;
            let fired = self.sweep(unix_now());
            if fired > 0 {
                tracing::info!(
                    connections = fired,
                    "live connections of revoked sessions ended"
                );
            }
        }
    }

    /// How many connections are registered.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).connections.len())
            .sum()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The shard of the calling thread: each thread takes the next one when it
/// first registers.
fn home_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    HOME.with(|home| *home)
}

/// A shard's map; a thread that panicked holding it left it consistent
/// (every change is one insert or remove).
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::auth::{app, revocation};
    use crate::config::Config;
    use crate::store::revoked::Entry;

    const CONFIG: &str = r#"
        [idp]
        token_endpoint = "http://idp.test/token"
        jwks_uri = "http://idp.test/jwks"

        [session]
        cookie_key = "0123456789abcdef0123456789abcdef0123456789abcdef"

        [[apps]]
        name = "store"
        hosts = ["store.localhost"]
        upstream = "http://127.0.0.1:3001"
        client_id = "store"
        client_secret = "store-secret"
    "#;

    const NOW: u64 = 1_800_000_000;

    struct World {
        store: Arc<Store>,
        auth: Arc<AppAuth>,
        list: Arc<Watchlist>,
    }

    fn world() -> World {
        let config = Config::from_toml(CONFIG).expect("valid config");
        let key = config
            .session
            .cookie_key
            .as_ref()
            .map(|k| k.expose().as_bytes());
        let store = Arc::new(Store::new(&config.store, &config.login, key).expect("store"));
        let built = app::build(&config.apps, &config.session, &store).expect("built");
        let auth = built.apps[0].clone().expect("an app with login");
        World {
            store,
            auth,
            list: Arc::default(),
        }
    }

    impl World {
        /// A verified identity of `sub` in session `sid`, issued before NOW.
        fn identity(&self, sub: &str, sid: &str) -> Arc<Identity> {
            let store = &self.store;
            Arc::new(Identity {
                token: format!("token-of-{sid}").into(),
                exp: NOW + 60,
                sub: Some(sub.to_owned()),
                sid: Some(sid.to_owned()),
                roles: Vec::new(),
                headers: Vec::new(),
                iat: NOW - 60,
                revocations: [
                    revocation::session(store, "store", sid),
                    revocation::user(store, sub, None),
                    revocation::user(store, sub, Some("store")),
                ]
                .map(Box::from)
                .into(),
                live_at: AtomicU64::new(u64::MAX),
            })
        }

        async fn log_out(&self, sid: &str) {
            let entry = Entry {
                before: u64::MAX,
                until: NOW + 120,
            };
            let id = revocation::session(&self.store, "store", sid);
            self.store.revoke(&id, entry, NOW).await;
        }
    }

    #[test]
    fn a_registration_is_taken_off_when_dropped() {
        let w = world();
        let (_, a) = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        let (_, b) = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        let (_, c) = w.list.register(w.identity("bob", "s2"), w.auth.clone());
        assert_eq!(w.list.len(), 3);
        drop(b);
        assert_eq!(w.list.len(), 2);
        drop((a, c));
        assert!(w.list.is_empty());
        // Many, from threads of their own (so on several shards), dropped
        // on other threads than theirs: nothing left behind.
        let many: Vec<Registration> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let w = &w;
                    scope.spawn(move || {
                        (0..100)
                            .map(|i| {
                                let sid = format!("s{t}-{i}");
                                w.list.register(w.identity("carol", &sid), w.auth.clone()).1
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().expect("registering thread"))
                .collect()
        });
        assert_eq!(w.list.len(), 400);
        let used = w
            .list
            .shards
            .iter()
            .filter(|s| !lock(s).connections.is_empty());
        assert!(used.count() > 1, "one shard for every thread");
        drop(many);
        assert!(w.list.is_empty());
    }

    #[tokio::test]
    async fn a_sweep_fires_only_the_revoked_sessions_connections_once() {
        let w = world();
        let (tunnel, on_tunnel) = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        let (stream, on_stream) = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        let (other, _on_other) = w.list.register(w.identity("bob", "s2"), w.auth.clone());
        assert_eq!(w.list.sweep(NOW), 0);

        w.log_out("s1").await;
        assert_eq!(w.list.sweep(NOW), 2);
        assert!(tunnel.is_cancelled());
        assert!(stream.is_cancelled());
        assert!(!other.is_cancelled());
        // Fired already: not counted again; still registered until dropped.
        assert_eq!(w.list.sweep(NOW), 0);
        assert_eq!(w.list.len(), 3);
        drop((on_tunnel, on_stream));
        assert_eq!(w.list.len(), 1);
    }

    #[tokio::test]
    async fn a_connection_outlives_its_tokens_exp_but_not_its_session() {
        let w = world();
        let identity = w.identity("alice", "s1");
        let after_exp = identity.exp + 3600;
        let (tunnel, _on_tunnel) = w.list.register(identity, w.auth.clone());
        assert_eq!(w.list.sweep(after_exp), 0, "not cut at exp");
        assert!(!tunnel.is_cancelled());
        // The session goes on with later tokens; a logout made with one of
        // them ends the tunnel opened with the first.
        let entry = Entry {
            before: u64::MAX,
            until: after_exp + 60,
        };
        let id = revocation::session(&w.store, "store", "s1");
        w.store.revoke(&id, entry, after_exp).await;
        assert_eq!(w.list.sweep(after_exp), 1);
        assert!(tunnel.is_cancelled());
    }

    #[tokio::test]
    async fn a_connection_registered_after_its_revocation_is_fired_at_once() {
        let w = world();
        w.log_out("s1").await;
        // The watcher's sweep for that revocation found nothing: this
        // connection's request was checked just before it, and registers
        // only now.
        assert_eq!(w.list.sweep(NOW), 0);
        let (late, _on_late) = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        assert!(late.is_cancelled());
        let (other, _on_other) = w.list.register(w.identity("bob", "s2"), w.auth.clone());
        assert!(!other.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_sweeps_when_the_list_grows_and_stops_with_its_token() {
        let w = world();
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(w.list.clone().watch(w.store.clone(), stop.clone()));
        let (tunnel, _on_tunnel) = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        tokio::time::sleep(SWEEP_EVERY * 4).await;
        assert!(!tunnel.is_cancelled());

        // Revoked through the store like any logout, at the real time.
        let entry = Entry {
            before: u64::MAX,
            until: unix_now() + 120,
        };
        let id = revocation::session(&w.store, "store", "s1");
        w.store.revoke(&id, entry, unix_now()).await;
        tokio::time::timeout(SWEEP_EVERY * 2, tunnel.cancelled())
            .await
            .expect("fired within one sweep period");

        stop.cancel();
        watcher.await.expect("the watcher ends with its token");
    }
}
