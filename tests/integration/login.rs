//! The login page and form: an anonymous visitor is sent to the login page
//! (or told 401 when it is an API call), the form is CSRF-protected, good
//! credentials set the session cookies and return the user where they were
//! going, bad ones get one generic answer, and attempts are throttled.

use std::time::{Duration, Instant};

use http::Method;

use crate::support::auth::{
    assert_identity, assert_login_required_json, assert_no_session_cookies, calls, claims, idp,
    logged_in, store_app, store_browser, store_gateway, store_upstream, CSRF_COOKIE, JWT_COOKIE,
    OTHER_PASSWORD, OTHER_USER, PASSWORD, REFRESH_COOKIE, SUB, USER,
};
use crate::support::browser::{hidden_input, set_cookie, Browser, LOGIN_PATH, NAVIGATION_ACCEPT};
use crate::support::client::Reply;
use crate::support::idp::ISSUER;
use crate::support::TestGateway;

/// `[login] min_failure_time` the test gateways use.
const MIN_FAILURE_TIME: Duration = Duration::from_millis(50);

#[tokio::test]
async fn anonymous_navigation_is_sent_to_the_login_page_with_its_return_to() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);

    let reply = browser.get("/cart?a=1").await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    assert_eq!(
        reply.header("location"),
        Some("/.gateway/login?return_to=%2Fcart%3Fa%3D1")
    );
    let head = browser
        .request(
            Method::HEAD,
            "/cart",
            &[("accept", NAVIGATION_ACCEPT)],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(head.status, 302);
    assert!(
        store.requests().is_empty(),
        "the upstream saw an anonymous request"
    );
}

#[tokio::test]
async fn anonymous_api_calls_get_401_json() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);

    let reply = browser.get_json("/api/cart").await;
    assert_login_required_json(&reply, "Accept: application/json");

    let reply = browser
        .request(
            Method::GET,
            "/api/cart",
            &[("accept", "*/*"), ("x-requested-with", "XMLHttpRequest")],
            bytes::Bytes::new(),
        )
        .await;
    assert_login_required_json(&reply, "XMLHttpRequest");

    // A form POST is not a navigation that can be replayed after login.
    let reply = browser
        .post_form("/cart", &[("item", "42"), ("qty", "1")])
        .await;
    assert_login_required_json(&reply, "POST");
    assert!(store.requests().is_empty());
}

#[tokio::test]
async fn login_page_is_a_form_whose_csrf_token_matches_its_cookie() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);

    let (page, csrf) = browser.login_page(Some("/cart?a=1")).await;
    let html = page.text();
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        page.headers
    );
    for field in ["username", "password"] {
        assert!(
            html.contains(&format!("name=\"{field}\"")),
            "no {field} field: {html}"
        );
    }
    assert_eq!(
        hidden_input(&html, "return_to").as_deref(),
        Some("/cart?a=1")
    );
    let cookie = set_cookie(&page, CSRF_COOKIE).expect("a CSRF cookie");
    assert!(!csrf.is_empty());
    assert_eq!(cookie.value, csrf, "the form's token is the cookie's");
    assert!(cookie.has("HttpOnly"), "{}", cookie.raw);
    assert!(store.requests().is_empty());
    assert_eq!(calls(&idp).password_grants, 0);
}

#[tokio::test]
async fn login_sets_host_only_http_only_cookies_and_returns_to_the_page() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);

    // The article's flow: a page, the login page, the form, back to the page.
    let reply = browser.get("/cart?a=1").await;
    assert_eq!(reply.status, 302);
    let reply = browser
        .login_returning_to(USER, PASSWORD, Some("/cart?a=1"))
        .await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/cart?a=1"));

    let jwt = set_cookie(&reply, JWT_COOKIE).expect("JWT cookie");
    let refresh = set_cookie(&reply, REFRESH_COOKIE).expect("refresh cookie");
    assert_eq!(jwt.value.split('.').count(), 3, "a JWT: {}", jwt.value);
    assert_eq!(claims(&jwt.value)["sub"], SUB);
    assert_eq!(claims(&jwt.value)["iss"], ISSUER);
    // The refresh token is rt-N at the test IdP: the cookie must be sealed.
    let issued = idp.active_refresh_tokens();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert!(
        !refresh.value.contains(&issued[0]),
        "the refresh cookie shows the token: {}",
        refresh.raw
    );
    for cookie in [&jwt, &refresh] {
        assert!(cookie.has("HttpOnly"), "{}", cookie.raw);
        assert_eq!(
            cookie
                .attribute("SameSite")
                .flatten()
                .map(str::to_ascii_lowercase),
            Some("lax".to_owned()),
            "{}",
            cookie.raw
        );
        assert_eq!(cookie.attribute("Path"), Some(Some("/")), "{}", cookie.raw);
        assert!(cookie.max_age().is_some_and(|a| a > 0), "{}", cookie.raw);
        assert!(!cookie.has("Domain"), "not host-only: {}", cookie.raw);
        assert!(!cookie.has("Secure"), "secure = false: {}", cookie.raw);
    }

    let page = browser.get("/cart?a=1").await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.text(), "upstream store");
    let seen = store.last();
    assert_eq!(
        seen.uri.path_and_query().map(|p| p.as_str()),
        Some("/cart?a=1")
    );
    assert_identity(&seen, "after login");
    let now = calls(&idp);
    assert_eq!(now.password_grants, 1);
    assert_eq!(now.refreshes, 0);
}

