//! Tokens the IdP genuinely signed whose JOSE header or time claims the
//! gateway cannot honour: a `crit` extension it does not understand
//! (RFC 7515 §4.1.11), a `kid` that is not a string, `exp`/`nbf`/`iat` that
//! are not numbers, an `iat` in the future. Each is refused like a forgery,
//! never forwarded.
//!
//! And tokens the IdP has just issued (login, refresh) whose key is missing
//! from the JWKS: they may always cause a refetch (a flood of client tokens
//! with random key ids cannot use up the budget), and a key the JWKS still
//! lacks is "IdP unavailable" (503, session kept), not "refused".

use serde_json::{json, Value};

use crate::support::auth::{
    assert_identity, assert_no_session_cookies, assert_refused, b64_json, calls, claims, idp,
    jwt_header, logged_in, now, sleep_past_expiry, store_app, store_browser, store_gateway,
    store_upstream, valid_claims, JWT_COOKIE, PASSWORD, REFRESH_COOKIE, USER,
};
use crate::support::browser::set_cookie;
use crate::support::TestGateway;

/// `claims` with `changes` merged in.
fn with(claims: &Value, changes: Value) -> Value {
    let mut out = claims.clone();
    for (k, v) in changes.as_object().expect("object") {
        out[k] = v.clone();
    }
    out
}

#[tokio::test]
async fn idp_signed_tokens_with_headers_or_time_claims_it_cannot_honour_are_refused() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let good = valid_claims("sid-header");

    // Control: the same signing path with nothing unusual is accepted, so
    // each refusal below is down to the one field changed.
    let genuine = idp.sign_with_header(&json!({}), &good);
    let browser = store_browser(&gw);
    browser.set_cookie(JWT_COOKIE, &genuine);
    let reply = browser.get("/account").await;
    assert_eq!(reply.status, 200, "the genuine token: {}", reply.text());
    assert_identity(&store.last(), "genuine token");

    let kid = idp.current_kid();
    let in_an_hour = now() + 3600;
    let cases: Vec<(&str, String)> = vec![
        (
            "crit naming an extension",
            idp.sign_with_header(&json!({"crit": ["exp"]}), &good),
        ),
        (
            "crit naming an unknown extension",
            idp.sign_with_header(
                &json!({"crit": ["urn:example:x"], "urn:example:x": 1}),
                &good,
            ),
        ),
        (
            "empty crit",
            idp.sign_with_header(&json!({"crit": []}), &good),
        ),
        (
            "numeric kid",
            idp.sign_with_header(&json!({"kid": 1}), &good),
        ),
        (
            "kid as an array",
            idp.sign_with_header(&json!({"kid": [kid]}), &good),
        ),
        (
            "exp as a string",
            idp.sign_claims(&with(&good, json!({"exp": in_an_hour.to_string()}))),
        ),
        (
            "nbf as a string in the future",
            idp.sign_claims(&with(&good, json!({"nbf": in_an_hour.to_string()}))),
        ),
        (
            "nbf as a boolean",
            idp.sign_claims(&with(&good, json!({"nbf": true}))),
        ),
        (
            "iat as a string",
            idp.sign_claims(&with(&good, json!({"iat": now().to_string()}))),
        ),
        (
            "iat as null",
            idp.sign_claims(&with(&good, json!({"iat": null}))),
        ),
        (
            "iat an hour ahead",
            idp.sign_claims(&with(&good, json!({"iat": in_an_hour}))),
        ),
    ];
    for (case, jwt) in &cases {
        assert_refused(&gw, &store, jwt, case).await;
    }
}

#[tokio::test]
async fn an_iat_ahead_within_the_leeway_is_accepted() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .idp_config("leeway = \"60s\"")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    // An IdP whose clock runs a little ahead of the gateway's.
    let jwt = idp.sign_claims(&with(&valid_claims("sid-skew"), json!({"iat": now() + 30})));
    let browser = store_browser(&gw);
    browser.set_cookie(JWT_COOKIE, &jwt);
    let reply = browser.get("/account").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_identity(&store.last(), "iat within the leeway");
}

