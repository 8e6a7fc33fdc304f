//! What a revocation input asks the gateway to do: the one output type of
//! every parser in `events/`.
//!
//! Input: none (plain data). Output: [`Action`], handed by the caller to the
//! revocation list or the key loader. Also the rule every identifier taken
//! from an event must pass before it becomes part of an action
//! ([`identifier`]).

/// Longest identifier accepted (OpenID Connect Core 1.0 §2 bounds `sub` at
/// 255 ASCII characters; FusionAuth's ids are 36-character UUIDs).
pub const MAX_IDENTIFIER: usize = 255;

/// One thing to refuse, or to do, because the IdP said so.
///
/// Times are Unix seconds. `until` is when the entry may be dropped: the
/// moment every token it covers has expired anyway. An entry kept too long
/// costs memory; one dropped too early lets a revoked token back in, so
/// every `until` here errs late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Refuse `sub`'s JWTs issued at or before `before` (their `iat`), for
    /// one client (`Some`: the app with that client id, FusionAuth's
    /// application id) or for every app (`None`), until `until`.
    User {
        /// The subject (`sub` claim; FusionAuth: the user id).
        sub: String,
        /// The client the revocation is limited to, if any.
        client_id: Option<String>,
        /// Tokens issued at or before this time are refused.
        before: u64,
        /// When the entry may be dropped.
        until: u64,
    },
    /// Refuse every JWT, and the refresh, of one session (`sid` claim;
    /// FusionAuth: the refresh token's id) until `until`.
    Session {
        /// The session id.
        sid: String,
        /// The client the session belongs to, if known.
        client_id: Option<String>,
        /// When the entry may be dropped.
        until: u64,
    },
    /// Refuse every JWT issued for one client at or before `before`, whoever
    /// its subject, until `until` (FusionAuth: all of an application's
    /// refresh tokens revoked).
    App {
        /// The client id.
        client_id: String,
        /// Tokens issued at or before this time are refused.
        before: u64,
        /// When the entry may be dropped.
        until: u64,
    },
    /// Fetch the IdP's JWKS again now: its signing keys changed.
    RefetchKeys,
}

/// Whether `value` may serve as an identifier in an [`Action`]: 1 to
/// [`MAX_IDENTIFIER`] bytes, no control characters. Anything else (an empty
/// subject, a megabyte of id, a line break for a log injection) is refused
/// by the parsers rather than stored.
pub fn identifier(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_IDENTIFIER && !value.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_bounded_and_printable() {
        assert!(identifier("dfdbae16-4e65-42c2-9773-23dfd6f5671d"));
        assert!(identifier("248289761001"));
        assert!(identifier("ünïcode sub"));
        assert!(identifier(&"a".repeat(MAX_IDENTIFIER)));
        for bad in [
            String::new(),
            "a".repeat(MAX_IDENTIFIER + 1),
            "user\nlevel=admin".into(),
            "nul\0".into(),
            "tab\t".into(),
            "del\u{7f}".into(),
        ] {
            assert!(!identifier(&bad), "{bad:?}");
        }
    }
}
