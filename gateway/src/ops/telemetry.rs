//! Logging set-up: `tracing-subscriber` with the configured level and format.
//!
//! `RUST_LOG`, when set, overrides `log.level`. Pretty output for people,
//! JSON lines for log pipelines; request spans carry the request id, app,
//! method and path so every line of a request can be found by its id.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Call once, before serving.
pub fn init(log: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // An embedding program may already have a subscriber; keep it then.
    let _ = match log.format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
