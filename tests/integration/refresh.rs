//! An expired JWT is refreshed inline with the refresh cookie: one IdP call
//! for any number of concurrent requests, new cookies on the answer, the
//! request itself forwarded intact. A refused refresh ends the session; an
//! unreachable IdP never does. The refresh cookie buys nothing without the
//! genuine, merely expired JWT of the same session (strict binding).

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::json;

use crate::support::auth::{
    assert_identity, assert_login_redirect, assert_login_required_json, assert_no_session_cookies,
    assert_session_cleared, b64_json, calls, claims, idp, logged_in, logged_in_as,
    sleep_past_expiry, store_app, store_browser, store_gateway, store_upstream, JWT_COOKIE,
    OTHER_PASSWORD, OTHER_SUB, OTHER_USER, REFRESH_COOKIE, STORE_HOST, SUB,
};
use crate::support::browser::{set_cookie, Browser, NAVIGATION_ACCEPT};
use crate::support::{Client, TestGateway};

#[tokio::test]
async fn an_expired_jwt_is_refreshed_inline_and_the_cookies_renewed() {
    let idp = idp().access_ttl(2).rotate_refresh().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    let old_jwt = logged_in(&browser).await;
    let old_refresh = browser.cookie(REFRESH_COOKIE).expect("refresh cookie");
    let old_token = idp.active_refresh_tokens();

    sleep_past_expiry(&old_jwt).await;
    let before = calls(&idp);
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "upstream store");
    assert_identity(&store.last(), "refreshed request");
    assert_eq!(calls(&idp).refreshes, before.refreshes + 1);

    let jwt = set_cookie(&reply, JWT_COOKIE).expect("a new JWT cookie");
    assert_ne!(jwt.value, old_jwt);
    assert_eq!(claims(&jwt.value)["sub"], SUB);
    assert!(claims(&jwt.value)["exp"].as_u64() > claims(&old_jwt)["exp"].as_u64());
    assert!(jwt.has("HttpOnly") && !jwt.clears(), "{}", jwt.raw);
    // The IdP rotated the refresh token: the cookie follows.
    let refresh = set_cookie(&reply, REFRESH_COOKIE).expect("a new refresh cookie");
    assert_ne!(refresh.value, old_refresh);
    assert!(
        refresh.has("HttpOnly") && !refresh.clears(),
        "{}",
        refresh.raw
    );
    let new_token = idp.active_refresh_tokens();
    assert_eq!(new_token.len(), 1);
    assert_ne!(new_token, old_token);
    assert!(
        !refresh.value.contains(&new_token[0]),
        "sealed: {}",
        refresh.raw
    );

    // The renewed session needs no further IdP call.
    let after = calls(&idp);
    let reply = browser.get("/orders").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_identity(&store.last(), "after the refresh");
    assert_eq!(calls(&idp), after);
}

