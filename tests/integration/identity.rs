//! Whose token opens what: only tokens the IdP signed, with the allowed
//! algorithm, issuer, audience and time window, for this very app. Forged and
//! confused tokens are refused (never forwarded); one app's session never
//! opens another app; a signing key rotation costs one JWKS refetch and no
//! failed request.

use serde_json::{json, Value};

use crate::support::auth::{
    assert_identity, assert_login_redirect, assert_login_required_json, assert_refused, b64_json,
    calls, claims, forums_app, idp, jwt_header, logged_in, logged_in_as, now, store_app,
    store_browser, store_gateway, store_upstream, valid_claims, FORUMS_HOST, JWT_COOKIE,
    OTHER_PASSWORD, OTHER_SUB, OTHER_USER, REFRESH_COOKIE, STORE_HOST, SUB,
};
use crate::support::browser::Browser;
use crate::support::idp::{TestIdp, HMAC_SECRET};
use crate::support::upstream::RecordingUpstream;
use crate::support::TestGateway;

/// Signs `claims` RS256 with a key the IdP never published, under `kid`.
fn sign_with_foreign_rsa_key(claims: &Value, kid: &str) -> String {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes())
        .expect("encoding key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// Signs `claims` HS256 with `secret`, optionally naming `kid`.
fn sign_hs256(claims: &Value, secret: &[u8], kid: Option<&str>) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// `claims` with `changes` merged in (a `null` removes the claim).
fn with(claims: &Value, changes: Value) -> Value {
    let mut out = claims.clone();
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            out.as_object_mut().expect("object").remove(k);
        } else {
            out[k] = v.clone();
        }
    }
    out
}

/// `jwt` with its payload replaced by `claims`, signature kept.
fn tampered(jwt: &str, claims: &Value) -> String {
    let mut parts = jwt.split('.');
    let header = parts.next().expect("header");
    let _ = parts.next();
    let signature = parts.next().expect("signature");
    format!("{header}.{}.{signature}", b64_json(claims))
}

#[tokio::test]
async fn forged_and_confused_tokens_are_refused() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let good = valid_claims("sid-crafted");
    let kid = idp.current_kid();

    // Control: the IdP's own signature over these claims is accepted, so each
    // refusal below is down to the one thing changed.
    let genuine = idp.sign_claims(&good);
    let browser = store_browser(&gw);
    browser.set_cookie(JWT_COOKIE, &genuine);
    let reply = browser.get("/account").await;
    assert_eq!(reply.status, 200, "the genuine token: {}", reply.text());
    assert_identity(&store.last(), "genuine crafted token");

    let public_pem = idp.public_key_pem();
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64_json(&json!({"alg": "none", "typ": "JWT"})),
                b64_json(&good)
            ),
        ),
        (
            "alg None, kid present",
            format!(
                "{}.{}.",
                b64_json(&json!({"alg": "None", "typ": "JWT", "kid": kid})),
                b64_json(&good)
            ),
        ),
        (
            "HS256 keyed with the RSA public key",
            sign_hs256(&good, public_pem.as_bytes(), Some(&kid)),
        ),
        (
            "RS256 by a key the IdP never published, same kid",
            sign_with_foreign_rsa_key(&good, &kid),
        ),
        (
            "wrong issuer",
            idp.sign_claims(&with(&good, json!({"iss": "https://evil.test"}))),
        ),
        (
            "no issuer",
            idp.sign_claims(&with(&good, json!({"iss": null}))),
        ),
        (
            "wrong audience",
            idp.sign_claims(&with(&good, json!({"aud": "other-app"}))),
        ),
        (
            "another app's audience",
            idp.sign_claims(&with(&good, json!({"aud": "forums"}))),
        ),
        (
            "not valid before an hour from now",
            idp.sign_claims(&with(&good, json!({"nbf": now() + 3600}))),
        ),
        (
            "expired, no refresh cookie",
            idp.sign_claims(&with(&good, json!({"iat": now() - 120, "exp": now() - 60}))),
        ),
        (
            "no exp",
            idp.sign_claims(&with(&good, json!({"exp": null}))),
        ),
        (
            "payload tampered after signing",
            tampered(&genuine, &with(&good, json!({"sub": "user-admin"}))),
        ),
        ("garbage", "not-a-jwt".to_owned()),
        ("empty", String::new()),
    ];
    for (case, jwt) in &cases {
        assert_refused(&gw, &store, jwt, case).await;
    }
    assert_eq!(calls(&idp).refreshes, 0);
}

