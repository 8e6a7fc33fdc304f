//! Interop with a real identity provider: the gateway in front of the store
//! and forums apps, logging users in at Glewlwyd 2.7.5 (Debian's package) on
//! loopback. Glewlwyd puts the granted scopes in `aud` (so the audience check
//! is off and the client is named by `client_id`), answers a wrong password
//! with 403 and an empty body, and with one-time-use refresh tokens revokes a
//! whole session when a spent refresh token is replayed.
//!
//! Each test starts its own Glewlwyd (about 0.1 s, plus an RSA key), so tests
//! run in parallel without sharing users or refresh tokens.

use futures_util::future::join_all;
use serde_json::Value;

use crate::support::auth::{
    assert_login_redirect, assert_login_required_json, assert_no_gateway_cookies,
    assert_no_session_cookies, assert_session_cleared, claims, jwt_header, logged_in_as,
    sleep_past_expiry, FORUMS_HOST, JWT_COOKIE, REFRESH_COOKIE, STORE_HOST,
};
use crate::support::browser::{hidden_input, set_cookie, Browser};
use crate::support::glewlwyd::{
    forums_app, store_app, Glewlwyd, User, ALICE, BOB, CLIENTS, GATEWAY_SCOPE,
};
use crate::support::upstream::Recorded;
use crate::support::{RecordingUpstream, TestGateway};

/// A gateway with only the store app, in front of `upstream`, using `glw`;
/// ready (discovery and keys loaded) when this returns.
async fn store_gateway(glw: &Glewlwyd, upstream: &RecordingUpstream) -> TestGateway {
    let gw = glw.gateway().app(store_app(upstream.addr)).start().await;
    assert!(gw.wait_ready().await, "gateway not ready\n{}", glw.log());
    gw
}

/// Logs `browser` in as `user` (302 and both cookies); returns the JWT.
async fn login(browser: &Browser, user: User) -> String {
    logged_in_as(browser, user.username, user.password).await
}

/// Asserts the upstream saw `seen` as `user`, identity from Glewlwyd's token.
fn assert_user(seen: &Recorded, user: User, context: &str) {
    assert_eq!(
        seen.header("x-auth-request-user"),
        Some(user.username),
        "{context}: {:?}",
        seen.headers
    );
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some(user.email),
        "{context}"
    );
    assert_no_gateway_cookies(seen, context);
}

/// The `enabled` refresh tokens among `tokens` (Glewlwyd's listing).
fn enabled(tokens: &[Value]) -> usize {
    tokens.iter().filter(|t| t["enabled"] == true).count()
}

#[tokio::test]
async fn each_user_logs_in_to_each_app_and_reaches_it_as_themselves() {
    let glw = Glewlwyd::new().start().await;
    let store = RecordingUpstream::start("store").await;
    let forums = RecordingUpstream::start("forums").await;
    let gw = glw
        .gateway()
        .app(store_app(store.addr))
        .app(forums_app(forums.addr))
        .start()
        .await;
    assert!(gw.wait_ready().await, "gateway not ready\n{}", glw.log());

    for (host, upstream, app, (client_id, _)) in [
        (STORE_HOST, &store, "store", CLIENTS[0]),
        (FORUMS_HOST, &forums, "forums", CLIENTS[1]),
    ] {
        for user in [ALICE, BOB] {
            let context = format!("{} on {host}", user.username);
            let browser = Browser::new(gw.addr, host);
            let jwt = login(&browser, user).await;

            // What Glewlwyd issued: scopes in aud, the client in client_id.
            let c = claims(&jwt);
            assert_eq!(jwt_header(&jwt)["alg"], "RS256", "{context}");
            assert_eq!(c["iss"], glw.issuer().as_str(), "{context}");
            assert_eq!(c["aud"], format!("openid {GATEWAY_SCOPE}"), "{context}");
            assert_eq!(c["client_id"], client_id, "{context}");
            assert_eq!(c["username"], user.username, "{context}");
            assert_ne!(c["sub"], user.username, "{context}: sub is an opaque id");

            let reply = browser.get("/account").await;
            assert_eq!(reply.status, 200, "{context}: {}", reply.text());
            assert_eq!(reply.text(), format!("upstream {app}"), "{context}");
            let seen = upstream.last();
            assert_eq!(seen.uri.path(), "/account", "{context}");
            assert_user(&seen, user, &context);
        }
    }
    assert_eq!(store.requests().len(), 2);
    assert_eq!(forums.requests().len(), 2);
}

