//! The gateway's own pages on each app's host: the login and logout
//! endpoints, and the page template they render.
//!
//! Uses the rest of `auth`; nothing in `auth` outside this folder imports it
//! except the per-app state, which owns the compiled template.

pub mod endpoint;
pub mod page;
