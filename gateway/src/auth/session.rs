//! The session stage: an app's two cookies, read and written.
//!
//! Input: the request's `Cookie` headers. Output: a [`Session`] with the JWT
//! (reassembled from chunks) and the opened refresh cookie, plus how each is
//! laid out so the answer can replace or clear exactly what the browser
//! holds. The refresh cookie is sealed (AES-256-GCM, bound to the app and
//! cookie name) and carries the refresh token with the `sub` and `sid` it was
//! issued for, which the refresh stage checks against the presented JWT. A
//! refresh cookie that does not open (tampered, another app's, an old key)
//! counts as absent.

use http::{HeaderMap, HeaderValue};

use std::sync::Arc;

use super::app::AppAuth;
use super::cookies::{self, Layout};
use super::model::{Identity, RefreshCookie};

/// An app's cookies as the client sent them.
#[derive(Debug, Default)]
pub struct Session {
    /// The JWT, if any.
    pub jwt: Option<String>,
    /// How the JWT cookie is laid out.
    pub jwt_layout: Layout,
    /// The sealed refresh cookie, if present (opened only when needed:
    /// a request with a valid JWT never pays for the decryption).
    pub refresh_sealed: Option<String>,
    /// How the refresh cookie is laid out (also when it did not open).
    pub refresh_layout: Layout,
}

/// Reads the app's session cookies.
pub fn read(auth: &AppAuth, headers: &HeaderMap) -> Session {
    if !headers.contains_key(http::header::COOKIE) {
        return Session::default();
    }
    scan(auth, headers).0
}

/// Reads the app's session cookies and takes all of the gateway's cookies
/// out of the request (it goes upstream without them): one pass.
pub fn take(auth: &AppAuth, headers: &mut HeaderMap) -> Session {
    if !headers.contains_key(http::header::COOKIE) {
        return Session::default();
    }
    let (session, rewrite) = scan(auth, headers);
    cookies::apply(headers, rewrite);
    session
}

/// The steady state: the JWT cookie holds a token verified before and still
/// valid. Then the gateway's cookies are taken out of the request and the
/// identity returned, with nothing copied or decrypted; otherwise `None` and
/// the request is left as it was (the caller goes the long way).
pub fn take_if_valid(auth: &AppAuth, headers: &mut HeaderMap, now: u64) -> Option<Arc<Identity>> {
    if !headers.contains_key(http::header::COOKIE) {
        return None;
    }
    let (identity, rewrite) = {
        let [jwt, refresh, csrf] = &auth.wires;
        let ([jwt, _, _], rewrite) = cookies::scan(
            headers,
            [jwt.as_str(), refresh.as_str(), csrf.as_str()],
            &auth.others,
        );
        (auth.cached_valid(jwt.single()?, now)?, rewrite)
    };
    cookies::apply(headers, rewrite);
    Some(identity)
}

fn scan(auth: &AppAuth, headers: &HeaderMap) -> (Session, cookies::Rewrite) {
    let [jwt, refresh, csrf] = &auth.wires;
    let ([jwt, refresh, _csrf], rewrite) = cookies::scan(
        headers,
        [jwt.as_str(), refresh.as_str(), csrf.as_str()],
        &auth.others,
    );
    let (jwt, jwt_layout) = jwt.value();
    let (sealed, refresh_layout) = refresh.value();
    let session = Session {
        jwt: jwt.filter(|j| !j.is_empty()),
        jwt_layout,
        refresh_sealed: sealed.filter(|s| !s.is_empty()),
        refresh_layout,
    };
    (session, rewrite)
}

impl Session {
    /// The refresh cookie, opened; `None` if absent or not genuine.
    pub fn refresh(&self, auth: &AppAuth) -> Option<RefreshCookie> {
        let sealed = self.refresh_sealed.as_deref()?;
        let opened = auth
            .sealer
            .open(&auth.seal_context(), sealed)
            .and_then(|plain| serde_json::from_str(&plain).ok());
        if opened.is_none() {
            tracing::info!("refresh cookie does not open (tampered, another app's, or an old key)");
        }
        opened
    }
}

/// `Set-Cookie` values storing a new session (JWT, and the refresh cookie
/// when `refresh` is given), replacing what `previous` laid out.
pub fn store(
    auth: &AppAuth,
    jwt: &str,
    refresh: Option<&RefreshCookie>,
    previous: &Session,
) -> Vec<HeaderValue> {
    let mut out = auth.config.jwt_cookie.store(jwt, previous.jwt_layout);
    if let Some(refresh) = refresh {
        out.extend(store_refresh(auth, refresh, previous));
    }
    out
}

/// `Set-Cookie` values storing the refresh cookie alone (sealed), replacing
/// the layout `previous` had.
pub fn store_refresh(
    auth: &AppAuth,
    refresh: &RefreshCookie,
    previous: &Session,
) -> Vec<HeaderValue> {
    let plain = serde_json::to_string(refresh).unwrap_or_default();
    let sealed = auth.sealer.seal(&auth.seal_context(), &plain);
    auth.config
        .refresh_cookie
        .store(&sealed, previous.refresh_layout)
}

/// `Set-Cookie` values removing both cookies, whatever the client holds.
pub fn clear(auth: &AppAuth, previous: &Session) -> Vec<HeaderValue> {
    // A client with no cookie still gets the plain name cleared: harmless,
    // and it covers a cookie the request did not show (another path).
    let layout = |l: Layout| {
        if l == Layout::Absent {
            Layout::Single
        } else {
            l
        }
    };
    let mut out = auth.config.jwt_cookie.clear(layout(previous.jwt_layout));
    out.extend(
        auth.config
            .refresh_cookie
            .clear(layout(previous.refresh_layout)),
    );
    out
}

/// Takes every one of `names` (every app's gateway cookies, see
/// [`Built::cookie_names`](super::app::Built::cookie_names)) out of the
/// request: for public paths and apps without login, whose upstreams must
/// not receive any app's session either.
pub fn strip(names: &[Box<str>], headers: &mut HeaderMap) {
    if headers.contains_key(http::header::COOKIE) {
        let ([], rewrite) = cookies::scan(headers, [], names);
        cookies::apply(headers, rewrite);
    }
}
