//! The one error type of the request path, and its one mapping to HTTP.
//!
//! Every stage returns `Result<_, Error>`. [`Error::into_response`] is the only
//! place that decides the status, the page and what the client may see; the
//! details (error chains, upstream addresses) go to the log line of the request,
//! tagged with its request id.

use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE,
};
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

    /// Nothing lives at this path under the gateway's reserved prefix.
    #[error("no such gateway endpoint")]
    NotFound,
    /// A gateway endpoint was called with the wrong method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A form the gateway reads was too large or unreadable.
    #[error("bad request: {0}")]
    BadRequest(&'static str),

    // --- login ---
    /// The login or logout form came without a valid CSRF token.
    #[error("CSRF token missing or invalid")]
    Csrf,
    /// Too many login attempts from this client or for this username.
    #[error("login throttled; retry in {0} s")]
    Throttled(u64),

    // --- session, verify, refresh ---
    /// No usable session: log in (again).
    #[error("login required")]
    LoginRequired(Box<Relogin>),
    /// The IdP could not be asked (`refresh` or `login`); nothing changed.
    #[error("identity provider unavailable during {0}")]
    IdpUnavailable(&'static str),

    // --- authorize ---
    /// The user lacks a role the app requires.
    #[error("missing required role")]
    Forbidden,

    // --- forward ---
    /// The upstream refused the connection or broke it before answering.
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(#[source] BoxError),
    /// The upstream did not connect or answer within the configured timeout.
    #[error("upstream timed out: {0}")]
    UpstreamTimeout(&'static str),
}

/// How to send a client without a session to the login page.
#[derive(Debug)]
pub struct Relogin {
    /// The login page, with the return-to of the original request.
    pub location: String,
    /// A browser navigation (302 to the login page) rather than an API call
    /// (401 JSON).
    pub navigation: bool,
    /// The `WWW-Authenticate` challenge for the 401.
    pub challenge: HeaderValue,
    /// `Set-Cookie` values clearing the session.
    pub clear: Vec<HeaderValue>,
}

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MissingHost | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::UnknownHost { .. } | Error::NotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Csrf | Error::Forbidden => StatusCode::FORBIDDEN,
            Error::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::LoginRequired(r) if r.navigation => StatusCode::FOUND,
            Error::LoginRequired(_) => StatusCode::UNAUTHORIZED,
            Error::IdpUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            Error::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The page (HTML or JSON) the client gets for this error.
    pub fn into_response(self, request_id: &HeaderValue, json: bool) -> Response<Body> {
        let status = self.status();
        let (title, message) = match self {
            Error::LoginRequired(relogin) => return login_required(status, *relogin),
            Error::Throttled(seconds) => {
                let mut response = pages::render(
                    status,
                    "Too many attempts",
                    "Too many sign-in attempts. Please wait a moment and try again.",
                    request_id,
                    json,
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(seconds));
                return response;
            }
            Error::MissingHost | Error::BadRequest(_) => {
                ("Bad request", "The request could not be understood.")
            }
            Error::UnknownHost { .. } | Error::NotFound => {
                ("Not found", "There is nothing at this address.")
            }
            Error::MethodNotAllowed => (
                "Method not allowed",
                "This address does not accept that kind of request.",
            ),
            Error::Csrf => (
                "Forbidden",
                "The form has expired or was not sent from this site. Please go back, reload the page and try again.",
            ),
            Error::Forbidden => (
                "Forbidden",
                "Your account does not have access to this application.",
            ),
            Error::IdpUnavailable(_) => (
                "Sign-in unavailable",
                "Sign-in is unavailable right now. Please try again in a moment.",
            ),
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

fn login_required(status: StatusCode, relogin: Relogin) -> Response<Body> {
    let mut response = if relogin.navigation {
        let mut r = Response::new(Body::empty());
        if let Ok(location) = HeaderValue::from_str(&relogin.location) {
            r.headers_mut().insert(LOCATION, location);
        }
        r
    } else {
        let mut r = Response::new(Body::full(r#"{"error":"login_required"}"#));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(WWW_AUTHENTICATE, relogin.challenge);
        r
    };
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in relogin.clear {
        h.append(SET_COOKIE, cookie);
    }
    response
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
            (Error::NotFound, 404),
            (Error::MethodNotAllowed, 405),
            (Error::BadRequest("x"), 400),
            (Error::Csrf, 403),
            (Error::Forbidden, 403),
            (Error::Throttled(3), 429),
            (Error::IdpUnavailable("refresh"), 503),
            (relogin(true), 302),
            (relogin(false), 401),
        ];
        for (error, status) in table {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }

    fn relogin(navigation: bool) -> Error {
        Error::LoginRequired(Box::new(Relogin {
            location: "/.gateway/login?return_to=%2Fcart".into(),
            navigation,
            challenge: HeaderValue::from_static("Cookie realm=\"store\""),
            clear: vec![HeaderValue::from_static("gw_jwt=; Max-Age=0")],
        }))
    }

    #[test]
    fn login_required_redirects_browsers_and_tells_apis() {
        let r = relogin(true).into_response(&HeaderValue::from_static("rid"), false);
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()[LOCATION], "/.gateway/login?return_to=%2Fcart");
        assert_eq!(r.headers()[SET_COOKIE], "gw_jwt=; Max-Age=0");
        let r = relogin(false).into_response(&HeaderValue::from_static("rid"), true);
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key(WWW_AUTHENTICATE));
        let body = r.into_body();
        assert_eq!(
            body.as_full().expect("body"),
            br#"{"error":"login_required"}"#
        );
        let r = Error::Throttled(7).into_response(&HeaderValue::from_static("rid"), false);
        assert_eq!(r.headers()[RETRY_AFTER], "7");
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
