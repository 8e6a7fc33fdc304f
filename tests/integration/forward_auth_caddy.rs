//! Forward-auth behind Caddy (`forward_auth`, examples/forward-auth/Caddyfile).
//!
//! The five scenarios every ingress runs, and what is particular to Caddy
//! 2.6: a header the gateway's answer lacks is copied as the text of its
//! placeholder, and the auth request is a GET without the body.

use http::Method;

use crate::forward_auth::{burst, expiry, not_an_ingress, setup, spoofing, workflow, Kind};
use crate::support::auth::{idp, EMAIL, PASSWORD, ROLES, SUB, USER};
use crate::support::browser::NAVIGATION_ACCEPT;
use crate::support::ingress::STORE;
use crate::support::upstream::Recorded;

#[tokio::test]
async fn caddy_the_article_workflow() {
    workflow(Kind::Caddy).await;
}

#[tokio::test]
async fn caddy_expiry_rotates_the_cookies_in_the_browser() {
    expiry(Kind::Caddy).await;
}

#[tokio::test]
async fn caddy_a_burst_at_expiry_makes_one_idp_call() {
    burst(Kind::Caddy).await;
}

#[tokio::test]
async fn caddy_client_headers_never_speak_for_the_gateway() {
    spoofing(Kind::Caddy).await;
}

#[tokio::test]
async fn caddy_only_configured_ingresses_are_answered() {
    not_an_ingress(Kind::Caddy).await;
}

/// The headers of the app's request that the gateway's answer speaks for
/// (identity, cookies, anything the gateway names), with their values.
fn answered(seen: &Recorded) -> Vec<(String, String)> {
    seen.headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            name.starts_with("x-auth-request") || name.starts_with("x-gateway") || name == "cookie"
        })
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// What the gateway's answer did not carry reaches the app as nothing: no
/// empty header, no placeholder text, no client copy (of any
/// `X-Auth-Request-*` name), no Cookie when only the gateway's cookies were
/// sent; and a body reaches the app whole, the auth request being a GET
/// without it.
#[tokio::test]
async fn caddy_what_the_answer_lacks_reaches_the_app_as_nothing() {
    let s = setup(Kind::Caddy, idp().start().await).await;
    let browser = s.browser(STORE);
    let forged: &[(&str, &str)] = &[
        ("accept", NAVIGATION_ACCEPT),
        ("x-auth-request-user", "admin"),
        ("x-auth-request-access-token", "forged"),
        ("X-Auth-Request-Groups", "wheel"),
        ("x-gateway-upstream-cookie", "gw_jwt=forged"),
    ];

    // a public path, no session: nothing the gateway speaks for
    let reply = browser
        .request(Method::GET, "/static/app.css", forged, "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = s.store.last();
    assert_eq!(seen.uri, "/static/app.css");
    assert_eq!(answered(&seen), [], "public path: {:?}", seen.headers);

    // logged in with only the gateway's cookies: the identity, and no Cookie
    assert_eq!(browser.login(USER, PASSWORD).await.status, 302);
    let reply = browser.request(Method::GET, "/account", forged, "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let expected = |cookie: Option<&str>| {
        let mut all = vec![
            ("x-auth-request-user".to_owned(), SUB.to_owned()),
            ("x-auth-request-email".to_owned(), EMAIL.to_owned()),
            ("x-auth-request-roles".to_owned(), ROLES.to_owned()),
        ];
        all.extend(cookie.map(|c| ("cookie".to_owned(), c.to_owned())));
        all.sort();
        all
    };
    let mut got = answered(&s.store.last());
    got.sort();
    assert_eq!(got, expected(None), "only the gateway's cookies");

    // a cookie of the client's own: that one only; and a POST's body
    browser.set_cookie("theme", "dark");
    let reply = browser
        .request(Method::POST, "/orders", forged, "item=1&qty=2")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = s.store.last();
    assert_eq!((seen.method.as_str(), seen.uri.path()), ("POST", "/orders"));
    assert_eq!(&seen.body[..], b"item=1&qty=2");
    let mut got = answered(&seen);
    got.sort();
    assert_eq!(got, expected(Some("theme=dark")), "the client's own cookie");
}