#[tokio::test]
async fn a_store_token_does_not_open_the_forums() {
    let glw = Glewlwyd::new().start().await;
    let store = RecordingUpstream::start("store").await;
    let forums = RecordingUpstream::start("forums").await;
    let gw = glw
        .gateway()
        .app(store_app(store.addr))
        .app(forums_app(forums.addr))
        .start()
        .await;
    assert!(gw.wait_ready().await, "gateway not ready\n{}", glw.log());
    let browser = Browser::new(gw.addr, STORE_HOST);
    let jwt = login(&browser, ALICE).await;
    // Nothing in aud tells the apps apart: only client_id does.
    let aud = claims(&jwt)["aud"].as_str().unwrap_or_default().to_owned();
    assert!(
        !aud.split(' ').any(|a| a == "store" || a == "forums"),
        "aud {aud:?}"
    );
    assert_eq!(
        browser.get("/cart").await.status,
        200,
        "the token works on the store"
    );

    browser.visit(FORUMS_HOST);
    browser.set_cookie(JWT_COOKIE, &jwt);
    let reply = browser.get("/threads").await;
    assert_login_redirect(&reply, "store token on the forums, navigation");
    browser.set_cookie(JWT_COOKIE, &jwt);
    let reply = browser.get_json("/api/threads").await;
    assert_login_required_json(&reply, "store token on the forums, API");
    assert!(
        forums.requests().is_empty(),
        "the forums were opened with a store token"
    );
}

