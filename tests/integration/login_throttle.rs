//! Login throttling from the attacker's side: the guesses a username gets
//! are the same however many apps share its IdP; a form with an empty field
//! costs the named user nothing; an IPv6 client is one /64; behind trusted
//! proxies the client is the first untrusted hop of `X-Forwarded-For`,
//! counted from the right, and a hop that is not an address stops the walk
//! at the proxy itself.

use crate::support::auth::{
    calls, forums_app, idp, store_app, store_browser, store_upstream, FORUMS_HOST, OTHER_PASSWORD,
    OTHER_USER, PASSWORD, USER,
};
use crate::support::browser::{Browser, LOGIN_PATH};
use crate::support::client::Reply;
use crate::support::TestGateway;

/// Opens the login page and submits `username` / `password`, with `headers`
/// on the submission.
async fn attempt(
    browser: &Browser,
    username: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let (_, csrf) = browser.login_page(None).await;
    browser
        .post_form_with(
            LOGIN_PATH,
            &[
                ("username", username),
                ("password", password),
                ("csrf", &csrf),
                ("return_to", ""),
            ],
            headers,
        )
        .await
}

#[tokio::test]
async fn apps_sharing_an_idp_share_each_usernames_attempts() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let forums = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .login_config("per_user_burst = 2\nper_user_per_minute = 1")
        .app(store_app(store.addr))
        .app(forums_app(forums.addr))
        .start_ready()
        .await;
    let on_store = store_browser(&gw);
    let on_forums = Browser::new(gw.addr, FORUMS_HOST);

    let reply = attempt(&on_store, USER, "guess-1", &[]).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    // The same account, spelled otherwise, on the other app.
    let reply = attempt(&on_forums, "  RICHARD ", "guess-2", &[]).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    let reply = attempt(&on_forums, USER, "guess-3", &[]).await;
    assert_eq!(
        reply.status,
        429,
        "a second app gave more guesses: {}",
        reply.text()
    );
    let reply = attempt(&on_store, USER, "guess-4", &[]).await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(calls(&idp).password_grants, 2);

    // Another user is not held up.
    let reply = attempt(&on_forums, OTHER_USER, OTHER_PASSWORD, &[]).await;
    assert_eq!(reply.status, 302, "{}", reply.text());
}

#[tokio::test]
async fn empty_fields_are_refused_without_spending_the_users_attempts() {
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .login_config("per_user_burst = 2\nper_user_per_minute = 1")
        .app(store_app(store.addr))
        .start_ready()
        .await;
    let attacker = store_browser(&gw);
    for (username, password) in [
        (USER, ""),
        (USER, ""),
        (USER, ""),
        (USER, ""),
        (USER, ""),
        ("", "x"),
        ("  ", "x"),
    ] {
        let reply = attempt(&attacker, username, password, &[]).await;
        assert_eq!(
            reply.status,
            401,
            "{username:?}/{password:?}: {}",
            reply.text()
        );
        assert!(
            reply
                .text()
                .contains("The username or password is incorrect."),
            "the generic message: {}",
            reply.text()
        );
    }
    assert_eq!(
        calls(&idp).password_grants,
        0,
        "an empty field reached the IdP"
    );

    // The victim still has every attempt.
    let victim = store_browser(&gw);
    let reply = attempt(&victim, USER, PASSWORD, &[]).await;
    assert_eq!(
        reply.status,
        302,
        "locked out by empty forms: {}",
        reply.text()
    );
}

/// A gateway trusting `trusted` as proxies, allowing two attempts per client
/// address (and plenty per username).
async fn behind_proxies(
    idp: &crate::support::idp::TestIdp,
    trusted: &str,
) -> (TestGateway, crate::support::RecordingUpstream) {
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(idp)
        .server(&format!("trusted_proxies = {trusted}"))
        .login_config(
            "per_ip_burst = 2\nper_ip_per_minute = 1\nper_user_burst = 100\nper_user_per_minute = 100",
        )
        .app(store_app(store.addr))
        .start_ready()
        .await;
    (gw, store)
}

/// Three attempts, each with its own `X-Forwarded-For`; the statuses.
async fn three_attempts(gw: &TestGateway, forwarded_for: [&str; 3]) -> Vec<u16> {
    let browser = store_browser(gw);
    let mut statuses = Vec::new();
    for (i, xff) in forwarded_for.into_iter().enumerate() {
        let reply = attempt(
            &browser,
            &format!("user-{i}"),
            "guess",
            &[("x-forwarded-for", xff)],
        )
        .await;
        statuses.push(reply.status.as_u16());
    }
    statuses
}

#[tokio::test]
async fn an_ipv6_client_is_throttled_by_its_64() {
    let idp = idp().start().await;
    let (gw, _store) = behind_proxies(&idp, "[\"127.0.0.1\"]").await;
    // One host rotating through the addresses of its /64.
    let statuses = three_attempts(
        &gw,
        [
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:ffff:ffff:ffff:fffe",
        ],
    )
    .await;
    assert_eq!(statuses, [401, 401, 429], "one /64, one bucket");
    // Another /64 has its own.
    let statuses = three_attempts(
        &gw,
        ["2001:db8:1:3::1", "2001:db8:1:4::1", "2001:db8:1:5::1"],
    )
    .await;
    assert_eq!(statuses, [401, 401, 401]);
}

#[tokio::test]
async fn the_client_is_the_first_untrusted_hop_from_the_right() {
    let idp = idp().start().await;
    // The peer (127.0.0.1) and an inner proxy (10.0.0.0/8) are trusted.
    let (gw, _store) = behind_proxies(&idp, "[\"127.0.0.1\", \"10.0.0.0/8\"]").await;
    // Three clients behind the same two proxies: three buckets, not the
    // inner proxy's one.
    let statuses = three_attempts(
        &gw,
        [
            "203.0.113.1, 10.0.0.7",
            "203.0.113.2, 10.0.0.7",
            "203.0.113.3, 10.0.0.7",
        ],
    )
    .await;
    assert_eq!(
        statuses,
        [401, 401, 401],
        "clients behind the proxies share a bucket"
    );
    // One client lying about where it comes from: what it writes left of
    // its own address is not read.
    let statuses = three_attempts(
        &gw,
        [
            "198.51.100.1, 203.0.113.9, 10.0.0.7",
            "198.51.100.2, 203.0.113.9, 10.0.0.7",
            "198.51.100.3, 203.0.113.9, 10.0.0.7",
        ],
    )
    .await;
    assert_eq!(statuses, [401, 401, 429], "a spoofed hop bought attempts");
}

#[tokio::test]
async fn an_unparsable_hop_throttles_the_proxy_itself() {
    let idp = idp().start().await;
    let (gw, _store) = behind_proxies(&idp, "[\"127.0.0.1\"]").await;
    // The hop the trusted proxy added is not an address: whatever stands
    // left of it was written by the client.
    let statuses = three_attempts(
        &gw,
        [
            "198.51.100.1, unknown",
            "198.51.100.2, unknown",
            "198.51.100.3, unknown",
        ],
    )
    .await;
    assert_eq!(statuses, [401, 401, 429], "a client chose its own bucket");
}
