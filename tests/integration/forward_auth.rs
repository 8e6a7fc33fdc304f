//! Forward-auth mode behind real ingresses started from the configs shipped
//! in `examples/forward-auth/`: the ingress proxies, the gateway decides.
//!
//! Every scenario runs on each ingress (`nginx_*` here, `caddy_*` and
//! `envoy_*` in their own files):
//! the article's workflow (login page, identity headers upstream, a
//! separate forums login, logout), expiry with one-time-use refresh tokens
//! (the rotated cookies reach the browser, a second expiry refreshes with
//! them, no replay), a burst at expiry making one IdP call, a client's
//! forged identity headers and original-request headers, public paths, and
//! an auth endpoint asked by a peer that is not an ingress.
//!
//! Assertions are on what the upstream apps received, through the ingress.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Method;

use crate::support::auth::{
    assert_identity, calls, claims, idp, sleep_past_expiry, JWT_COOKIE, PASSWORD, REFRESH_COOKIE,
    USER,
};
use crate::support::browser::{set_cookie, Browser, LOGIN_PATH, NAVIGATION_ACCEPT};
use crate::support::client::Reply;
use crate::support::idp::TestIdp;
use crate::support::ingress::{self, Backends, Ingress, FORUMS, STORE};
use crate::support::{AppSpec, Client, RecordingUpstream, TestGateway};

/// The ingresses the scenarios run behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
    Envoy,
}

impl Kind {
    /// `forward_auth.ingress` for it.
    fn ingress_key(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
            Kind::Envoy => "envoy",
        }
    }

    /// How its shipped config delivers a refresh's cookies.
    fn refresh_key(self) -> &'static str {
        match self {
            // its shipped config copies the cookies
            Kind::Nginx | Kind::Envoy => "set-cookie",
            // Caddy cannot copy an allowing answer's headers to the
            // browser: page loads go to the refresh page
            Kind::Caddy => "redirect",
        }
    }

    async fn start(self, backends: Backends) -> Ingress {
        match self {
            Kind::Nginx => ingress::nginx(backends).await,
            Kind::Caddy => crate::support::caddy::start(backends).await,
            Kind::Envoy => crate::support::envoy::start(backends).await,
        }
    }
}

/// Everything of one scenario: the IdP, the two apps, the gateway in
/// forward-auth mode and the ingress in front.
pub struct Setup {
    pub idp: TestIdp,
    pub store: RecordingUpstream,
    pub forums: RecordingUpstream,
    pub gateway: TestGateway,
    pub ingress: Ingress,
}

impl Setup {
    /// A browser on `host` through the ingress.
    pub fn browser(&self, host: &str) -> Browser {
        Browser::new(self.ingress.addr, host)
    }
}

/// Starts a scenario behind `kind`; `ingresses` is the gateway's
/// `forward_auth.ingresses` (the ingress connects from 127.0.0.1).
pub async fn setup_with(kind: Kind, idp: TestIdp, ingresses: &str) -> Setup {
    setup_refreshing(kind, idp, ingresses, kind.refresh_key()).await
}

/// [`setup_with`] with `forward_auth.refresh = refresh`.
pub async fn setup_refreshing(kind: Kind, idp: TestIdp, ingresses: &str, refresh: &str) -> Setup {
    let store = RecordingUpstream::start("store").await;
    let forums = RecordingUpstream::start("forums").await;
    let section = format!(
        "[forward_auth]\ningresses = [{ingresses:?}]\ningress = {:?}\nrefresh = {refresh:?}\n",
        kind.ingress_key(),
    );
    let gateway = TestGateway::new()
        .idp(&idp)
        .section(&section)
        .app(
            AppSpec::new("store", STORE, store.addr)
                .login("store", "store-secret")
                .extra("public_paths = [\"/static/*\"]"),
        )
        .app(AppSpec::new("forums", FORUMS, forums.addr).login("forums", "forums-secret"))
        .start_ready()
        .await;
    let ingress = kind
        .start(Backends {
            gateway: gateway.addr,
            store: store.addr,
            forums: forums.addr,
        })
        .await;
    Setup {
        idp,
        store,
        forums,
        gateway,
        ingress,
    }
}

pub async fn setup(kind: Kind, idp: TestIdp) -> Setup {
    setup_with(kind, idp, "127.0.0.1").await
}

