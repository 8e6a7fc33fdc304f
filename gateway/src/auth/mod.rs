//! The login workflow: per-app state, the session, verify, refresh (with its
//! single-flight), identity headers, public paths, authorization, cookies,
//! CSRF, throttling, return-to, the IdP client, the watch list of live
//! connections of sessions, and the gateway's own pages under `login/`.
//!
//! It knows nothing of sockets: it never imports `proxy`, `pipeline`, `error`
//! or `pages`. Stages return their own [`error::AuthError`] and answer with
//! complete pages ([`login::endpoint::Page`]) that the top turns into bodies.

pub mod app;
pub mod authorize;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod gate;
pub mod identity;
pub mod idp;
pub mod idp_state;
pub mod live;
pub mod login;
pub mod model;
pub mod public;
pub mod refresh;
pub mod return_to;
pub mod revocation;
pub mod session;
pub mod single_flight;
pub mod throttle;
pub mod verify;
