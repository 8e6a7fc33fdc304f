//! The login stages run as one for a request that is neither for the
//! gateway's own pages nor on a public path: session cookies in, verify,
//! refresh, and the answer that sends a client to log in. Proxy mode runs
//! them on the request it forwards; forward-auth mode on the original
//! request an ingress describes; the refresh page on its own.
//!
//! Input: the app, the session read from the request, and what the request
//! is ([`Visit`]: its path and query, whether a browser is loading a page).
//! Output: the identity with any new cookies, or an [`AuthError`].

use std::sync::Arc;

use http::header::{ACCEPT, UPGRADE};
use http::{HeaderValue, Method, Request};

use super::app::{unix_now, AppAuth};
use super::error::{AuthError, Relogin};
use super::model::{Checked, Identity};
use super::refresh::{self, Renewed};
use super::session::{self, Session};
use super::verify::VerifyError;

/// The request the stages decide about.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    /// Its path and query (normal), the login page's return-to.
    pub path_and_query: &'a str,
    /// A browser loading a page ([`is_navigation`]): sent to pages with a
    /// 302, where a script gets 401 JSON.
    pub navigation: bool,
}

impl<'a> Visit<'a> {
    /// The target of `req` as it stands.
    pub fn of<B>(req: &'a Request<B>) -> Visit<'a> {
        Visit {
            path_and_query: req.uri().path_and_query().map_or("/", |p| p.as_str()),
            navigation: is_navigation(req),
        }
    }
}

/// The session, verify and refresh stages: the identity to forward with.
pub async fn authenticate(
    auth: &Arc<AppAuth>,
    session: &Session,
    target: Visit<'_>,
) -> Result<Renewed, AuthError> {
    let now = unix_now();
    let checked = check(auth, session, now).await;
    match checked {
        Ok(Checked::Valid(identity)) if !auth.due_for_refresh(&identity, now) => Ok(Renewed {
            identity,
            set_cookies: Vec::new(),
        }),
        checked => {
            refresh::stage(auth, session, checked, |clear| {
                relogin(auth, target, session, clear)
            })
            .await
        }
    }
}

/// What a session is worth where the gateway must not refresh (the cookies
/// of a refresh would not reach the browser).
#[derive(Debug)]
pub enum Standing {
    /// Good as it is.
    Valid(Arc<Identity>),
    /// Good once refreshed: send the browser where it can be.
    NeedsRefresh,
}

/// [`authenticate`] without the IdP: a session that a refresh could renew
/// is [`Standing::NeedsRefresh`] (a JWT due for an early refresh only for a
/// page load; a script keeps going until it expires); anything else is
/// decided as [`authenticate`] would, which needs no IdP call when there is
/// no refresh cookie.
pub async fn standing(
    auth: &Arc<AppAuth>,
    session: &Session,
    target: Visit<'_>,
) -> Result<Standing, AuthError> {
    let now = unix_now();
    let checked = check(auth, session, now).await;
    let refreshable = session.refresh_sealed.is_some();
    match checked {
        Ok(Checked::Valid(identity))
            if !(target.navigation && refreshable && auth.due_for_refresh(&identity, now)) =>
        {
            Ok(Standing::Valid(identity))
        }
        Err(VerifyError::Revoked) => Err(relogin(auth, target, session, true)),
        _ if refreshable => Ok(Standing::NeedsRefresh),
        checked => {
            let renewed = refresh::stage(auth, session, checked, |clear| {
                relogin(auth, target, session, clear)
            })
            .await?;
            Ok(Standing::Valid(renewed.identity))
        }
    }
}

async fn check(auth: &Arc<AppAuth>, session: &Session, now: u64) -> Result<Checked, VerifyError> {
    match &session.jwt {
        Some(jwt) => auth.check(jwt, now).await,
        None => Err(VerifyError::Malformed),
    }
}

/// Sends the client to the login page, coming back to `target` (or tells an
/// API client to log in); `clear` clears the session's cookies.
pub fn relogin(auth: &AppAuth, target: Visit<'_>, session: &Session, clear: bool) -> AuthError {
    AuthError::LoginRequired(Box::new(Relogin {
        location: with_return_to(&auth.config.login_path(), target.path_and_query),
        navigation: target.navigation,
        challenge: challenge(auth),
        clear: if clear {
            session::clear(auth, session)
        } else {
            Vec::new()
        },
    }))
}

/// `page?return_to=<target, encoded>`.
pub fn with_return_to(page: &str, target: &str) -> String {
    format!(
        "{page}?return_to={}",
        url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
    )
}

/// A browser loading a page: GET or HEAD, HTML accepted, not a script's
/// request and not a WebSocket upgrade.
pub fn is_navigation<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    matches!(*req.method(), Method::GET | Method::HEAD)
        && !headers.contains_key(UPGRADE)
        && !headers.contains_key("x-requested-with")
        && headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The `WWW-Authenticate` challenge of a 401: log in with the form.
pub fn challenge(auth: &AppAuth) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "Cookie realm=\"{}\", form-action=\"{}\"",
        auth.app,
        auth.config.login_path()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Cookie"))
}
