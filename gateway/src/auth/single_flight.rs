//! Single-flight: concurrent requests that need the same refresh share one
//! IdP call and its result.
//!
//! Input: a key (the refresh token), the work to do once (the IdP call), the
//! current time and a grace period. Output: the work's result, to every caller
//! that asked while it ran, and to callers arriving within the grace period
//! after it finished (other tabs still sending the old refresh token). An IdP
//! that rotates refresh tokens (one-time use) thus never sees a replay, which
//! some IdPs punish by revoking the whole session.
//!
//! The work runs in its own task and records its own result, so a caller
//! that goes away (client closed the tab) cannot strand the others. Keys are
//! spread over shards, each with its own short-held lock: no global lock, and
//! the lock is never held across an await.
//!
//! [`SingleFlight::forget`] drops kept results (and the right of running
//! work to keep its own) on demand: a logout must not leave a refresh of the
//! session it ended answering late requests.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

const SHARDS: usize = 16;

enum Entry<V> {
    /// Work under way; `run` tells this run from a later one for the same key.
    Running {
        run: u64,
        rx: watch::Receiver<Option<V>>,
    },
    Done {
        value: V,
        until: Instant,
    },
}

impl<V> Entry<V> {
    fn is_run(&self, id: u64) -> bool {
        matches!(self, Entry::Running { run, .. } if *run == id)
    }
}

/// Who did the work for a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This caller started the work.
    Leader,
    /// This caller waited for work another caller started.
    Follower,
    /// The work had finished within the grace period; its result was reused.
    Late,
}

/// One shard: the entries whose keys hash to it.
type Shard<V> = Mutex<HashMap<String, Entry<V>>>;

/// Shared in-flight and recently finished work, by key.
pub struct SingleFlight<V> {
    shards: Arc<Vec<Shard<V>>>,
    hasher: std::collections::hash_map::RandomState,
    reusable: fn(&V) -> bool,
    runs: AtomicU64,
}

impl<V> Default for SingleFlight<V> {
    fn default() -> Self {
        SingleFlight::new(|_| true)
    }
}