#[tokio::test]
async fn secure_cookies_get_the_host_prefix() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(store_app(store.addr).cookies("secure = true"))
        .start_ready()
        .await;
    let browser = store_browser(&gw);

    let (page, csrf) = browser.login_page(None).await;
    let cookie = set_cookie(&page, "__Host-gw_csrf").expect("__Host-gw_csrf");
    assert_eq!(cookie.value, csrf);
    assert!(cookie.has("Secure"));
    let reply = browser
        .post_form(
            LOGIN_PATH,
            &[
                ("username", USER),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("return_to", ""),
            ],
        )
        .await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    for name in ["__Host-gw_jwt", "__Host-gw_refresh"] {
        let cookie = set_cookie(&reply, name)
            .unwrap_or_else(|| panic!("{name} not set: {:?}", reply.headers));
        assert!(cookie.has("Secure"), "{}", cookie.raw);
        assert!(cookie.has("HttpOnly"), "{}", cookie.raw);
        assert_eq!(cookie.attribute("Path"), Some(Some("/")), "{}", cookie.raw);
        assert!(!cookie.has("Domain"), "{}", cookie.raw);
    }
    assert!(set_cookie(&reply, JWT_COOKIE).is_none());
    let page = browser.get("/").await;
    assert_eq!(page.status, 200, "{}", page.text());
}

#[tokio::test]
async fn unsafe_return_to_lands_on_the_landing_path() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .login_config("per_user_burst = 100\nper_user_per_minute = 100")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    for target in [
        "//evil.example/x",
        "https://evil.example/",
        "https:evil.example",
        "/\\evil.example",
        "%2F%2Fevil.example",
        "/%2F/evil.example",
        "javascript:alert(1)",
    ] {
        let browser = store_browser(&gw);
        let (_, csrf) = browser.login_page(None).await;
        let reply = browser
            .post_form(
                LOGIN_PATH,
                &[
                    ("username", USER),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("return_to", target),
                ],
            )
            .await;
        assert_eq!(reply.status, 302, "{target}: {}", reply.text());
        assert_eq!(reply.header("location"), Some("/"), "return_to {target:?}");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_generic_answer() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;

    // Same request id on both, in case the page shows it.
    let attempt = |user: &'static str, password: &'static str| {
        let browser = store_browser(&gw);
        async move {
            let (_, csrf) = browser.login_page(None).await;
            let started = Instant::now();
            let reply = browser
                .post_form_with(
                    LOGIN_PATH,
                    &[
                        ("username", user),
                        ("password", password),
                        ("csrf", &csrf),
                        ("return_to", "/cart"),
                    ],
                    &[("x-request-id", "same-request-id")],
                )
                .await;
            let took = started.elapsed();
            // The page may keep the token and echo the typed name: neither tells
            // whether the account exists.
            let body = reply
                .text()
                .replace(&csrf, "CSRF")
                .replace(user, "USERNAME");
            let body = match hidden_input(&body, "csrf") {
                Some(new) if !new.is_empty() => body.replace(&new, "CSRF"),
                _ => body,
            };
            (reply, body, took)
        }
    };
    let (wrong, wrong_body, wrong_took) = attempt(USER, "not-the-password").await;
    let (unknown, unknown_body, unknown_took) = attempt("nobody-at-all", "whatever").await;
    for (reply, took, what) in [
        (&wrong, wrong_took, "wrong password"),
        (&unknown, unknown_took, "unknown user"),
    ] {
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert!(
            hidden_input(&reply.text(), "password").is_some()
                || reply.text().contains("name=\"password\""),
            "{what}: the form again: {}",
            reply.text()
        );
        assert_no_session_cookies(reply, what);
        assert!(took >= MIN_FAILURE_TIME, "{what} answered in {took:?}");
    }
    assert_eq!(wrong_body, unknown_body, "the two failures differ");
    assert_eq!(calls(&idp).password_grants, 2);
    assert!(store.requests().is_empty());
}

#[tokio::test]
async fn login_with_the_idp_down_is_503_without_session_cookies() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);

    idp.set_down(true);
    let reply = browser.login(USER, PASSWORD).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_no_session_cookies(&reply, "IdP down");

    idp.set_down(false);
    logged_in(&browser).await;
}

