//! The Redis implementation of the store: the cross-replica single-flight
//! lock and its shared results, GCRA throttle buckets, and the revocation
//! list's shared copy with its pub/sub feed.
//!
//! Every operation is bounded by `store.timeout`. An operation that fails
//! or gets no answer in time goes on without Redis; a failed connection, or
//! a probe (woken at once) that gets no answer either, marks the store down
//! (logged once, `gateway_store_up` 0): one slow answer on a busy host is
//! not an outage. While it is down the callers use their in-process
//! fallbacks at once, without trying Redis. A
//! background task probes Redis and brings the store back up by itself,
//! pushing the revocations this replica knows back into Redis (a restart or
//! `FLUSHALL` loses them there) and telling the other replicas to reload.
//!
//! Key layout (`P` is `store.key_prefix`, `H` a keyed hash):
//! - `P{H}:lock`, `P{H}:done`: one refresh's lock (a random owner id, with a
//!   lease renewed while the IdP call runs) and its sealed result, kept for
//!   `session.refresh_grace`;
//! - `Pthrottle:ip:{H}`, `Pthrottle:user:{H}`: a bucket's theoretical
//!   arrival time (GCRA), expiring once the bucket is full again;
//! - `P{revoked}`: the revocation list, a sorted set of `"<before> <id>"`
//!   members scored by the Unix time they expire at (`before`: the entry
//!   refuses tokens issued at or before it); `P{revoked}:epoch` marks that
//!   this Redis has been given the list (gone after a restart or
//!   `FLUSHALL`), and holds the Unix time (Redis's clock) of the last moment
//!   shared results may have gone missing: Redis found without it, or a
//!   replica back from an outage (during which it did work alone,
//!   unshared). Work that wins a lock within the grace period after that
//!   moment is told it cannot be sure no other replica did it unseen
//!   ([`Coordination::Unsure`]);
//! - channel `Prevoked`: `"<until> <before> <id>"` for each new entry, `"*"`
//!   to ask every replica to reload the set.
//!
//! The `{…}` hash tags keep the keys one script touches in one Redis
//! Cluster slot; this version connects to a single Redis endpoint (a
//! standalone server, or a managed service's primary endpoint).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, IntoConnectionInfo, Script};
use tokio_util::sync::CancellationToken;

use super::model::{random_bytes, unix_now, Coordination, Flight};
use super::revoked::{Entry, Revoked};
use crate::config::RedisSettings;
use crate::ops::metrics::StoreMetrics;

/// How long a refresh lock holds without renewal (a replica that dies
/// mid-refresh blocks the others this long at most).
const LEASE: Duration = Duration::from_secs(5);
/// How long a replica waits for another's refresh before doing it alone.
const WAIT_MAX: Duration = Duration::from_secs(30);
/// Slow answers to the lock script a refresh waits out before refreshing
/// without the other replicas (a failed connection or the probe marking
/// Redis down ends the wait at once).
const SLOW_ACQUIRES: u32 = 3;
/// Probe interval while Redis answers, and while it does not.
const PROBE_UP: Duration = Duration::from_secs(1);
const PROBE_DOWN: Duration = Duration::from_millis(200);
/// The probe's bound: longer than a request's, since its verdict (down)
/// holds for every request until the next probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// Revocations written per command when pushing the list back.
const CHUNK: usize = 500;
/// The bound on moving the whole revocation list (100,000 entries are a
/// few megabytes).
const BULK_TIMEOUT: Duration = Duration::from_secs(5);

/// `KEYS[1]` lock, `KEYS[2]` done; `ARGV[1]` owner, `ARGV[2]` lease (ms).
/// `{1, result}` if a result is kept, `{2, ""}` if the lock is now ours
/// (also when it already was: an attempt whose answer came too late took
/// it), `{0, ""}` if another replica holds it.
const ACQUIRE: &str = r"
local done = redis.call('GET', KEYS[2])
if done then return {1, done} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
if redis.call('GET', KEYS[1]) == ARGV[1] then return {2, ''} end
return {0, ''}
";

