//! In-process token buckets: the login throttle of a single replica, and of
//! every replica while Redis is out of reach.
//!
//! Input: a key (see `auth::throttle` for how keys are made) and `now`. Output:
//! allowed, or refused with the time after which the next attempt will be
//! allowed (for `Retry-After`). A bucket holds `burst` attempts and refills at
//! `per_minute`; a refused attempt costs nothing, so waiting always helps.
//!
//! Memory is bounded: keys are spread over shards, and a shard that grows past
//! its share of `max_keys` forgets the buckets that have refilled completely
//! (they carry no information), then, if an attacker spraying usernames keeps
//! it full, the oldest ones.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct Throttle {
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
    hasher: std::collections::hash_map::RandomState,
    burst: f64,
    per_second: f64,
    max_per_shard: usize,
}

impl Throttle {
    /// `burst` attempts at once, refilling at `per_minute`, remembering at
    /// most about `max_keys` keys.
    pub fn new(burst: u32, per_minute: u32, max_keys: usize) -> Throttle {
        Throttle {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            max_per_shard: (max_keys / SHARDS).max(1),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    /// Takes one attempt for `key`, or says how long until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut shard = self.shards[index].lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.max_per_shard && !shard.contains_key(key) {
            shard.retain(|_, b| self.refilled(*b, now) < self.burst);
            if shard.len() >= self.max_per_shard {
                // Still full: forget the oldest eighth at once, so a spray of
                // new keys costs amortised O(log n) per attempt, not O(n).
                let mut times: Vec<Instant> = shard.values().map(|b| b.updated).collect();
                let cut = times.len() / 8;
                let (_, cutoff, _) = times.select_nth_unstable(cut);
                let cutoff = *cutoff;
                shard.retain(|_, b| b.updated > cutoff);
            }
        }
        let bucket = shard.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                updated: now,
            };
            Ok(())
        } else {
            *bucket = Bucket {
                tokens,
                updated: now,
            };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_allowed_then_refused_until_refilled() {
        let t = Throttle::new(5, 6, 1000);
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.check("10.0.0.1", now), Ok(()));
        }
        let wait = t.check("10.0.0.1", now).expect_err("refused");
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        // Another key is unaffected.
        assert_eq!(t.check("10.0.0.2", now), Ok(()));
        // One attempt per 10 s comes back.
        assert!(t.check("10.0.0.1", now + Duration::from_secs(9)).is_err());
        assert_eq!(t.check("10.0.0.1", now + Duration::from_secs(20)), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn refused_attempts_cost_nothing() {
        let t = Throttle::new(1, 60, 1000);
        let now = Instant::now();
        assert_eq!(t.check("u", now), Ok(()));
        for i in 0..10 {
            assert!(t.check("u", now + Duration::from_millis(i * 10)).is_err());
        }
        assert_eq!(t.check("u", now + Duration::from_millis(1001)), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded_under_a_username_spray() {
        let t = Throttle::new(3, 1, 160);
        let now = Instant::now();
        for i in 0..10_000 {
            let _ = t.check(&format!("user{i}"), now);
        }
        let total: usize = t.shards.iter().map(|s| s.lock().expect("lock").len()).sum();
        assert!(total <= 160, "{total} keys kept");
    }
}
