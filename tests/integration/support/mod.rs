//! Test support: the gateway in-process on an ephemeral port, a recording
//! upstream that keeps every request it saw, a small HTTP client, a test IdP,
//! a cookie-jar browser for the login workflow, and real servers the gateway
//! talks to (Glewlwyd, Redis).

#![allow(dead_code)]

pub mod auth;
pub mod browser;
pub mod caddy;
pub mod client;
pub mod envoy;
pub mod gateway;
pub mod glewlwyd;
pub mod idp;
pub mod ingress;
pub mod metrics;
pub mod process;
pub mod redis;
pub mod tls;
pub mod upstream;
pub mod ws;

pub use client::Client;
pub use gateway::{AppSpec, TestGateway};
pub use upstream::RecordingUpstream;

/// Polling bound for "eventually" checks: 200 × 25 ms = 5 s.
pub const POLL_ATTEMPTS: usize = 200;
/// Pause between polls.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);
