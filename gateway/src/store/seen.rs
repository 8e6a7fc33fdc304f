//! Ids seen lately (FusionAuth event ids, logout token `jti`s): the
//! in-process half of [`Store::first_seen`](super::Store::first_seen).
//!
//! Input: an id and how long to remember it. Output: whether it is new.
//! Memory is bounded: at [`MAX_IDS`] the expired ids go, then, if every id
//! is still in time, the oldest half (a flood of ids can make a repeat look
//! new again, never a new id look repeated).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Most ids remembered.
pub const MAX_IDS: usize = 100_000;

/// Ids and until when they are remembered.
#[derive(Debug, Default)]
pub struct Seen {
    ids: Mutex<HashMap<String, Instant>>,
}

impl Seen {
    /// Records `id` for `ttl` from `now`; `true` if it was not known.
    pub fn first(&self, id: &str, ttl: Duration, now: Instant) -> bool {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.get(id).is_some_and(|until| *until > now) {
            return false;
        }
        if ids.len() >= MAX_IDS {
            ids.retain(|_, until| *until > now);
            if ids.len() >= MAX_IDS {
                let mut times: Vec<Instant> = ids.values().copied().collect();
                let half = times.len() / 2;
                let (_, cutoff, _) = times.select_nth_unstable(half);
                let cutoff = *cutoff;
                ids.retain(|_, until| *until > cutoff);
            }
        }
        ids.insert(id.to_owned(), now + ttl);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_id_is_new_once_until_it_is_forgotten() {
        let seen = Seen::default();
        let now = Instant::now();
        let ttl = Duration::from_secs(60);
        assert!(seen.first("e1", ttl, now));
        assert!(!seen.first("e1", ttl, now + Duration::from_secs(59)));
        assert!(seen.first("e2", ttl, now));
        assert!(seen.first("e1", ttl, now + Duration::from_secs(61)));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded() {
        let seen = Seen::default();
        let now = Instant::now();
        for i in 0..(MAX_IDS + 10) {
            assert!(seen.first(&i.to_string(), Duration::from_secs(60), now));
        }
        assert!(seen.ids.lock().expect("lock").len() <= MAX_IDS);
    }
}
