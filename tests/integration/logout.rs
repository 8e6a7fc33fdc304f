//! Logout: a CSRF-protected form; submitting it revokes the refresh token at
//! the IdP, clears both cookies and sends the browser to the login page, even
//! when the IdP cannot be reached. A refresh kept for late requests of the
//! same session is forgotten with it.

use crate::support::auth::{
    assert_login_redirect, assert_no_session_cookies, assert_session_cleared, calls, idp,
    logged_in, sleep_past_expiry, store_app, store_browser, store_gateway, store_upstream,
    CSRF_COOKIE, JWT_COOKIE, REFRESH_COOKIE,
};
use crate::support::browser::{hidden_input, set_cookie, LOGOUT_PATH};
use crate::support::TestGateway;

#[tokio::test]
async fn the_logout_page_is_a_form_with_a_csrf_token() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    logged_in(&browser).await;

    let page = browser.get(LOGOUT_PATH).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.to_ascii_lowercase().contains("<form"), "{html}");
    let csrf = hidden_input(&html, "csrf").expect("a csrf field");
    assert!(!csrf.is_empty());
    assert!(browser.cookie(CSRF_COOKIE).is_some(), "no CSRF cookie");
    // Showing the page logs nobody out.
    assert_no_session_cookies(&page, "GET logout");
    assert_eq!(calls(&idp).revocations, 0);
    assert_eq!(browser.get("/cart").await.status, 200);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_clears_the_cookies_and_shows_the_login_page() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    logged_in(&browser).await;
    let tokens = idp.active_refresh_tokens();
    assert_eq!(tokens.len(), 1, "{tokens:?}");

    let reply = browser.logout().await;
    assert_login_redirect(&reply, "logout");
    assert_session_cleared(&reply, "logout");
    assert!(
        !idp.refresh_token_active(&tokens[0]),
        "still active at the IdP"
    );
    assert_eq!(calls(&idp).revocations, 1);
    assert!(browser.cookie(JWT_COOKIE).is_none());
    assert!(browser.cookie(REFRESH_COOKIE).is_none());

    let reply = browser.get("/cart").await;
    assert_login_redirect(&reply, "after logout");
}

#[tokio::test]
async fn logout_without_the_csrf_token_is_refused() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    logged_in(&browser).await;

    // A cross-site form posting to the logout address has no token.
    let reply = browser.post_form(LOGOUT_PATH, &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    let reply = browser
        .post_form(LOGOUT_PATH, &[("csrf", "forged-token")])
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_no_session_cookies(&reply, "forged logout");
    assert_eq!(calls(&idp).revocations, 0);
    assert_eq!(idp.active_refresh_tokens().len(), 1);
    assert_eq!(browser.get("/cart").await.status, 200);
}

#[tokio::test]
async fn logout_with_the_idp_down_still_clears_the_cookies() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    logged_in(&browser).await;

    idp.set_down(true);
    let reply = browser.logout().await;
    assert_login_redirect(&reply, "logout, IdP down");
    assert_session_cleared(&reply, "logout, IdP down");
    idp.set_down(false);
    let reply = browser.get("/cart").await;
    assert_login_redirect(&reply, "after logout, IdP down");
}

#[tokio::test]
async fn the_fusionauth_dialect_revokes_through_its_api() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .idp_config("kind = \"fusionauth\"")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let browser = store_browser(&gw);
    logged_in(&browser).await;
    let tokens = idp.active_refresh_tokens();

    let reply = browser.logout().await;
    assert_login_redirect(&reply, "FusionAuth logout");
    assert!(set_cookie(&reply, REFRESH_COOKIE).is_some_and(|c| c.clears()));
    assert!(
        !idp.refresh_token_active(&tokens[0]),
        "still active at the IdP"
    );
    assert_eq!(
        calls(&idp).jwt_api_revocations,
        1,
        "not DELETE /api/jwt/refresh"
    );
}

#[tokio::test]
async fn logout_forgets_the_refresh_kept_for_late_requests() {
    // Rotating refresh tokens or not: the refresh result kept for
    // `session.refresh_grace` must not outlive the logout.
    for rotate in [false, true] {
        let builder = idp().access_ttl(1);
        let idp = if rotate {
            builder.rotate_refresh()
        } else {
            builder
        }
        .start()
        .await;
        let store = store_upstream().await;
        let gw = store_gateway(&idp, store.addr).await;
        let browser = store_browser(&gw);
        let jwt = logged_in(&browser).await;
        let before_refresh = browser.cookies();
        sleep_past_expiry(&jwt).await;
        let reply = browser.get("/cart").await;
        assert_eq!(reply.status, 200, "rotate {rotate}: {}", reply.text());
        assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
        let reply = browser.logout().await;
        assert_login_redirect(&reply, "logout");
        let before = calls(&idp);
        let seen = store.requests().len();

        // The cookies from before the refresh (the expired JWT and the
        // refresh cookie that was refreshed), sent again within the grace.
        let replay = store_browser(&gw);
        replay.set_cookies(before_refresh.clone());
        let reply = replay.get("/cart").await;
        let context = format!("rotate {rotate}: pre-logout cookies after logout");
        assert_login_redirect(&reply, &context);
        assert!(
            set_cookie(&reply, JWT_COOKIE).is_none_or(|c| c.clears()),
            "{context}: a new JWT: {:?}",
            reply.headers
        );
        replay.set_cookies(before_refresh);
        let reply = replay.get_json("/api/cart").await;
        assert_eq!(reply.status, 401, "{context}, API: {}", reply.text());
        assert!(set_cookie(&reply, JWT_COOKIE).is_none_or(|c| c.clears()));
        assert_eq!(store.requests().len(), seen, "{context}: forwarded");
        assert_eq!(calls(&idp).password_grants, before.password_grants);
    }
}
