//! The gateway's own endpoints on each app's host, under the app's reserved
//! prefix (`/.gateway` by default): the login page and the logout.
//!
//! - `GET  {prefix}/login`  the login form, with a CSRF token (a signed token
//!   in a cookie and in the form: double submit).
//! - `POST {prefix}/login`  CSRF, return-to, throttling, then the password
//!   grant: 302 with the session cookies; 401 and the form again with one
//!   generic message (wrong password and unknown user alike, never faster than
//!   `login.min_failure_time`); 503 and the form when the IdP is unavailable;
//!   403 on a bad CSRF token; 429 with `Retry-After` when throttled.
//!   Throttling (in the store: shared by every replica with Redis) takes an attempt from the client address first (an IPv6
//!   client's /64), then, for a form with both fields filled in, from the
//!   username at the IdP, shared by every app that uses it; an empty field is
//!   refused with the generic 401 before the username pays for it.
//! - `GET  {prefix}/logout` a confirmation page (an unmodified app cannot put
//!   our CSRF token in its own logout link, so it links here).
//! - `GET  {prefix}/refresh?return_to=…` the session renewed on a top-level
//!   answer, then 302 back (forward-auth mode sends page loads here; see
//!   [`refresh`]).
//! - `POST {prefix}/logout` CSRF, put the session on the revocation list
//!   (every replica refuses its JWT from then on, until it would have
//!   expired), forget any refresh of the session kept for late requests,
//!   revoke the refresh token at the IdP (best effort), clear the cookies,
//!   302 to the login page or the configured URL.
//!
//! Both forms are read within `login.form_timeout` (408 after it, the body
//! left unread) and up to 16 KiB (400 beyond).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::page::PageData;
use crate::auth::app::{unix_now, AppAuth, LoginShared, CSRF_MAX_AGE};
use crate::auth::cookies::Layout;
use crate::auth::error::AuthError;
use crate::auth::gate::{self, challenge, Visit};
use crate::auth::idp::IdpError;
use crate::auth::model::{Checked, RefreshCookie};
use crate::auth::return_to;
use crate::auth::session;

/// A complete answer from one of these pages; the caller turns the bytes
/// into its response body.
pub type Page = Response<Bytes>;

/// Largest login or logout form accepted.
const MAX_FORM_BYTES: usize = 16 * 1024;

const FAILED: &str = "The username or password is incorrect.";
const UNAVAILABLE: &str = "Sign-in is unavailable right now. Please try again in a moment.";

/// Whether `path` is under the app's reserved prefix.
pub fn owns(auth: &AppAuth, path: &str) -> bool {
    let prefix = auth.config.gateway_path.as_str();
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Who is asking: the client address used for throttling.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The client's IP (the peer, or behind trusted proxies the first
    /// untrusted hop of `X-Forwarded-For` from the right).
    pub ip: IpAddr,
}

/// Answers a request under the reserved prefix.
pub async fn endpoint(
    auth: &Arc<AppAuth>,
    shared: &LoginShared,
    caller: Caller,
    req: Request<Incoming>,
) -> Result<Page, AuthError> {
    let started = Instant::now();
    let rest = &req.uri().path()[auth.config.gateway_path.len()..];
    match (rest, req.method()) {
        ("/login", &Method::GET | &Method::HEAD) => {
            let query = query_map(req.uri().query());
            let return_to = query
                .get("return_to")
                .and_then(|r| return_to::sanitise(r))
                .unwrap_or("");
            Ok(login_form(
                auth,
                req.headers(),
                StatusCode::OK,
                return_to,
                "",
                None,
            ))
        }
        ("/login", &Method::POST) => login(auth, shared, caller, req, started).await,
        ("/logout", &Method::GET | &Method::HEAD) => Ok(logout_page(auth, req.headers())),
        ("/logout", &Method::POST) => logout(auth, shared, req).await,
        ("/refresh", &Method::GET | &Method::HEAD) => refresh(auth, req).await,
        ("/login" | "/logout" | "/refresh", _) => Err(AuthError::MethodNotAllowed),
        _ => Err(AuthError::NotFound),
    }
}

/// The refresh page: the session renewed on a top-level answer (so its
/// cookies reach the browser whatever sits in front), then back to
/// `return_to`. Forward-auth mode sends page loads here when the JWT has
/// expired; a refresh made moments ago for the same cookies (in the
/// subrequest, or on another replica) is reused, never replayed at the IdP.
/// No session: the login page, coming back to `return_to`.
async fn refresh(auth: &Arc<AppAuth>, req: Request<Incoming>) -> Result<Page, AuthError> {
    let query = query_map(req.uri().query());
    let back = query
        .get("return_to")
        .and_then(|r| return_to::sanitise(r))
        .filter(|r| !r.is_empty())
        .unwrap_or(auth.config.landing_path.as_str());
    let session = session::read(auth, req.headers());
    let target = Visit {
        path_and_query: back,
        navigation: true,
    };
    let renewed = gate::authenticate(auth, &session, target).await?;
    Ok(redirect(back, renewed.set_cookies))
}