/// Follows redirects on the same host (the login page, the refresh page and
/// back), at most five, as a browser does; the last answer.
pub async fn follow(browser: &Browser, first: Reply) -> Reply {
    let mut reply = first;
    for _ in 0..5 {
        if !matches!(reply.status.as_u16(), 301 | 302 | 303 | 307) {
            return reply;
        }
        let location = reply.header("location").unwrap_or_default().to_owned();
        assert!(
            location.starts_with('/') && !location.starts_with("//"),
            "a redirect off the host: {location:?}"
        );
        reply = browser.get(&location).await;
    }
    panic!("more than five redirects");
}

fn assert_login_redirect(reply: &Reply, return_to: &str, context: &str) {
    assert_eq!(
        reply.status,
        302,
        "{context}: {} {}",
        reply.status,
        reply.text()
    );
    let location = reply.header("location").unwrap_or_default();
    let expected = format!(
        "{LOGIN_PATH}?return_to={}",
        url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
    );
    assert_eq!(location, expected, "{context}");
}

// ---------------------------------------------------------------------------
// The scenarios, each for any ingress.
// ---------------------------------------------------------------------------

/// The article's workflow through the ingress.
pub async fn workflow(kind: Kind) {
    let s = setup(kind, idp().start().await).await;
    let browser = s.browser(STORE);

    // not logged in: the login page, coming back to the page asked for
    let reply = browser.get("/cart?item=1&qty=2").await;
    assert_login_redirect(&reply, "/cart?item=1&qty=2", "first visit");
    let api = browser.get_json("/api/cart").await;
    assert_eq!(
        api.status,
        401,
        "a script is told, not redirected: {}",
        api.text()
    );
    assert_eq!(s.store.requests().len(), 0, "nothing reached the store");

    // the login page is the gateway's, on the app's host, through the ingress
    let reply = browser
        .login_returning_to(USER, PASSWORD, Some("/cart?item=1&qty=2"))
        .await;
    assert_eq!(reply.status, 302, "login: {}", reply.text());
    assert_eq!(reply.header("location"), Some("/cart?item=1&qty=2"));
    let jwt = set_cookie(&reply, JWT_COOKIE).expect("JWT cookie");
    assert!(jwt.has("HttpOnly"), "{}", jwt.raw);

    // the page, with the identity headers, and the client's own cookie
    browser.set_cookie("theme", "dark");
    let reply = browser.get("/cart?item=1&qty=2").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "upstream store");
    let seen = s.store.last();
    assert_eq!(seen.uri, "/cart?item=1&qty=2");
    assert_identity(&seen, "logged in");
    assert_eq!(
        seen.header("cookie"),
        Some("theme=dark"),
        "{:?}",
        seen.headers
    );
    let api = browser.get_json("/api/cart").await;
    assert_eq!(api.status, 200, "{}", api.text());

    // the forums are another app: their own login
    browser.visit(FORUMS);
    let reply = browser.get("/threads").await;
    assert_login_redirect(&reply, "/threads", "forums before its own login");
    assert_eq!(s.forums.requests().len(), 0);
    let reply = browser.login(USER, PASSWORD).await;
    assert_eq!(reply.status, 302, "forums login: {}", reply.text());
    let reply = browser.get("/threads").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_identity(&s.forums.last(), "forums");

    // logout on the store: the store's session is gone, the forums' is not
    browser.visit(STORE);
    let reply = browser.logout().await;
    assert_eq!(reply.status, 302, "logout: {}", reply.text());
    let served = s.store.requests().len();
    let reply = browser.get("/cart").await;
    assert_login_redirect(&reply, "/cart", "after logout");
    // the JWT of the logged-out session, replayed without its refresh cookie
    let stolen = Browser::new(s.ingress.addr, STORE);
    stolen.set_cookie(JWT_COOKIE, &jwt.value);
    let reply = stolen.get("/cart").await;
    assert_eq!(reply.status, 302, "the logged-out JWT: {}", reply.text());
    assert_eq!(
        s.store.requests().len(),
        served,
        "nothing more reached the store"
    );
    browser.visit(FORUMS);
    assert_eq!(
        browser.get("/threads").await.status,
        200,
        "forums still logged in"
    );
}

