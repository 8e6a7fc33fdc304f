//! Other ways in besides proxying: the auth endpoint an ingress asks about
//! each request when it does the proxying itself (forward-auth mode).
//!
//! This folder reads the ingress's subrequest and shapes the answers each
//! ingress needs; the login stages it runs are `auth`'s, the routing and
//! path rules `proxy`'s, and the top (`pipeline`) puts them together. It
//! never imports the top-level files (`pipeline`, `error`, `pages`), and
//! nothing below it imports it.

pub mod forward_auth;
