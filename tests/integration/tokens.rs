//! Tokens the IdP genuinely signed whose JOSE header or time claims the
//! gateway cannot honour: a `crit` extension it does not understand
//! (RFC 7515 §4.1.11), a `kid` that is not a string, `exp`/`nbf`/`iat` that
//! are not numbers, an `iat` in the future. Each is refused like a forgery,
//! never forwarded.

use serde_json::{json, Value};

use crate::support::auth::{
    assert_identity, assert_login_redirect, assert_login_required_json, idp, now, store_app,
    store_browser, store_gateway, store_upstream, valid_claims, JWT_COOKIE,
};
use crate::support::{RecordingUpstream, TestGateway};

/// `claims` with `changes` merged in.
fn with(claims: &Value, changes: Value) -> Value {
    let mut out = claims.clone();
    for (k, v) in changes.as_object().expect("object") {
        out[k] = v.clone();
    }
    out
}

/// Presents `jwt` alone as the JWT cookie, as a navigation and as an API
/// call: a login redirect and a 401, and the upstream sees neither.
async fn assert_refused(gw: &TestGateway, store: &RecordingUpstream, jwt: &str, case: &str) {
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