/// Expiry with one-time-use refresh tokens: the page is served, the browser
/// ends up with the rotated cookies, and the next expiry refreshes with
/// them; nobody is logged out and the IdP sees no replay.
pub async fn expiry(kind: Kind) {
    let s = setup(kind, idp().access_ttl(2).rotate_refresh().start().await).await;
    expiry_on(s).await;
}

async fn expiry_on(s: Setup) {
    let browser = s.browser(STORE);
    let reply = browser.login(USER, PASSWORD).await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    for round in 1..=2 {
        let jwt = browser.cookie(JWT_COOKIE).expect("JWT cookie");
        let refresh = browser.cookie(REFRESH_COOKIE).expect("refresh cookie");
        sleep_past_expiry(&jwt).await;
        let before = calls(&s.idp);
        let first = browser.get(&format!("/orders/{round}")).await;
        let reply = follow(&browser, first).await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
        assert_eq!(reply.text(), "upstream store");
        let seen = s.store.last();
        assert_eq!(seen.uri.to_string(), format!("/orders/{round}"));
        assert_identity(&seen, "after a refresh");
        let after = calls(&s.idp);
        assert_eq!(
            after.refreshes,
            before.refreshes + 1,
            "round {round}: one refresh"
        );
        assert_eq!(after.replays, 0, "round {round}: no replay");
        let new_jwt = browser.cookie(JWT_COOKIE).expect("JWT cookie");
        assert_ne!(new_jwt, jwt, "round {round}: the browser holds the new JWT");
        assert!(claims(&new_jwt)["exp"].as_u64() > claims(&jwt)["exp"].as_u64());
        assert_ne!(
            browser.cookie(REFRESH_COOKIE).expect("refresh cookie"),
            refresh,
            "round {round}: the browser holds the rotated refresh token"
        );
        // and it works as it is: no further IdP call
        let reply = browser.get_json("/api/orders").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(calls(&s.idp).refreshes, after.refreshes);
    }
}

/// 100 concurrent requests with one expired JWT: one IdP call, everyone
/// served, the rotated cookies in every answer that carries cookies.
pub async fn burst(kind: Kind) {
    let s = setup(kind, idp().access_ttl(2).rotate_refresh().start().await).await;
    let browser = Arc::new(s.browser(STORE));
    assert_eq!(browser.login(USER, PASSWORD).await.status, 302);
    let jwt = browser.cookie(JWT_COOKIE).expect("JWT cookie");
    sleep_past_expiry(&jwt).await;
    let before = calls(&s.idp);
    let cookies = browser.cookies();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let addr = s.ingress.addr;
        let cookies = cookies.clone();
        tasks.push(tokio::spawn(async move {
            // each with the cookies the browser held at expiry
            let b = Browser::new(addr, STORE);
            b.set_cookies(cookies);
            let first = b.get(&format!("/item/{i}")).await;
            let reply = follow(&b, first).await;
            (reply.status, b.cookie(JWT_COOKIE))
        }));
    }
    let mut jwts = std::collections::BTreeSet::new();
    for task in tasks {
        let (status, jwt) = task.await.expect("task");
        assert_eq!(status, 200, "every request of the burst is served");
        jwts.insert(jwt.expect("a JWT"));
    }
    let after = calls(&s.idp);
    assert_eq!(
        after.refreshes,
        before.refreshes + 1,
        "one IdP call for the burst"
    );
    assert_eq!(after.replays, 0);
    assert_eq!(
        jwts.len(),
        1,
        "every browser ends with the same new JWT: {jwts:?}"
    );
    assert!(!jwts.contains(&jwt));
    assert_eq!(s.store.requests().len(), 100);
}

