//! Shared state: what replicas must agree on, behind one small interface
//! ([`Store`]) with an in-process and a Redis implementation.
//!
//! Four things live here: the cross-replica refresh single-flight and its
//! grace results ([`Store::once`]), the login throttle buckets
//! ([`Store::throttle`]), and the revocation list ([`Store::revoke`],
//! [`Store::is_revoked`]). The request path calls these and never learns
//! which implementation runs.
//!
//! With `[store] kind = "memory"` everything stays in this process (one
//! replica). With `"redis"`, the same calls go to Redis ([`remote`]), and
//! fall back to the in-process state whenever Redis is unreachable, slow or
//! restarted: a request never waits for Redis longer than `store.timeout`,
//! and a Redis failure never logs anyone out. The revocation list is always
//! read from the local copy ([`revoked`]), which Redis pub/sub keeps in step.
//!
//! Nothing secret goes into Redis in the clear: keys are keyed hashes
//! ([`Store::digest`]), and the single-flight's shared results arrive here
//! already sealed by the caller.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{LoginConfig, StoreConfig, StoreKind};

pub mod model;
pub mod remote;
pub mod revoked;
pub mod seen;
pub mod throttle;

use model::random_bytes;
pub use model::{unix_now, Coordination, Flight};
use remote::Remote;
pub use revoked::Entry;
use revoked::Revoked;
use throttle::Throttle;

/// Which login throttle an attempt counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Per client address (`login.per_ip_*`).
    Ip,
    /// Per IdP and username (`login.per_user_*`).
    User,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::Ip => "ip",
            Bucket::User => "user",
        }
    }
}

/// The burst and refill rate of one throttle.
#[derive(Debug, Clone, Copy)]
struct Limit {
    burst: u32,
    per_minute: u32,
}

/// The shared-state seam.
pub struct Store {
    by_ip: Throttle,
    by_user: Throttle,
    limits: [Limit; 2],
    revoked: Arc<Revoked>,
    seen: seen::Seen,
    remote: Option<Arc<Remote>>,
    hasher: hmac::Key,
    description: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl Store {
    /// The store `config` describes, with the throttle limits of `login`.
    /// `secret` keys the hashes that name Redis keys (every replica must
    /// use the same: the session's cookie key; `None`: a random one, for a
    /// gateway without login). Connects to nothing yet (see
    /// [`Store::start`]).
    pub fn new(
        config: &StoreConfig,
        login: &LoginConfig,
        secret: Option<&[u8]>,
    ) -> Result<Store, String> {
        let random = random_bytes::<32>();
        let secret = secret.unwrap_or(&random);
        let revoked = Arc::new(Revoked::default());
        let remote = match &config.kind {
            StoreKind::Memory => None,
            StoreKind::Redis(settings) => Some(Arc::new(
                Remote::new(
                    settings,
                    &config.key_prefix,
                    config.timeout,
                    revoked.clone(),
                )
                .map_err(|e| format!("store.url: {e}"))?,
            )),
        };
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&root, b"gateway store key names v1");
        Ok(Store {
            by_ip: Throttle::new(
                login.per_ip_burst,
                login.per_ip_per_minute,
                login.throttle_max_keys,
            ),
            by_user: Throttle::new(
                login.per_user_burst,
                login.per_user_per_minute,
                login.throttle_max_keys,
            ),
            limits: [
                Limit {
                    burst: login.per_ip_burst,
                    per_minute: login.per_ip_per_minute,
                },
                Limit {
                    burst: login.per_user_burst,
                    per_minute: login.per_user_per_minute,
                },
            ],
            revoked,
            seen: seen::Seen::default(),
            remote,
            hasher: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            description: config.describe(),
        })
    }

