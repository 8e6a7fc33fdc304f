//! The values the store's files share: what a cross-replica run gave
//! ([`Flight`]), the wall clock, and random bytes. A leaf: the seam and the
//! Redis implementation import it, it imports neither.

/// How a piece of work run through [`Store::once`](super::Store::once) went.
#[derive(Debug)]
pub enum Flight<V> {
    /// This replica did the work, with every other replica held off (or
    /// there is only this one): its result is final.
    Led(V),
    /// Another replica did it: its shared result, as it stored it (sealed).
    Joined(String),
    /// This replica did the work without being able to hold the others off
    /// (Redis unreachable): another replica may have done it too.
    Alone(V),
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `N` random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system's generator does not fail on any platform the gateway
    // runs on; if it did, keys would be predictable: stop.
    if aws_lc_rs::rand::fill(&mut out).is_err() {
        panic!("the system random number generator failed");
    }
    out
}
