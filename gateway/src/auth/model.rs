//! The values the login stages hand each other: who a verified token says the
//! user is, a token in or out of time, what the sealed refresh cookie holds,
//! and what a refresh gave.
//!
//! Plain data, below every stage and the per-app state, so that they all
//! import it and it imports none of them.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

/// Every header with this prefix is the gateway's to set (names are
/// lower-case in `http`).
pub const IDENTITY_PREFIX: &str = "x-auth-request-";

/// Who a verified token says the user is, with the upstream headers
/// computed once per token.
pub struct Identity {
    /// The token itself (the cache is keyed by its signature; a hit must
    /// be this very token).
    pub(super) token: Box<str>,
    /// `exp`.
    pub exp: u64,
    /// `sub`.
    pub sub: Option<String>,
    /// `sid`, where the IdP sets one.
    pub sid: Option<String>,
    /// The roles claim.
    pub roles: Vec<String>,
    /// Identity headers for the upstream, in order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `iat` (0 without one: every revocation of its user then covers it).
    pub iat: u64,
    /// The ids its session may be revoked under (see `auth::revocation`):
    /// first the session's own (its `sid`, or the token without one), then
    /// its user's across clients and for this client.
    pub revocations: Box<[Box<str>]>,
    /// The revocation-list generation at which this token was last found
    /// live (`u64::MAX`: never checked yet).
    pub(super) live_at: AtomicU64,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the token, nor the headers (one may carry the token).
        f.debug_struct("Identity")
            .field("sub", &self.sub)
            .field("sid", &self.sid)
            .field("exp", &self.exp)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// A token that passed every check, and whether it is still in time.
#[derive(Debug, Clone)]
pub enum Checked {
    /// Valid now.
    Valid(Arc<Identity>),
    /// Genuine, but past `exp` (plus leeway).
    Expired(Arc<Identity>),
}

/// What the sealed refresh cookie holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshCookie {
    /// The refresh token.
    #[serde(rename = "t")]
    pub token: String,
    /// The `sub` of the JWT it came with.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The `sid` of the JWT it came with, where the IdP sets one.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// A finished refresh, shared by every request that waited for it.
#[derive(Debug)]
pub struct Refreshed {
    /// The new JWT.
    pub jwt: String,
    /// The refresh cookie to hold now (rotated token, or the same one).
    pub refresh: RefreshCookie,
    /// Who the new JWT says the user is.
    pub identity: Arc<Identity>,
}

/// Why a refresh gave no new JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshFailure {
    /// The IdP refused the refresh token (4xx).
    Rejected,
    /// The IdP could not be reached or failed.
    Unavailable,
    /// The IdP answered with a token that does not verify.
    Invalid,
    /// The IdP issued tokens whose JWT names a key its JWKS does not list
    /// yet: nothing to forward with, but the refresh token it issued (a
    /// rotated one spends the old) must reach the browser, or the next try
    /// is a replay and the user is logged out.
    Unpublished(Arc<RefreshCookie>),
    /// The IdP refused the refresh while the replicas could not coordinate
    /// (Redis unreachable): possibly a replay of a token another replica
    /// has just rotated, with the session fine. Answered like
    /// [`RefreshFailure::Unavailable`] (503, cookies kept), never with a
    /// logout.
    Contested,
}

/// What the single-flight shares.
pub type RefreshResult = Result<Arc<Refreshed>, RefreshFailure>;