/// The CSRF token the client holds if still good, else a new one (with its
/// cookie).
fn csrf_token(auth: &AppAuth, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let now = unix_now();
    if let (Some(token), _) = auth.csrf_cookie.read(headers) {
        if auth
            .csrf
            .check(Some(&token), Some(&token), now, CSRF_MAX_AGE.as_secs())
        {
            return (token, None);
        }
    }
    let token = auth.csrf.issue(now);
    let cookie = auth
        .csrf_cookie
        .store(&token, Layout::Absent)
        .into_iter()
        .next();
    (token, cookie)
}

fn login_form(
    auth: &AppAuth,
    headers: &HeaderMap,
    status: StatusCode,
    return_to: &str,
    username: &str,
    error: Option<&str>,
) -> Page {
    let (csrf, cookie) = csrf_token(auth, headers);
    let action = auth.config.login_path();
    let html = auth.page.render_login(&PageData {
        title: &auth.config.title,
        action: &action,
        csrf: &csrf,
        return_to,
        username,
        error,
    });
    let mut response = page(status, html);
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, challenge(auth));
    }
    response
}

fn logout_page(auth: &AppAuth, headers: &HeaderMap) -> Page {
    let (csrf, cookie) = csrf_token(auth, headers);
    let action = auth.config.logout_path();
    let html = auth.page.render_logout(&PageData {
        title: &auth.config.title,
        action: &action,
        csrf: &csrf,
        return_to: "",
        username: "",
        error: None,
    });
    let mut response = page(StatusCode::OK, html);
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

fn page(status: StatusCode, html: String) -> Page {
    let mut response = Response::new(Bytes::from(html));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Page {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::FOUND;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(LOCATION, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        h.append(SET_COOKIE, cookie);
    }
    response
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Reads a form body of at most [`MAX_FORM_BYTES`] within `timeout`: a
/// client sending a byte now and then must not hold the request (and its
/// connection) open for as long as it likes. On time-out the body is
/// dropped unread, so the connection is not reused.
async fn read_form(
    auth: &AppAuth,
    form: &'static str,
    timeout: std::time::Duration,
    req: Request<Incoming>,
) -> Result<(HeaderMap, HashMap<String, String>), AuthError> {
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(timeout, Limited::new(body, MAX_FORM_BYTES).collect())
        .await
        .map_err(|_| {
            auth.metrics.form_timeout(form);
            AuthError::FormTimeout
        })?;
    let bytes: Bytes = collected
        .map_err(|_| AuthError::BadRequest("form too large or unreadable"))?
        .to_bytes();
    let form = url::form_urlencoded::parse(&bytes).into_owned().collect();
    Ok((parts.headers, form))
}

fn csrf_ok(auth: &AppAuth, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let (cookie, _) = auth.csrf_cookie.read(headers);
    auth.csrf.check(
        cookie.as_deref(),
        form.get("csrf").map(String::as_str),
        unix_now(),
        CSRF_MAX_AGE.as_secs(),
    )
}

async fn login(
    auth: &Arc<AppAuth>,
    shared: &LoginShared,
    caller: Caller,
    req: Request<Incoming>,
    started: Instant,
) -> Result<Page, AuthError> {
    let (headers, form) = read_form(auth, "login", shared.config.form_timeout, req).await?;
    if !csrf_ok(auth, &headers, &form) {
        auth.metrics.login("csrf");
        return Err(AuthError::Csrf);
    }
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let username = field("username").trim();
    let password = field("password");
    let return_to = return_to::sanitise(field("return_to")).unwrap_or("");

    if let Err(wait) = shared.check_ip(caller.ip).await {
        auth.metrics.throttled("ip");
        auth.metrics.login("throttled");
        return Err(AuthError::Throttled(wait.as_secs().max(1)));
    }

    let failed = |status: StatusCode, message: &str| {
        login_form(auth, &headers, status, return_to, username, Some(message))
    };
    // Before the username's bucket: a form with an empty field never reaches
    // the IdP, so it must not cost the user one of their attempts (five
    // empty posts a minute would otherwise lock anyone out).
    if username.is_empty() || password.is_empty() {
        auth.metrics.login("rejected");
        pad(started, shared).await;
        return Ok(failed(StatusCode::UNAUTHORIZED, FAILED));
    }
    let Some(idp) = auth.idp.client() else {
        auth.metrics.login("unavailable");
        return Ok(failed(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE));
    };
    // The IdP is known by the address the password goes to: every app that
    // sends it there shares the user's attempts.
    if let Err(wait) = shared
        .check_user(idp.endpoints().token.as_str(), username)
        .await
    {
        auth.metrics.throttled("username");
        auth.metrics.login("throttled");
        return Err(AuthError::Throttled(wait.as_secs().max(1)));
    }
    let tokens = match idp
        .password_grant(&auth.config.client, username, password)
        .await
    {
        Ok(tokens) => tokens,
        Err(IdpError::Rejected { status }) => {
            tracing::info!(status, "login refused by the IdP");
            auth.metrics.login("rejected");
            pad(started, shared).await;
            return Ok(failed(StatusCode::UNAUTHORIZED, FAILED));
        }
        Err(e) => {
            tracing::warn!(error = %e, "login failed: IdP unavailable");
            auth.metrics.login("unavailable");
            return Ok(failed(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE));
        }
    };
    let identity = match auth.check_issued(&tokens.access_token, unix_now()).await {
        Ok(Checked::Valid(identity)) => identity,
        other => {
            let why = match other {
                Ok(_) => "already expired".to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::error!(reason = %why, "the IdP's JWT does not verify; check [idp] settings");
            auth.metrics.login("unavailable");
            return Ok(failed(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE));
        }
    };
    if tokens.refresh_token.is_none() {
        tracing::warn!(
            "the IdP issued no refresh token (is offline_access in idp.scope and refresh tokens enabled?); the session ends with the JWT"
        );
    }
    let refresh = tokens.refresh_token.map(|token| RefreshCookie {
        token,
        sub: identity.sub.clone(),
        sid: identity.sid.clone(),
    });
    let previous = session::read(auth, &headers);
    let cookies = session::store(auth, &tokens.access_token, refresh.as_ref(), &previous);
    auth.metrics.login("success");
    tracing::info!(sub = identity.sub.as_deref().unwrap_or(""), "login");
    auth.record_session(&identity, Some(caller.ip), true).await;
    let target = if return_to.is_empty() {
        auth.config.landing_path.as_str()
    } else {
        return_to
    };
    Ok(redirect(target, cookies))
}

/// A failed attempt answers no sooner than `login.min_failure_time` after it
/// arrived, so timing does not tell an unknown user from a wrong password.
async fn pad(started: Instant, shared: &LoginShared) {
    tokio::time::sleep_until(started + shared.config.min_failure_time).await;
}

async fn logout(
    auth: &Arc<AppAuth>,
    shared: &LoginShared,
    req: Request<Incoming>,
) -> Result<Page, AuthError> {
    let (headers, form) = read_form(auth, "logout", shared.config.form_timeout, req).await?;
    if !csrf_ok(auth, &headers, &form) {
        return Err(AuthError::Csrf);
    }
    let session = session::read(auth, &headers);
    // The JWT leaves service on every replica now, not at its `exp`: a
    // copy of it (stolen, or in another tab) is refused from here on. Only
    // a genuine token can end its session.
    if let Some(jwt) = &session.jwt {
        if let Ok(Checked::Valid(identity) | Checked::Expired(identity)) =
            auth.check(jwt, unix_now()).await
        {
            auth.revoke(&identity).await;
        }
    }
    let mut revoked = false;
    if let Some(cookie) = &session.refresh(auth) {
        // A refresh of this session kept for late requests (by the old token
        // it answered, or holding this one) must not hand out a new JWT for
        // the logged-out session during `session.refresh_grace`.
        let token = cookie.token.as_str();
        auth.flight.forget(|key, result| {
            key == token
                || result.is_some_and(|r| {
                    r.as_ref()
                        .is_ok_and(|refreshed| refreshed.refresh.token == token)
                })
        });
        match auth.idp.client() {
            Some(idp) => match idp.revoke(&auth.config.client, &cookie.token).await {
                Ok(()) => revoked = true,
                Err(e) => tracing::warn!(error = %e, "logout: refresh token not revoked"),
            },
            None => tracing::warn!("logout: IdP not ready; refresh token not revoked"),
        }
    }
    auth.metrics.logout(revoked);
    let target = auth
        .config
        .logout_redirect
        .clone()
        .unwrap_or_else(|| auth.config.login_path());
    Ok(redirect(&target, session::clear(auth, &session)))
}
