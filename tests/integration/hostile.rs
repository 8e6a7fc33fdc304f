//! The upstream can trust what the gateway sends: the exact requests an
//! attacker would send, and what the upstream received.
//!
//! Identity headers belong to the gateway alone (whatever `Connection`
//! names, in any `_`/`-` spelling, as trailers); the headers apps trust to
//! rewrite URLs and addresses pass only from trusted proxies; no upstream
//! receives or sets any app's gateway cookies; one request has one host and
//! one path, the one the upstream reads; a refresh's cookies reach the
//! browser whatever the answer.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::auth::{
    assert_identity, assert_no_gateway_cookies, claims, idp, logged_in, logged_in_as,
    sleep_past_expiry, store_app, store_browser, store_gateway, store_upstream, JWT_COOKIE,
    OTHER_PASSWORD, OTHER_SUB, OTHER_USER, REFRESH_COOKIE, STORE_HOST, SUB,
};
use crate::support::browser::{set_cookie, Browser};
use crate::support::upstream::{full, RecordingUpstream};
use crate::support::{AppSpec, TestGateway};

/// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) on a new
/// connection and returns the status and the whole answer as text.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
        .await
        .expect("the gateway answered within 5 s")
        .expect("read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    (status, text)
}

/// `GET path` on the store with `headers` (each a full `Name: value` line).
fn get(path: &str, headers: &[&str]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {STORE_HOST}\r\n");
    for line in headers {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    request.into_bytes()
}

/// Every value of `name` the upstream received, in any `_`/`-` spelling and
/// any case: the names a CGI-style app would read as one variable.
fn spellings(headers: &HeaderMap, name: &str) -> Vec<String> {
    let canon = |n: &str| n.to_ascii_lowercase().replace('_', "-");
    headers
        .iter()
        .filter(|(n, _)| canon(n.as_str()) == canon(name))
        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect()
}

/// The names with an `_` among `headers`.
fn underscored(headers: &HeaderMap) -> Vec<&str> {
    headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.contains('_'))
        .collect()
}

/// A logged-in store session as a `Cookie:` line for raw requests.
async fn session_cookie(gw: &TestGateway) -> String {
    let browser = store_browser(gw);
    logged_in(&browser).await;
    format!("Cookie: {}", browser.cookie_header().expect("cookies"))
}

#[tokio::test]
async fn connection_cannot_name_away_the_headers_the_gateway_sets() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = store_gateway(&idp, store.addr).await;
    let cookie = session_cookie(&gw).await;
    let (status, _) = raw(
        gw.addr,
        &get(
            "/account",
            &[
                &cookie,
                "Connection: X-Auth-Request-User, X-Auth-Request-Roles, X-Auth-Request-Email",
                "Connection: X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id",
            ],
        ),
    )
    .await;
    assert_eq!(status, 200);
    let seen = store.last();
    assert_identity(&seen, "Connection naming identity headers");
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some(STORE_HOST));
    assert!(seen.header("x-request-id").is_some(), "{:?}", seen.headers);
    gw.stop().await;
}

#[tokio::test]
async fn underscore_twins_of_trusted_headers_never_reach_the_upstream() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(store_app(store.addr).extra("public_paths = [\"/static/*\"]"))
        .start_ready()
        .await;
    let cookie = session_cookie(&gw).await;
    let twins = [
        "X_Auth_Request_User: victim",
        "x-auth_request-user: victim",
        "X-AUTH_REQUEST-EMAIL: victim@example.com",
        "X_AUTH_REQUEST_ROLES: admin",
        "X_Auth_Request_Anything: victim",
        "X_Forwarded_For: 6.6.6.6",
        "X_Forwarded_Host: evil.example",
        "X_Request_Id: forged",
        "X_Real_IP: 6.6.6.6",
        "X_Custom: dropped like nginx does",
    ];
    for (path, session) in [("/account", Some(&cookie)), ("/static/app.css", None)] {
        let mut lines: Vec<&str> = twins.to_vec();
        if let Some(cookie) = session {
            lines.push(cookie);
        }
        let (status, _) = raw(gw.addr, &get(path, &lines)).await;
        assert_eq!(status, 200, "{path}");
        let seen = store.last();
        let user = spellings(&seen.headers, "x-auth-request-user");
        match session {
            Some(_) => assert_eq!(user, [format!("x-auth-request-user: {SUB}")], "{path}"),
            None => assert!(user.is_empty(), "{path}: {user:?}"),
        }
        for name in [
            "x-auth-request-email",
            "x-auth-request-roles",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-request-id",
        ] {
            assert!(
                spellings(&seen.headers, name).len() <= 1,
                "{path}: {name}: {:?}",
                spellings(&seen.headers, name)
            );
        }
        assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"), "{path}");
        let underscored = underscored(&seen.headers);
        assert!(underscored.is_empty(), "{path}: {underscored:?}");
    }
    gw.stop().await;

    // With underscores allowed, only the twins of the gateway's headers go.
    let gw = TestGateway::new()
        .idp(&idp)
        .server("underscores_in_headers = true")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let mut lines: Vec<&str> = twins.to_vec();
    lines.push(&cookie);
    let (status, _) = raw(gw.addr, &get("/account", &lines)).await;
    assert_eq!(status, 200);
    let seen = store.last();
    assert_eq!(underscored(&seen.headers), ["x_custom"]);
    gw.stop().await;
}

