//! The login workflow's common cast: a test IdP with the store and forums
//! clients and two users, the store app behind login, IdP call counts, JWT
//! reading and crafting, and waiting out a token's `exp`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::browser::{set_cookie, Browser, LOGIN_PATH};
use super::client::Reply;
use super::gateway::{AppSpec, TestGateway};
use super::idp::{TestIdp, TestIdpBuilder, ISSUER};
use super::upstream::{Recorded, RecordingUpstream};

pub const STORE_HOST: &str = "store.example.com";
pub const FORUMS_HOST: &str = "forums.example.com";

/// The store's user.
pub const USER: &str = "richard";
pub const PASSWORD: &str = "password1";
pub const SUB: &str = "user-richard";
pub const EMAIL: &str = "richard@example.com";
/// `X-Auth-Request-Roles` for [`USER`]: the roles claim, comma-joined.
pub const ROLES: &str = "customer,admin";

/// A second user, for foreign sessions.
pub const OTHER_USER: &str = "mallory";
pub const OTHER_PASSWORD: &str = "password2";
pub const OTHER_SUB: &str = "user-mallory";

/// The default cookie names (`secure = false`, so no `__Host-` prefix).
pub const JWT_COOKIE: &str = "gw_jwt";
pub const REFRESH_COOKIE: &str = "gw_refresh";
pub const CSRF_COOKIE: &str = "gw_csrf";

/// A JWT's `exp` has one-second resolution and a gateway may still accept the
/// token during that second (`now <= exp`); a second plus this much after
/// `exp` every check calls it expired.
pub const EXPIRY_SLACK: Duration = Duration::from_millis(150);

/// The IdP of most tests: clients `store` and `forums`, users [`USER`] and
/// [`OTHER_USER`]. Knobs can still be added.
pub fn idp() -> TestIdpBuilder {
    TestIdp::new()
        .client("store", "store-secret")
        .client("forums", "forums-secret")
        .user(USER, PASSWORD, SUB, &["customer", "admin"])
        .user(OTHER_USER, OTHER_PASSWORD, OTHER_SUB, &["customer"])
}

/// The store on [`STORE_HOST`], behind login as client `store`.
pub fn store_app(upstream: SocketAddr) -> AppSpec {
    AppSpec::new("store", STORE_HOST, upstream).login("store", "store-secret")
}

/// The forums on [`FORUMS_HOST`], behind login as client `forums`.
pub fn forums_app(upstream: SocketAddr) -> AppSpec {
    AppSpec::new("forums", FORUMS_HOST, upstream).login("forums", "forums-secret")
}

/// A gateway with only the store app, in front of `upstream`, using `idp`;
/// ready (keys loaded) when this returns.
pub async fn store_gateway(idp: &TestIdp, upstream: SocketAddr) -> TestGateway {
    TestGateway::new()
        .idp(idp)
        .app(store_app(upstream))
        .start_ready()
        .await
}

/// A browser on the store.
pub fn store_browser(gw: &TestGateway) -> Browser {
    Browser::new(gw.addr, STORE_HOST)
}

/// Logs `browser` in as [`USER`] and checks that it worked (302 and a JWT
/// cookie); returns the JWT.
pub async fn logged_in(browser: &Browser) -> String {
    logged_in_as(browser, USER, PASSWORD).await
}

/// [`logged_in`] as any user.
pub async fn logged_in_as(browser: &Browser, user: &str, password: &str) -> String {
    let reply = browser.login(user, password).await;
    assert_eq!(reply.status, 302, "login as {user}: {}", reply.text());
    assert!(
        browser.cookie(REFRESH_COOKIE).is_some(),
        "no refresh cookie after login: {:?}",
        reply.headers
    );
    browser
        .cookie(JWT_COOKIE)
        .unwrap_or_else(|| panic!("no JWT cookie after login: {:?}", reply.headers))
}

/// The IdP's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    pub password_grants: usize,
    pub refreshes: usize,
    pub replays: usize,
    pub revocations: usize,
    pub jwks_fetches: usize,
    pub jwt_api_refreshes: usize,
    pub jwt_api_revocations: usize,
}

/// Reads `idp`'s counters.
pub fn calls(idp: &TestIdp) -> Calls {
    let c = idp.counters();
    Calls {
        password_grants: c.password_grants.load(Ordering::SeqCst),
        refreshes: c.refreshes.load(Ordering::SeqCst),
        replays: c.replays.load(Ordering::SeqCst),
        revocations: c.revocations.load(Ordering::SeqCst),
        jwks_fetches: c.jwks_fetches.load(Ordering::SeqCst),
        jwt_api_refreshes: c.jwt_api_refreshes.load(Ordering::SeqCst),
        jwt_api_revocations: c.jwt_api_revocations.load(Ordering::SeqCst),
    }
}

/// The claims of `jwt`, unverified.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The header of `jwt`, unverified.
pub fn jwt_header(jwt: &str) -> Value {
    let header = jwt.split('.').next().expect("a JWT");
    let bytes = URL_SAFE_NO_PAD.decode(header).expect("base64url header");
    serde_json::from_slice(&bytes).expect("JSON header")
}

