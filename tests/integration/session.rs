//! A logged-in session: requests with a valid JWT are verified locally (no
//! IdP call) and forwarded with identity headers; the gateway's cookies never
//! reach the app; client-sent identity headers never do either; public paths
//! need no login; a JWT alone lasts until its `exp`; a JWT too big for one
//! cookie travels in chunks.

use http::Method;

use crate::support::auth::{
    assert_identity, assert_login_redirect, assert_login_required_json, assert_no_gateway_cookies,
    calls, claims, idp, logged_in, sleep_past_expiry, store_app, store_browser, store_gateway,
    store_upstream, JWT_COOKIE, PASSWORD, REFRESH_COOKIE, SUB, USER,
};
use crate::support::browser::set_cookies;
use crate::support::upstream::RecordingUpstream;
use crate::support::{AppSpec, Client, TestGateway};

#[tokio::test]
async fn a_valid_jwt_is_verified_locally_and_forwarded_with_identity() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    logged_in(&browser).await;

    let first = browser.get("/shopping-cart").await;
    assert_eq!(first.status, 200, "{}", first.text());
    let before = calls(&idp);
    for path in ["/shopping-cart", "/orders?page=2", "/api/cart"] {
        let reply = browser.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_identity(&store.last(), path);
        assert!(
            set_cookies(&reply).is_empty(),
            "{path}: nothing to renew: {:?}",
            reply.headers
        );
    }
    let reply = browser.get_json("/api/cart").await;
    assert_eq!(
        reply.status,
        200,
        "API call with the session: {}",
        reply.text()
    );
    assert_eq!(calls(&idp), before, "a valid JWT cost an IdP call");
    assert_eq!(store.requests().len(), 5);
}

#[tokio::test]
async fn gateway_cookies_are_stripped_and_the_apps_own_pass_untouched() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);
    logged_in(&browser).await;
    browser.set_cookie("theme", "dark");
    browser.set_cookie("cart_id", "abc123");

    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = store.last();
    assert_no_gateway_cookies(&seen, "session cookies");
    let cookie: Vec<&str> = seen
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = cookie.join("; ");
    assert!(joined.contains("theme=dark"), "{joined}");
    assert!(joined.contains("cart_id=abc123"), "{joined}");
}

#[tokio::test]
async fn client_identity_headers_are_stripped_on_every_route() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let plain = RecordingUpstream::start("plain").await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(store_app(store.addr).extra("public_paths = [\"/static/*\", \"/about\"]"))
        .app(AppSpec::new("plain", "plain.example.com", plain.addr))
        .start_ready()
        .await;
    let forged = [
        ("x-auth-request-user", "admin"),
        ("x-auth-request-email", "admin@example.com"),
        ("x-auth-request-roles", "admin,root"),
        ("x-auth-request-groups", "wheel"),
        ("X-Auth-Request-Preferred-Username", "root"),
    ];
    let headers: Vec<(&str, &str)> = forged.to_vec();

    // A public path of an app with login.
    let client = Client::new(gw.addr);
    let reply = client
        .get_with("store.example.com", "/static/app.css", &headers)
        .await;
    assert_eq!(reply.status, 200, "public: {}", reply.text());
    let seen = store.last();
    for (name, _) in &forged {
        assert_eq!(
            seen.header(name),
            None,
            "public path: {name} reached the app"
        );
    }

    // An app without login.
    let reply = client.get_with("plain.example.com", "/", &headers).await;
    assert_eq!(reply.status, 200, "auth = false: {}", reply.text());
    let seen = plain.last();
    for (name, _) in &forged {
        assert_eq!(
            seen.header(name),
            None,
            "auth = false: {name} reached the app"
        );
    }

    // A protected path: the gateway's values replace the client's.
    let browser = store_browser(&gw);
    logged_in(&browser).await;
    let reply = browser
        .request(Method::GET, "/cart", &headers, bytes::Bytes::new())
        .await;
    assert_eq!(reply.status, 200, "protected: {}", reply.text());
    let seen = store.last();
    assert_identity(&seen, "protected");
    for name in [
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-roles",
    ] {
        assert_eq!(seen.headers.get_all(name).iter().count(), 1, "{name} twice");
    }
    assert_eq!(seen.header("x-auth-request-groups"), None);
    assert_eq!(seen.header("x-auth-request-preferred-username"), None);
}