#[tokio::test]
async fn request_trailers_are_not_forwarded() {
    let idp = idp().start().await;
    let store = RecordingUpstream::start_raw(|req| async move {
        let trailers = req
            .into_body()
            .collect()
            .await
            .ok()
            .and_then(|c| c.trailers().cloned())
            .map(|t| format!("{t:?}"))
            .unwrap_or_default();
        Response::new(full(format!("trailers: {trailers}")))
    })
    .await;
    let gw = store_gateway(&idp, store.addr).await;
    let cookie = session_cookie(&gw).await;
    let request = format!(
        "POST /orders HTTP/1.1\r\nHost: {STORE_HOST}\r\n{cookie}\r\nTE: trailers\r\n\
         Trailer: X-Auth-Request-User\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5\r\nhello\r\n0\r\nX-Auth-Request-User: victim\r\nX_Auth_Request_Roles: admin\r\n\r\n"
    );
    let (status, answer) = raw(gw.addr, request.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.ends_with("trailers: "), "{answer}");
    gw.stop().await;
}

#[tokio::test]
async fn url_and_address_headers_pass_only_from_trusted_proxies() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let hostile = [
        "X-Original-URL: /admin",
        "X-Rewrite-URL: /admin",
        "X-Forwarded-Prefix: /admin",
        "X-Forwarded-Port: 443",
        "X-Forwarded-Scheme: https",
        "X-Forwarded-Ssl: on",
        "X-Forwarded-Server: evil",
        "X-Real-IP: 6.6.6.6",
        "True-Client-IP: 6.6.6.6",
    ];
    let names: Vec<&str> = hostile
        .iter()
        .map(|l| l.split(':').next().expect("name"))
        .collect();
    let untrusted = TestGateway::new()
        .idp(&idp)
        .app(store_app(store.addr).extra("public_paths = [\"/static/*\"]"))
        .start_ready()
        .await;
    let (status, _) = raw(untrusted.addr, &get("/static/app.css", &hostile)).await;
    assert_eq!(status, 200);
    let seen = store.last();
    for name in &names {
        assert_eq!(seen.header(name), None, "{name} from an untrusted peer");
    }
    untrusted.stop().await;

    let trusted = TestGateway::new()
        .idp(&idp)
        .server("trusted_proxies = [\"127.0.0.1\"]")
        .app(store_app(store.addr).extra("public_paths = [\"/static/*\"]"))
        .start_ready()
        .await;
    let (status, _) = raw(trusted.addr, &get("/static/app.css", &hostile)).await;
    assert_eq!(status, 200);
    let seen = store.last();
    for line in &hostile {
        let (name, value) = line.split_once(": ").expect("line");
        assert_eq!(
            seen.header(name),
            Some(value),
            "{name} from a trusted proxy"
        );
    }
    trusted.stop().await;

    // The list is configurable.
    let custom = TestGateway::new()
        .idp(&idp)
        .server("trusted_only_headers = [\"X-Client-Cert\"]")
        .app(store_app(store.addr).extra("public_paths = [\"/static/*\"]"))
        .start_ready()
        .await;
    let (status, _) = raw(
        custom.addr,
        &get(
            "/static/app.css",
            &["X-Client-Cert: forged", "X-Real-IP: 6.6.6.6"],
        ),
    )
    .await;
    assert_eq!(status, 200);
    let seen = store.last();
    assert_eq!(seen.header("x-client-cert"), None);
    assert_eq!(seen.header("x-real-ip"), Some("6.6.6.6"));
    custom.stop().await;
}

