//! The shared store with a real Redis: Debian's `redis-server`, one per test
//! on a free loopback port with persistence off, and three gateway replicas
//! over it (the real binary, one process each: per-replica state and
//! metrics, as deployed), with the requests of each scenario spread
//! round-robin over them, as a load balancer without stickiness does.
//!
//! What the replicas must agree on: one refresh per refresh token however
//! a burst at expiry lands on them (one-time-use refresh tokens at the test
//! IdP and at Glewlwyd), the login throttle, and the revocation list (a
//! logout on one replica ends the session on all). When Redis hangs
//! (`SIGSTOP`), dies and comes back empty, or is flushed, nobody is logged
//! out because of it: an answer may be 503 while the replicas cannot
//! coordinate, a session is never cleared (not even by a late request
//! carrying the cookies from before a refresh the replicas could not
//! share), and the replicas share state again by themselves once Redis
//! answers (`gateway_store_up` 1 and, the proof, one IdP refresh for the
//! next burst); an IdP's refusal still ends a session once the replicas are
//! sure to see each other's refreshes again. A key prefix keeps two
//! deployments on one Redis apart, and nothing in Redis names a token, a
//! user or an address. TLS (`rediss://` with a private CA) and a password
//! work; a wrong password leaves the gateway serving on its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use crate::support::auth::{
    assert_identity, assert_login_redirect, assert_login_required_json, assert_session_cleared,
    calls, claims, idp, logged_in, now, sleep_past_expiry, store_app, store_upstream, Calls,
    JWT_COOKIE, OTHER_USER, PASSWORD, REFRESH_COOKIE, STORE_HOST, SUB, USER,
};
use crate::support::browser::{set_cookie, set_cookies, Browser};
use crate::support::client::Reply;
use crate::support::gateway::TestGatewayBuilder;
use crate::support::glewlwyd::{self, Glewlwyd, ALICE};
use crate::support::idp::TestIdp;
use crate::support::metrics::{sample, scrape};
use crate::support::process::{http_get, GatewayProcess};
use crate::support::redis::RedisServer;
use crate::support::{Client, RecordingUpstream, TestGateway, POLL_INTERVAL};

/// Replicas of one deployment.
const REPLICAS: usize = 3;
/// The default key prefix.
const PREFIX: &str = "gateway:";
/// The IdP answers refreshes this slowly in a burst, so the burst piles up
/// on the one refresh.
const IDP_LATENCY: Duration = Duration::from_millis(300);
/// Longest wait for the replicas to report Redis reachable (or not): the
/// probe looks every second while Redis answers, every 200 ms while not.
const STORE_BOUND: Duration = Duration::from_secs(10);
/// A logout reaches every replica within this.
const REVOCATION_BOUND: Duration = Duration::from_secs(1);
/// `store.timeout` of the replicas. The default (50 ms) is a budget for a
/// production Redis next to the gateway; in these tests the replicas,
/// Redis, the IdP and a thousand clients share the CPUs with other tests,
/// and an answer late by a scheduling hiccup would look like an outage
/// (each replica on its own, replays at the IdP) in scenarios about Redis
/// answering. A hung Redis is still found out, 500 ms on.
const STORE_TIMEOUT: &str = "500ms";

/// The `[store]` section of a replica sharing state through `redis` under
/// `prefix`.
fn store_section(redis: &RedisServer, prefix: &str) -> String {
    format!(
        "{}timeout = {STORE_TIMEOUT:?}\n",
        redis.store_section(prefix)
    )
}

/// One deployment: `REPLICAS` gateway processes over `redis`, in front of
/// `upstream`, logging in at `idp`.
struct Cluster {
    redis: RedisServer,
    idp: TestIdp,
    upstream: RecordingUpstream,
    replicas: Vec<GatewayProcess>,
}

/// The configuration of one replica of the store app at `idp`, sharing
/// state through `redis` under `prefix`.
fn replica(
    idp: &TestIdp,
    upstream: SocketAddr,
    redis: &RedisServer,
    prefix: &str,
) -> TestGatewayBuilder {
    TestGateway::new()
        .idp(idp)
        .app(store_app(upstream))
        .section(&store_section(redis, prefix))
}

/// Starts `n` processes of `builder()`, ready (the IdP's keys loaded).
async fn spawn_all(n: usize, builder: impl Fn() -> TestGatewayBuilder) -> Vec<GatewayProcess> {
    let mut replicas = Vec::with_capacity(n);
    for _ in 0..n {
        replicas.push(builder().spawn().await);
    }
    replicas
}

impl Cluster {
    /// A Redis, the test IdP (`access_ttl` seconds, one-time-use refresh
    /// tokens), an upstream, and three replicas sharing state through Redis.
    async fn start(access_ttl: u64) -> Cluster {
        Cluster::start_with(access_ttl, |b| b).await
    }

    /// [`Cluster::start`] with `tweak` applied to every replica's config.
    async fn start_with(
        access_ttl: u64,
        tweak: impl Fn(TestGatewayBuilder) -> TestGatewayBuilder,
    ) -> Cluster {
        let redis = RedisServer::start().await;
        let idp = idp().access_ttl(access_ttl).rotate_refresh().start().await;
        let upstream = store_upstream().await;
        let replicas = spawn_all(REPLICAS, || {
            tweak(replica(&idp, upstream.addr, &redis, PREFIX))
        })
        .await;
        let cluster = Cluster {
            redis,
            idp,
            upstream,
            replicas,
        };
        cluster.wait_store(1.0, "at start").await;
        cluster
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.replicas.iter().map(|r| r.addr).collect()
    }

    /// A browser whose requests go to each replica in turn.
    fn browser(&self) -> Browser {
        Browser::round_robin(&self.addrs(), STORE_HOST)
    }

    /// A browser holding `from`'s cookies whose requests all go to replica
    /// `i`.
    fn on(&self, i: usize, from: &Browser) -> Browser {
        let browser = Browser::new(self.replicas[i].addr, STORE_HOST);
        browser.set_cookies(from.cookies());
        browser
    }

    /// Waits (bounded) until every replica reports `gateway_store_up` as
    /// `up` (1: Redis reachable, state shared; 0: each on its own).
    async fn wait_store(&self, up: f64, context: &str) {
        for replica in &self.replicas {
            wait_store_up(replica, up, &format!("{context}\n{}", self.redis.log())).await;
        }
    }