#[tokio::test]
async fn public_paths_need_no_login_but_dot_segments_do_not_escape_them() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(store_app(store.addr).extra("public_paths = [\"/static/*\", \"/about\"]"))
        .start_ready()
        .await;
    let browser = store_browser(&gw);

    for path in ["/static/app.css", "/static/img/logo.png", "/about"] {
        let reply = browser.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(store.last().uri.path(), path);
    }
    let public = store.requests().len();
    for path in [
        "/about/team",
        "/aboutx",
        "/staticx/a",
        "/static/../cart",
        "/static/%2e%2e/cart",
        "/static/%2E%2E/cart",
        "/static/./../cart",
    ] {
        let reply = browser.get(path).await;
        assert_login_redirect(&reply, path);
        let reply = browser.get_json(path).await;
        assert_login_required_json(&reply, path);
    }
    assert_eq!(
        store.requests().len(),
        public,
        "a protected path was served"
    );
    assert_eq!(calls(&idp).password_grants, 0);
}

#[tokio::test]
async fn a_stolen_jwt_alone_works_until_its_exp_and_not_after() {
    let idp = idp().access_ttl(2).start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let victim = store_browser(&gw);
    let jwt = logged_in(&victim).await;

    let thief = store_browser(&gw);
    thief.set_cookie(JWT_COOKIE, &jwt);
    let reply = thief.get("/account").await;
    assert_eq!(reply.status, 200, "the JWT is a bearer token until exp");
    assert_eq!(store.last().header("x-auth-request-user"), Some(SUB));

    sleep_past_expiry(&jwt).await;
    let seen = store.requests().len();
    let reply = thief.get("/account").await;
    assert_login_redirect(&reply, "stolen JWT after exp");
    let reply = thief.get_json("/api/account").await;
    assert_login_required_json(&reply, "stolen JWT after exp, API");
    assert_eq!(store.requests().len(), seen);
    assert_eq!(
        calls(&idp).refreshes,
        0,
        "no refresh without a refresh cookie"
    );
}

#[tokio::test]
async fn a_jwt_too_big_for_one_cookie_is_chunked_and_reassembled() {
    /// Claims this big make a JWT of about 8 kB: three chunks.
    const PADDING: usize = 6000;
    let idp = idp().extra_claim_bytes(PADDING).start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let browser = store_browser(&gw);

    let reply = browser.login(USER, PASSWORD).await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    let set = set_cookies(&reply);
    let chunks: Vec<_> = set
        .iter()
        .filter(|c| c.name.starts_with(&format!("{JWT_COOKIE}.")) && !c.clears())
        .collect();
    assert!(
        chunks.len() >= 2,
        "expected gw_jwt.0, gw_jwt.1…: {:?}",
        set.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.name, format!("{JWT_COOKIE}.{i}"));
        assert!(
            chunk.value.len() <= 4000,
            "{} is {} bytes",
            chunk.name,
            chunk.value.len()
        );
        assert!(chunk.has("HttpOnly"), "{}", chunk.raw);
    }
    assert!(
        !set.iter().any(|c| c.name == JWT_COOKIE && !c.clears()),
        "the whole JWT in one cookie too"
    );
    let jwt: String = chunks.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(claims(&jwt)["pad"].as_str().map(str::len), Some(PADDING));
    assert!(browser.cookie(REFRESH_COOKIE).is_some());

    let before = calls(&idp);
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = store.last();
    assert_identity(&seen, "chunked JWT");
    assert_eq!(calls(&idp).refreshes, before.refreshes);
}

#[tokio::test]
async fn the_access_token_can_be_passed_as_a_bearer_token() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(store_app(store.addr).headers("access_token = \"Authorization\""))
        .start_ready()
        .await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    let reply = browser
        .request(
            Method::GET,
            "/cart",
            &[("authorization", "Bearer forged")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let expected = format!("Bearer {jwt}");
    assert_eq!(
        store.last().header("authorization"),
        Some(expected.as_str())
    );
}
