//! The ids revocations are kept under, one derivation for every source
//! (logout, IdP events, back-channel logout, the admin API), so that what
//! one records the request path finds.
//!
//! Input: the store (its keyed hash) and what names the revoked thing: a
//! session (`sid`, per client, since an OIDC `sid` may span several
//! clients), a token without `sid` (per app), a user (across clients, or for
//! one), or a whole client. Output: the id, a keyed hash that says nothing
//! to whoever reads Redis.

use crate::store::Store;

/// One session of `client_id` (its `sid` claim).
pub fn session(store: &Store, client_id: &str, sid: &str) -> String {
    store.digest(&[b"session", client_id.as_bytes(), sid.as_bytes()])
}

/// One token of `app` that carries no `sid`.
pub fn token(store: &Store, app: &str, token: &str) -> String {
    store.digest(&[b"token", app.as_bytes(), token.as_bytes()])
}

/// Every session of the user `sub`, for one client or (`None`) all.
pub fn user(store: &Store, sub: &str, client_id: Option<&str>) -> String {
    match client_id {
        Some(client) => store.digest(&[b"user", sub.as_bytes(), client.as_bytes()]),
        None => store.digest(&[b"user", sub.as_bytes()]),
    }
}

/// Every session of `client_id`.
pub fn client(store: &Store, client_id: &str) -> String {
    store.digest(&[b"client", client_id.as_bytes()])
}