    /// Every replica's log and Redis's, for failure messages.
    fn logs(&self) -> String {
        let mut all = String::new();
        for (i, replica) in self.replicas.iter().enumerate() {
            all.push_str(&format!("--- replica {i}\n{}", digest(replica)));
        }
        all.push_str(&format!("--- redis\n{}", tail(&self.redis.log(), 20)));
        all
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    out.push('\n');
    out
}

/// A replica's log for a failure message: the last lines other than the
/// per-request failures, which are counted instead (a burst writes hundreds).
fn digest(replica: &GatewayProcess) -> String {
    let logs = replica.logs();
    let (failed, other): (Vec<&str>, Vec<&str>) = logs
        .lines()
        .partition(|line| line.contains("\"message\":\"request failed\""));
    format!(
        "{}({} requests failed)\n",
        tail(&other.join("\n"), 40),
        failed.len()
    )
}

/// `gateway_store_up` of `replica` now.
async fn store_up(replica: &GatewayProcess) -> Option<f64> {
    sample(&scrape(replica.admin).await, "gateway_store_up", &[])
}

/// Waits (bounded by [`STORE_BOUND`]) until `replica` reports
/// `gateway_store_up` as `up`.
async fn wait_store_up(replica: &GatewayProcess, up: f64, context: &str) {
    let deadline = Instant::now() + STORE_BOUND;
    loop {
        let now = store_up(replica).await;
        if now == Some(up) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gateway_store_up is {now:?}, not {up}, {STORE_BOUND:?} on: {context}\n{}",
            digest(replica)
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The answers of a burst, in the order they arrived: which replica, what
/// it answered.
type Answers = Vec<(usize, Reply)>;

/// `n` concurrent API requests carrying `cookie`, spread round-robin over
/// `addrs`.
async fn burst(addrs: &[SocketAddr], cookie: &str, n: usize) -> Answers {
    let clients: Arc<Vec<Client>> = Arc::new(addrs.iter().map(|a| Client::new(*a)).collect());
    let answers = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (clients, answers, cookie) = (clients.clone(), answers.clone(), cookie.to_owned());
            tokio::spawn(async move {
                let replica = i % clients.len();
                let reply = clients[replica]
                    .send(
                        Method::GET,
                        STORE_HOST,
                        &format!("/api/items/{i}"),
                        &[("accept", "application/json"), ("cookie", &cookie)],
                        Bytes::new(),
                    )
                    .await;
                answers.lock().expect("lock").push((replica, reply));
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("request task");
    }
    let answers = std::mem::take(&mut *answers.lock().expect("lock"));
    answers
}

/// Answers by status.
fn statuses(answers: &Answers) -> BTreeMap<u16, usize> {
    let mut by = BTreeMap::new();
    for (_, reply) in answers {
        *by.entry(reply.status.as_u16()).or_insert(0) += 1;
    }
    by
}

/// Asserts nobody was logged out: every answer is 200, or 503 (the
/// replicas could not coordinate), never a login redirect or a 401, and no
/// answer clears a session cookie.
fn assert_nobody_logged_out(answers: &Answers, context: &str) {
    for (replica, reply) in answers {
        assert!(
            matches!(reply.status.as_u16(), 200 | 503),
            "{context}: replica {replica} answered {} {} (statuses {:?})",
            reply.status,
            reply.text(),
            statuses(answers)
        );
        for cookie in set_cookies(reply) {
            if cookie.name == JWT_COOKIE || cookie.name == REFRESH_COOKIE {
                assert!(
                    !cookie.clears(),
                    "{context}: replica {replica} cleared {}: {}",
                    cookie.name,
                    cookie.raw
                );
            }
        }
    }
}

/// Takes the cookies of `answers` into `browser`'s jar in the order the
/// answers arrived (the latest `Set-Cookie` wins, as in a browser).
fn absorb(browser: &Browser, answers: &Answers) {
    for (_, reply) in answers {
        browser.absorb(reply);
    }
}

/// Asserts `browser`'s session is served by every replica: a navigation
/// on each is the upstream's 200 as [`USER`], nothing cleared.
async fn assert_served_everywhere(cluster: &Cluster, browser: &Browser, context: &str) {
    for i in 0..cluster.replicas.len() {
        let on = cluster.on(i, browser);
        let reply = on.get("/account").await;
        assert_eq!(
            reply.status,
            200,
            "{context}: replica {i}: {}\n{}",
            reply.text(),
            cluster.logs()
        );
        assert_identity(&cluster.upstream.last(), &format!("{context}: replica {i}"));
        browser.absorb(&reply);
    }
}

/// The replicas coordinate again: a burst at the session's next expiry,
/// spread over every replica, makes exactly one IdP refresh and no replay,
/// and every answer is 200.
async fn assert_shared_again(cluster: &Cluster, browser: &Browser, context: &str) {
    let jwt = browser.cookie(JWT_COOKIE).expect("a JWT cookie");
    sleep_past_expiry(&jwt).await;
    let before = calls(&cluster.idp);
    cluster.idp.set_delay(IDP_LATENCY);
    let cookie = browser.cookie_header().expect("cookies");
    let answers = burst(&cluster.addrs(), &cookie, 60).await;
    cluster.idp.set_delay(Duration::ZERO);
    let now = calls(&cluster.idp);
    assert_eq!(
        (
            statuses(&answers),
            now.refreshes - before.refreshes,
            now.replays - before.replays
        ),
        (BTreeMap::from([(200, 60)]), 1, 0),
        "{context}: (statuses, refreshes, replays) of a burst at expiry once Redis is back\n{}",
        cluster.logs()
    );
    absorb(browser, &answers);
}

/// What replica `addr` makes of `jwt` presented alone (a stolen copy,
/// without its refresh cookie) as an API call: `true` if refused (401
/// `login_required`), `false` if served.
async fn refused(addr: SocketAddr, jwt: &str, context: &str) -> bool {
    let exp = claims(jwt)["exp"].as_u64().expect("exp");
    assert!(
        exp > now() + 1,
        "{context}: the JWT is about to expire: a refusal would prove nothing"
    );
    let thief = Browser::new(addr, STORE_HOST);
    thief.set_cookie(JWT_COOKIE, jwt);
    let reply = thief.get_json("/api/account").await;
    match reply.status.as_u16() {
        200 => false,
        _ => {
            assert_login_required_json(&reply, context);
            true
        }
    }
}

/// Waits (bounded by `bound`) until `addr` refuses `jwt`; returns how long
/// it took.
async fn wait_refused(addr: SocketAddr, jwt: &str, bound: Duration, context: &str) -> Duration {
    let start = Instant::now();
    loop {
        if refused(addr, jwt, context).await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "{context}: still served {bound:?} on"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A session of [`USER`] logged in through `cluster` (its requests spread
/// over the replicas).
async fn session(cluster: &Cluster) -> Browser {
    let browser = cluster.browser();
    logged_in(&browser).await;
    browser
}

/// Sleeps past the latest `exp` among the sessions' JWTs: then every one is
/// expired.
async fn sleep_past_every_expiry(sessions: &[&Browser]) {
    let latest = sessions
        .iter()
        .map(|s| s.cookie(JWT_COOKIE).expect("a JWT cookie"))
        .max_by_key(|jwt| claims(jwt)["exp"].as_u64())
        .expect("a session");
    sleep_past_expiry(&latest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_with_one_expired_jwt_over_three_replicas_make_one_refresh() {
    const BURST: usize = 1000;
    let cluster = Cluster::start(2).await;
    let browser = session(&cluster).await;
    let old_jwt = browser.cookie(JWT_COOKIE).expect("JWT");
    let cookie = browser.cookie_header().expect("cookies");
    // The refreshed JWT lives long enough for every check below.
    cluster.idp.set_access_ttl(60);
    sleep_past_expiry(&old_jwt).await;

    cluster.idp.set_delay(IDP_LATENCY);
    let answers = burst(&cluster.addrs(), &cookie, BURST).await;
    cluster.idp.set_delay(Duration::ZERO);
    assert_eq!(
        statuses(&answers),
        BTreeMap::from([(200, BURST)]),
        "answers by status\n{}",
        cluster.logs()
    );
    let now = calls(&cluster.idp);
    assert_eq!(
        now.refreshes,
        1,
        "one IdP call for the whole burst\n{}",
        cluster.logs()
    );
    assert_eq!(now.replays, 0, "a spent refresh token was replayed");
    let seen = cluster.upstream.requests();
    assert_eq!(seen.len(), BURST);
    for request in &seen {
        assert_identity(request, "burst");
    }
    // Every replica answered with the one new JWT.
    let mut new_jwts: Vec<String> = answers
        .iter()
        .map(|(replica, reply)| {
            set_cookie(reply, JWT_COOKIE)
                .filter(|c| !c.clears())
                .unwrap_or_else(|| panic!("replica {replica}: no new JWT: {:?}", reply.headers))
                .value
        })
        .collect();
    new_jwts.sort();
    new_jwts.dedup();
    assert_eq!(new_jwts.len(), 1, "more than one new JWT");
    assert_ne!(new_jwts[0], old_jwt);
    for replica in 0..REPLICAS {
        assert!(
            answers.iter().any(|(r, _)| *r == replica),
            "replica {replica} got no request"
        );
    }

    // The cookies the browser keeps work on every replica, with no IdP call.
    absorb(&browser, &answers);
    assert_eq!(
        browser.cookie(JWT_COOKIE).as_deref(),
        Some(new_jwts[0].as_str())
    );
    assert_served_everywhere(&cluster, &browser, "after the burst").await;
    assert_eq!(calls(&cluster.idp), now, "the new cookies needed the IdP");

    // Late requests (another tab) with the old cookies, within
    // refresh_grace, on every replica: the burst's refresh, no other.
    assert_late_requests_served(&cluster, &cookie, &new_jwts[0], "late requests").await;
    assert_eq!(calls(&cluster.idp), now, "a late request refreshed again");
}

/// Sends the cookies of `old` (sent before a refresh) once more to every
/// replica, as requests of another tab arriving late: each is served, with
/// the refresh's JWT `new`, and clears nothing.
async fn assert_late_requests_served(cluster: &Cluster, old: &str, new: &str, context: &str) {
    for (i, addr) in cluster.addrs().into_iter().enumerate() {
        let reply = Client::new(addr)
            .send(
                Method::GET,
                STORE_HOST,
                "/late",
                &[("accept", "application/json"), ("cookie", old)],
                Bytes::new(),
            )
            .await;
        let context = format!("{context}: replica {i}");
        assert_eq!(
            reply.status,
            200,
            "{context}: {}\n{}",
            reply.text(),
            cluster.logs()
        );
        assert_identity(&cluster.upstream.last(), &context);
        let jwt = set_cookie(&reply, JWT_COOKIE).map(|c| c.value);
        assert_eq!(jwt.as_deref(), Some(new), "{context}: {:?}", reply.headers);
    }
}

/// Sends the cookies of `old` (sent before a refresh made while Redis was
/// out of reach) once more to every replica, as requests of another tab
/// arriving late: none logs the session out (a 503 is allowed: the
/// replica that refreshed could not share its result).
async fn assert_late_requests_keep_the_session(cluster: &Cluster, old: &str, context: &str) {
    let mut answers = Vec::new();
    for (i, addr) in cluster.addrs().into_iter().enumerate() {
        let reply = Client::new(addr)
            .send(
                Method::GET,
                STORE_HOST,
                "/late",
                &[("accept", "application/json"), ("cookie", old)],
                Bytes::new(),
            )
            .await;
        answers.push((i, reply));
    }
    assert_nobody_logged_out(&answers, context);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glewlwyd_session_with_one_time_refresh_tokens_survives_a_burst_over_three_replicas() {
    const BURST: usize = 300;
    let glw = Glewlwyd::new().one_use_refresh().start().await;
    let redis = RedisServer::start().await;
    let upstream = RecordingUpstream::start("store").await;
    let replicas = spawn_all(REPLICAS, || {
        glw.gateway()
            .app(glewlwyd::store_app(upstream.addr))
            .section(&store_section(&redis, PREFIX))
    })
    .await;
    for replica in &replicas {
        wait_store_up(replica, 1.0, "Glewlwyd replicas at start").await;
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let logs = || {
        let mut all = glw.log();
        for replica in &replicas {
            all.push_str(&digest(replica));
        }
        all
    };
    let assert_alice = |reply: &Reply, context: &str| {
        assert_eq!(reply.status, 200, "{context}: {}\n{}", reply.text(), logs());
        assert_eq!(
            upstream.last().header("x-auth-request-user"),
            Some(ALICE.username),
            "{context}"
        );
    };
    let browser = Browser::round_robin(&addrs, STORE_HOST);
    let reply = browser.login(ALICE.username, ALICE.password).await;
    assert_eq!(reply.status, 302, "login at Glewlwyd: {}", reply.text());
    let jwt = browser.cookie(JWT_COOKIE).expect("JWT");
    let cookie = browser.cookie_header().expect("cookies");

    sleep_past_expiry(&jwt).await;
    let answers = burst(&addrs, &cookie, BURST).await;
    assert_eq!(
        statuses(&answers),
        BTreeMap::from([(200, BURST)]),
        "answers by status\n{}",
        logs()
    );
    absorb(&browser, &answers);
    // One refresh for the burst: the login's token spent, its successor live.
    let tokens = glw.client_refresh_tokens(ALICE.username, "store").await;
    let enabled =
        |tokens: &[serde_json::Value]| tokens.iter().filter(|t| t["enabled"] == true).count();
    assert_eq!((tokens.len(), enabled(&tokens)), (2, 1), "{tokens:?}");

    // The next request on each replica is served, no login page.
    for (i, addr) in addrs.iter().enumerate() {
        let on = Browser::new(*addr, STORE_HOST);
        on.set_cookies(browser.cookies());
        assert_alice(
            &on.get("/account").await,
            &format!("replica {i} after the burst"),
        );
    }
    // Had any replica replayed the spent token, Glewlwyd would have revoked
    // the chain: the next refresh, on any replica, would fail.
    let jwt = browser.cookie(JWT_COOKIE).expect("JWT");
    sleep_past_expiry(&jwt).await;
    let reply = browser.get("/cart").await;
    assert_alice(&reply, "the next expiry");
    assert!(set_cookie(&reply, REFRESH_COOKIE).is_some_and(|c| !c.clears()));
    let tokens = glw.client_refresh_tokens(ALICE.username, "store").await;
    assert_eq!((tokens.len(), enabled(&tokens)), (3, 1), "{tokens:?}");
    for (i, addr) in addrs.iter().enumerate() {
        let on = Browser::new(*addr, STORE_HOST);
        on.set_cookies(browser.cookies());
        assert_alice(
            &on.get("/orders").await,
            &format!("replica {i} after the next expiry"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hung_before_a_burst_at_expiry_logs_nobody_out() {
    let cluster = Cluster::start(2).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(session(&cluster).await);
    }
    sleep_past_every_expiry(&sessions.iter().collect::<Vec<_>>()).await;

    cluster.redis.pause();
    cluster.idp.set_delay(IDP_LATENCY);
    for (n, browser) in sessions.iter().enumerate() {
        let cookie = browser.cookie_header().expect("cookies");
        let answers = burst(&cluster.addrs(), &cookie, 30).await;
        let context = format!("session {n}, Redis hung");
        assert_nobody_logged_out(&answers, &context);
        assert!(
            statuses(&answers).contains_key(&200),
            "{context}: no answer served: {:?}\n{}",
            statuses(&answers),
            cluster.logs()
        );
        absorb(browser, &answers);
    }
    cluster.idp.set_delay(Duration::ZERO);
    cluster.wait_store(0.0, "Redis hung").await;
    // Meanwhile every session is served on every replica (a valid JWT needs
    // no store; one that expired is refreshed by a replica on its own).
    for (n, browser) in sessions.iter().enumerate() {
        assert_served_everywhere(&cluster, browser, &format!("session {n}, Redis hung")).await;
    }

    cluster.redis.resume();
    cluster.wait_store(1.0, "Redis resumed").await;
    for (n, browser) in sessions.iter().enumerate() {
        assert_served_everywhere(&cluster, browser, &format!("session {n}, Redis back")).await;
    }
    assert_shared_again(&cluster, &sessions[0], "Redis resumed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hung_while_the_idp_refreshes_logs_nobody_out() {
    /// The refresh takes this long at the IdP: Redis stops during it.
    const SLOW_REFRESH: Duration = Duration::from_secs(1);
    let cluster = Cluster::start(2).await;
    let browser = session(&cluster).await;
    let other = session(&cluster).await;
    sleep_past_every_expiry(&[&browser, &other]).await;

    cluster.idp.set_delay(SLOW_REFRESH);
    let received = cluster
        .idp
        .counters()
        .received
        .load(std::sync::atomic::Ordering::SeqCst);
    let cookie = browser.cookie_header().expect("cookies");
    let addrs = cluster.addrs();
    let running = tokio::spawn(async move { burst(&addrs, &cookie, 60).await });
    // The refresh has reached the IdP (one replica holds the lock in Redis,
    // the others wait on it): now Redis stops answering.
    let mut waited = 0;
    while cluster
        .idp
        .counters()
        .received
        .load(std::sync::atomic::Ordering::SeqCst)
        == received
    {
        waited += 1;
        assert!(waited < 500, "the burst's refresh never reached the IdP");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.redis.pause();
    let answers = running.await.expect("burst");
    cluster.idp.set_delay(Duration::ZERO);
    assert_nobody_logged_out(&answers, "Redis hung mid-burst");
    assert!(
        statuses(&answers).contains_key(&200),
        "no answer served: {:?}\n{}",
        statuses(&answers),
        cluster.logs()
    );
    absorb(&browser, &answers);
    // The other session expires while Redis is still hung.
    let answers = burst(
        &cluster.addrs(),
        &other.cookie_header().expect("cookies"),
        30,
    )
    .await;
    assert_nobody_logged_out(&answers, "another session, Redis hung");
    absorb(&other, &answers);

    cluster.redis.resume();
    cluster.wait_store(1.0, "Redis resumed").await;
    for (n, session) in [&browser, &other].into_iter().enumerate() {
        assert_served_everywhere(&cluster, session, &format!("session {n}, Redis back")).await;
    }
    assert_shared_again(&cluster, &browser, "Redis resumed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_empty_logs_nobody_out_and_gets_the_revocations_back() {
    let mut cluster = Cluster::start(2).await;
    let first = session(&cluster).await;
    let second = session(&cluster).await;
    // The session that logs out holds a JWT that outlives the test: its
    // refusal is the revocation's doing, not expiry's.
    cluster.idp.set_access_ttl(60);
    let leaving = session(&cluster).await;
    cluster.idp.set_access_ttl(2);
    let stolen = leaving.cookie(JWT_COOKIE).expect("JWT");

    cluster.redis.kill();
    // Valid JWTs need no store: served on every replica.
    for (n, browser) in [&first, &second].into_iter().enumerate() {
        assert_served_everywhere(&cluster, browser, &format!("session {n}, Redis dead")).await;
    }
    cluster.wait_store(0.0, "Redis dead").await;
    for (i, replica) in cluster.replicas.iter().enumerate() {
        // Ready all the same (readiness does not depend on Redis), and the
        // failures are counted.
        let ready = http_get(replica.admin, "admin", "/readyz").await;
        assert_eq!(
            ready.ok().map(|(status, _)| status),
            Some(200),
            "replica {i}"
        );
        let metrics = scrape(replica.admin).await;
        let errors: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("gateway_store_errors_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        assert!(
            errors > 0.0,
            "replica {i} counted no store error:\n{metrics}"
        );
    }
    // A logout while Redis is dead: this replica knows at once.
    let reply = cluster.on(0, &leaving).logout().await;
    assert_login_redirect(&reply, "logout, Redis dead");
    assert_session_cleared(&reply, "logout, Redis dead");
    assert!(refused(cluster.replicas[0].addr, &stolen, "stolen JWT on replica 0").await);

    // Expiry while Redis is dead: each replica refreshes on its own.
    sleep_past_every_expiry(&[&first, &second]).await;
    for (n, browser) in [&first, &second].into_iter().enumerate() {
        let mut answers = Vec::new();
        for i in 0..REPLICAS {
            let reply = browser.get_json(&format!("/api/dead/{i}")).await;
            answers.push((i, reply));
        }
        assert_nobody_logged_out(&answers, &format!("session {n}, expiry, Redis dead"));
    }

    cluster.redis.restart().await;
    cluster.wait_store(1.0, "Redis restarted").await;
    // The logout made while Redis was dead reaches the other replicas.
    for i in 1..REPLICAS {
        wait_refused(
            cluster.replicas[i].addr,
            &stolen,
            STORE_BOUND,
            &format!("stolen JWT on replica {i} after the restart"),
        )
        .await;
    }
    let kept: usize = cluster
        .redis
        .query(redis::cmd("ZCARD").arg(format!("{PREFIX}{{revoked}}")))
        .await;
    assert_eq!(kept, 1, "the revocation list was not put back into Redis");
    for (n, browser) in [&first, &second].into_iter().enumerate() {
        assert_served_everywhere(&cluster, browser, &format!("session {n}, Redis back")).await;
    }
    assert_shared_again(&cluster, &first, "Redis restarted").await;
    assert_shared_again(&cluster, &second, "Redis restarted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_mid_session_logs_nobody_out_and_the_revocations_come_back() {
    let cluster = Cluster::start(2).await;
    let browser = session(&cluster).await;
    cluster.idp.set_access_ttl(60);
    let leaving = session(&cluster).await;
    cluster.idp.set_access_ttl(2);
    let stolen = leaving.cookie(JWT_COOKIE).expect("JWT");
    let reply = cluster.on(0, &leaving).logout().await;
    assert_login_redirect(&reply, "logout");
    for i in 0..REPLICAS {
        wait_refused(
            cluster.replicas[i].addr,
            &stolen,
            REVOCATION_BOUND,
            &format!("stolen JWT on replica {i}"),
        )
        .await;
    }

    cluster.redis.flushall().await;
    assert_served_everywhere(&cluster, &browser, "after FLUSHALL").await;
    for i in 0..REPLICAS {
        assert!(
            refused(
                cluster.replicas[i].addr,
                &stolen,
                "stolen JWT after FLUSHALL"
            )
            .await,
            "replica {i} forgot the logout with Redis's copy"
        );
    }
    // The replicas put the list back into Redis by themselves…
    let deadline = Instant::now() + STORE_BOUND;
    let revoked = format!("{PREFIX}{{revoked}}");
    while cluster
        .redis
        .query::<usize>(redis::cmd("ZCARD").arg(&revoked))
        .await
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the revocation list is not back in Redis\n{}",
            cluster.logs()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    // … where a replica started afterwards finds it.
    let late = replica(&cluster.idp, cluster.upstream.addr, &cluster.redis, PREFIX)
        .spawn()
        .await;
    wait_store_up(&late, 1.0, "a replica started after FLUSHALL").await;
    wait_refused(
        late.addr,
        &stolen,
        STORE_BOUND,
        "stolen JWT on a replica started after FLUSHALL",
    )
    .await;

    cluster.wait_store(1.0, "after FLUSHALL").await;
    let jwt = browser.cookie(JWT_COOKIE).expect("JWT");
    sleep_past_expiry(&jwt).await;
    let answers = burst(
        &cluster.addrs(),
        &browser.cookie_header().expect("cookies"),
        30,
    )
    .await;
    assert_nobody_logged_out(&answers, "expiry after FLUSHALL");
    absorb(&browser, &answers);
    assert_served_everywhere(&cluster, &browser, "after FLUSHALL and a refresh").await;
    assert_shared_again(&cluster, &browser, "after FLUSHALL").await;
}

/// One login attempt for `username` with a wrong password, on `addr`.
async fn wrong_password(addr: SocketAddr, username: &str) -> u16 {
    Browser::new(addr, STORE_HOST)
        .login(username, "not-the-password")
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttling_counts_the_attempts_of_all_replicas() {
    const LIMITS: &str = "per_user_burst = 3\nper_user_per_minute = 1";
    let cluster = Cluster::start_with(60, |b| b.login_config(LIMITS)).await;
    let mut seen = Vec::new();
    for attempt in 0..6 {
        seen.push(wrong_password(cluster.replicas[attempt % REPLICAS].addr, USER).await);
    }
    assert_eq!(
        seen,
        [401, 401, 401, 429, 429, 429],
        "attempts spread over three replicas\n{}",
        cluster.logs()
    );
    assert_eq!(calls(&cluster.idp).password_grants, 3);
    // Another username is not held up.
    assert_eq!(
        wrong_password(cluster.replicas[0].addr, "someone-else").await,
        401
    );

    // The control: with each replica on its own (memory store), the same
    // attempts find three buckets.
    let idp = idp().start().await;
    let upstream = store_upstream().await;
    let mut alone = Vec::new();
    for _ in 0..REPLICAS {
        alone.push(
            TestGateway::new()
                .idp(&idp)
                .login_config(LIMITS)
                .app(store_app(upstream.addr))
                .start_ready()
                .await,
        );
    }
    let mut seen = Vec::new();
    for attempt in 0..6 {
        seen.push(wrong_password(alone[attempt % REPLICAS].addr, USER).await);
    }
    assert_eq!(seen, [401; 6], "memory store");
    assert_eq!(calls(&idp).password_grants, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_replica_refuses_the_old_jwt_on_the_others_within_a_second() {
    let cluster = Cluster::start(60).await;
    let victim = session(&cluster).await;
    // A copy of the JWT alone: no refresh cookie could hide the refusal.
    let stolen = victim.cookie(JWT_COOKIE).expect("JWT");
    for i in 1..REPLICAS {
        assert!(
            !refused(cluster.replicas[i].addr, &stolen, "before the logout").await,
            "replica {i} refused a live session"
        );
    }

    let reply = cluster.on(0, &victim).logout().await;
    assert_login_redirect(&reply, "logout on replica 0");
    assert_session_cleared(&reply, "logout on replica 0");
    let logged_out = Instant::now();
    assert!(refused(cluster.replicas[0].addr, &stolen, "replica 0").await);
    for i in 1..REPLICAS {
        let context = format!("stolen JWT on replica {i}");
        wait_refused(
            cluster.replicas[i].addr,
            &stolen,
            REVOCATION_BOUND,
            &context,
        )
        .await;
        assert!(
            logged_out.elapsed() <= REVOCATION_BOUND,
            "{context}: refused only {:?} after the logout",
            logged_out.elapsed()
        );
    }
    // From then on nothing with that identity reaches the upstream.
    let seen = cluster.upstream.requests().len();
    for i in 0..REPLICAS {
        for _ in 0..3 {
            assert!(refused(cluster.replicas[i].addr, &stolen, "after the refusal").await);
            let thief = Browser::new(cluster.replicas[i].addr, STORE_HOST);
            thief.set_cookie(JWT_COOKIE, &stolen);
            assert_login_redirect(&thief.get("/account").await, "navigation after the refusal");
        }
    }
    assert_eq!(
        cluster.upstream.requests().len(),
        seen,
        "forwarded after the refusal"
    );
    // Another session of the same user is untouched.
    let other = session(&cluster).await;
    assert_served_everywhere(&cluster, &other, "another session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_prefix_keeps_two_deployments_on_one_redis_apart() {
    const LIMITS: &str = "per_user_burst = 2\nper_user_per_minute = 1";
    let redis = RedisServer::start().await;
    // One IdP and one cookie key for both: only the prefix tells them apart.
    let idp = idp().access_ttl(2).rotate_refresh().start().await;
    let upstream = store_upstream().await;
    let deployment = |prefix: &'static str| {
        let (idp, redis, upstream) = (&idp, &redis, upstream.addr);
        spawn_all(2, move || {
            replica(idp, upstream, redis, prefix).login_config(LIMITS)
        })
    };
    let a = deployment("shop-a:").await;
    let b = deployment("shop-b:").await;
    for replica in a.iter().chain(&b) {
        wait_store_up(replica, 1.0, "deployments at start").await;
    }
    let addrs = |d: &[GatewayProcess]| d.iter().map(|r| r.addr).collect::<Vec<_>>();

    // A session of deployment A, refreshed there once (a shared refresh
    // result in Redis).
    let browser = Browser::round_robin(&addrs(&a), STORE_HOST);
    let jwt = logged_in(&browser).await;
    sleep_past_expiry(&jwt).await;
    // The refreshed JWT outlives the test: a refusal is a revocation's doing.
    idp.set_access_ttl(60);
    assert_eq!(browser.get("/cart").await.status, 200);
    let stolen = browser.cookie(JWT_COOKIE).expect("JWT");
    // Deployment B trusts the same IdP: the token opens it too.
    assert!(!refused(b[0].addr, &stolen, "deployment B").await);

    // A logout in A ends the session in A only.
    let on_a = Browser::new(a[0].addr, STORE_HOST);
    on_a.set_cookies(browser.cookies());
    assert_login_redirect(&on_a.logout().await, "logout in A");
    wait_refused(
        a[1].addr,
        &stolen,
        REVOCATION_BOUND,
        "the other replica of A",
    )
    .await;
    for (i, replica) in b.iter().enumerate() {
        assert!(
            !refused(replica.addr, &stolen, "deployment B").await,
            "replica {i} of deployment B took A's logout"
        );
    }

    // Throttle buckets are not shared: A's attempts leave B's alone.
    let mut in_a = Vec::new();
    for r in [&a[0], &a[1], &a[0]] {
        in_a.push(wrong_password(r.addr, OTHER_USER).await);
    }
    assert_eq!(in_a, [401, 401, 429], "deployment A's bucket");
    let mut in_b = Vec::new();
    for r in [&b[0], &b[1]] {
        in_b.push(wrong_password(r.addr, OTHER_USER).await);
    }
    assert_eq!(in_b, [401, 401], "deployment B shared A's bucket");

    // Every key starts with a deployment's prefix, and none names a token,
    // a user or an address; no value holds them in the clear either.
    let keys = redis.keys().await;
    for prefix in ["shop-a:", "shop-b:"] {
        for kind in [
            "{revoked}",
            "{revoked}:epoch",
            "throttle:user:",
            "throttle:ip:",
        ] {
            assert!(
                keys.iter()
                    .any(|k| k.starts_with(&format!("{prefix}{kind}"))),
                "no {prefix}{kind} key: {keys:?}"
            );
        }
    }
    assert!(
        keys.iter()
            .any(|k| k.starts_with("shop-a:") && k.ends_with(":done")),
        "no shared refresh result of A: {keys:?}"
    );
    let tokens = idp.active_refresh_tokens();
    let secrets: Vec<&str> = [USER, SUB, "mallory", "127.0.0.1", PASSWORD]
        .into_iter()
        .chain(tokens.iter().map(String::as_str))
        .collect();
    for key in &keys {
        assert!(
            key.starts_with("shop-a:") || key.starts_with("shop-b:"),
            "a key outside both prefixes: {key}"
        );
        for secret in &secrets {
            assert!(!key.contains(secret), "key {key} names {secret:?}");
        }
        let kind: String = redis.query(redis::cmd("TYPE").arg(key)).await;
        let values: Vec<String> = match kind.as_str() {
            "string" => vec![redis.query(redis::cmd("GET").arg(key)).await],
            "zset" => {
                redis
                    .query(redis::cmd("ZRANGE").arg(key).arg(0).arg(-1))
                    .await
            }
            // The admin API's session records: fields and values.
            "hash" => redis.query(redis::cmd("HGETALL").arg(key)).await,
            other => panic!("key {key} of unexpected type {other}"),
        };
        for value in values {
            for secret in secrets.iter().copied().chain([stolen.as_str(), "\"rt-"]) {
                assert!(
                    !value.contains(secret),
                    "{key} holds {secret:?} in the clear: {value}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca_shares_state_and_checks_the_certificate() {
    let redis = RedisServer::builder().tls().start().await;
    assert!(redis.url().starts_with("rediss://"));
    let idp = idp().access_ttl(2).rotate_refresh().start().await;
    let upstream = store_upstream().await;
    let replicas = spawn_all(2, || replica(&idp, upstream.addr, &redis, PREFIX)).await;
    for replica in &replicas {
        wait_store_up(replica, 1.0, "over TLS").await;
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let browser = Browser::round_robin(&addrs, STORE_HOST);
    let jwt = logged_in(&browser).await;
    sleep_past_expiry(&jwt).await;
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "refresh over TLS: {}", reply.text());
    assert_identity(&upstream.last(), "refreshed over TLS");
    assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
    assert_eq!(calls(&idp).refreshes, 1);
    // The refresh went through Redis: its shared result is there.
    let keys = redis.keys().await;
    assert!(keys.iter().any(|k| k.ends_with(":done")), "{keys:?}");
    for replica in &replicas {
        assert_eq!(store_up(replica).await, Some(1.0));
    }

    // Without the private CA the server's certificate is not trusted: no
    // shared state, and the gateway serves on its own.
    let untrusting = TestGateway::new()
        .idp(&idp)
        .app(store_app(upstream.addr))
        .section(&format!(
            "[store]\nkind = \"redis\"\nurl = {:?}\n",
            redis.url()
        ))
        .spawn()
        .await;
    let deadline = Instant::now() + STORE_BOUND;
    while untrusting
        .logged("store: cannot connect to Redis")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "{}", untrusting.logs());
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    assert_eq!(store_up(&untrusting).await, Some(0.0));
    let alone = Browser::new(untrusting.addr, STORE_HOST);
    logged_in(&alone).await;
    assert_eq!(alone.get("/cart").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_redis_needs_the_right_password_and_a_wrong_one_logs_nobody_out() {
    const SECRET: &str = "redis-secret-3f9a";
    let redis = RedisServer::builder().password(SECRET).start().await;
    let idp = idp().access_ttl(2).rotate_refresh().start().await;
    let upstream = store_upstream().await;
    let right = replica(&idp, upstream.addr, &redis, PREFIX).spawn().await;
    wait_store_up(&right, 1.0, "the right password").await;
    let wrong = TestGateway::new()
        .idp(&idp)
        .app(store_app(upstream.addr))
        .section(&format!(
            "[store]\nkind = \"redis\"\nurl = {:?}\npassword = \"not-the-secret\"\n",
            redis.url()
        ))
        .spawn()
        .await;
    let deadline = Instant::now() + STORE_BOUND;
    while wrong.logged("store: cannot connect to Redis").is_empty() {
        assert!(Instant::now() < deadline, "{}", wrong.logs());
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    assert_eq!(store_up(&wrong).await, Some(0.0), "{}", wrong.logs());

    // Through the replica with the right password, state is in Redis.
    let browser = Browser::new(right.addr, STORE_HOST);
    let jwt = logged_in(&browser).await;
    sleep_past_expiry(&jwt).await;
    assert_eq!(browser.get("/cart").await.status, 200);
    let keys = redis.keys().await;
    assert!(keys.iter().any(|k| k.ends_with(":done")), "{keys:?}");

    // The one with a wrong password serves on its own: login, pages,
    // refresh; nobody is logged out.
    let alone = Browser::new(wrong.addr, STORE_HOST);
    let jwt = logged_in(&alone).await;
    assert_eq!(alone.get("/cart").await.status, 200);
    sleep_past_expiry(&jwt).await;
    let before: Calls = calls(&idp);
    let reply = alone.get("/cart").await;
    assert_eq!(reply.status, 200, "refresh without Redis: {}", reply.text());
    assert_identity(&upstream.last(), "refresh without Redis");
    assert!(set_cookie(&reply, JWT_COOKIE).is_some_and(|c| !c.clears()));
    assert_eq!(calls(&idp).refreshes, before.refreshes + 1);
    assert_eq!(store_up(&wrong).await, Some(0.0));
    for process in [&right, &wrong] {
        assert!(
            !process.logs().contains(SECRET) && !process.logs().contains("not-the-secret"),
            "a Redis password in the logs:\n{}",
            process.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_requests_with_the_cookies_from_before_a_redis_outage_log_nobody_out() {
    for restart in [false, true] {
        let outage = if restart {
            "Redis restarted"
        } else {
            "Redis hung"
        };
        let mut cluster = Cluster::start(2).await;
        let browser = session(&cluster).await;
        let jwt = browser.cookie(JWT_COOKIE).expect("JWT");
        let old = browser.cookie_header().expect("cookies");
        cluster.idp.set_access_ttl(60);
        sleep_past_expiry(&jwt).await;

        // The refresh happens while Redis is out of reach: the replicas
        // cannot share it.
        if restart {
            cluster.redis.kill();
        } else {
            cluster.redis.pause();
        }
        cluster.idp.set_delay(IDP_LATENCY);
        let answers = burst(&cluster.addrs(), &old, 30).await;
        cluster.idp.set_delay(Duration::ZERO);
        assert_nobody_logged_out(&answers, outage);
        absorb(&browser, &answers);
        assert_ne!(
            browser.cookie(JWT_COOKIE),
            Some(jwt),
            "{outage}: nothing refreshed"
        );
        if restart {
            cluster.redis.restart().await;
        } else {
            cluster.redis.resume();
        }
        cluster.wait_store(1.0, outage).await;

        // Another tab's requests with the cookies from before, within
        // refresh_grace, once Redis is back.
        assert_late_requests_keep_the_session(&cluster, &old, &format!("late, {outage}")).await;
        assert_served_everywhere(&cluster, &browser, &format!("the session, {outage}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_requests_with_the_cookies_from_before_a_refresh_survive_a_flushall() {
    let cluster = Cluster::start(2).await;
    let browser = session(&cluster).await;
    let jwt = browser.cookie(JWT_COOKIE).expect("JWT");
    let old = browser.cookie_header().expect("cookies");
    cluster.idp.set_access_ttl(60);
    sleep_past_expiry(&jwt).await;

    // One replica refreshes and shares the result in Redis…
    let reply = cluster.on(0, &browser).get("/cart").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    browser.absorb(&reply);
    // … which Redis then loses.
    cluster.redis.flushall().await;

    // Another tab's requests with the cookies from before, within
    // refresh_grace, on the replicas that did not refresh.
    assert_late_requests_keep_the_session(&cluster, &old, "late, after FLUSHALL").await;
    assert_served_everywhere(&cluster, &browser, "the session, after FLUSHALL").await;
}

/// Waits (bounded) until Redis's epoch, the moment from which the replicas
/// could lose sight of each other's refresh results, is more than `grace`
/// old: refusals count again from then on.
async fn wait_past_unsure(redis: &RedisServer, grace: Duration) {
    let epoch = format!("{PREFIX}{{revoked}}:epoch");
    let stamped: u64 = redis.query(redis::cmd("GET").arg(&epoch)).await;
    let until = stamped + grace.as_secs() + 1;
    assert!(until <= now() + 30, "epoch {stamped} is in the future");
    while now() <= until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_ends_the_session_unless_the_replicas_may_have_lost_sight() {
    /// `session.refresh_grace`: how long late requests may reuse a refresh,
    /// and how long after an outage a refusal may be a replay.
    const GRACE: Duration = Duration::from_secs(3);
    let cluster = Cluster::start_with(2, |b| {
        b.session_config(&format!("refresh_grace = \"{}s\"", GRACE.as_secs()))
    })
    .await;
    let first = session(&cluster).await;
    let second = session(&cluster).await;
    let late = cluster.on(2, &first);
    wait_past_unsure(&cluster.redis, GRACE).await;
    sleep_past_every_expiry(&[&first, &second]).await;

    // The IdP refuses (the tokens were revoked there): with every replica
    // in sight of the others, that is the end of the session, on each.
    cluster.idp.set_reject_refresh(true);
    let reply = cluster.on(0, &first).get("/cart").await;
    assert_login_redirect(&reply, "refused refresh");
    assert_session_cleared(&reply, "refused refresh");
    let reply = late.get_json("/api/cart").await;
    assert_login_required_json(&reply, "the refusal, on another replica");
    assert_session_cleared(&reply, "the refusal, on another replica");

    // Right after an outage, a refusal may be the replay of a token another
    // replica rotated unseen: 503, cookies kept…
    cluster.redis.pause();
    cluster.wait_store(0.0, "Redis hung").await;
    cluster.redis.resume();
    cluster.wait_store(1.0, "Redis resumed").await;
    let cookies = second.cookies();
    let reply = cluster.on(1, &second).get_json("/api/cart").await;
    assert_eq!(
        reply.status,
        503,
        "refusal right after an outage: {}",
        reply.text()
    );
    assert_nobody_logged_out(&vec![(1, reply)], "refusal right after an outage");
    // … until the grace period is over.
    wait_past_unsure(&cluster.redis, GRACE).await;
    let browser = cluster.on(1, &second);
    assert_eq!(browser.cookies(), cookies);
    let reply = browser.get("/cart").await;
    assert_login_redirect(&reply, "refusal once the replicas see each other again");
    assert_session_cleared(&reply, "refusal once the replicas see each other again");
}

/// `GET path` on an admin listener with `token` as bearer: status and body.
async fn admin_get(admin: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{admin}{path}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("admin API answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_admin_api_lists_the_sessions_any_replica_has_seen() {
    const TOKEN: &str = "an-admin-token-of-32-characters!";
    let events = format!("[events]\nadmin_token = {TOKEN:?}\n");
    let cluster = Cluster::start_with(2, |b| b.section(&events)).await;
    let browser = cluster.browser();
    let jwt = logged_in(&browser).await;
    let sid = claims(&jwt)["sid"].as_str().map(str::to_owned);

    // Asked on another replica than the one that logged the user in.
    let admin = cluster.replicas[2].admin;
    let path = format!("/admin/sessions?user={SUB}");
    let (status, body) = admin_get(admin, &path, "a-wrong-token-of-32-characters!!").await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(SUB), "{body}");
    let (status, body) = admin_get(admin, &path, TOKEN).await;
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let sessions = listed["sessions"].as_array().expect("a list");
    assert_eq!(sessions.len(), 1, "{body}");
    let session = &sessions[0];
    assert_eq!(session["app"], "store", "{body}");
    if let Some(sid) = &sid {
        assert_eq!(session["session"], sid.as_str(), "{body}");
    }
    assert_eq!(session["last_address"], "127.0.0.1", "{body}");
    let first_login = session["first_login"].as_u64().expect("a login time");
    assert!(session.get("last_refresh").is_none(), "{body}");

    // A refresh (on whichever replica) is recorded; the login stays.
    sleep_past_expiry(&jwt).await;
    let reply = browser.get("/cart").await;
    assert_eq!(reply.status, 200, "{}", cluster.logs());
    let (_, body) = admin_get(cluster.replicas[0].admin, &path, TOKEN).await;
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let session = &listed["sessions"][0];
    assert_eq!(session["first_login"].as_u64(), Some(first_login), "{body}");
    assert!(
        session["last_refresh"].as_u64() >= Some(first_login),
        "{body}"
    );

    // Nobody else's.
    let (status, body) = admin_get(admin, "/admin/sessions?user=nobody", TOKEN).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"sessions\":[]"), "{body}");
}
