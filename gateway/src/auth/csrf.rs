//! Stateless CSRF tokens for the gateway's own forms (sign in, sign out):
//! signed double-submit.
//!
//! Input: the gateway's cookie key bytes and the app name (the context) once,
//! then the current time for [`Csrf::issue`], and the token from the cookie,
//! the token from the form, the current time and the allowed age for
//! [`Csrf::check`].
//!
//! Output: a token is the base64url (no padding) encoding of
//! `random (16 bytes) ‖ issued-at seconds (8 bytes, big-endian) ‖
//! HMAC-SHA256(key, context ‖ random ‖ issued-at) (32 bytes)`, 75 characters.
//! The same token goes into a cookie and into a hidden form field; a submission
//! is accepted only when both are present, equal, carry a genuine MAC for this
//! app and are fresh. The HMAC key is derived from the cookie key with a fixed
//! label, so it never equals the key that seals cookies.
//!
//! Failure modes: [`Csrf::check`] answers `false` for anything it does not
//! like (missing side, mismatch, garbage, wrong length, bad MAC, another app's
//! token, expired, issued more than a minute in the future) and never panics.
//! If the system random source fails, [`Csrf::issue`] logs an error and still
//! returns a signed (hence unforgeable) token, only without its random part.

use std::fmt;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Label mixed into the cookie key to derive the CSRF key.
const KEY_LABEL: &[u8] = b"gateway csrf v1";
/// Bytes of randomness in a token.
const RANDOM_LEN: usize = 16;
/// Bytes of the issue time in a token.
const TIME_LEN: usize = 8;
/// Bytes of the MAC in a token (full HMAC-SHA256).
const MAC_LEN: usize = 32;
/// Decoded token length.
const TOKEN_LEN: usize = RANDOM_LEN + TIME_LEN + MAC_LEN;
/// Longest encoded token worth decoding; anything longer is refused unread.
const MAX_ENCODED_LEN: usize = 128;
/// How far in the future an issue time may lie (clock skew between workers).
const MAX_FUTURE_SECS: u64 = 60;

/// Issues and checks the CSRF tokens of one app.
#[derive(Clone)]
pub struct Csrf {
    key: hmac::Key,
    context: String,
}

impl fmt::Debug for Csrf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csrf")
            .field("key", &"<redacted>")
            .field("context", &self.context)
            .finish()
    }
}

