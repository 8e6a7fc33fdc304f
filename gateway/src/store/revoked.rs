//! The local revocation list: sessions ended before their JWT expires, by
//! id, each until the moment its JWT would have expired anyway.
//!
//! Every replica keeps its own copy (fed by Redis pub/sub when the store is
//! shared), so asking "is this revoked?" never leaves the process. A
//! generation number moves on with every new entry: a verified token
//! remembers the generation it was last checked at, so the steady state
//! compares two integers and looks the token up again only after a
//! revocation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Revoked ids and until when (Unix seconds).
#[derive(Debug, Default)]
pub struct Revoked {
    entries: RwLock<HashMap<String, u64>>,
    generation: AtomicU64,
}

impl Revoked {
    /// Records `id` as revoked until `until`; `true` if that is news (a new
    /// id, or a later `until`).
    pub fn insert(&self, id: &str, until: u64, now: u64) -> bool {
        if until <= now {
            return false;
        }
        let news = {
            let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
            match entries.get_mut(id) {
                Some(known) if *known >= until => false,
                Some(known) => {
                    *known = until;
                    true
                }
                None => {
                    entries.insert(id.to_owned(), until);
                    true
                }
            }
        };
        if news {
            // After the entry is in: a reader that sees the new generation
            // also sees the entry.
            self.generation.fetch_add(1, Ordering::Release);
        }
        news
    }

    /// Whether `id` is revoked at `now`.
    pub fn contains(&self, id: &str, now: u64) -> bool {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(id).is_some_and(|until| *until > now)
    }

    /// Moves on with every new entry (see the module doc).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets the entries whose time is over.
    pub fn purge(&self, now: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, until| *until > now);
    }

    /// The entries still in force at `now`.
    pub fn entries(&self, now: u64) -> Vec<(String, u64)> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(id, until)| (id.clone(), *until))
            .collect()
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_holds_until_its_time_and_moves_the_generation() {
        let r = Revoked::default();
        let g0 = r.generation();
        assert!(r.insert("s1", 200, 100));
        assert!(r.generation() > g0);
        assert!(r.contains("s1", 199));
        assert!(!r.contains("s1", 200));
        assert!(!r.contains("s2", 150));
        // Known already: no news, same generation.
        let g1 = r.generation();
        assert!(!r.insert("s1", 150, 100));
        assert_eq!(r.generation(), g1);
        // Later: news.
        assert!(r.insert("s1", 300, 100));
        assert!(r.contains("s1", 250));
        // Already over: nothing kept.
        assert!(!r.insert("s3", 90, 100));
        assert!(!r.contains("s3", 80));
        r.purge(301);
        assert!(r.is_empty());
    }
}
