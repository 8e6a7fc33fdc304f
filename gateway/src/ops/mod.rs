//! Running the gateway: the admin listener (health, readiness, metrics), the
//! metric handles every layer records into, logging set-up, and the
//! process's open-files limit.
//!
//! It imports only `config`; `proxy` and `auth` may use it. Readiness is
//! handed to the admin listener as a function, so it never reaches up into
//! the request path.

pub mod admin;
pub mod metrics;
pub mod open_files;
pub mod telemetry;
