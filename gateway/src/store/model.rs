//! What the store's parts share: the outcome of work run once across
//! replicas ([`Flight`]) and what that work knows of the others
//! ([`Coordination`]), the clock, random bytes.

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `N` random bytes.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system's generator does not fail on any platform the gateway
    // runs on; if it did, keys would be predictable: stop.
    if aws_lc_rs::rand::fill(&mut out).is_err() {
        panic!("the system random number generator failed");
    }
    out
}

/// How a piece of work run through [`Store::once`](super::Store::once) went.
#[derive(Debug)]
pub enum Flight<V> {
    /// This replica did the work, with every other replica held off (or
    /// there is only this one).
    Led(V),
    /// Another replica did it: its shared result, as it stored it (sealed).
    Joined(String),
    /// This replica did the work without being able to hold the others off
    /// (Redis unreachable): another replica may have done it too.
    Alone(V),
}

/// What the replica about to do work under
/// [`Store::once`](super::Store::once) knows of the others' recent results
/// for the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordination {
    /// Any result another replica had within the grace period is in the
    /// store (or there is only this replica): nobody did this work unseen.
    Sure,
    /// One may be missing: Redis is out of reach, or within the grace
    /// period it was for some replica (which went on alone), or it lost its
    /// data (restart, `FLUSHALL`). Another replica may have done this work
    /// and its result be lost: an outcome that says "already done" (a
    /// one-time-use refresh token refused as spent) proves nothing.
    Unsure,
}