/// A token naming a key id nobody published, with a signature that is not
/// one: what an attacker sends to make the gateway fetch the JWKS.
fn random_kid_token(i: usize) -> String {
    format!(
        "{}.{}.{}",
        b64_json(&json!({"alg": "RS256", "typ": "JWT", "kid": format!("random-{i}")})),
        b64_json(&valid_claims("sid-flood")),
        "c2lnbmF0dXJl"
    )
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_cannot_stop_a_rotated_key_from_being_fetched() {
    /// Forged tokens, each with its own key id.
    const FLOOD: usize = 50;
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    // A long refetch interval: the flood's one fetch rate-limits the rest.
    // No refresh grace: each refresh below must reach the IdP (with a
    // refresh token that does not rotate, a refresh kept for late requests
    // would answer the next one).
    let gw = TestGateway::new()
        .idp(&idp)
        .idp_config("jwks_refetch_interval = \"1h\"")
        .session_config("refresh_grace = \"0s\"")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    let started = calls(&idp).jwks_fetches;

    for i in 0..FLOOD {
        assert_refused(&gw, &store, &random_kid_token(i), "random kid").await;
    }
    let flooded = calls(&idp).jwks_fetches;
    assert!(
        flooded <= started + 1,
        "{} fetches for the flood",
        flooded - started
    );

    // The IdP rotates its key; the next refresh brings a token of the new
    // key, which the gateway has never seen.
    idp.rotate_key();
    sleep_past_expiry(&jwt).await;
    let reply = browser.get("/cart").await;
    assert_eq!(
        reply.status,
        200,
        "refresh after the rotation: {}",
        reply.text()
    );
    assert_identity(&store.last(), "refreshed with the new key");
    let renewed = set_cookie(&reply, JWT_COOKIE).expect("a new JWT cookie");
    assert!(!renewed.clears(), "{}", renewed.raw);
    assert_eq!(
        jwt_header(&renewed.value)["kid"],
        idp.current_kid().as_str()
    );
    assert_eq!(
        calls(&idp).jwks_fetches,
        flooded + 1,
        "one fetch for the refreshed token"
    );

    // The IdP signs with a key its JWKS does not list yet: the refresh
    // cannot be checked, which is the IdP's trouble, not the user's.
    idp.rotate_key_unpublished();
    sleep_past_expiry(&renewed.value).await;
    let session = browser.cookies();
    let seen = store.requests().len();
    let fetches = calls(&idp).jwks_fetches;
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 503, "unpublished key: {}", reply.text());
    assert_no_session_cookies(&reply, "unpublished key");
    assert_eq!(browser.cookies(), session, "the session was touched");
    let reply = browser.get_json("/api/cart").await;
    assert_eq!(reply.status, 503, "unpublished key, API: {}", reply.text());
    assert_no_session_cookies(&reply, "unpublished key, API");
    assert_eq!(browser.cookies(), session, "the session was touched");
    assert_eq!(store.requests().len(), seen, "forwarded");
    assert!(
        calls(&idp).jwks_fetches > fetches,
        "the JWKS was not asked again for the IdP's own token"
    );
    // A login meets the same key: the form says sign-in is unavailable.
    let newcomer = store_browser(&gw);
    let reply = newcomer.login(USER, PASSWORD).await;
    assert_eq!(
        reply.status,
        503,
        "login, unpublished key: {}",
        reply.text()
    );
    assert_no_session_cookies(&reply, "login, unpublished key");

    // Once the key is published the same session goes on.
    idp.publish_keys();
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "key published: {}", reply.text());
    assert_identity(&store.last(), "key published");
    let renewed = set_cookie(&reply, JWT_COOKIE).expect("a new JWT cookie");
    assert_eq!(
        jwt_header(&renewed.value)["kid"],
        idp.current_kid().as_str()
    );
    assert!(browser.cookie(REFRESH_COOKIE).is_some());
    assert_eq!(claims(&renewed.value)["sub"], crate::support::auth::SUB);
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_jwt_signed_with_an_unpublished_key() {
    // One-time-use refresh tokens: the refresh below spends the old one.
    let idp = idp().access_ttl(1).rotate_refresh().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    let old_refresh = browser.cookie(REFRESH_COOKIE).expect("refresh cookie");
    let other_tab = browser.cookies();

    idp.rotate_key_unpublished();
    sleep_past_expiry(&jwt).await;
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 503, "unpublished key: {}", reply.text());
    // The JWT stays as it was; the refresh token the IdP just issued is kept.
    assert!(
        set_cookie(&reply, JWT_COOKIE).is_none(),
        "{:?}",
        reply.headers
    );
    let kept = set_cookie(&reply, REFRESH_COOKIE).expect("the rotated refresh token");
    assert!(!kept.clears(), "{}", kept.raw);
    assert_ne!(kept.value, old_refresh);
    // Another tab with the old cookies, within the grace period, gets the
    // same outcome instead of replaying the spent token.
    let tab = store_browser(&gw);
    tab.set_cookies(other_tab);
    let reply = tab.get("/cart").await;
    assert_eq!(reply.status, 503, "other tab: {}", reply.text());
    let tab_kept = set_cookie(&reply, REFRESH_COOKIE).expect("the same rotated token");
    assert_eq!(
        calls(&idp).replays,
        0,
        "the spent refresh token was replayed"
    );

    // Once the key is published the session goes on with the kept token.
    idp.publish_keys();
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "key published: {}", reply.text());
    assert_identity(&store.last(), "key published");
    assert!(set_cookie(&reply, JWT_COOKIE).is_some());
    assert_eq!(calls(&idp).replays, 0);
    assert!(!tab_kept.value.is_empty());
    gw.stop().await;
}
