//! `gateway`: a reverse-proxy authentication gateway for web apps that cannot
//! be changed.
//!
//! It routes each request by host (and optional path prefix) to the app that
//! owns it and streams it to that app's upstream, HTTP/1.1 and HTTP/2, plain or
//! TLS, with WebSocket upgrades, `X-Forwarded-*` and request ids.
//!
//! ```text
//! accept (TCP or TLS, HTTP/1.1 + HTTP/2)          server, connection
//!   → route    host (+ path prefix) → app       route
//!   → forward  hop-by-hop out, X-Forwarded-* in,  forward, proxy_headers
//!              stream both ways, upgrades
//!   → response upstream answer, or the gateway's  error, pages
//!              own page (404/502/504) with the request id
//! ```
//!
//! The library's entry point is [`serve`], called by the binary and by tests
//! with listeners bound beforehand:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = gateway::Config::load("config.toml".as_ref())?;
//! let listeners = gateway::Listeners::bind(&config).await?;
//! gateway::serve(listeners, config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod auth;
pub mod authorize;
pub mod body;
pub mod config;
pub mod connection;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod forward;
pub mod identity;
pub mod idp;
pub mod login;
pub mod login_page;
pub mod metrics;
pub mod pages;
pub mod pipeline;
pub mod pool;
pub mod proxy_headers;
pub mod public;
pub mod refresh;
pub mod request_id;
pub mod return_to;
pub mod route;
pub mod server;
pub mod session;
pub mod single_flight;
pub mod telemetry;
pub mod throttle;
pub mod tls;
pub mod verify;
pub mod workers;

pub use config::{Config, ConfigError};
pub use server::{serve, Listeners};