/// A client's identity headers never reach an app, on a protected path
/// or a public one; a client's original-request headers change nothing; a
/// protected path is never served without a session; public paths are.
pub async fn spoofing(kind: Kind) {
    let s = setup(kind, idp().start().await).await;
    let forged: &[(&str, &str)] = &[
        ("accept", NAVIGATION_ACCEPT),
        ("x-auth-request-user", "admin"),
        ("X-Auth-Request-Email", "admin@evil.test"),
        ("x-auth-request-roles", "admin"),
        ("x-auth-request-access-token", "forged"),
        ("x-auth-request-groups", "wheel"),
        // what other ingresses would read: a public path, another host
        ("x-original-uri", "/static/x"),
        ("x-original-url", "http://store.localhost/static/x"),
        ("x-original-method", "GET"),
        ("x-forwarded-uri", "/static/x"),
        ("x-forwarded-host", FORUMS),
        ("x-forwarded-method", "GET"),
    ];
    let browser = s.browser(STORE);

    // without a session: refused, whatever the client claims
    let reply = browser.request(Method::GET, "/admin", forged, "").await;
    assert_login_redirect(&reply, "/admin", "forged headers, no session");
    let reply = browser.request(Method::POST, "/admin", forged, "x=1").await;
    assert!(
        matches!(reply.status.as_u16(), 302 | 401),
        "a POST without a session: {}",
        reply.status
    );
    assert_eq!(s.store.requests().len(), 0, "nothing reached the store");

    // a public path: served, without any identity header
    let reply = browser
        .request(Method::GET, "/static/app.css", forged, "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = s.store.last();
    assert_eq!(seen.uri, "/static/app.css");
    let leaked: Vec<_> = seen
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-auth-request-"))
        .collect();
    assert!(
        leaked.is_empty(),
        "client identity headers on a public path: {leaked:?}"
    );

    // logged in: the gateway's values, never the client's
    assert_eq!(browser.login(USER, PASSWORD).await.status, 302);
    let reply = browser.request(Method::GET, "/account", forged, "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = s.store.last();
    assert_eq!(seen.uri, "/account");
    assert_identity(&seen, "forged headers, logged in");
    for forged in ["x-auth-request-access-token", "x-auth-request-groups"] {
        assert!(
            seen.header(forged).is_none(),
            "{forged} from the client reached the app: {:?}",
            seen.headers
        );
    }
    assert_eq!(
        seen.headers.get_all("x-auth-request-user").iter().count(),
        1,
        "one user header: {:?}",
        seen.headers
    );
    // an underscore twin never arrives (nginx drops them; the others are
    // configured to)
    let reply = browser
        .request(
            Method::GET,
            "/account",
            &[("x_auth_request_user", "admin")],
            "",
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = s.store.last();
    assert!(
        seen.headers
            .keys()
            .all(|n| !n.as_str().starts_with("x_auth")),
        "{:?}",
        seen.headers
    );
    assert_identity(&seen, "underscore twin");
}

/// The auth endpoint answers only configured ingresses: the same ingress,
/// not configured, gets 403 (and its client nothing), and a client calling
/// the endpoint directly with original-request headers gets 403.
pub async fn not_an_ingress(kind: Kind) {
    let s = setup_with(kind, idp().start().await, "10.99.0.1").await;
    let browser = s.browser(STORE);
    let reply = browser.get("/cart").await;
    assert_eq!(
        reply.status,
        403,
        "through an unconfigured ingress: {}",
        reply.text()
    );
    let reply = browser.get("/static/app.css").await;
    assert_eq!(reply.status, 403, "not even a public path is judged");
    assert_eq!(s.store.requests().len(), 0);
    direct_calls_refused(s.gateway.addr).await;
}

async fn direct_calls_refused(gateway: SocketAddr) {
    let client = Client::new(gateway);
    for headers in [
        vec![
            ("x-original-uri", "/static/x"),
            ("x-original-method", "GET"),
        ],
        vec![
            ("x-forwarded-uri", "/static/x"),
            ("x-forwarded-method", "GET"),
        ],
    ] {
        let reply = client
            .send(Method::GET, STORE, "/.gateway-auth", &headers, "")
            .await;
        assert_eq!(reply.status, 403, "{headers:?}: {}", reply.text());
        assert!(
            reply.header("x-auth-request-user").is_none(),
            "{:?}",
            reply.headers
        );
    }
    let reply = client
        .send(Method::GET, STORE, "/.gateway-auth/static/x", &[], "")
        .await;
    assert_eq!(reply.status, 403);
}

// ---------------------------------------------------------------------------
// nginx (`auth_request`, examples/forward-auth/nginx.conf)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn nginx_the_article_workflow() {
    workflow(Kind::Nginx).await;
}

#[tokio::test]
async fn nginx_expiry_rotates_the_cookies_in_the_browser() {
    expiry(Kind::Nginx).await;
}

#[tokio::test]
async fn nginx_a_burst_at_expiry_makes_one_idp_call() {
    burst(Kind::Nginx).await;
}

#[tokio::test]
async fn nginx_client_headers_never_speak_for_the_gateway() {
    spoofing(Kind::Nginx).await;
}

#[tokio::test]
async fn nginx_only_configured_ingresses_are_answered() {
    not_an_ingress(Kind::Nginx).await;
}

/// nginx with `refresh = "redirect"`: the subrequest never refreshes; the
/// 401 sends the page load to the refresh page, and a script is asked to
/// reload without anything refreshed or cleared.
#[tokio::test]
async fn nginx_redirect_mode_refreshes_on_the_refresh_page() {
    let idp = idp().access_ttl(2).rotate_refresh().start().await;
    let s = setup_refreshing(Kind::Nginx, idp, "127.0.0.1", "redirect").await;
    let browser = s.browser(STORE);
    assert_eq!(browser.login(USER, PASSWORD).await.status, 302);
    let jwt = browser.cookie(JWT_COOKIE).expect("JWT cookie");
    sleep_past_expiry(&jwt).await;
    let before = calls(&s.idp);
    let reply = browser.get_json("/api/cart").await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(calls(&s.idp), before, "the subrequest did not refresh");
    assert_eq!(
        browser.cookie(JWT_COOKIE),
        Some(jwt.clone()),
        "nothing cleared"
    );
    let reply = browser.get("/cart?item=1").await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    assert_eq!(
        reply.header("location"),
        Some("/.gateway/refresh?return_to=%2Fcart%3Fitem%3D1")
    );
    assert_eq!(calls(&s.idp), before, "still no refresh");
    // and the whole round trip: refreshed on the refresh page, twice
    expiry_on(s).await;
}

// ---------------------------------------------------------------------------
// The refresh page itself (on the proxy listener, no ingress needed)
// ---------------------------------------------------------------------------

/// `{gateway_path}/refresh`: renews an expired session on a top-level
/// answer and sends the browser back; a valid one goes straight back; no
/// session goes to the login page; a hostile return-to goes to the landing
/// page; an IdP outage is a 503 that logs nobody out.
#[tokio::test]
async fn the_refresh_page_renews_and_sends_the_browser_back() {
    let idp = idp().access_ttl(2).rotate_refresh().start().await;
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(AppSpec::new("store", STORE, store.addr).login("store", "store-secret"))
        .start_ready()
        .await;
    let browser = Browser::new(gw.addr, STORE);

    let reply = browser.get("/.gateway/refresh?return_to=%2Fcart").await;
    assert_login_redirect(&reply, "/cart", "no session");

    assert_eq!(browser.login(USER, PASSWORD).await.status, 302);
    let jwt = browser.cookie(JWT_COOKIE).expect("JWT cookie");
    let reply = browser.get("/.gateway/refresh?return_to=%2Fcart").await;
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some("/cart"));
    assert!(
        set_cookie(&reply, JWT_COOKIE).is_none(),
        "a valid session is kept as is"
    );

    sleep_past_expiry(&jwt).await;
    idp.set_down(true);
    let reply = browser.get("/.gateway/refresh?return_to=%2Fcart").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(
        browser.cookie(JWT_COOKIE),
        Some(jwt.clone()),
        "nobody logged out"
    );
    idp.set_down(false);

    let before = calls(&idp);
    let reply = browser
        .get("/.gateway/refresh?return_to=%2F%2Fevil.test%2Fx")
        .await;
    assert_eq!(reply.status, 302);
    assert_eq!(
        reply.header("location"),
        Some("/"),
        "a hostile return-to: the landing page"
    );
    assert_eq!(calls(&idp).refreshes, before.refreshes + 1);
    let new_jwt = set_cookie(&reply, JWT_COOKIE).expect("a new JWT");
    assert_ne!(new_jwt.value, jwt);
    assert!(
        set_cookie(&reply, REFRESH_COOKIE).is_some(),
        "the rotated refresh cookie"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200);
    assert_eq!(store.requests().len(), 1);
    assert_eq!(calls(&idp).replays, 0);
    let reply = browser
        .request(Method::POST, "/.gateway/refresh", &[], "")
        .await;
    assert_eq!(reply.status, 405);
}

// ---------------------------------------------------------------------------
// ingress = "ingress-nginx", behind nginx set up as ingress-nginx sets itself
// up (no Kubernetes here: the locations its template writes for the
// annotations of examples/forward-auth/kubernetes-ingress-nginx.yaml)
// ---------------------------------------------------------------------------

/// Login through the refresh page (where every 401 goes), the identity and
/// the cookies without the gateway's upstream, expiry with one-time-use
/// refresh tokens refreshed on the refresh page, and the host taken from
/// the auth URL: an absolute request line for the store with `Host:` of the
/// forums (which `X-Original-URL` then names) is judged as the store's.
#[tokio::test]
async fn ingress_nginx_the_workflow_and_the_host_it_routed() {
    let idp = idp().access_ttl(2).rotate_refresh().start().await;
    let store = RecordingUpstream::start("store").await;
    let forums = RecordingUpstream::start("forums").await;
    let gateway = TestGateway::new()
        .idp(&idp)
        .section(
            "[forward_auth]\ningresses = [\"127.0.0.1\"]\ningress = \"ingress-nginx\"\n\
             refresh = \"redirect\"\n",
        )
        .app(AppSpec::new("store", STORE, store.addr).login("store", "store-secret"))
        .app(AppSpec::new("forums", FORUMS, forums.addr).login("forums", "forums-secret"))
        .start_ready()
        .await;
    let nginx = ingress::ingress_nginx_like(Backends {
        gateway: gateway.addr,
        store: store.addr,
        forums: forums.addr,
    })
    .await;
    let browser = Browser::new(nginx.addr, STORE);
    // every 401 goes to auth-signin: the refresh page, then the login page
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 302, "{}", reply.text());
    let signin = reply.header("location").unwrap_or_default().to_owned();
    let signin = signin
        .strip_prefix(&format!("http://{STORE}"))
        .unwrap_or_else(|| panic!("auth-signin on the app's host: {signin}"));
    assert_eq!(signin, "/.gateway/refresh?return_to=/cart");
    let reply = browser.get(signin).await;
    assert_login_redirect(&reply, "/cart", "no session on the refresh page");
    assert_eq!(store.requests().len(), 0);

    let reply = browser
        .login_returning_to(USER, PASSWORD, Some("/cart"))
        .await;
    assert_eq!(reply.header("location"), Some("/cart"), "{}", reply.text());
    browser.set_cookie("theme", "dark");
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = store.last();
    assert_identity(&seen, "through ingress-nginx");
    assert_eq!(
        seen.header("cookie"),
        Some("theme=dark"),
        "{:?}",
        seen.headers
    );

    // expiry: the page load goes to the refresh page, which refreshes
    for round in 1..=2 {
        let jwt = browser.cookie(JWT_COOKIE).expect("JWT cookie");
        sleep_past_expiry(&jwt).await;
        let before = calls(&idp);
        let reply = browser.get("/orders").await;
        assert_eq!(reply.status, 302, "round {round}: {}", reply.text());
        let signin = reply.header("location").unwrap_or_default().to_owned();
        let signin = signin
            .strip_prefix(&format!("http://{STORE}"))
            .expect("same host");
        let reply = browser.get(signin).await;
        assert_eq!(reply.header("location"), Some("/orders"), "round {round}");
        assert!(
            set_cookie(&reply, JWT_COOKIE).is_some(),
            "round {round}: a new JWT"
        );
        let reply = browser.get("/orders").await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
        let after = calls(&idp);
        assert_eq!(after.refreshes, before.refreshes + 1, "round {round}");
        assert_eq!(after.replays, 0, "round {round}");
    }

    // a forums session, presented to the store's server block with the
    // forums' Host header: judged as the store's, refused
    let forum_user = Browser::new(gateway.addr, FORUMS);
    assert_eq!(forum_user.login(USER, PASSWORD).await.status, 302);
    let cookie = forum_user.cookie_header().expect("forums cookies");
    let served = store.requests().len();
    let request = format!(
        "GET http://{STORE}/secret HTTP/1.1\r\nHost: {FORUMS}\r\nCookie: {cookie}\r\n\
         Accept: text/html\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_request(nginx.addr, &request).await;
    assert!(
        answer.starts_with("HTTP/1.1 302"),
        "an absolute request line with another Host: {answer}"
    );
    assert_eq!(store.requests().len(), served, "nothing reached the store");
}

/// Sends `request` as bytes and reads the answer until the peer closes
/// (bounded).
async fn raw_request(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("answer in time")
    .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}
