//! The local revocation list: sessions ended before their JWT expires, by
//! id, each until the moment its JWT would have expired anyway.
//!
//! An entry refuses the tokens under its id issued (`iat`) at or before its
//! `before` time: a session's entry has no such bound (every token of the
//! session), a user's entry refuses the tokens issued up to the revocation
//! and none issued after it (the user logs in again).
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

/// One id's revocation (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Tokens issued at or before this are refused (`u64::MAX`: all).
    pub before: u64,
    /// Until this time.
    pub until: u64,
}

/// Revoked ids, each with its [`Entry`].
#[derive(Debug, Default)]
pub struct Revoked {
    entries: RwLock<HashMap<String, Entry>>,
    generation: AtomicU64,
}

impl Revoked {
    /// Records `id` as revoked for tokens issued at or before `entry.before`,
    /// until `entry.until`; `true` if that is news. Entries for one id merge
    /// to the later of each time (refusing at least what each refused).
    pub fn insert(&self, id: &str, entry: Entry, now: u64) -> bool {
        if entry.until <= now {
            return false;
        }
        let news = {
            let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
            match entries.get_mut(id) {
                Some(known) if known.before >= entry.before && known.until >= entry.until => false,
                Some(known) => {
                    known.before = known.before.max(entry.before);
                    known.until = known.until.max(entry.until);
                    true
                }
                None => {
                    entries.insert(id.to_owned(), entry);
                    true
                }
            }
        };
        if news {
            crate::ops::metrics::revocations(self.len());
            // After the entry is in: a reader that sees the new generation
            // also sees the entry.
            self.generation.fetch_add(1, Ordering::Release);
        }
        news
    }

    /// Whether a token under `id` issued at `iat` is revoked at `now`.
    pub fn contains(&self, id: &str, iat: u64, now: u64) -> bool {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(id)
            .is_some_and(|e| e.until > now && iat <= e.before)
    }

    /// Moves on with every new entry (see the module doc).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets the entries whose time is over.
    pub fn purge(&self, now: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, e| e.until > now);
        let len = entries.len();
        drop(entries);
        crate::ops::metrics::revocations(len);
    }

    /// The entries still in force at `now`.
    pub fn entries(&self, now: u64) -> Vec<(String, Entry)> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|(id, e)| (id.clone(), *e))
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

    fn session(until: u64) -> Entry {
        Entry {
            before: u64::MAX,
            until,
        }
    }

    #[test]
    fn an_entry_holds_until_its_time_and_moves_the_generation() {
        let r = Revoked::default();
        let g0 = r.generation();
        assert!(r.insert("s1", session(200), 100));
        assert!(r.generation() > g0);
        assert!(r.contains("s1", 0, 199));
        assert!(!r.contains("s1", 0, 200));
        assert!(!r.contains("s2", 0, 150));
        // Known already: no news, same generation.
        let g1 = r.generation();
        assert!(!r.insert("s1", session(150), 100));
        assert_eq!(r.generation(), g1);
        // Later: news.
        assert!(r.insert("s1", session(300), 100));
        assert!(r.contains("s1", 0, 250));
        // Already over: nothing kept.
        assert!(!r.insert("s3", session(90), 100));
        assert!(!r.contains("s3", 0, 80));
        r.purge(301);
        assert!(r.is_empty());
    }

    #[test]
    fn a_user_entry_refuses_tokens_issued_up_to_its_time_only() {
        let r = Revoked::default();
        let entry = Entry {
            before: 1000,
            until: 1600,
        };
        assert!(r.insert("u", entry, 1000));
        assert!(r.contains("u", 999, 1001));
        assert!(r.contains("u", 1000, 1001));
        // A login after the revocation is not refused.
        assert!(!r.contains("u", 1001, 1002));
        // A later revocation extends both times.
        assert!(r.insert(
            "u",
            Entry {
                before: 1200,
                until: 1500
            },
            1200
        ));
        assert!(r.contains("u", 1100, 1201));
        assert!(r.contains("u", 1100, 1550));
        assert!(!r.contains("u", 1201, 1300));
    }
}
