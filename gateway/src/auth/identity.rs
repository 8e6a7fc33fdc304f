//! Identity headers: what the upstream learns about the user.
//!
//! Input: the request headers, already cleaned of every header the gateway
//! may set and anything named `X-Auth-Request-*`, in any spelling (the
//! pipeline does that before any stage, on every route: an upstream must
//! never trust a client's claim to be someone), and a verified [`Identity`].
//! Output: the identity's headers added.

use http::HeaderMap;

use super::model::Identity;

/// Adds the identity's headers.
pub fn apply(headers: &mut HeaderMap, identity: &Identity) {
    for (name, value) in &identity.headers {
        headers.insert(name.clone(), value.clone());
    }
}