/// An upstream that tries to set the gateway's cookies in every way a
/// browser would accept, and one cookie of its own.
async fn cookie_setting_upstream() -> RecordingUpstream {
    RecordingUpstream::start_with(|_req| async move {
        let mut response = Response::new(full("upstream"));
        let h = response.headers_mut();
        for value in [
            &b"gw_jwt=forged; Path=/"[..],
            b"gw_refresh=forged",
            b"gw_jwt.0=forged",
            b"=gw_jwt=forged",
            b"gw_csrf",
            b"GW_JWT=forged",
            b" gw_jwt =forged",
            b"gw_jwt=\xff\xfe; Path=/",
            b"app_session=kept; Path=/",
        ] {
            h.append(
                http::header::SET_COOKIE,
                http::HeaderValue::from_bytes(value).expect("value"),
            );
        }
        response
    })
    .await
}

#[tokio::test]
async fn no_upstream_receives_or_sets_any_apps_gateway_cookies() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let open = cookie_setting_upstream().await;
    let public = cookie_setting_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(store_app(store.addr))
        // Same host, no login: a blog under /blog.
        .app(AppSpec::new("blog", STORE_HOST, open.addr).prefix("/blog"))
        // Another app with login: its public path.
        .app(
            AppSpec::new("docs", "docs.example.com", public.addr)
                .login("store", "store-secret")
                .extra("public_paths = [\"/static/*\"]"),
        )
        .start_ready()
        .await;
    let browser = store_browser(&gw);
    logged_in(&browser).await;
    let jar = browser.cookie_header().expect("cookies");
    let cookie = format!("Cookie: {jar}; app_session=mine");

    let blog = get("/blog/post", &[&cookie]);
    let docs = format!(
        "GET /static/app.css HTTP/1.1\r\nHost: docs.example.com\r\n{cookie}\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes();
    for (request, upstream, case) in [
        (blog, &open, "auth = false app on the same host"),
        (docs, &public, "another app's public path"),
    ] {
        let (status, answer) = raw(gw.addr, &request).await;
        assert_eq!(status, 200, "{case}: {answer}");
        let seen = upstream.last();
        assert_no_gateway_cookies(&seen, case);
        assert_eq!(seen.header("cookie"), Some("app_session=mine"), "{case}");
        let set: Vec<&str> = answer
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .collect();
        assert_eq!(
            set,
            ["set-cookie: app_session=kept; Path=/"],
            "{case}: {answer}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn one_host_and_a_host_name_only() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(
            store_app(store.addr)
                .hosts(&["*.example.com"])
                .extra("public_paths = [\"/static/*\"]"),
        )
        .start_ready()
        .await;
    for request in [
        "GET /static/a HTTP/1.1\r\nHost: store.example.com\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
        "GET /static/a HTTP/1.1\r\nHost: evil.com/.example.com\r\nConnection: close\r\n\r\n",
        "GET /static/a HTTP/1.1\r\nHost: user@store.example.com\r\nConnection: close\r\n\r\n",
        "GET /static/a HTTP/1.1\r\nHost: store.example.com:80:80\r\nConnection: close\r\n\r\n",
        "GET /static/a HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let (status, answer) = raw(gw.addr, request.as_bytes()).await;
        assert_eq!(status, 400, "{request:?}: {answer}");
    }
    assert!(store.requests().is_empty(), "{:?}", store.requests());
    let (status, _) = raw(
        gw.addr,
        b"GET /static/a HTTP/1.1\r\nHost: store.example.com:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    gw.stop().await;
}

/// A public site with a protected `/admin` on one upstream.
async fn site_with_admin(idp: &crate::support::idp::TestIdp, upstream: SocketAddr) -> TestGateway {
    TestGateway::new()
        .idp(idp)
        .app(AppSpec::new("site", STORE_HOST, upstream))
        .app(
            store_app(upstream)
                .prefix("/admin")
                .extra("gateway_path = \"/admin/.gateway\"")
                .extra("required_roles = [\"admin\"]"),
        )
        .start_ready()
        .await
}

#[tokio::test]
async fn routing_policy_and_upstream_read_one_path() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = site_with_admin(&idp, store.addr).await;
    for path in [
        "/admin/users",
        "/x/../admin/users",
        "//admin/users",
        "/%61dmin/users",
        "/admin;/users",
        "/ADMIN/../admin/users",
        "/static/%2e%2e/admin/users",
        "/static/..;/admin/users",
    ] {
        let (status, answer) = raw(gw.addr, &get(path, &["Accept: text/html"])).await;
        assert_eq!(status, 302, "{path}: {answer}");
        assert!(
            answer.contains("location: /admin/.gateway/login"),
            "{path}: {answer}"
        );
    }
    assert!(store.requests().is_empty(), "{:?}", store.requests());

    // What the upstream receives is the path that was routed and checked.
    for (sent, received) in [
        ("/blog/./post", "/blog/post"),
        ("/blog//post?x=%2F", "/blog/post?x=%2F"),
        ("/%7Euser/caf%C3%A9", "/~user/caf%C3%A9"),
        ("/blog/post;jsessionid=1", "/blog/post;jsessionid=1"),
    ] {
        let (status, answer) = raw(gw.addr, &get(sent, &[])).await;
        assert_eq!(status, 200, "{sent}: {answer}");
        assert_eq!(store.last().uri.to_string(), received, "{sent}");
    }

    let seen = store.requests().len();
    for path in [
        "/%c0%ae%c0%ae/admin/users",
        "/%ff/x",
        "/a%00b",
        "/x%2f..%2fadmin/users",
        "/x%5c..%5cadmin/users",
        "/x\\..\\admin/users",
        "/%252e%252e/admin",
        "/%zz",
    ] {
        let (status, answer) = raw(gw.addr, &get(path, &[])).await;
        assert_eq!(status, 400, "{path}: {answer}");
    }
    assert_eq!(
        store.requests().len(),
        seen,
        "an ambiguous path was forwarded"
    );
    gw.stop().await;
}

#[tokio::test]
async fn redirect_mode_stays_on_the_origin() {
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .session_config("refresh_mode = \"redirect\"")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let browser = store_browser(&gw);
    let jwt = logged_in(&browser).await;
    sleep_past_expiry(&jwt).await;
    let cookie = format!("Cookie: {}", browser.cookie_header().expect("cookies"));
    let (status, answer) = raw(
        gw.addr,
        &get("//evil.example/", &[&cookie, "Accept: text/html"]),
    )
    .await;
    assert_eq!(status, 302, "{answer}");
    assert!(
        answer.contains("location: /evil.example/\r\n"),
        "not a same-origin path: {answer}"
    );
    let (status, answer) = raw(
        gw.addr,
        &get("/\\evil.example/", &[&cookie, "Accept: text/html"]),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    gw.stop().await;
}

#[tokio::test]
async fn a_refresh_reaches_the_browser_whatever_the_answer() {
    let idp = idp().access_ttl(1).rotate_refresh().start().await;
    let store = store_upstream().await;
    let down = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let down_addr = down.local_addr().expect("addr");
    drop(down);
    let gw = TestGateway::new()
        .idp(&idp)
        .app(store_app(store.addr).extra("required_roles = [\"admin\"]"))
        .app(
            AppSpec::new("forums", "forums.example.com", down_addr)
                .login("forums", "forums-secret"),
        )
        .start_ready()
        .await;

    // 403: the user lacks the role; the refresh happened all the same.
    let browser = store_browser(&gw);
    let jwt = logged_in_as(&browser, OTHER_USER, OTHER_PASSWORD).await;
    let refresh = browser.cookie(REFRESH_COOKIE).expect("refresh cookie");
    sleep_past_expiry(&jwt).await;
    let reply = browser.get("/account").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let new_jwt = set_cookie(&reply, JWT_COOKIE).expect("new JWT on the 403");
    assert_ne!(new_jwt.value, jwt);
    assert_eq!(claims(&new_jwt.value)["sub"], OTHER_SUB);
    let new_refresh = set_cookie(&reply, REFRESH_COOKIE).expect("rotated refresh token on the 403");
    assert_ne!(new_refresh.value, refresh);
    // The rotated token works: no replay, nobody logged out.
    sleep_past_expiry(&new_jwt.value).await;
    let reply = browser.get("/account").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&reply, JWT_COOKIE).is_some());
    assert_eq!(
        idp.counters()
            .replays
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // 502: the upstream is down; the refresh's cookies still go out.
    let forums = Browser::new(gw.addr, "forums.example.com");
    let jwt = logged_in(&forums).await;
    sleep_past_expiry(&jwt).await;
    let reply = forums.get("/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let new_jwt = set_cookie(&reply, JWT_COOKIE).expect("new JWT on the 502");
    assert_ne!(new_jwt.value, jwt);
    assert!(set_cookie(&reply, REFRESH_COOKIE).is_some());
    gw.stop().await;
}
