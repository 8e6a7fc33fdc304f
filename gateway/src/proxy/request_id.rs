//! Request ids: keep a well-formed incoming `X-Request-Id`, otherwise mint one.
//!
//! Minted ids are a per-process random prefix plus a counter, hex-encoded:
//! unique across restarts and replicas, and costing one atomic add per request.
//! Incoming ids are kept only if they are 1 to 128 characters of
//! `[A-Za-z0-9._:-]`, so a client cannot inject anything into logs or upstream
//! headers through this field.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::HeaderValue;

/// The header carrying the request id, in both directions.
pub const HEADER: &str = "x-request-id";

/// Returns the client's id if acceptable, else a new one.
pub fn from_incoming(incoming: Option<&HeaderValue>) -> HeaderValue {
    match incoming {
        Some(v) if is_acceptable(v.as_bytes()) => v.clone(),
        _ => mint(),
    }
}

fn is_acceptable(v: &[u8]) -> bool {
    (1..=128).contains(&v.len())
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn mint() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(random_u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Hand-rolled hex: `format!` costs more than the rest of this module.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (i, byte) in prefix
        .to_be_bytes()
        .iter()
        .chain(n.to_be_bytes().iter())
        .enumerate()
    {
        text[2 * i] = HEX[usize::from(byte >> 4)];
        text[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// A random seed from the std hasher's per-process keys mixed with the clock
/// and pid: ids must be unique, not secret.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_good_ids_and_replaces_bad_ones() {
        let good = HeaderValue::from_static("abc-123_X.y:z");
        assert_eq!(from_incoming(Some(&good)), good);
        for bad in ["", "a b", "a\tb", "<script>", "é"] {
            let v =
                HeaderValue::from_bytes(bad.as_bytes()).unwrap_or(HeaderValue::from_static("x y"));
            let got = from_incoming(Some(&v));
            assert_ne!(got, v, "{bad:?}");
            assert_eq!(got.len(), 32);
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).expect("value");
        assert_ne!(from_incoming(Some(&long)), long);
    }

    #[test]
    fn minted_ids_are_unique_hex() {
        let a = from_incoming(None);
        let b = from_incoming(None);
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        }
    }
}
