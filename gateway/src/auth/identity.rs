//! Identity headers: what the upstream learns about the user.
//!
//! Input: the client's request headers, the app's mapping, and a verified
//! [`Identity`]. Output: the request with every header the gateway may set,
//! and anything named `X-Auth-Request-*`, removed first (on every route,
//! public paths and apps without login included: an upstream must never
//! trust a client's claim to be someone), then the identity's headers added.

use http::HeaderMap;

use super::app::AppAuth;
use super::model::{Identity, IDENTITY_PREFIX as PREFIX};

/// Removes identity headers the client sent.
pub fn strip_client(headers: &mut HeaderMap, auth: Option<&AppAuth>) {
    if let Some(auth) = auth {
        for name in &auth.extra_identity_headers {
            headers.remove(name);
        }
    }
    // One look at the names; nothing allocated unless a client sent some.
    if headers.keys().any(|name| name.as_str().starts_with(PREFIX)) {
        let spoofed: Vec<_> = headers
            .keys()
            .filter(|name| name.as_str().starts_with(PREFIX))
            .cloned()
            .collect();
        for name in spoofed {
            headers.remove(name);
        }
    }
}

/// Adds the identity's headers.
pub fn apply(headers: &mut HeaderMap, identity: &Identity) {
    for (name, value) in &identity.headers {
        headers.insert(name.clone(), value.clone());
    }
}