impl Csrf {
    /// `master`: the gateway's cookie key bytes (at least 32 bytes, validated
    /// by the caller); `context`: the app name, so that a token issued for one
    /// app is refused by another.
    pub fn new(master: &[u8], context: &str) -> Csrf {
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, master), KEY_LABEL);
        Csrf {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            context: context.to_owned(),
        }
    }

    /// A fresh token issued at `now` (seconds since the Unix epoch).
    pub fn issue(&self, now: u64) -> String {
        let mut token = [0u8; TOKEN_LEN];
        if aws_lc_rs::rand::fill(&mut token[..RANDOM_LEN]).is_err() {
            tracing::error!("system random source failed; CSRF token issued without randomness");
            token[..RANDOM_LEN].fill(0);
        }
        token[RANDOM_LEN..RANDOM_LEN + TIME_LEN].copy_from_slice(&now.to_be_bytes());
        let mac = hmac::sign(&self.key, &self.message(&token[..RANDOM_LEN + TIME_LEN]));
        token[RANDOM_LEN + TIME_LEN..].copy_from_slice(mac.as_ref());
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Whether `form_token` is genuine for this app, equals `cookie_token`
    /// (compared in constant time), and was issued at most `max_age_secs`
    /// before `now` and at most 60 seconds after it.
    pub fn check(
        &self,
        cookie_token: Option<&str>,
        form_token: Option<&str>,
        now: u64,
        max_age_secs: u64,
    ) -> bool {
        let (Some(cookie), Some(form)) = (cookie_token, form_token) else {
            return false;
        };
        if form.is_empty() || form.len() > MAX_ENCODED_LEN {
            return false;
        }
        if aws_lc_rs::constant_time::verify_slices_are_equal(cookie.as_bytes(), form.as_bytes())
            .is_err()
        {
            return false;
        }
        let Ok(decoded) = URL_SAFE_NO_PAD.decode(form) else {
            return false;
        };
        if decoded.len() != TOKEN_LEN {
            return false;
        }
        let (signed, tag) = decoded.split_at(RANDOM_LEN + TIME_LEN);
        if hmac::verify(&self.key, &self.message(signed), tag).is_err() {
            return false;
        }
        let mut time = [0u8; TIME_LEN];
        time.copy_from_slice(&signed[RANDOM_LEN..]);
        let issued = u64::from_be_bytes(time);
        if issued > now {
            issued - now <= MAX_FUTURE_SECS
        } else {
            now - issued <= max_age_secs
        }
    }

    /// The signed message: `context ‖ random ‖ time`.
    fn message(&self, random_and_time: &[u8]) -> Vec<u8> {
        let mut message = Vec::with_capacity(self.context.len() + random_and_time.len());
        message.extend_from_slice(self.context.as_bytes());
        message.extend_from_slice(random_and_time);
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &[u8] = &[7u8; 64];
    const NOW: u64 = 1_700_000_000;
    const AGE: u64 = 3600;

    fn csrf() -> Csrf {
        Csrf::new(MASTER, "store")
    }

    #[test]
    fn roundtrip() {
        let c = csrf();
        let t = c.issue(NOW);
        assert_eq!(t.len(), 75);
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(c.check(Some(&t), Some(&t), NOW, AGE));
        assert!(c.check(Some(&t), Some(&t), NOW + AGE, AGE));
        // Another instance built from the same inputs (another worker) agrees.
        assert!(Csrf::new(MASTER, "store").check(Some(&t), Some(&t), NOW + 1, AGE));
        // Two tokens issued in the same second differ.
        assert_ne!(t, c.issue(NOW));
    }

    #[test]
    fn cookie_form_mismatch_refused() {
        let c = csrf();
        let a = c.issue(NOW);
        let b = c.issue(NOW);
        assert!(!c.check(Some(&a), Some(&b), NOW, AGE));
        assert!(!c.check(Some(&b), Some(&a), NOW, AGE));
        assert!(!c.check(Some(&a[..74]), Some(&a), NOW, AGE));
    }

    #[test]
    fn other_context_or_key_refused() {
        let t = Csrf::new(MASTER, "wiki").issue(NOW);
        assert!(!csrf().check(Some(&t), Some(&t), NOW, AGE));
        let t = Csrf::new(&[8u8; 64], "store").issue(NOW);
        assert!(!csrf().check(Some(&t), Some(&t), NOW, AGE));
    }

    #[test]
    fn tampered_byte_refused() {
        let c = csrf();
        let t = c.issue(NOW);
        let raw = URL_SAFE_NO_PAD.decode(&t).expect("own token decodes");
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let bad = URL_SAFE_NO_PAD.encode(&bad);
            assert!(!c.check(Some(&bad), Some(&bad), NOW, AGE), "byte {i}");
        }
    }

    #[test]
    fn expired_and_future_refused() {
        let c = csrf();
        let t = c.issue(NOW);
        assert!(!c.check(Some(&t), Some(&t), NOW + AGE + 1, AGE));
        assert!(c.check(Some(&t), Some(&t), NOW - 60, AGE));
        assert!(!c.check(Some(&t), Some(&t), NOW - 61, AGE));
        // Extreme times neither overflow nor panic.
        let t = c.issue(u64::MAX);
        assert!(c.check(Some(&t), Some(&t), u64::MAX, 0));
        assert!(!c.check(Some(&t), Some(&t), 0, u64::MAX));
        let t = c.issue(0);
        assert!(c.check(Some(&t), Some(&t), u64::MAX, u64::MAX));
        assert!(!c.check(Some(&t), Some(&t), u64::MAX, AGE));
    }

    #[test]
    fn garbage_refused() {
        let c = csrf();
        let long = "A".repeat(10_000);
        let odd = URL_SAFE_NO_PAD.encode([0u8; TOKEN_LEN + 1]);
        let short = URL_SAFE_NO_PAD.encode([0u8; TOKEN_LEN - 1]);
        let zeros = URL_SAFE_NO_PAD.encode([0u8; TOKEN_LEN]);
        let padded = format!("{}=", c.issue(NOW));
        for g in [
            "",
            "=",
            "!!!!",
            "not base64 at all",
            "é",
            "\0",
            long.as_str(),
            odd.as_str(),
            short.as_str(),
            zeros.as_str(),
            padded.as_str(),
        ] {
            assert!(!c.check(Some(g), Some(g), NOW, AGE), "{g:?}");
        }
    }

    #[test]
    fn missing_side_refused() {
        let c = csrf();
        let t = c.issue(NOW);
        assert!(!c.check(None, Some(&t), NOW, AGE));
        assert!(!c.check(Some(&t), None, NOW, AGE));
        assert!(!c.check(None, None, NOW, AGE));
        assert!(!c.check(Some(""), Some(&t), NOW, AGE));
    }

    #[test]
    fn debug_redacts_key() {
        let s = format!("{:?}", csrf());
        assert!(s.contains("<redacted>"));
        assert!(s.contains("store"));
    }
}