#[tokio::test]
async fn login_with_a_slow_idp_is_503_after_the_idp_timeout() {
    /// The IdP takes longer than the gateway's `[idp] timeout` of 300 ms.
    const SLOW_IDP: Duration = Duration::from_secs(3);
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .idp_config("timeout = \"300ms\"")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let browser = store_browser(&gw);
    let (_, csrf) = browser.login_page(None).await;

    idp.set_delay(SLOW_IDP);
    let started = Instant::now();
    let reply = browser
        .post_form(
            LOGIN_PATH,
            &[
                ("username", USER),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("return_to", ""),
            ],
        )
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(started.elapsed() < SLOW_IDP, "waited for the IdP");
    assert_no_session_cookies(&reply, "slow IdP");
}

/// Posts the login form with exactly `fields`.
async fn submit(browser: &Browser, fields: Vec<(&str, String)>) -> Reply {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    browser.post_form(LOGIN_PATH, &pairs).await
}

#[tokio::test]
async fn login_without_a_matching_csrf_token_is_403() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let form = |csrf: Option<&str>| {
        let mut fields = vec![
            ("username", USER.to_owned()),
            ("password", PASSWORD.to_owned()),
            ("return_to", String::new()),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf", csrf.to_owned()));
        }
        fields
    };
    let a = store_browser(&gw);
    let (_, csrf_a) = a.login_page(None).await;

    // The field without the cookie.
    let stranger = store_browser(&gw);
    let reply = submit(&stranger, form(Some(&csrf_a))).await;
    assert_eq!(reply.status, 403, "no cookie: {}", reply.text());
    // The cookie without the field.
    let reply = submit(&a, form(None)).await;
    assert_eq!(reply.status, 403, "no field: {}", reply.text());
    // The cookie and a made-up field.
    let reply = submit(&a, form(Some("forged-token"))).await;
    assert_eq!(reply.status, 403, "wrong field: {}", reply.text());
    // Two genuine tokens, mismatched: b's field with a's cookie.
    let b = store_browser(&gw);
    let (_, csrf_b) = b.login_page(None).await;
    assert_ne!(csrf_a, csrf_b, "every visitor gets their own token");
    let reply = submit(&a, form(Some(&csrf_b))).await;
    assert_eq!(reply.status, 403, "mismatched: {}", reply.text());
    assert_no_session_cookies(&reply, "mismatched CSRF");
    assert_eq!(
        calls(&idp).password_grants,
        0,
        "a refused form reached the IdP"
    );

    // The genuine pair works.
    let reply = submit(&a, form(Some(&csrf_a))).await;
    assert_eq!(reply.status, 302, "{}", reply.text());
}

/// Asserts a 429 with an integer `Retry-After` of at least one second.
fn assert_throttled(reply: &Reply, context: &str) {
    assert_eq!(reply.status, 429, "{context}: {}", reply.text());
    let retry = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("{context}: no Retry-After"));
    let seconds: u64 = retry
        .parse()
        .unwrap_or_else(|_| panic!("{context}: Retry-After {retry:?} is not seconds"));
    assert!(seconds >= 1, "{context}: Retry-After {seconds}");
    assert_no_session_cookies(reply, context);
}

#[tokio::test]
async fn login_attempts_are_throttled_per_username() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .login_config("per_user_burst = 2\nper_user_per_minute = 1")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let browser = store_browser(&gw);

    for n in 0..2 {
        let reply = browser.login(USER, "guess").await;
        assert_eq!(reply.status, 401, "attempt {n}: {}", reply.text());
    }
    let reply = browser.login(USER, "guess").await;
    assert_throttled(&reply, "third wrong guess");
    // Even the right password waits: the throttle comes before the IdP.
    let reply = browser.login(USER, PASSWORD).await;
    assert_throttled(&reply, "right password while throttled");
    assert_eq!(calls(&idp).password_grants, 2);

    // Another user from the same address is not held up.
    let reply = browser.login(OTHER_USER, OTHER_PASSWORD).await;
    assert_eq!(reply.status, 302, "{}", reply.text());
}

#[tokio::test]
async fn login_attempts_are_throttled_per_client_address() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .login_config("per_ip_burst = 3\nper_ip_per_minute = 1")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let browser = store_browser(&gw);

    for user in ["alice", "bob", "carol"] {
        let reply = browser.login(user, "guess").await;
        assert_eq!(reply.status, 401, "{user}: {}", reply.text());
    }
    let reply = browser.login("dave", "guess").await;
    assert_throttled(&reply, "fourth attempt from one address");
    let reply = browser.login(USER, PASSWORD).await;
    assert_throttled(&reply, "a real user from the same address");
    assert_eq!(calls(&idp).password_grants, 3);
}

#[tokio::test]
async fn client_secret_post_logs_in_too() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(store_app(store.addr).extra("client_auth = \"client_secret_post\""))
        .start_ready()
        .await;
    let browser = store_browser(&gw);
    logged_in(&browser).await;
    let page = browser.get("/").await;
    assert_eq!(page.status, 200, "{}", page.text());
}
