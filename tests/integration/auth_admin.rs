//! The admin listener with login: `/readyz` waits for the IdP's keys, and
//! `/metrics` counts logins, refreshes (and requests that waited on one),
//! JWKS fetches, the verified-token cache and throttled logins.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::support::auth::{
    calls, idp, logged_in, sleep_past_expiry, store_browser, store_upstream, STORE_HOST,
};
use crate::support::{AppSpec, Client, TestGateway, POLL_ATTEMPTS, POLL_INTERVAL};

#[tokio::test]
async fn readyz_waits_for_the_idp_keys() {
    /// How long the gateway is watched answering "not ready" with the IdP down.
    const NOT_READY_FOR: Duration = Duration::from_millis(300);
    let idp = idp().start().await;
    idp.set_down(true);
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(crate::support::auth::store_app(store.addr))
        .start()
        .await;
    let admin = Client::new(gw.admin);
    let watched = tokio::time::Instant::now();
    while watched.elapsed() < NOT_READY_FOR {
        let reply = admin.get("admin", "/readyz").await;
        assert_eq!(reply.status, 503, "ready without keys: {}", reply.text());
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    assert_eq!(admin.get("admin", "/healthz").await.status, 200);

    idp.set_down(false);
    let mut ready = false;
    for _ in 0..POLL_ATTEMPTS {
        if admin.get("admin", "/readyz").await.status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    assert!(
        ready,
        "not ready within the polling bound after the IdP came back"
    );
    assert!(calls(&idp).jwks_fetches >= 1);
}

/// One Prometheus sample: labels and value.
type Sample = (HashMap<String, String>, f64);

/// Every sample of metric `name` in a Prometheus text exposition.
fn samples(text: &str, name: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let labels = labels
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// The total of `name` for app `app` (all samples if the metric has no app label).
fn total(text: &str, name: &str, app: &str) -> f64 {
    let all = samples(text, name);
    let labelled = all.iter().any(|(l, _)| l.contains_key("app"));
    all.iter()
        .filter(|(l, _)| !labelled || l.get("app").map(String::as_str) == Some(app))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_count_the_login_workflow() {
    /// An app name of its own: the metrics registry is shared by every
    /// gateway in this test process.
    const APP: &str = "metered";
    /// Requests sharing one expired JWT while the refresh is slow.
    const WAITERS: usize = 20;
    /// The IdP's latency during the refresh, so the others wait on it.
    const IDP_LATENCY: Duration = Duration::from_millis(300);
    let idp = idp().access_ttl(1).start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .login_config("per_user_burst = 2\nper_user_per_minute = 1")
        .app(AppSpec::new(APP, STORE_HOST, store.addr).login("store", "store-secret"))
        .start_ready()
        .await;
    let browser = store_browser(&gw);

    // A failed login and a throttled one, first: failures take a minimum
    // time, which would otherwise eat into the one-second token below (a
    // refresh before the burst would make every burst request a late one).
    assert_eq!(browser.login("richard", "wrong").await.status, 401);
    for _ in 0..2 {
        assert_eq!(browser.login("eve", "guess").await.status, 401);
    }
    assert_eq!(browser.login("eve", "guess").await.status, 429);
    // A successful login, then the verified-token cache.
    let jwt = logged_in(&browser).await;
    for _ in 0..3 {
        assert_eq!(browser.get("/cart").await.status, 200);
    }
    // A refresh that others wait on.
    sleep_past_expiry(&jwt).await;
    idp.set_delay(IDP_LATENCY);
    let cookie = browser.cookie_header().expect("cookies");
    let client = Arc::new(Client::new(gw.addr));
    let tasks: Vec<_> = (0..WAITERS)
        .map(|_| {
            let client = client.clone();
            let cookie = cookie.clone();
            tokio::spawn(async move {
                client
                    .send(
                        Method::GET,
                        STORE_HOST,
                        "/api/cart",
                        &[("accept", "application/json"), ("cookie", &cookie)],
                        bytes::Bytes::new(),
                    )
                    .await
                    .status
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task"), 200);
    }
    idp.set_delay(Duration::ZERO);
    assert_eq!(calls(&idp).refreshes, 1);

    let text = Client::new(gw.admin).get("admin", "/metrics").await.text();
    let logins = samples(&text, "gateway_logins_total");
    let outcomes: BTreeSet<&str> = logins
        .iter()
        .filter(|(l, _)| l.get("app").map(String::as_str) == Some(APP))
        .filter_map(|(l, _)| l.get("outcome").map(String::as_str))
        .collect();
    assert!(
        total(&text, "gateway_logins_total", APP) >= 2.0 && outcomes.len() >= 2,
        "logins by outcome: {logins:?}"
    );
    for (name, at_least) in [
        ("gateway_refreshes_total", 1.0),
        ("gateway_refresh_waiters_total", 1.0),
        ("gateway_jwks_fetches_total", 1.0),
        ("gateway_token_cache_total", 3.0),
        ("gateway_login_throttled_total", 1.0),
    ] {
        let value = total(&text, name, APP);
        assert!(
            value >= at_least,
            "{name} = {value}, expected at least {at_least}: {:?}",
            samples(&text, name)
        );
    }
    // Waiters are the requests that did not make the call themselves.
    let waiters = total(&text, "gateway_refresh_waiters_total", APP);
    assert!(
        waiters < WAITERS as f64,
        "{waiters} waiters of {WAITERS} requests: {:?} {:?}",
        samples(&text, "gateway_refresh_waiters_total"),
        samples(&text, "gateway_refreshes_total")
    );
}
