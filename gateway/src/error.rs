//! The one error type of the request path, and its one mapping to HTTP.
//!
//! Every stage returns `Result<_, Error>`. [`Error::into_response`] is the only
//! place that decides the status, the page and what the client may see; the
//! details (error chains, upstream addresses) go to the log line of the request,
//! tagged with its request id.

use http::{HeaderValue, Response, StatusCode};

use crate::body::Body;
use crate::pages;

/// A boxed error from a dependency, kept for the logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong while handling one request, grouped by stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- route ---
    /// The request named no host at all.
    #[error("request has no Host header or authority")]
    MissingHost,
    /// No app serves this host and path.
    #[error("no app serves host {host:?}")]
    UnknownHost {
        /// The host as the client sent it.
        host: String,
    },

    // --- forward ---
    /// The upstream refused the connection or broke it before answering.
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(#[source] BoxError),
    /// The upstream did not connect or answer within the configured timeout.
    #[error("upstream timed out: {0}")]
    UpstreamTimeout(&'static str),
}

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MissingHost => StatusCode::BAD_REQUEST,
            Error::UnknownHost { .. } => StatusCode::NOT_FOUND,
            Error::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            Error::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The page (HTML or JSON) the client gets for this error.
    pub fn into_response(self, request_id: &HeaderValue, json: bool) -> Response<Body> {
        let status = self.status();
        let (title, message) = match self {
            Error::MissingHost => ("Bad request", "The request could not be understood."),
            Error::UnknownHost { .. } => ("Not found", "There is nothing at this address."),
            Error::UpstreamUnreachable(_) => (
                "Bad gateway",
                "The application is not reachable right now. Please try again in a moment.",
            ),
            Error::UpstreamTimeout(_) => (
                "Gateway timeout",
                "The application took too long to answer. Please try again in a moment.",
            ),
        };
        pages::render(status, title, message, request_id, json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_status() {
        let io = || -> BoxError { Box::new(std::io::Error::other("refused")) };
        let table = [
            (Error::MissingHost, 400),
            (Error::UnknownHost { host: "x".into() }, 404),
            (Error::UpstreamUnreachable(io()), 502),
            (Error::UpstreamTimeout("response"), 504),
        ];
        for (error, status) in table {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }

    #[test]
    fn pages_reveal_nothing_internal() {
        let e =
            Error::UpstreamUnreachable(Box::new(std::io::Error::other("10.1.2.3:8080 refused")));
        let response = e.into_response(&HeaderValue::from_static("rid"), false);
        assert_eq!(response.status(), 502);
        let body = response.into_body();
        let text = String::from_utf8_lossy(body.as_full().expect("a page body"));
        assert!(!text.contains("10.1.2.3"));
        assert!(text.contains("rid"));
    }
}
