//! The IdP client follows no redirect: a 307 or 308 from the token endpoint
//! would have it post the user's password (and the client secret) wherever
//! the `Location` points. Any 3xx is "IdP unavailable": the login form
//! answers 503, a refresh answers 503 and keeps the session.

use std::net::SocketAddr;

use http::{Response, StatusCode};

use crate::support::auth::{
    assert_no_session_cookies, idp, logged_in, sleep_past_expiry, store_app, store_browser,
    store_gateway, store_upstream, PASSWORD, USER,
};
use crate::support::browser::Browser;
use crate::support::upstream::full;
use crate::support::{RecordingUpstream, TestGateway};

/// A server that answers every request with `status` and a `Location` on
/// `target`, same path.
async fn redirector(status: u16, target: SocketAddr) -> RecordingUpstream {
    RecordingUpstream::start_with(move |seen| async move {
        let mut response = Response::new(full(""));
        *response.status_mut() = StatusCode::from_u16(status).expect("status");
        let location = format!("http://{target}{}", seen.uri.path());
        response
            .headers_mut()
            .insert(http::header::LOCATION, location.parse().expect("location"));
        response
    })
    .await
}

#[tokio::test]
async fn a_redirecting_token_endpoint_gets_no_password_and_login_is_503() {
    for status in [307, 308, 302] {
        let idp = idp().start().await;
        let elsewhere = RecordingUpstream::start("elsewhere").await;
        let redirect = redirector(status, elsewhere.addr).await;
        let store = store_upstream().await;
        for client_auth in ["client_secret_basic", "client_secret_post"] {
            let gw = TestGateway::new()
                .idp(&idp)
                .idp_config(&format!(
                    "token_endpoint = \"http://{}/oauth2/token\"",
                    redirect.addr
                ))
                .app(store_app(store.addr).extra(&format!("client_auth = \"{client_auth}\"")))
                .start_ready()
                .await;
            let browser = store_browser(&gw);
            let reply = browser.login(USER, PASSWORD).await;
            let context = format!("{status}, {client_auth}");
            assert_eq!(reply.status, 503, "{context}: {}", reply.text());
            assert!(
                reply.text().contains("name=\"password\""),
                "{context}: the form again: {}",
                reply.text()
            );
            assert_no_session_cookies(&reply, &context);
            assert!(
                !redirect.requests().is_empty(),
                "{context}: the token endpoint was not asked"
            );
        }
        assert!(
            elsewhere.requests().is_empty(),
            "{status}: the redirect was followed: {:?}",
            elsewhere.requests()
        );
    }
}

#[tokio::test]
async fn a_redirecting_token_endpoint_during_refresh_is_503_and_keeps_the_session() {
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    // Logged in at a gateway that talks to the IdP directly…
    let direct = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&direct);
    let jwt = logged_in(&browser).await;
    let session = browser.cookies();

    // …the same session (same cookie key and app) at one whose token
    // endpoint redirects.
    let elsewhere = RecordingUpstream::start("elsewhere").await;
    let redirect = redirector(307, elsewhere.addr).await;
    let gw = TestGateway::new()
        .idp(&idp)
        .idp_config(&format!(
            "token_endpoint = \"http://{}/oauth2/token\"",
            redirect.addr
        ))
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let browser = Browser::new(gw.addr, &browser.host());
    browser.set_cookies(session.clone());
    sleep_past_expiry(&jwt).await;
    let seen = store.requests().len();

    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_no_session_cookies(&reply, "redirected refresh");
    let reply = browser.get_json("/api/cart").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_no_session_cookies(&reply, "redirected refresh, API");
    assert_eq!(browser.cookies(), session, "the session was touched");
    assert_eq!(store.requests().len(), seen, "forwarded");
    assert!(!redirect.requests().is_empty(), "the refresh never left");
    assert!(
        elsewhere.requests().is_empty(),
        "the refresh token was posted elsewhere: {:?}",
        elsewhere.requests()
    );
}
