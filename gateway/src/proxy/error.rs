//! The proxy core's own failures: what went wrong talking to an upstream.
//!
//! The top of the crate maps these to pages (502, 504); the details stay
//! here for the logs.

/// A boxed error from a dependency, kept for the logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream refused the connection or broke it before answering.
    #[error("upstream unreachable: {0}")]
    Unreachable(#[source] BoxError),
    /// The upstream did not connect or answer within the configured timeout.
    #[error("upstream timed out: {0}")]
    Timeout(&'static str),
}
