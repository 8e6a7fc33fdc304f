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
//! registration is one short lock of one of [`SHARDS`] maps.
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
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Maps the registrations are spread over, so that connections opening and
/// closing on different threads rarely meet on one lock.
pub const SHARDS: usize = 32;

/// The registered connections, by registration number.
#[derive(Debug)]
pub struct Watchlist {
    shards: Box<[Mutex<HashMap<u64, Watched>>]>,
    next: AtomicU64,
}

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
    list: Arc<Watchlist>,
    key: u64,
    end: CancellationToken,
}

impl Registration {
    /// The token fired when the connection's session is revoked.
    pub fn token(&self) -> CancellationToken {
        self.end.clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.list.shard(self.key).remove(&self.key);
    }
}

impl Default for Watchlist {
    fn default() -> Watchlist {
        Watchlist {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            next: AtomicU64::new(0),
        }
    }
}

impl Watchlist {
    /// Watches a connection opened by `identity` on the app of `auth`, until
    /// the returned registration is dropped. Its token is already fired if
    /// the session is revoked by now.
    pub fn register(self: &Arc<Self>, identity: Arc<Identity>, auth: Arc<AppAuth>) -> Registration {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let end = CancellationToken::new();
        let mut shard = self.shard(key);
        let watched = shard.entry(key).insert_entry(Watched {
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
        if !watched.auth.live(&watched.identity, unix_now()) {
            end.cancel();
        }
        drop(shard);
        Registration {
            list: self.clone(),
            key,
            end,
        }
    }

    /// Fires the token of every registered connection whose session is
    /// revoked at `now`; returns how many were fired (each once).
    pub fn sweep(&self, now: u64) -> usize {
        let mut fired = 0;
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for watched in shard.values() {
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
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, HashMap<u64, Watched>> {
        lock(&self.shards[(key % SHARDS as u64) as usize])
    }
}

/// A shard's map; a thread that panicked holding it left it consistent
/// (every change is one insert or remove).
fn lock(shard: &Mutex<HashMap<u64, Watched>>) -> MutexGuard<'_, HashMap<u64, Watched>> {
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
        let a = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        let b = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        let c = w.list.register(w.identity("bob", "s2"), w.auth.clone());
        assert_eq!(w.list.len(), 3);
        drop(b);
        assert_eq!(w.list.len(), 2);
        drop((a, c));
        assert!(w.list.is_empty());
        // Many, spread over every shard, and nothing left behind.
        let many: Vec<Registration> = (0..10 * SHARDS)
            .map(|i| {
                w.list
                    .register(w.identity("carol", &format!("s{i}")), w.auth.clone())
            })
            .collect();
        assert_eq!(w.list.len(), 10 * SHARDS);
        assert!(w.list.shards.iter().all(|s| lock(s).len() == 10));
        drop(many);
        assert!(w.list.is_empty());
    }

    #[tokio::test]
    async fn a_sweep_fires_only_the_revoked_sessions_connections_once() {
        let w = world();
        let tunnel = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        let stream = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        let other = w.list.register(w.identity("bob", "s2"), w.auth.clone());
        assert_eq!(w.list.sweep(NOW), 0);

        w.log_out("s1").await;
        assert_eq!(w.list.sweep(NOW), 2);
        assert!(tunnel.token().is_cancelled());
        assert!(stream.token().is_cancelled());
        assert!(!other.token().is_cancelled());
        // Fired already: not counted again; still registered until dropped.
        assert_eq!(w.list.sweep(NOW), 0);
        assert_eq!(w.list.len(), 3);
        drop((tunnel, stream));
        assert_eq!(w.list.len(), 1);
    }

    #[tokio::test]
    async fn a_connection_outlives_its_tokens_exp_but_not_its_session() {
        let w = world();
        let identity = w.identity("alice", "s1");
        let after_exp = identity.exp + 3600;
        let tunnel = w.list.register(identity, w.auth.clone());
        assert_eq!(w.list.sweep(after_exp), 0, "not cut at exp");
        assert!(!tunnel.token().is_cancelled());
        // The session goes on with later tokens; a logout made with one of
        // them ends the tunnel opened with the first.
        let entry = Entry {
            before: u64::MAX,
            until: after_exp + 60,
        };
        let id = revocation::session(&w.store, "store", "s1");
        w.store.revoke(&id, entry, after_exp).await;
        assert_eq!(w.list.sweep(after_exp), 1);
        assert!(tunnel.token().is_cancelled());
    }

    #[tokio::test]
    async fn a_connection_registered_after_its_revocation_is_fired_at_once() {
        let w = world();
        w.log_out("s1").await;
        // The watcher's sweep for that revocation found nothing: this
        // connection's request was checked just before it, and registers
        // only now.
        assert_eq!(w.list.sweep(NOW), 0);
        let late = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        assert!(late.token().is_cancelled());
        let other = w.list.register(w.identity("bob", "s2"), w.auth.clone());
        assert!(!other.token().is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_sweeps_when_the_list_grows_and_stops_with_its_token() {
        let w = world();
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(w.list.clone().watch(w.store.clone(), stop.clone()));
        let tunnel = w.list.register(w.identity("alice", "s1"), w.auth.clone());
        tokio::time::sleep(SWEEP_EVERY * 4).await;
        assert!(!tunnel.token().is_cancelled());

        // Revoked through the store like any logout, at the real time.
        let entry = Entry {
            before: u64::MAX,
            until: unix_now() + 120,
        };
        let id = revocation::session(&w.store, "store", "s1");
        w.store.revoke(&id, entry, unix_now()).await;
        tokio::time::timeout(SWEEP_EVERY * 2, tunnel.token().cancelled())
            .await
            .expect("fired within one sweep period");

        stop.cancel();
        watcher.await.expect("the watcher ends with its token");
    }
}