#[tokio::test]
async fn a_post_body_passes_through_an_inline_refresh_intact() {
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    sleep_past_expiry(&jwt).await;

    let body: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let body = format!("item=42&qty=3&note={body}");
    let reply = browser
        .request(
            Method::POST,
            "/cart/items?src=test",
            &[
                ("accept", "application/json"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = store.last();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(
        seen.uri.path_and_query().map(|p| p.as_str()),
        Some("/cart/items?src=test")
    );
    assert_eq!(seen.body, body.as_bytes(), "the body changed on the way");
    assert_identity(&seen, "refreshed POST");
    assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
    assert_eq!(calls(&idp).refreshes, 1);
}

#[tokio::test]
async fn the_fusionauth_dialect_refreshes_through_its_api() {
    let idp = idp().access_ttl(1).rotate_refresh().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .idp_config("kind = \"fusionauth\"")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    sleep_past_expiry(&jwt).await;

    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_identity(&store.last(), "FusionAuth refresh");
    let now = calls(&idp);
    assert_eq!(now.refreshes, 1);
    assert_eq!(now.jwt_api_refreshes, 1, "not POST /api/jwt/refresh");
    assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
    assert!(set_cookie(&reply, REFRESH_COOKIE).is_some_and(|c| !c.clears()));
}

#[tokio::test]
async fn redirect_mode_answers_a_navigation_with_the_same_url_and_new_cookies() {
    let idp = idp().access_ttl(2).start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .session_config("refresh_mode = \"redirect\"")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    let api = store_browser(&gw);
    logged_in_as(&api, OTHER_USER, OTHER_PASSWORD).await;
    sleep_past_expiry(&jwt).await;

    let seen = store.requests().len();
    let reply = browser.get("/cart?x=1").await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/cart?x=1"));
    let new = set_cookie(&reply, JWT_COOKIE).expect("a new JWT cookie");
    assert_ne!(new.value, jwt);
    assert_eq!(store.requests().len(), seen, "the redirect was forwarded");
    let reply = browser.get("/cart?x=1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_identity(&store.last(), "after the redirect");
    assert_eq!(calls(&idp).refreshes, 1);

    // Anything but a GET navigation is still refreshed inline.
    let reply = api.get_json("/api/cart").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(store.last().header("x-auth-request-user"), Some(OTHER_SUB));
    assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
    assert_eq!(calls(&idp).refreshes, 2);
}

#[tokio::test]
async fn a_refused_refresh_clears_the_session_and_asks_for_login() {
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let page = store_browser(&gw);
    let jwt = logged_in(&page).await;
    let api = store_browser(&gw);
    logged_in(&api).await;
    sleep_past_expiry(&jwt).await;

    idp.set_reject_refresh(true);
    let reply = page.get("/cart").await;
    assert_login_redirect(&reply, "refused refresh, navigation");
    assert_session_cleared(&reply, "refused refresh, navigation");
    assert!(page.cookie(JWT_COOKIE).is_none() && page.cookie(REFRESH_COOKIE).is_none());

    let reply = api.get_json("/api/cart").await;
    assert_login_required_json(&reply, "refused refresh, API");
    assert_session_cleared(&reply, "refused refresh, API");

    assert_eq!(calls(&idp).refreshes, 2);
    assert!(store.requests().is_empty(), "forwarded without a session");
}

#[tokio::test]
async fn an_unreachable_idp_during_refresh_is_503_and_keeps_the_session() {
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    let cookies = browser.cookies();
    sleep_past_expiry(&jwt).await;

    idp.set_down(true);
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_no_session_cookies(&reply, "IdP down, navigation");
    let reply = browser.get_json("/api/cart").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_no_session_cookies(&reply, "IdP down, API");
    assert_eq!(browser.cookies(), cookies, "the session was touched");
    assert!(store.requests().is_empty());
}

#[tokio::test]
async fn the_session_refreshes_as_soon_as_the_idp_is_back() {
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    sleep_past_expiry(&jwt).await;

    idp.set_down(true);
    assert_eq!(browser.get("/cart").await.status, 503);
    idp.set_down(false);
    // An outage is not an answer: it must not be reused for later requests
    // (refresh_grace is 10 s) as a successful refresh is.
    let reply = browser.get("/cart").await;
    assert_eq!(
        reply.status,
        200,
        "the IdP is back but the refresh still fails: {}",
        reply.text()
    );
    assert_identity(&store.last(), "IdP back");
    assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
    assert_eq!(calls(&idp).refreshes, 1);
}

#[tokio::test]
async fn a_burst_with_one_expired_jwt_makes_one_refresh_call() {
    /// Concurrent requests carrying the same expired JWT.
    const BURST: usize = 1000;
    /// The IdP answers the refresh this slowly, so the burst piles up on it.
    const IDP_LATENCY: Duration = Duration::from_millis(300);
    let idp = idp().access_ttl(1).rotate_refresh().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    let cookie = browser.cookie_header().expect("cookies");
    sleep_past_expiry(&jwt).await;

    idp.set_delay(IDP_LATENCY);
    let client = Arc::new(Client::new(gw.addr));
    let tasks: Vec<_> = (0..BURST)
        .map(|i| {
            let client = client.clone();
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let path = format!("/api/items/{i}");
                client
                    .send(
                        Method::GET,
                        STORE_HOST,
                        &path,
                        &[("accept", "application/json"), ("cookie", &cookie)],
                        bytes::Bytes::new(),
                    )
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for task in tasks {
        let status = task.await.expect("request task");
        *statuses.entry(status.as_u16()).or_insert(0usize) += 1;
    }
    idp.set_delay(Duration::ZERO);
    assert_eq!(
        statuses.get(&200).copied(),
        Some(BURST),
        "answers by status: {statuses:?}"
    );
    let now = calls(&idp);
    assert_eq!(now.refreshes, 1, "one IdP call for the whole burst");
    assert_eq!(now.replays, 0, "a spent refresh token was replayed");
    assert_eq!(store.requests().len(), BURST);

    // A late request (another tab) with the old cookies, within refresh_grace.
    let reply = client
        .send(
            Method::GET,
            STORE_HOST,
            "/late",
            &[("accept", NAVIGATION_ACCEPT), ("cookie", &cookie)],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200, "late request: {}", reply.text());
    assert_identity(&store.last(), "late request");
    let late = calls(&idp);
    assert_eq!(late.refreshes, 1, "the late request refreshed again");
    assert_eq!(late.replays, 0);
}

/// The `alg: none` twin of `jwt`: same claims, no signature.
fn unsigned_copy(jwt: &str) -> String {
    format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none", "typ": "JWT"})),
        b64_json(&claims(jwt))
    )
}

#[tokio::test]
async fn strict_binding_refuses_a_refresh_cookie_without_its_own_jwt() {
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let victim = store_browser(&gw);
    let victim_jwt = logged_in(&victim).await;
    let mallory = store_browser(&gw);
    let mallory_jwt = logged_in_as(&mallory, OTHER_USER, OTHER_PASSWORD).await;
    let stolen_refresh = victim.cookie(REFRESH_COOKIE).expect("refresh cookie");
    sleep_past_expiry(&victim_jwt).await;
    sleep_past_expiry(&mallory_jwt).await;

    let cases: [(&str, Option<String>); 4] = [
        ("no JWT", None),
        ("garbage JWT", Some("garbage.not-a.jwt".to_owned())),
        ("someone else's expired JWT", Some(mallory_jwt.clone())),
        (
            "the victim's claims unsigned",
            Some(unsigned_copy(&victim_jwt)),
        ),
    ];
    for (case, jwt) in cases {
        let thief = store_browser(&gw);
        thief.set_cookie(REFRESH_COOKIE, &stolen_refresh);
        if let Some(jwt) = &jwt {
            thief.set_cookie(JWT_COOKIE, jwt);
        }
        let reply = thief.get("/account").await;
        assert_login_redirect(&reply, case);
        thief.set_cookie(REFRESH_COOKIE, &stolen_refresh);
        if let Some(jwt) = &jwt {
            thief.set_cookie(JWT_COOKIE, jwt);
        }
        let reply = thief.get_json("/api/account").await;
        assert_login_required_json(&reply, case);
        assert_eq!(calls(&idp).refreshes, 0, "{case}: the IdP was asked");
    }
    assert!(store.requests().is_empty(), "a thief was forwarded");

    // The pair that belongs together still refreshes (the cookie was good).
    let reply = victim.get("/account").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_identity(&store.last(), "the victim");
    assert_eq!(calls(&idp).refreshes, 1);
}

#[tokio::test]
async fn relaxed_binding_refreshes_with_the_refresh_cookie_alone() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .session_config("binding = \"relaxed\"")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let richard = store_browser(&gw);
    logged_in(&richard).await;
    let mallory = store_browser(&gw);
    logged_in_as(&mallory, OTHER_USER, OTHER_PASSWORD).await;

    richard.set_cookie(JWT_COOKIE, "garbage.not-a.jwt");
    let reply = richard.get("/account").await;
    assert_eq!(reply.status, 200, "garbage JWT: {}", reply.text());
    assert_identity(&store.last(), "relaxed, garbage JWT");
    assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
    assert_eq!(calls(&idp).refreshes, 1);

    mallory.remove_cookie(JWT_COOKIE);
    let reply = mallory.get("/account").await;
    assert_eq!(reply.status, 200, "no JWT: {}", reply.text());
    assert_eq!(store.last().header("x-auth-request-user"), Some(OTHER_SUB));
    assert_eq!(calls(&idp).refreshes, 2);
}

/// A browser holding `cookies` on the store.
fn with_cookies(gw: &TestGateway, cookies: &std::collections::BTreeMap<String, String>) -> Browser {
    let browser = store_browser(gw);
    browser.set_cookies(cookies.clone());
    browser
}

#[tokio::test]
async fn a_refresh_token_revoked_at_the_idp_ends_the_session() {
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    let session = browser.cookies();
    // Logging out elsewhere revokes the token; this copy of the cookies stays.
    let reply = browser.logout().await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    assert!(idp.active_refresh_tokens().is_empty(), "not revoked");
    sleep_past_expiry(&jwt).await;

    let replay = with_cookies(&gw, &session);
    let reply = replay.get("/cart").await;
    assert_login_redirect(&reply, "revoked refresh token");
    assert_session_cleared(&reply, "revoked refresh token");
    assert!(store.requests().is_empty());
}