impl<V> SingleFlight<V> {
    /// A single-flight whose finished results are reused within the grace
    /// period only if `reusable` says so (a transient failure should not
    /// be: the next caller tries again).
    pub fn new(reusable: fn(&V) -> bool) -> Self {
        SingleFlight {
            shards: Arc::new((0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect()),
            hasher: std::collections::hash_map::RandomState::new(),
            reusable,
            runs: AtomicU64::new(0),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding a shard leaves plain data behind: go on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<V: Clone + Send + Sync + 'static> SingleFlight<V> {
    fn shard_index(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// Runs `work` once for `key` among concurrent callers and callers within
    /// `grace` of its end; everyone gets a clone of its result. `None` only if
    /// the work task died without a result (it panicked).
    pub async fn run<F, Fut>(
        &self,
        key: &str,
        now: Instant,
        grace: Duration,
        work: F,
    ) -> Option<(V, Role)>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let index = self.shard_index(key);
        let (mut rx, role) = {
            let mut shard = lock(&self.shards[index]);
            // Drop finished entries whose grace is over (bounded work: one shard).
            shard.retain(|_, e| !matches!(e, Entry::Done { until, .. } if *until <= now));
            match shard.get(key) {
                Some(Entry::Done { value, .. }) => return Some((value.clone(), Role::Late)),
                Some(Entry::Running { rx, .. }) => (rx.clone(), Role::Follower),
                None => {
                    let (tx, rx) = watch::channel(None);
                    let run = self.runs.fetch_add(1, Ordering::Relaxed);
                    shard.insert(
                        key.to_owned(),
                        Entry::Running {
                            run,
                            rx: rx.clone(),
                        },
                    );
                    let fut = work();
                    let shards = self.shards.clone();
                    let key = key.to_owned();
                    let reusable = self.reusable;
                    // The work owns its completion: whoever asked may go away.
                    tokio::spawn(async move {
                        let value = fut.await;
                        let mut shard = lock(&shards[index]);
                        // Only this run's own entry is replaced: a forgotten
                        // run (see `forget`) records nothing.
                        if shard.get(&key).is_some_and(|e| e.is_run(run)) {
                            if reusable(&value) {
                                let until = Instant::now() + grace;
                                shard.insert(
                                    key,
                                    Entry::Done {
                                        value: value.clone(),
                                        until,
                                    },
                                );
                            } else {
                                shard.remove(&key);
                            }
                        }
                        drop(shard);
                        let _ = tx.send(Some(value));
                    });
                    (rx, Role::Leader)
                }
            }
        };
        loop {
            if let Some(value) = rx.borrow_and_update().clone() {
                return Some((value, role));
            }
            if rx.changed().await.is_err() {
                let value = rx.borrow().clone();
                if value.is_none() {
                    // The work died: drop its entry (only if still running,
                    // never a result recorded since).
                    let mut shard = lock(&self.shards[index]);
                    if matches!(shard.get(key), Some(Entry::Running { .. })) {
                        shard.remove(key);
                    }
                }
                return value.map(|v| (v, role));
            }
        }
    }

    /// Forgets every kept result for which `stale(key, Some(result))` holds,
    /// and every running work for which `stale(key, None)` holds (its callers
    /// still get its result; it is just not kept for later ones). Visits every
    /// shard, one short lock at a time: for rare events such as a logout.
    pub fn forget(&self, stale: impl Fn(&str, Option<&V>) -> bool) {
        for shard in self.shards.iter() {
            lock(shard).retain(|key, entry| match entry {
                Entry::Done { value, .. } => !stale(key, Some(value)),
                Entry::Running { .. } => !stale(key, None),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const GRACE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_burst_makes_one_call_and_everyone_gets_its_result() {
        let flight = Arc::new(SingleFlight::<String>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (flight, calls, gate) = (flight.clone(), calls.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                flight
                    .run("rt-1", Instant::now(), GRACE, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        "new tokens".to_owned()
                    })
                    .await
                    .expect("a result")
            }));
        }
        // Let every task register, then finish the one call.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        gate.notify_waiters();
        gate.notify_one();
        let mut leaders = 0;
        for t in tasks {
            let (value, role) = t.await.expect("task");
            assert_eq!(value, "new tokens");
            leaders += usize::from(role == Role::Leader);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
    }

    #[tokio::test]
    async fn results_that_are_not_reusable_are_not_kept() {
        let flight = SingleFlight::<Result<u32, ()>>::new(Result::is_ok);
        assert_eq!(
            flight
                .run("rt", Instant::now(), GRACE, || async { Err(()) })
                .await,
            Some((Err(()), Role::Leader))
        );
        assert_eq!(
            flight
                .run("rt", Instant::now(), GRACE, || async { Ok(1) })
                .await,
            Some((Ok(1), Role::Leader))
        );
        assert_eq!(
            flight
                .run("rt", Instant::now(), GRACE, || async { Ok(2) })
                .await,
            Some((Ok(1), Role::Late))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn late_callers_within_the_grace_period_reuse_the_result() {
        let flight = SingleFlight::<u32>::default();
        let calls = AtomicUsize::new(0);
        let work = || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { 7 }
        };
        assert_eq!(
            flight.run("rt", Instant::now(), GRACE, work).await,
            Some((7, Role::Leader))
        );
        tokio::time::advance(GRACE - Duration::from_secs(1)).await;
        let again = || async { 8 };
        assert_eq!(
            flight.run("rt", Instant::now(), GRACE, again).await,
            Some((7, Role::Late))
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            flight
                .run("rt", Instant::now(), GRACE, || async { 9 })
                .await,
            Some((9, Role::Leader))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_does_not_strand_the_others() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let gate = Arc::new(tokio::sync::Notify::new());
        let g = gate.clone();
        let f = flight.clone();
        let leader = tokio::spawn(async move {
            f.run("rt", Instant::now(), GRACE, || async move {
                g.notified().await;
                1
            })
            .await
        });
        tokio::task::yield_now().await;
        let f = flight.clone();
        let follower =
            tokio::spawn(async move { f.run("rt", Instant::now(), GRACE, || async { 2 }).await });
        tokio::task::yield_now().await;
        leader.abort();
        gate.notify_one();
        let (value, role) = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("follower finishes")
            .expect("task")
            .expect("a result");
        assert_eq!((value, role), (1, Role::Follower));
    }

    #[tokio::test]
    async fn forgotten_results_are_not_reused_and_forgotten_runs_not_kept() {
        let flight = Arc::new(SingleFlight::<&'static str>::default());
        let now = Instant::now();
        assert_eq!(
            flight.run("rt-1", now, GRACE, || async { "rt-2" }).await,
            Some(("rt-2", Role::Leader))
        );
        assert_eq!(
            flight.run("rt-9", now, GRACE, || async { "rt-9" }).await,
            Some(("rt-9", Role::Leader))
        );
        // Forget the result that holds rt-2 (by value), not rt-9's.
        flight.forget(|_, value| value == Some(&"rt-2"));
        assert_eq!(
            flight.run("rt-1", now, GRACE, || async { "again" }).await,
            Some(("again", Role::Leader))
        );
        assert_eq!(
            flight.run("rt-9", now, GRACE, || async { "x" }).await,
            Some(("rt-9", Role::Late))
        );

        // Work running while it is forgotten: its caller gets the result,
        // later callers do not.
        let gate = Arc::new(tokio::sync::Notify::new());
        let (f, g) = (flight.clone(), gate.clone());
        let leader = tokio::spawn(async move {
            f.run("rt-5", Instant::now(), GRACE, || async move {
                g.notified().await;
                "late result"
            })
            .await
        });
        tokio::task::yield_now().await;
        flight.forget(|key, _| key == "rt-5");
        gate.notify_one();
        assert_eq!(
            leader.await.expect("task"),
            Some(("late result", Role::Leader))
        );
        assert_eq!(
            flight
                .run("rt-5", Instant::now(), GRACE, || async { "fresh" })
                .await,
            Some(("fresh", Role::Leader))
        );
    }

    #[tokio::test]
    async fn different_keys_do_not_share() {
        let flight = SingleFlight::<&'static str>::default();
        let now = Instant::now();
        assert_eq!(
            flight.run("a", now, GRACE, || async { "a" }).await,
            Some(("a", Role::Leader))
        );
        assert_eq!(
            flight.run("b", now, GRACE, || async { "b" }).await,
            Some(("b", Role::Leader))
        );
    }
}