/// `KEYS[1]` lock; `ARGV[1]` owner, `ARGV[2]` lease (ms).
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// `KEYS[1]` lock, `KEYS[2]` done; `ARGV[1]` owner, `ARGV[2]` result ('':
/// none), `ARGV[3]` grace (ms). Stores the result, then releases the lock if
/// it is still ours (compare-and-delete).
const FINISH: &str = r"
if ARGV[2] ~= '' and tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// GCRA. `KEYS[1]` the bucket; `ARGV[1]` emission interval (µs), `ARGV[2]`
/// burst. 0 if allowed (and counted), else the µs to wait (nothing counted:
/// a refused attempt costs nothing). Redis's clock, so replicas' clocks
/// need not agree.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local over = next_tat - now - interval * tonumber(ARGV[2])
if over > 0 then return math.ceil(over) end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
";

/// `KEYS[1]` epoch; `ARGV[1]` `1` to stamp it with Redis's time, `0` to
/// create it (stamped) only if missing. Redis's clock, so replicas' clocks
/// need not agree.
const STAMP: &str = r"
local now = redis.call('TIME')[1]
if ARGV[1] == '1' then
  redis.call('SET', KEYS[1], now)
else
  redis.call('SET', KEYS[1], now, 'NX')
end
return 1
";

/// `KEYS[1]` epoch; `ARGV[1]` grace (s). 1 if the epoch exists and is more
/// than the grace old by Redis's clock, else 0.
const SURE: &str = r"
local at = redis.call('GET', KEYS[1])
if not at then return 0 end
if tonumber(redis.call('TIME')[1]) > tonumber(at) + tonumber(ARGV[1]) then return 1 end
return 0
";

/// The Redis side of the store.
pub struct Remote {
    client: redis::Client,
    pool_size: usize,
    connections: OnceLock<Vec<ConnectionManager>>,
    next: AtomicUsize,
    up: AtomicBool,
    timeout: Duration,
    prefix: String,
    revoked: Arc<Revoked>,
    scripts: Scripts,
    metrics: StoreMetrics,
    /// Wakes the probe at once after a failure (recovery is then prompt).
    wake: tokio::sync::Notify,
    /// A revocation was recorded here but not written to Redis: the probe
    /// pushes the local list back once Redis answers.
    unsynced: AtomicBool,
    /// Work ran here without Redis since the store was last brought up:
    /// its result is in no other replica's reach.
    ran_alone: AtomicBool,
    /// The store has been up once (a first connection ends no outage).
    been_up: AtomicBool,
}

struct Scripts {
    acquire: Script,
    renew: Script,
    finish: Script,
    gcra: Script,
    stamp: Script,
    sure: Script,
}

/// A failed or timed-out operation (already logged and counted).
struct Down;

enum Acquired {
    Done(String),
    Won,
    Busy,
}

