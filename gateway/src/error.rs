//! The one error type of the request path, and its one mapping to HTTP.
//!
//! Routing fails with [`Error`]'s own variants; the login stages return an
//! [`AuthError`] and the proxy core an [`UpstreamError`], both wrapped here.
//! [`Error::into_response`] is the only
//! place that decides the status, the page and what the client may see; the
//! details (error chains, upstream addresses) go to the log line of the request,
//! tagged with its request id.

use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE,
};
use http::{HeaderValue, Response, StatusCode};

use crate::auth::error::{AuthError, Relogin};
use crate::front::forward_auth::Refused;
use crate::pages;
use crate::proxy::body::Body;
use crate::proxy::error::UpstreamError;
use crate::proxy::path::BadPath;
use crate::proxy::route::HostError;

/// What went wrong while handling one request: routing here, the login
/// stages' and the proxy core's own errors wrapped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No single, well-formed host.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A path with no single reading.
    #[error(transparent)]
    Path(#[from] BadPath),
    /// No app serves this host and path.
    #[error("no app serves host {host:?}")]
    UnknownHost {
        /// The host as the client sent it.
        host: String,
    },
    /// A forward-auth subrequest not from an ingress, or not describing an
    /// original request.
    #[error(transparent)]
    ForwardAuth(#[from] Refused),
    /// A login stage or the gateway's own pages.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Forwarding to the upstream.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Host(_) | Error::Path(_) => StatusCode::BAD_REQUEST,
            Error::UnknownHost { .. } => StatusCode::NOT_FOUND,
            Error::ForwardAuth(Refused::NotAnIngress) => StatusCode::FORBIDDEN,
            Error::ForwardAuth(Refused::Original(_)) => StatusCode::BAD_REQUEST,
            Error::Auth(e) => match e {
                AuthError::BadRequest(_) => StatusCode::BAD_REQUEST,
                AuthError::FormTimeout => StatusCode::REQUEST_TIMEOUT,
                AuthError::NotFound => StatusCode::NOT_FOUND,
                AuthError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                AuthError::Csrf | AuthError::Forbidden => StatusCode::FORBIDDEN,
                AuthError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                AuthError::LoginRequired(r) if r.navigation => StatusCode::FOUND,
                AuthError::LoginRequired(_) => StatusCode::UNAUTHORIZED,
                AuthError::IdpUnavailable(_) | AuthError::RefreshUnverifiable(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
            Error::Upstream(UpstreamError::Unreachable(_)) => StatusCode::BAD_GATEWAY,
            Error::Upstream(UpstreamError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The page (HTML or JSON) the client gets for this error.
    pub fn into_response(self, request_id: &HeaderValue, json: bool) -> Response<Body> {
        let status = self.status();
        let (title, message) = match self {
            Error::Auth(AuthError::LoginRequired(relogin)) => {
                return login_required(status, *relogin)
            }
            Error::Auth(AuthError::RefreshUnverifiable(cookies)) => {
                // The IdP-unavailable page, keeping the refresh token the IdP
                // issued.
                let unavailable = Error::Auth(AuthError::IdpUnavailable("refresh"));
                let mut response = unavailable.into_response(request_id, json);
                for cookie in cookies {
                    response.headers_mut().append(SET_COOKIE, cookie);
                }
                return response;
            }
            Error::Auth(AuthError::Throttled(seconds)) => {
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
            Error::Host(_)
            | Error::Path(_)
            | Error::ForwardAuth(Refused::Original(_))
            | Error::Auth(AuthError::BadRequest(_)) => {
                ("Bad request", "The request could not be understood.")
            }
            Error::Auth(AuthError::FormTimeout) => (
                "Request timeout",
                "The form took too long to arrive. Please try again.",
            ),
            Error::UnknownHost { .. } | Error::Auth(AuthError::NotFound) => {
                ("Not found", "There is nothing at this address.")
            }
            Error::Auth(AuthError::MethodNotAllowed) => (
                "Method not allowed",
                "This address does not accept that kind of request.",
            ),
            Error::Auth(AuthError::Csrf) => (
                "Forbidden",
                "The form has expired or was not sent from this site. Please go back, reload the page and try again.",
            ),
            Error::ForwardAuth(Refused::NotAnIngress) => {
                ("Forbidden", "You do not have access to this address.")
            }
            Error::Auth(AuthError::Forbidden) => (
                "Forbidden",
                "Your account does not have access to this application.",
            ),
            Error::Auth(AuthError::IdpUnavailable(_)) => (
                "Sign-in unavailable",
                "Sign-in is unavailable right now. Please try again in a moment.",
            ),
            Error::Upstream(UpstreamError::Unreachable(_)) => (
                "Bad gateway",
                "The application is not reachable right now. Please try again in a moment.",
            ),
            Error::Upstream(UpstreamError::Timeout(_)) => (
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
        let io = || -> crate::proxy::error::BoxError { Box::new(std::io::Error::other("refused")) };
        let table: [(Error, u16); 19] = [
            (Refused::NotAnIngress.into(), 403),
            (Refused::Original("URI").into(), 400),
            (HostError::Missing.into(), 400),
            (HostError::Repeated.into(), 400),
            (BadPath("backslash").into(), 400),
            (Error::UnknownHost { host: "x".into() }, 404),
            (UpstreamError::Unreachable(io()).into(), 502),
            (UpstreamError::Timeout("response").into(), 504),
            (AuthError::NotFound.into(), 404),
            (AuthError::MethodNotAllowed.into(), 405),
            (AuthError::BadRequest("x").into(), 400),
            (AuthError::FormTimeout.into(), 408),
            (AuthError::Csrf.into(), 403),
            (AuthError::Forbidden.into(), 403),
            (AuthError::Throttled(3).into(), 429),
            (AuthError::IdpUnavailable("refresh").into(), 503),
            (AuthError::RefreshUnverifiable(Vec::new()).into(), 503),
            (relogin(true), 302),
            (relogin(false), 401),
        ];
        for (error, status) in table {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }

    fn relogin(navigation: bool) -> Error {
        Error::Auth(AuthError::LoginRequired(Box::new(Relogin {
            location: "/.gateway/login?return_to=%2Fcart".into(),
            navigation,
            challenge: HeaderValue::from_static("Cookie realm=\"store\""),
            clear: vec![HeaderValue::from_static("gw_jwt=; Max-Age=0")],
        })))
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
        let r = Error::from(AuthError::Throttled(7))
            .into_response(&HeaderValue::from_static("rid"), false);
        assert_eq!(r.headers()[RETRY_AFTER], "7");
    }

    #[test]
    fn pages_reveal_nothing_internal() {
        let e = Error::from(UpstreamError::Unreachable(Box::new(std::io::Error::other(
            "10.1.2.3:8080 refused",
        ))));
        let response = e.into_response(&HeaderValue::from_static("rid"), false);
        assert_eq!(response.status(), 502);
        let body = response.into_body();
        let text = String::from_utf8_lossy(body.as_full().expect("a page body"));
        assert!(!text.contains("10.1.2.3"));
        assert!(text.contains("rid"));
    }
}