/// Base64url (no padding) of `value`'s JSON.
pub fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Claims a genuine store token for [`USER`] would carry, valid for a minute.
pub fn valid_claims(sid: &str) -> Value {
    let iat = now();
    json!({
        "iss": ISSUER, "aud": "store", "sub": SUB, "sid": sid,
        "iat": iat, "exp": iat + 60,
        "roles": ["customer", "admin"], "preferred_username": USER, "email": EMAIL,
    })
}

/// Sleeps until every check calls `jwt` expired (bounded: its `exp` must be
/// within a few seconds, these tests use short lifetimes).
pub async fn sleep_past_expiry(jwt: &str) {
    let exp = claims(jwt)["exp"].as_u64().expect("exp claim");
    let deadline = UNIX_EPOCH + Duration::from_secs(exp + 1) + EXPIRY_SLACK;
    let wait = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait <= Duration::from_secs(5),
        "token lives too long for a test: {wait:?}"
    );
    tokio::time::sleep(wait).await;
}

/// Asserts `reply` sends a navigation to the login page.
pub fn assert_login_redirect(reply: &Reply, context: &str) {
    assert_eq!(
        reply.status,
        302,
        "{context}: expected a redirect to the login page, got {} {}",
        reply.status,
        reply.text()
    );
    let location = reply.header("location").unwrap_or_default();
    assert!(
        location.starts_with(LOGIN_PATH),
        "{context}: redirected to {location:?}, not the login page"
    );
}

/// Asserts `reply` is the API answer for "log in first": 401 JSON
/// `{"error":"login_required"}` with `WWW-Authenticate`.
pub fn assert_login_required_json(reply: &Reply, context: &str) {
    assert_eq!(reply.status, 401, "{context}: {}", reply.text());
    assert!(
        reply.header("www-authenticate").is_some(),
        "{context}: no WWW-Authenticate: {:?}",
        reply.headers
    );
    let body: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("{context}: body is not JSON ({e}): {}", reply.text()));
    assert_eq!(body["error"], "login_required", "{context}: {body}");
}

/// Asserts `reply` clears both session cookies (`Max-Age=0`).
pub fn assert_session_cleared(reply: &Reply, context: &str) {
    for name in [JWT_COOKIE, REFRESH_COOKIE] {
        let set = set_cookie(reply, name)
            .unwrap_or_else(|| panic!("{context}: {name} not cleared: {:?}", reply.headers));
        assert!(set.clears(), "{context}: {name} not cleared: {}", set.raw);
    }
}

/// Asserts `reply` sets no session cookie at all (neither stores nor clears).
pub fn assert_no_session_cookies(reply: &Reply, context: &str) {
    let ours: Vec<_> = super::browser::set_cookies(reply)
        .into_iter()
        .filter(|c| c.name.starts_with(JWT_COOKIE) || c.name.starts_with(REFRESH_COOKIE))
        .map(|c| c.raw)
        .collect();
    assert!(ours.is_empty(), "{context}: session cookies set: {ours:?}");
}

/// Asserts the upstream saw `seen` as [`USER`] (identity headers from the
/// token, no gateway cookie).
pub fn assert_identity(seen: &Recorded, context: &str) {
    assert_eq!(
        seen.header("x-auth-request-user"),
        Some(SUB),
        "{context}: {:?}",
        seen.headers
    );
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some(EMAIL),
        "{context}"
    );
    assert_eq!(
        seen.header("x-auth-request-roles"),
        Some(ROLES),
        "{context}"
    );
    assert_no_gateway_cookies(seen, context);
}

/// Asserts no `gw_*` cookie reached the upstream.
pub fn assert_no_gateway_cookies(seen: &Recorded, context: &str) {
    for value in seen.headers.get_all(http::header::COOKIE) {
        let value = value.to_str().unwrap_or_default();
        assert!(
            !value.contains("gw_"),
            "{context}: gateway cookies reached the upstream: {value}"
        );
    }
}

/// An upstream that answers `200 upstream store`; convenience for tests.
pub async fn store_upstream() -> RecordingUpstream {
    RecordingUpstream::start("store").await
}

/// Presents `jwt` alone as the store's JWT cookie, as a navigation and as
/// an API call: a login redirect and a 401, and the upstream sees neither.
pub async fn assert_refused(
    gw: &super::TestGateway,
    store: &super::RecordingUpstream,
    jwt: &str,
    case: &str,
) {
    let seen = store.requests().len();
    let browser = store_browser(gw);
    browser.set_cookie(JWT_COOKIE, jwt);
    let reply = browser.get("/account").await;
    assert_login_redirect(&reply, case);
    browser.set_cookie(JWT_COOKIE, jwt);
    let reply = browser.get_json("/api/account").await;
    assert_login_required_json(&reply, case);
    assert_eq!(store.requests().len(), seen, "{case}: forwarded");
}