#[tokio::test]
async fn an_hs256_idp_is_verified_with_the_shared_secret_only() {
    let idp = idp().hs256().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    assert_eq!(jwt_header(&jwt)["alg"], "HS256");
    let reply = browser.get("/account").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_identity(&store.last(), "HS256 session");

    let good = valid_claims("sid-crafted");
    assert_refused(
        &gw,
        &store,
        &sign_hs256(&good, b"some other secret of at least 32 bytes", None),
        "HS256 with another secret",
    )
    .await;
    assert_refused(
        &gw,
        &store,
        &sign_with_foreign_rsa_key(&good, "key-1"),
        "RS256 when only HS256 is allowed",
    )
    .await;
    // Control: the shared secret itself.
    let browser = store_browser(&gw);
    browser.set_cookie(JWT_COOKIE, &sign_hs256(&good, HMAC_SECRET, None));
    assert_eq!(browser.get("/account").await.status, 200);
}

/// Store and forums on one gateway, one IdP, their own clients.
async fn store_and_forums(
    idp: &TestIdp,
    forums_idp: Option<&str>,
) -> (TestGateway, RecordingUpstream, RecordingUpstream) {
    let store = store_upstream().await;
    let forums = RecordingUpstream::start("forums").await;
    let mut forums_spec = forums_app(forums.addr);
    if let Some(toml) = forums_idp {
        forums_spec = forums_spec.app_idp(toml);
    }
    let gw = TestGateway::new()
        .idp(idp)
        .app(store_app(store.addr))
        .app(forums_spec)
        .start_ready()
        .await;
    (gw, store, forums)
}

#[tokio::test]
async fn a_store_session_does_not_open_the_forums() {
    let idp = idp().start().await;
    let (gw, store, forums) = store_and_forums(&idp, None).await;
    let browser = Browser::new(gw.addr, STORE_HOST);
    logged_in(&browser).await;
    let store_cookies = browser.cookies();
    assert_eq!(browser.get("/cart").await.status, 200);

    // The forums host has its own (empty) jar: its own login.
    browser.visit(FORUMS_HOST);
    let reply = browser.get("/threads").await;
    assert_login_redirect(&reply, "forums without a session");

    // Store cookies carried over to the forums host by hand.
    browser.set_cookies(store_cookies.clone());
    let reply = browser.get("/threads").await;
    assert_login_redirect(&reply, "store cookies on the forums");
    browser.set_cookies(store_cookies);
    let reply = browser.get_json("/api/threads").await;
    assert_login_required_json(&reply, "store cookies on the forums, API");
    assert!(
        forums.requests().is_empty(),
        "the forums saw a store session"
    );
    assert_eq!(calls(&idp).refreshes, 0);

    // Logging in on the forums is a login of its own, as client "forums".
    let jwt = logged_in(&browser).await;
    assert_eq!(claims(&jwt)["aud"], "forums");
    let reply = browser.get("/threads").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_identity(&forums.last(), "forums session");
    assert_eq!(calls(&idp).password_grants, 2);
    assert_eq!(store.requests().len(), 1);
}