    /// An in-process store (for tests and tools).
    pub fn memory(login: &LoginConfig) -> Store {
        let config = StoreConfig {
            kind: StoreKind::Memory,
            key_prefix: String::new(),
            timeout: Duration::from_millis(50),
        };
        match Store::new(&config, login, None) {
            Ok(store) => store,
            Err(_) => unreachable!("a memory store needs no connection settings"),
        }
    }

    /// Starts connecting to Redis and keeping the revocation list in step,
    /// until `cancel` fires; nothing for a memory store.
    pub fn start(&self, cancel: &CancellationToken) {
        if let Some(remote) = &self.remote {
            remote.start(cancel);
        }
    }

    /// What `gateway check` and the start-up log say about the store.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Whether replicas share this store's state right now: Redis is
    /// configured and reachable. A memory store is never shared.
    pub fn is_shared(&self) -> bool {
        self.remote.as_ref().is_some_and(|r| r.is_up())
    }

    /// A keyed hash of `parts` (32 hex digits) that names a key in the
    /// store: no token, username or address goes into Redis as it is, and
    /// nobody without the cookie key can tell which value a name stands for.
    pub fn digest(&self, parts: &[&[u8]]) -> String {
        let mut ctx = hmac::Context::with_key(&self.hasher);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let tag = ctx.sign();
        let mut out = String::with_capacity(32);
        for b in &tag.as_ref()[..16] {
            out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        out
    }

    /// Runs `work` once across replicas for `key` (a [`Store::digest`]):
    /// the replica that wins the lock runs it and stores what it returns to
    /// share (sealed by the caller; `None` shares nothing) for `grace`;
    /// replicas asking meanwhile, or within `grace`, get that instead of
    /// running it. Without Redis (memory store, or Redis unreachable) the
    /// work simply runs here: [`Flight::Led`] for a memory store,
    /// [`Flight::Alone`] for a store that should have been shared. The work
    /// is told whether another replica's result for `key` within `grace`
    /// could be missing ([`Coordination`]), so that it does not share, or
    /// act on, an outcome that may only mean "done elsewhere".
    pub async fn once<V, Fut>(
        &self,
        key: &str,
        grace: Duration,
        work: impl FnOnce(Coordination) -> Fut,
    ) -> Flight<V>
    where
        Fut: Future<Output = (V, Option<String>)>,
    {
        match &self.remote {
            None => Flight::Led(work(Coordination::Sure).await.0),
            Some(remote) => remote.once(key, grace, work).await,
        }
    }

    /// Takes one login attempt from `key`'s bucket, or says how long until
    /// one is available. Shared by every replica while Redis is reachable;
    /// this replica's own buckets otherwise.
    pub async fn throttle(&self, bucket: Bucket, key: &str) -> Result<(), Duration> {
        if let Some(remote) = self.remote.as_ref().filter(|r| r.is_up()) {
            let limit = self.limits[bucket as usize];
            let name = self.digest(&[bucket.name().as_bytes(), key.as_bytes()]);
            if let Some(verdict) = remote
                .throttle(bucket.name(), &name, limit.burst, limit.per_minute)
                .await
            {
                return verdict;
            }
        }
        let local = match bucket {
            Bucket::Ip => &self.by_ip,
            Bucket::User => &self.by_user,
        };
        local.check(key, Instant::now())
    }

    /// Records `id` (a [`Store::digest`] naming a session, a user, …) as
    /// revoked for the tokens `entry` covers: at once on this replica, and
    /// on every other within moments through Redis (or once Redis is back).
    pub async fn revoke(&self, id: &str, entry: Entry, now: u64) {
        self.revoked.insert(id, entry, now);
        if let Some(remote) = &self.remote {
            remote.revoke(id, entry, now).await;
        }
    }

    /// Whether a token under `id` issued at `iat` is revoked at `now`: a
    /// local lookup, never a Redis call.
    pub fn is_revoked(&self, id: &str, iat: u64, now: u64) -> bool {
        self.revoked.contains(id, iat, now)
    }

    /// Whether `id` (of `kind`: `event`, `jti`) is seen here for the first
    /// time within `ttl`, on any replica while Redis answers (this
    /// replica's memory otherwise): repeated deliveries are then ignored.
    pub async fn first_seen(&self, kind: &str, id: &str, ttl: Duration) -> bool {
        let first_here = self
            .seen
            .first(&format!("{kind}\n{id}"), ttl, Instant::now());
        match self.remote.as_ref().filter(|r| r.is_up()) {
            Some(remote) => {
                let name = self.digest(&[b"seen", kind.as_bytes(), id.as_bytes()]);
                remote.first_seen(&name, ttl).await.unwrap_or(first_here) && first_here
            }
            None => first_here,
        }
    }

    /// Records what is known of one session of a user (`user`: a
    /// [`Store::digest`]) under `field`, for `ttl`: `first` keeps an
    /// existing value (the login), otherwise the value replaces it (the
    /// last refresh). Only with Redis (a memory store keeps no such list);
    /// best effort.
    pub async fn record_session(
        &self,
        user: &str,
        field: &str,
        value: &str,
        first: bool,
        ttl: Duration,
    ) {
        if let Some(remote) = self.remote.as_ref().filter(|r| r.is_up()) {
            remote.record_session(user, field, value, first, ttl).await;
        }
    }

    /// What [`Store::record_session`] kept for `user`, by field; `None`
    /// without Redis (or when it does not answer).
    pub async fn sessions(&self, user: &str) -> Option<Vec<(String, String)>> {
        self.remote.as_ref()?.sessions(user).await
    }

    /// Moves on whenever an entry is added to the revocation list: a value
    /// checked against the list at one generation needs no new check until
    /// the generation changes.
    pub fn revocations(&self) -> u64 {
        self.revoked.generation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> LoginConfig {
        LoginConfig {
            per_ip_burst: 2,
            per_ip_per_minute: 60,
            per_user_burst: 1,
            per_user_per_minute: 60,
            throttle_max_keys: 100,
            min_failure_time: Duration::ZERO,
            form_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn digests_are_keyed_and_unambiguous() {
        let a = Store::memory(&login());
        let b = Store::memory(&login());
        let d = a.digest(&[b"app", b"token"]);
        assert_eq!(d.len(), 32);
        assert!(d.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(d, a.digest(&[b"app", b"token"]));
        // Another key, other names; part boundaries count.
        assert_ne!(d, b.digest(&[b"app", b"token"]));
        assert_ne!(a.digest(&[b"ab", b"c"]), a.digest(&[b"a", b"bc"]));
    }

    #[tokio::test]
    async fn a_memory_store_runs_the_work_here_and_throttles_per_bucket() {
        let store = Store::memory(&login());
        assert!(!store.is_shared());
        match store
            .once("k", Duration::from_secs(1), |c| async move {
                assert_eq!(c, Coordination::Sure);
                (7, None)
            })
            .await
        {
            Flight::Led(7) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(store.throttle(Bucket::Ip, "192.0.2.1").await, Ok(()));
        assert_eq!(store.throttle(Bucket::Ip, "192.0.2.1").await, Ok(()));
        assert!(store.throttle(Bucket::Ip, "192.0.2.1").await.is_err());
        assert_eq!(store.throttle(Bucket::User, "192.0.2.1").await, Ok(()));
        assert!(store.throttle(Bucket::User, "192.0.2.1").await.is_err());
    }

    #[tokio::test]
    async fn revocations_are_local_lookups_that_move_the_generation() {
        let store = Store::memory(&login());
        let g = store.revocations();
        let entry = Entry {
            before: u64::MAX,
            until: 200,
        };
        store.revoke("s1", entry, 100).await;
        assert!(store.is_revoked("s1", 0, 150));
        assert!(!store.is_revoked("s1", 0, 201));
        assert_ne!(store.revocations(), g);
    }
}