impl Remote {
    /// A client for `settings`; connects later, in [`Remote::start`].
    pub fn new(
        settings: &RedisSettings,
        prefix: &str,
        timeout: Duration,
        revoked: Arc<Revoked>,
    ) -> Result<Remote, String> {
        let mut info = settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| e.to_string())?;
        if let Some(password) = &settings.password {
            let redis = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info = info.set_redis_settings(redis);
        }
        let client = match &settings.tls_ca {
            Some(ca) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| e.to_string())?;
        Ok(Remote {
            client,
            pool_size: settings.pool_size,
            connections: OnceLock::new(),
            next: AtomicUsize::new(0),
            up: AtomicBool::new(false),
            timeout,
            prefix: prefix.to_owned(),
            revoked,
            scripts: Scripts {
                acquire: Script::new(ACQUIRE),
                renew: Script::new(RENEW),
                finish: Script::new(FINISH),
                gcra: Script::new(GCRA),
                stamp: Script::new(STAMP),
                sure: Script::new(SURE),
            },
            metrics: StoreMetrics::new(),
            wake: tokio::sync::Notify::new(),
            unsynced: AtomicBool::new(false),
            ran_alone: AtomicBool::new(false),
            been_up: AtomicBool::new(false),
        })
    }

    /// Whether Redis answered the last operation or probe.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Spawns the probe (connects, watches, brings the store back up) and
    /// the revocation feed, until `cancel` fires.
    pub fn start(self: &Arc<Self>, cancel: &CancellationToken) {
        self.metrics.up(false);
        tokio::spawn(self.clone().probe(cancel.clone()));
        tokio::spawn(self.clone().feed(cancel.clone()));
    }

    fn connection(&self) -> Option<ConnectionManager> {
        let all = self.connections.get()?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % all.len();
        Some(all[i].clone())
    }

    /// Runs one operation of the request path, bounded by `store.timeout`;
    /// a failure marks the store down.
    async fn op<T, F, Fut>(&self, name: &'static str, f: F) -> Result<T, Down>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.op_within(self.timeout, name, f).await
    }

    /// [`Remote::op`] for background work moving the whole revocation list,
    /// which may take longer than a request may wait.
    async fn bulk<T, F, Fut>(&self, name: &'static str, f: F) -> Result<T, Down>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.op_within(BULK_TIMEOUT.max(self.timeout), name, f)
            .await
    }

    async fn op_within<T, F, Fut>(
        &self,
        timeout: Duration,
        name: &'static str,
        f: F,
    ) -> Result<T, Down>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(connection) = self.connection() else {
            return Err(Down);
        };
        let error = match tokio::time::timeout(timeout, f(connection)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) if name != "probe" => {
                // One slow answer (a busy host) is not an outage: this
                // operation goes on without Redis, and the probe, woken now,
                // decides whether Redis is down.
                self.metrics.error(name);
                tracing::debug!(op = name, "store: no answer in time; going on without it");
                self.wake.notify_one();
                return Err(Down);
            }
            Err(_) => format!("no answer within {}", humantime::format_duration(timeout)),
        };
        self.metrics.error(name);
        self.set_down(name, &error);
        Err(Down)
    }

    fn set_down(&self, op: &str, error: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                op,
                error,
                "store: Redis unreachable; each replica goes on with its own state until it is back"
            );
            self.metrics.up(false);
        }
        self.wake.notify_one();
    }

    fn key(&self, parts: std::fmt::Arguments<'_>) -> String {
        format!("{}{}", self.prefix, parts)
    }

    fn revoked_key(&self) -> String {
        self.key(format_args!("{{revoked}}"))
    }

    fn epoch_key(&self) -> String {
        self.key(format_args!("{{revoked}}:epoch"))
    }

    fn channel(&self) -> String {
        self.key(format_args!("revoked"))
    }

    // --- single-flight ---------------------------------------------------

    /// See [`Store::once`](super::Store::once).
    pub async fn once<V, Fut>(
        self: &Arc<Self>,
        key: &str,
        grace: Duration,
        work: impl FnOnce(Coordination) -> Fut,
    ) -> Flight<V>
    where
        Fut: Future<Output = (V, Option<String>)>,
    {
        if !self.is_up() {
            return self.alone(work).await;
        }
        let lock = self.key(format_args!("{{{key}}}:lock"));
        let done = self.key(format_args!("{{{key}}}:done"));
        let owner = owner_id();
        let deadline = tokio::time::Instant::now() + WAIT_MAX;
        let mut pause = Duration::from_millis(5);
        let mut slow = 0;
        loop {
            match self.acquire(&lock, &done, &owner).await {
                // One slow answer (a burst on a busy host) is not a reason
                // to refresh alone, which an IdP with one-time-use refresh
                // tokens may punish: ask again (the script hands a lock
                // already ours back as won) while the store is up, a few
                // times.
                Err(Down) if self.is_up() && slow < SLOW_ACQUIRES => slow += 1,
                Err(Down) => return self.alone(work).await,
                Ok(Acquired::Done(result)) => return Flight::Joined(result),
                Ok(Acquired::Won) => break,
                Ok(Acquired::Busy) => {}
            }
            if tokio::time::Instant::now() + pause > deadline {
                tracing::warn!("store: another replica's refresh took too long; refreshing here");
                return self.alone(work).await;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        // Ours: keep the lease while the work runs.
        let renewal = {
            let this = self.clone();
            let (lock, owner) = (lock.clone(), owner.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(LEASE / 3);
                tick.tick().await;
                let (script, lock, owner) = (&this.scripts.renew, &lock, &owner);
                loop {
                    tick.tick().await;
                    let lease = millis(LEASE);
                    let renewed = this
                        .op("renew", |mut c| async move {
                            script
                                .key(lock)
                                .arg(owner)
                                .arg(lease)
                                .invoke_async::<i64>(&mut c)
                                .await
                        })
                        .await;
                    if !matches!(renewed, Ok(1)) {
                        return;
                    }
                }
            })
        };
        let coordination = self.coordination(grace).await;
        let (value, share) = work(coordination).await;
        renewal.abort();
        let share = share.unwrap_or_default();
        let grace = millis(grace);
        let (script, lock, done, owner, share) =
            (&self.scripts.finish, &lock, &done, &owner, &share);
        let finished = self
            .op("finish", |mut c| async move {
                script
                    .key(lock)
                    .key(done)
                    .arg(owner)
                    .arg(share)
                    .arg(grace)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        match finished {
            Ok(_) => Flight::Led(value),
            // The others may not see this result: they may refresh too.
            Err(Down) => {
                self.ran_alone.store(true, Ordering::Relaxed);
                Flight::Alone(value)
            }
        }
    }

    /// Runs `work` here without Redis (remembered: once Redis is back, the
    /// others learn that results may be missing).
    async fn alone<V, Fut>(&self, work: impl FnOnce(Coordination) -> Fut) -> Flight<V>
    where
        Fut: Future<Output = (V, Option<String>)>,
    {
        self.ran_alone.store(true, Ordering::Relaxed);
        Flight::Alone(work(Coordination::Unsure).await.0)
    }

    /// Whether every replica's results of the last `grace` are in Redis:
    /// the epoch (see the module doc) exists and is older than `grace`.
    async fn coordination(&self, grace: Duration) -> Coordination {
        let (script, epoch) = (&self.scripts.sure, &self.epoch_key());
        let grace = grace.as_secs();
        let sure = self
            .op("epoch", |mut c| async move {
                script
                    .key(epoch)
                    .arg(grace)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        match sure {
            Ok(1) => Coordination::Sure,
            _ => Coordination::Unsure,
        }
    }

    async fn acquire(&self, lock: &str, done: &str, owner: &str) -> Result<Acquired, Down> {
        let lease = millis(LEASE);
        let script = &self.scripts.acquire;
        let (code, result): (i64, String) = self
            .op("acquire", |mut c| async move {
                script
                    .key(lock)
                    .key(done)
                    .arg(owner)
                    .arg(lease)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(match code {
            1 => Acquired::Done(result),
            2 => Acquired::Won,
            _ => Acquired::Busy,
        })
    }

    // --- throttle --------------------------------------------------------

    /// One attempt from the bucket `name` of kind `kind`: `None` if Redis
    /// did not answer (the caller falls back to its own bucket).
    pub async fn throttle(
        &self,
        kind: &str,
        name: &str,
        burst: u32,
        per_minute: u32,
    ) -> Option<Result<(), Duration>> {
        let key = self.key(format_args!("throttle:{kind}:{{{name}}}"));
        let interval = 60_000_000 / u64::from(per_minute.max(1));
        let (script, key) = (&self.scripts.gcra, &key);
        let wait: i64 = self
            .op("throttle", |mut c| async move {
                script
                    .key(key)
                    .arg(interval)
                    .arg(burst.max(1))
                    .invoke_async(&mut c)
                    .await
            })
            .await
            .ok()?;
        Some(match u64::try_from(wait) {
            Ok(0) | Err(_) => Ok(()),
            Ok(micros) => Err(Duration::from_micros(micros)),
        })
    }

    /// Whether the id named `name` was not seen within `ttl` on any replica
    /// (`SET NX`); `None` if Redis did not answer.
    pub async fn first_seen(&self, name: &str, ttl: Duration) -> Option<bool> {
        let key = &self.key(format_args!("seen:{{{name}}}"));
        let ttl = millis(ttl).max(1);
        let set: Option<String> = self
            .op("seen", |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut c)
                    .await
            })
            .await
            .ok()?;
        Some(set.is_some())
    }

    /// See [`Store::record_session`](super::Store::record_session).
    pub async fn record_session(
        &self,
        user: &str,
        field: &str,
        value: &str,
        first: bool,
        ttl: Duration,
    ) {
        let key = &self.key(format_args!("sessions:{{{user}}}"));
        let ttl = millis(ttl).max(1);
        let _ = self
            .op("sessions", |mut c| async move {
                redis::pipe()
                    .cmd(if first { "HSETNX" } else { "HSET" })
                    .arg(key)
                    .arg(field)
                    .arg(value)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(key)
                    .arg(ttl)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
    }

    /// See [`Store::sessions`](super::Store::sessions).
    pub async fn sessions(&self, user: &str) -> Option<Vec<(String, String)>> {
        let key = &self.key(format_args!("sessions:{{{user}}}"));
        self.bulk("sessions", |mut c| async move { c.hgetall(key).await })
            .await
            .ok()
    }

    // --- revocation ------------------------------------------------------

    /// Writes a revocation already recorded locally to Redis and tells the
    /// other replicas. If Redis does not answer, the probe writes it (with
    /// every other local entry) once Redis is back.
    pub async fn revoke(&self, id: &str, entry: Entry, now: u64) {
        if !self.is_up() {
            self.unsynced.store(true, Ordering::Relaxed);
            return;
        }
        let (set, channel) = (&self.revoked_key(), &self.channel());
        let Entry { before, until } = entry;
        let member = &format!("{before} {id}");
        let message = &format!("{until} {before} {id}");
        let written = self
            .op("revoke", |mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("ZADD")
                    .arg(set)
                    .arg("GT")
                    .arg(until)
                    .arg(member)
                    .ignore()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(set)
                    .arg("-inf")
                    .arg(now)
                    .ignore()
                    .publish(channel, message)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        if written.is_err() {
            self.unsynced.store(true, Ordering::Relaxed);
        }
    }

    /// Reads the shared revocation list into the local one.
    async fn reload(&self) -> Result<(), Down> {
        let set = &self.revoked_key();
        let now = unix_now();
        let entries: Vec<(String, u64)> = self
            .bulk("reload", |mut c| async move {
                c.zrangebyscore_withscores(set, now + 1, "+inf").await
            })
            .await?;
        for (member, until) in entries {
            if let Some((before, id)) = member.split_once(' ') {
                if let Ok(before) = before.parse() {
                    self.revoked.insert(id, Entry { before, until }, now);
                }
            }
        }
        self.revoked.purge(now);
        Ok(())
    }

    /// Pushes every local revocation into Redis (after it was restarted or
    /// flushed, or missed this replica's writes) and asks every replica to
    /// reload.
    async fn push_back(&self) -> Result<(), Down> {
        let now = unix_now();
        let entries = self.revoked.entries(now);
        let set = self.revoked_key();
        for chunk in entries.chunks(CHUNK) {
            let set = &set;
            self.bulk("push_back", |mut c| async move {
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(set).arg("GT");
                for (id, entry) in chunk {
                    cmd.arg(entry.until).arg(format!("{} {id}", entry.before));
                }
                cmd.query_async::<()>(&mut c).await
            })
            .await?;
        }
        let channel = &self.channel();
        self.op("push_back", |mut c| async move {
            c.publish::<_, _, i64>(channel, "*").await
        })
        .await
        .map(drop)
    }

    /// Marks this Redis as holding the list; with `now`, also as the moment
    /// from which shared results may be missing (without, an earlier mark
    /// stays).
    async fn stamp(&self, now: bool) -> Result<(), Down> {
        let (script, epoch) = (&self.scripts.stamp, &self.epoch_key());
        let now = u8::from(now);
        self.op("stamp", |mut c| async move {
            script.key(epoch).arg(now).invoke_async::<i64>(&mut c).await
        })
        .await
        .map(drop)
    }

    // --- background ------------------------------------------------------

    /// Connects, then probes Redis: brings the store up when it answers
    /// (pushing the revocation list back first when Redis lost it or this
    /// replica could not write to it), down when it does not.
    async fn probe(self: Arc<Self>, cancel: CancellationToken) {
        let mut connected = false;
        loop {
            if !connected {
                connected = self.connect().await;
            }
            if connected {
                self.check().await;
            }
            let pause = if self.is_up() { PROBE_UP } else { PROBE_DOWN };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
                () = self.wake.notified(), if self.is_up() => {}
            }
        }
    }

    async fn connect(&self) -> bool {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut all = Vec::with_capacity(self.pool_size);
        for _ in 0..self.pool_size {
            let manager = ConnectionManager::new_with_config(self.client.clone(), config.clone());
            match tokio::time::timeout(Duration::from_secs(2), manager).await {
                Ok(Ok(m)) => all.push(m),
                Ok(Err(e)) => return self.not_connected(&e.to_string()),
                Err(_) => return self.not_connected("no answer within 2s"),
            }
        }
        let _ = self.connections.set(all);
        true
    }

    fn not_connected(&self, error: &str) -> bool {
        static LOGGED: AtomicBool = AtomicBool::new(false);
        if !LOGGED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error, "store: cannot connect to Redis yet; retrying (each replica uses its own state meanwhile)");
        }
        false
    }

    async fn check(&self) {
        let epoch = &self.epoch_key();
        let answer = self
            .op_within(
                PROBE_TIMEOUT.max(self.timeout),
                "probe",
                |mut c| async move {
                    redis::pipe()
                        .cmd("PING")
                        .ignore()
                        .exists(epoch)
                        .query_async::<(bool,)>(&mut c)
                        .await
                },
            )
            .await;
        let Ok((holds_list,)) = answer else { return };
        let was_up = self.is_up();
        // Restarted or flushed (the list is gone), or this replica recorded
        // revocations it could not write: put back what it knows (the
        // others reload). A blip with nothing to put back moves no list:
        // what the others published meanwhile reached this replica's feed,
        // or the feed reconnects and reloads.
        let put_back = !holds_list || self.unsynced.swap(false, Ordering::Relaxed);
        if put_back && self.push_back().await.is_err() {
            self.unsynced.store(true, Ordering::Relaxed);
            return;
        }
        // Shared results may be missing from now on for a grace period:
        // Redis lost them, or this replica (or, in an outage it saw, others)
        // did work alone.
        let ran_alone = self.ran_alone.swap(false, Ordering::Relaxed);
        let outage = !was_up && self.been_up.load(Ordering::Relaxed);
        let missing = !holds_list || ran_alone || outage;
        if (missing || !was_up) && self.stamp(missing).await.is_err() {
            if ran_alone {
                self.ran_alone.store(true, Ordering::Relaxed);
            }
            return;
        }
        if !was_up && !self.up.swap(true, Ordering::Relaxed) {
            self.been_up.store(true, Ordering::Relaxed);
            tracing::info!("store: Redis reachable; sharing state with the other replicas");
            self.metrics.up(true);
        }
    }

    /// Keeps the local revocation list in step: subscribes, reloads the
    /// whole list, then applies each message; starts over on disconnect.
    async fn feed(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            // The list is read over the pool the probe connects.
            while self.connections.get().is_none() {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(PROBE_DOWN) => {}
                }
            }
            let subscribed = tokio::time::timeout(Duration::from_secs(2), async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(self.channel()).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            // Subscribed first, then the whole list: nothing published in
            // between is missed.
            if let Ok(Ok(pubsub)) = subscribed {
                if self.reload().await.is_ok() {
                    self.listen(pubsub, &cancel).await;
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(PROBE_DOWN) => {}
            }
        }
    }

    /// Applies the feed's messages until it disconnects or `cancel` fires.
    async fn listen(&self, pubsub: redis::aio::PubSub, cancel: &CancellationToken) {
        let mut messages = pubsub.into_on_message();
        loop {
            let message = tokio::select! {
                () = cancel.cancelled() => return,
                m = messages.next() => m,
            };
            let Some(message) = message else { break };
            let payload: String = message.get_payload().unwrap_or_default();
            self.apply(&payload).await;
        }
        tracing::debug!("store: revocation feed disconnected; resubscribing");
    }

    async fn apply(&self, message: &str) {
        let now = unix_now();
        if message == "*" {
            let _ = self.reload().await;
        } else {
            let mut parts = message.splitn(3, ' ');
            let (until, before, id) = (parts.next(), parts.next(), parts.next());
            if let (Some(Ok(until)), Some(Ok(before)), Some(id)) =
                (until.map(str::parse), before.map(str::parse), id)
            {
                self.revoked.insert(id, Entry { before, until }, now);
            }
        }
    }
}

/// A random lock owner id.
fn owner_id() -> String {
    random_bytes::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
