//! Why the login workflow refused or could not serve a request.
//!
//! The stages return [`AuthError`]; the top of the crate maps it to the
//! answer (status, page, login redirect or 401 JSON) in one place.

use http::HeaderValue;

/// What went wrong in a login stage or on one of the gateway's own pages.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Nothing lives at this path under the gateway's reserved prefix.
    #[error("no such gateway endpoint")]
    NotFound,
    /// A gateway endpoint was called with the wrong method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A form the gateway reads was too large or unreadable.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The login or logout form did not arrive whole within
    /// `login.form_timeout` (a client trickling its body).
    #[error("form not received in time")]
    FormTimeout,
    /// The login or logout form came without a valid CSRF token.
    #[error("CSRF token missing or invalid")]
    Csrf,
    /// Too many login attempts from this client or for this username.
    #[error("login throttled; retry in {0} s")]
    Throttled(u64),
    /// No usable session: log in (again).
    #[error("login required")]
    LoginRequired(Box<Relogin>),
    /// The IdP could not be asked (`refresh` or `login`); nothing changed.
    #[error("identity provider unavailable during {0}")]
    IdpUnavailable(&'static str),
    /// The IdP refreshed, but signed the JWT with a key it has not
    /// published: unavailable too, with these `Set-Cookie` values keeping
    /// the refresh token it issued.
    #[error("identity provider signed a refreshed JWT with an unpublished key")]
    RefreshUnverifiable(Vec<HeaderValue>),
    /// The user lacks a role the app requires.
    #[error("missing required role")]
    Forbidden,
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