#[tokio::test]
async fn a_wrong_password_shows_the_login_form_again_with_401() {
    let glw = Glewlwyd::new().start().await;
    // Glewlwyd's own answer: 403 with an empty body, no RFC 6749 error JSON.
    let (status, body) = glw
        .password_grant(CLIENTS[0], ALICE.username, "wrong")
        .await;
    assert_eq!(
        (status, body.as_str()),
        (403, ""),
        "Glewlwyd's answer changed"
    );

    let store = RecordingUpstream::start("store").await;
    let gw = store_gateway(&glw, &store).await;
    for (user, password) in [(ALICE.username, "not-her-password"), ("nobody", "whatever")] {
        let browser = Browser::new(gw.addr, STORE_HOST);
        let reply = browser.login(user, password).await;
        assert_eq!(reply.status, 401, "{user}: {}", reply.text());
        assert!(
            hidden_input(&reply.text(), "csrf").is_some()
                && reply.text().contains("name=\"password\""),
            "{user}: not the login form again: {}",
            reply.text()
        );
        assert_no_session_cookies(&reply, user);
        assert!(browser.cookie(JWT_COOKIE).is_none());
    }
    assert!(store.requests().is_empty());
    // The right password still works (no lock-out from the failures).
    let browser = Browser::new(gw.addr, STORE_HOST);
    login(&browser, ALICE).await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed_inline_at_glewlwyd() {
    let glw = Glewlwyd::new().start().await;
    let store = RecordingUpstream::start("store").await;
    let gw = store_gateway(&glw, &store).await;
    let browser = Browser::new(gw.addr, STORE_HOST);
    let old_jwt = login(&browser, ALICE).await;

    sleep_past_expiry(&old_jwt).await;
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), glw.log());
    assert_user(&store.last(), ALICE, "refreshed request");
    let jwt = set_cookie(&reply, JWT_COOKIE).expect("a new gw_jwt cookie");
    assert!(!jwt.clears(), "{}", jwt.raw);
    assert_ne!(jwt.value, old_jwt);
    let (new, old) = (claims(&jwt.value), claims(&old_jwt));
    assert!(new["exp"].as_u64() > old["exp"].as_u64(), "{new} vs {old}");
    assert_eq!(new["sub"], old["sub"]);
    assert_eq!(new["client_id"], "store");

    // No rotation by default: Glewlwyd still holds the one refresh token.
    let tokens = glw.client_refresh_tokens(ALICE.username, "store").await;
    assert_eq!((tokens.len(), enabled(&tokens)), (1, 1), "{tokens:?}");
    let reply = browser.get("/orders").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_user(&store.last(), ALICE, "after the refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_refresh_tokens_survive_a_burst_at_expiry() {
    /// Concurrent requests carrying the same expired JWT.
    const BURST: usize = 100;
    let glw = Glewlwyd::new().one_use_refresh().start().await;
    let store = RecordingUpstream::start("store").await;
    let gw = store_gateway(&glw, &store).await;
    let browser = Browser::new(gw.addr, STORE_HOST);
    let jwt = login(&browser, ALICE).await;
    let first_refresh = browser.cookie(REFRESH_COOKIE).expect("refresh cookie");

    sleep_past_expiry(&jwt).await;
    let paths: Vec<String> = (0..BURST).map(|i| format!("/api/items/{i}")).collect();
    let replies = join_all(paths.iter().map(|p| browser.get_json(p))).await;
    let mut statuses = std::collections::BTreeMap::new();
    for reply in &replies {
        *statuses.entry(reply.status.as_u16()).or_insert(0usize) += 1;
    }
    assert_eq!(
        statuses.get(&200).copied(),
        Some(BURST),
        "answers by status: {statuses:?}\n{}",
        glw.log()
    );
    assert!(
        replies
            .iter()
            .any(|r| set_cookie(r, JWT_COOKIE).is_some_and(|c| !c.clears())),
        "no reply carried the new JWT"
    );
    assert_eq!(store.requests().len(), BURST);
    for seen in store.requests() {
        assert_user(&seen, ALICE, "burst");
    }
    // One refresh for the burst: the login's token spent, its successor live.
    let tokens = glw.client_refresh_tokens(ALICE.username, "store").await;
    assert_eq!((tokens.len(), enabled(&tokens)), (2, 1), "{tokens:?}");
    assert_ne!(
        browser.cookie(REFRESH_COOKIE).as_deref(),
        Some(first_refresh.as_str()),
        "the refresh cookie did not follow the rotation"
    );

    // Had any request replayed the spent token, Glewlwyd would have revoked
    // the chain and this refresh would fail.
    let jwt = browser.cookie(JWT_COOKIE).expect("JWT cookie");
    sleep_past_expiry(&jwt).await;
    let reply = browser.get("/cart").await;
    assert_eq!(
        reply.status,
        200,
        "the session died: {}\n{}",
        reply.text(),
        glw.log()
    );
    assert_user(&store.last(), ALICE, "next expiry");
    assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
    assert!(set_cookie(&reply, REFRESH_COOKIE).is_some_and(|c| !c.clears()));
    let tokens = glw.client_refresh_tokens(ALICE.username, "store").await;
    assert_eq!((tokens.len(), enabled(&tokens)), (3, 1), "{tokens:?}");
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_at_glewlwyd() {
    // No rotation: without the revocation the saved cookies would refresh.
    let glw = Glewlwyd::new().start().await;
    let store = RecordingUpstream::start("store").await;
    let gw = store_gateway(&glw, &store).await;
    let browser = Browser::new(gw.addr, STORE_HOST);
    let jwt = login(&browser, ALICE).await;
    let saved = browser.cookies();
    // Bob stays logged in: the control that a kept session does refresh.
    let bob = Browser::new(gw.addr, STORE_HOST);
    let bob_jwt = login(&bob, BOB).await;
    let tokens = glw.client_refresh_tokens(ALICE.username, "store").await;
    assert_eq!(enabled(&tokens), 1, "{tokens:?}");

    let reply = browser.logout().await;
    assert_login_redirect(&reply, "logout");
    assert_session_cleared(&reply, "logout");
    assert!(browser.cookie(JWT_COOKIE).is_none() && browser.cookie(REFRESH_COOKIE).is_none());
    let tokens = glw.client_refresh_tokens(ALICE.username, "store").await;
    assert_eq!(
        (tokens.len(), enabled(&tokens)),
        (1, 0),
        "not revoked at Glewlwyd: {tokens:?}"
    );

    sleep_past_expiry(&jwt).await;
    sleep_past_expiry(&bob_jwt).await;
    let seen = store.requests().len();
    let replay = Browser::new(gw.addr, STORE_HOST);
    replay.set_cookies(saved.clone());
    let reply = replay.get("/cart").await;
    assert_login_redirect(&reply, "old cookies after logout");
    assert_session_cleared(&reply, "old cookies after logout");
    replay.set_cookies(saved);
    let reply = replay.get_json("/api/cart").await;
    assert_login_required_json(&reply, "old cookies after logout, API");
    assert_eq!(store.requests().len(), seen, "forwarded after logout");

    let reply = bob.get("/cart").await;
    assert_eq!(reply.status, 200, "bob's kept session: {}", reply.text());
    assert_user(&store.last(), BOB, "bob after expiry");
}

#[tokio::test]
async fn hs256_tokens_verify_with_the_shared_secret() {
    let glw = Glewlwyd::new().hs256().start().await;
    let store = RecordingUpstream::start("store").await;
    let gw = store_gateway(&glw, &store).await;
    let browser = Browser::new(gw.addr, STORE_HOST);
    let jwt = login(&browser, BOB).await;
    assert_eq!(jwt_header(&jwt)["alg"], "HS256");

    let reply = browser.get("/account").await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), glw.log());
    assert_user(&store.last(), BOB, "HS256");

    sleep_past_expiry(&jwt).await;
    let reply = browser.get("/account").await;
    assert_eq!(reply.status, 200, "HS256 refresh: {}", reply.text());
    assert_user(&store.last(), BOB, "HS256 refreshed");
    assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
}