#[tokio::test]
async fn a_store_jwt_is_refused_by_the_forums_even_with_audience_off() {
    let idp = idp().start().await;
    let (gw, _store, forums) = store_and_forums(&idp, Some("audience = \"off\"")).await;
    let store_browser_ = Browser::new(gw.addr, STORE_HOST);
    let store_jwt = logged_in(&store_browser_).await;
    let forums_browser = Browser::new(gw.addr, FORUMS_HOST);
    logged_in_as(&forums_browser, OTHER_USER, OTHER_PASSWORD).await;
    let reply = forums_browser.get("/threads").await;
    assert_eq!(
        reply.status,
        200,
        "the forums' own session: {}",
        reply.text()
    );
    assert_eq!(forums.last().header("x-auth-request-user"), Some(OTHER_SUB));
    let seen = forums.requests().len();

    // A store JWT in the forums' JWT cookie: the client claim (aud) still
    // has to name "forums" when the audience check is off.
    let thief = Browser::new(gw.addr, FORUMS_HOST);
    thief.set_cookie(JWT_COOKIE, &store_jwt);
    let reply = thief.get("/threads").await;
    assert_login_redirect(&reply, "store JWT on the forums");
    // Also with the forums session's refresh cookie beside it.
    let mixed = Browser::new(gw.addr, FORUMS_HOST);
    mixed.set_cookie(JWT_COOKIE, &store_jwt);
    mixed.set_cookie(
        REFRESH_COOKIE,
        &forums_browser
            .cookie(REFRESH_COOKIE)
            .expect("forums refresh"),
    );
    let reply = mixed.get("/threads").await;
    assert_login_redirect(&reply, "store JWT with a forums refresh cookie");
    assert_eq!(
        forums.requests().len(),
        seen,
        "the forums accepted a store JWT"
    );
    assert!(
        forums
            .requests()
            .iter()
            .all(|r| r.header("x-auth-request-user") != Some(SUB)),
        "the store user reached the forums"
    );
}

#[tokio::test]
async fn a_signing_key_rotation_costs_one_jwks_fetch_and_no_failed_request() {
    let idp = idp().access_ttl(2).start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let before_rotation = store_browser(&gw);
    let old_jwt = logged_in(&before_rotation).await;
    assert_eq!(before_rotation.get("/a").await.status, 200);
    let fetches = calls(&idp).jwks_fetches;
    assert!(fetches >= 1, "the keys were never fetched");

    idp.rotate_key();
    let new_kid = idp.current_kid();
    let after_rotation = store_browser(&gw);
    let new_jwt = logged_in_as(&after_rotation, OTHER_USER, OTHER_PASSWORD).await;
    assert_eq!(jwt_header(&new_jwt)["kid"], new_kid.as_str());
    assert_ne!(jwt_header(&old_jwt)["kid"], new_kid.as_str());
    let reply = after_rotation.get("/b").await;
    assert_eq!(reply.status, 200, "token of the new key: {}", reply.text());
    assert_eq!(store.last().header("x-auth-request-user"), Some(OTHER_SUB));
    // The old key is still published: its tokens still work.
    let reply = before_rotation.get("/c").await;
    assert_eq!(reply.status, 200, "token of the old key: {}", reply.text());
    assert_identity(&store.last(), "old key");
    assert_eq!(calls(&idp).jwks_fetches, fetches + 1, "one refetch");

    // A refresh after the rotation brings a new-key token: no more fetches.
    crate::support::auth::sleep_past_expiry(&old_jwt).await;
    let reply = before_rotation.get("/d").await;
    assert_eq!(
        reply.status,
        200,
        "refreshed after rotation: {}",
        reply.text()
    );
    assert_identity(&store.last(), "refreshed after rotation");
    // An unknown kid soon after is refused without hammering the IdP.
    assert_refused(
        &gw,
        &store,
        &sign_with_foreign_rsa_key(&valid_claims("sid-x"), "key-unknown"),
        "unknown kid",
    )
    .await;
    assert_eq!(
        calls(&idp).jwks_fetches,
        fetches + 1,
        "unknown kids are rate-limited"
    );
}
