//! The reverse-proxy core: listeners, connection caps, connections and their
//! worker threads, one meaning per request (host and path), routing, the
//! client's headers cleaned, forwarding with hop-by-hop and `X-Forwarded-*`
//! handling, the client's address behind trusted proxies, upgraded tunnels,
//! the upstream pool, bodies (and ending one, or a tunnel, early) and
//! request ids.
//!
//! It knows nothing of login: it never imports `auth`, `pipeline`, `error` or
//! `pages`. The request path is handed to it as a [`server::Handler`], and it
//! reports failures with its own small [`error::UpstreamError`], which the top
//! maps to a page.

pub mod admission;
pub mod body;
pub mod client_ip;
pub mod connection;
pub mod cut;
pub mod error;
pub mod forward;
pub mod headers;
pub mod path;
pub mod pool;
pub mod request_body;
pub mod request_id;
pub mod route;
pub mod server;
pub mod tunnel;
pub mod workers;
