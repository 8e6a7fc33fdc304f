//! Runnable companions of the gateway: two demo upstream web apps that know
//! nothing about authentication, the "unmodified legacy apps" put behind it,
//! and a development identity provider for them to log in against.
//!
//! * [`store`]: a small shop (`/`, `/products`, `/shopping-cart`, `/static/*`).
//! * [`forums`]: a discussion board (`/`, `/posts`).
//! * [`idp`]: a development-only IdP speaking FusionAuth's API as far as the
//!   gateway uses it (password and refresh grants, JWKS, revocation).
//!
//! Both are plain hyper 1 servers (HTTP/1.1 with keep-alive and HTTP/2).
//! Their pages show who the gateway says the user is
//! (`X-Auth-Request-User`) and, in a "What the gateway sent" panel, the
//! identity, forwarding and cookie headers that reached the app.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
//! gateway_examples::store::serve(listener).await
//! # }
//! ```

pub mod cli;
mod common;
pub mod forums;
pub mod idp;
pub mod store;
