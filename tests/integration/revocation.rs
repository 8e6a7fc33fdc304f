//! Ending sessions before their JWTs expire, seen from outside: a JWT copied
//! out of a logged-in browser and replayed alone (without its refresh
//! cookie, so no refresh can hide a refusal) after a logout, after the IdP
//! revoked the user's refresh tokens (a signed FusionAuth
//! `jwt.refresh-token.revoke` webhook), and after the user was deactivated
//! (`user.deactivate`): refused within a second, on the single replica of
//! the memory store and on every one of three replicas sharing a real Redis
//! (requests spread round-robin), and from then on nothing with that session
//! reaches the upstream. The user logging in again afterwards is served.
//!
//! The webhook endpoint answers forgeries (a bad signature, a body changed
//! after signing, a key the gateway does not trust, a missing or wrong
//! shared secret) with 401 and revokes nothing; a repeated `event.id`
//! changes nothing; an unknown event type gets 200 and changes nothing.
//! OpenID Connect back-channel logout revokes one session (`sid`) or a
//! user's sessions of one app (`sub`), and refuses anything that is not a
//! valid logout token with 400. The admin API revokes a user, a session or
//! an app, and only with its token. Every refusal is checked by the stolen
//! JWT still being served afterwards.
//!
//! The development IdP (`gateway_examples::idp`) sends signed
//! `jwt.refresh-token.revoke` webhooks when its refresh tokens are revoked:
//! revoking a user there makes the gateway refuse their JWT within a second.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::auth::{
    assert_login_redirect, assert_login_required_json, assert_session_cleared, claims, forums_app,
    idp, logged_in_as, now, store_app, FORUMS_HOST, JWT_COOKIE, OTHER_PASSWORD, OTHER_USER,
    PASSWORD, STORE_HOST, SUB, USER,
};
use crate::support::browser::Browser;
use crate::support::client::Reply;
use crate::support::gateway::TestGatewayBuilder;
use crate::support::idp::{TestIdp, ISSUER};
use crate::support::metrics::{sample, scrape};
use crate::support::process::GatewayProcess;
use crate::support::redis::RedisServer;
use crate::support::{Client, RecordingUpstream, TestGateway, POLL_INTERVAL};

/// A revocation reaches every replica within this.
const REVOCATION_BOUND: Duration = Duration::from_secs(1);
/// Replicas sharing one Redis.
const REPLICAS: usize = 3;
/// The HMAC key the webhook signature is made with (Key Master's).
const SIGNING_SECRET: &str = "webhook signing key, HS256, 32+ bytes";
/// The shared secret sent as `Authorization: Bearer`.
const WEBHOOK_SECRET: &str = "webhook-bearer-secret-0123456789";
/// The admin API's token.
const ADMIN_TOKEN: &str = "admin-token-for-the-tests-0123456789";
const WEBHOOK_PATH: &str = "/events/fusionauth";
const BACKCHANNEL_PATH: &str = "/events/backchannel-logout";
/// The header the upstreams receive each request's `sid` claim in: which
/// session reached them.
const SID_HEADER: &str = "x-auth-request-sid";
/// The `events` member of a logout token.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A third user, so that each revocation of a deployment can have its own.
const THIRD_USER: &str = "gilfoyle";
const THIRD_PASSWORD: &str = "password3";
const THIRD_SUB: &str = "user-gilfoyle";

/// Every endpoint on: the webhook with all three authenticity checks (an
/// HS256 signature with [`SIGNING_SECRET`] or one by the IdP's published
/// keys, and the bearer secret), back-channel logout, the admin API.
fn events_all() -> String {
    format!(
        "[events]\nwebhook_signing_secret = {SIGNING_SECRET:?}\nwebhook_signing_idp_keys = true\n\
         webhook_secret = {WEBHOOK_SECRET:?}\nbackchannel = true\nadmin_token = {ADMIN_TOKEN:?}\n"
    )
}

/// The usual FusionAuth setup: signed webhooks (HMAC) only.
fn events_signed() -> String {
    format!("[events]\nwebhook_signing_secret = {SIGNING_SECRET:?}\n")
}

/// Where the gateways of a deployment run.
enum Gateways {
    /// One replica, in process, memory store.
    Memory { _gateway: TestGateway },
    /// Three processes over one Redis.
    Redis {
        replicas: Vec<GatewayProcess>,
        _redis: RedisServer,
    },
}

/// The store and forums apps behind login, at a test IdP, with the events
/// endpoints on.
struct Deployment {
    /// The test IdP (`None`: the development IdP, run by the test).
    idp: Option<TestIdp>,
    store: RecordingUpstream,
    forums: RecordingUpstream,
    gateways: Gateways,
    /// Proxy listeners, one per replica.
    addrs: Vec<SocketAddr>,
    /// Admin listeners (where the events endpoints are), one per replica.
    admins: Vec<SocketAddr>,
    /// How the webhooks are authenticated ([`Deployment::webhook`] sends
    /// what it takes).
    bearer: bool,
}

/// One replica's configuration.
fn replica(
    idp: &TestIdp,
    store: SocketAddr,
    forums: SocketAddr,
    events: &str,
) -> TestGatewayBuilder {
    let sid = format!("claims = {{ {SID_HEADER:?} = \"sid\" }}");
    TestGateway::new()
        .idp(idp)
        .app(store_app(store).headers(&sid))
        .app(forums_app(forums).headers(&sid))
        .section(events)
}

/// The IdP of these tests: [`idp`]'s users and [`THIRD_USER`].
async fn test_idp() -> TestIdp {
    idp()
        .user(THIRD_USER, THIRD_PASSWORD, THIRD_SUB, &["customer"])
        .start()
        .await
}

impl Deployment {
    /// One in-process replica with the memory store.
    async fn memory(events: &str) -> Deployment {
        let idp = test_idp().await;
        let store = RecordingUpstream::start("store").await;
        let forums = RecordingUpstream::start("forums").await;
        let gateway = replica(&idp, store.addr, forums.addr, events)
            .start_ready()
            .await;
        Deployment {
            addrs: vec![gateway.addr],
            admins: vec![gateway.admin],
            bearer: events.contains("webhook_secret"),
            gateways: Gateways::Memory { _gateway: gateway },
            idp: Some(idp),
            store,
            forums,
        }
    }

    /// [`REPLICAS`] gateway processes sharing a real Redis.
    async fn redis(events: &str) -> Deployment {
        let redis = RedisServer::start().await;
        let idp = test_idp().await;
        let store = RecordingUpstream::start("store").await;
        let forums = RecordingUpstream::start("forums").await;
        // A generous store timeout: the replicas share the CPUs with other
        // tests, and a late answer must not look like an outage.
        let section = format!(
            "{}timeout = \"500ms\"\n\n{events}",
            redis.store_section("gateway:")
        );
        let mut replicas = Vec::new();
        for _ in 0..REPLICAS {
            replicas.push(
                replica(&idp, store.addr, forums.addr, &section)
                    .spawn()
                    .await,
            );
        }
        for replica in &replicas {
            wait_store_up(replica).await;
        }
        Deployment {
            addrs: replicas.iter().map(|r| r.addr).collect(),
            admins: replicas.iter().map(|r| r.admin).collect(),
            bearer: events.contains("webhook_secret"),
            gateways: Gateways::Redis {
                replicas,
                _redis: redis,
            },
            idp: Some(idp),
            store,
            forums,
        }
    }

    /// The test IdP.
    fn idp(&self) -> &TestIdp {
        self.idp.as_ref().expect("a deployment with the test IdP")
    }

    /// A browser on `host` whose requests go to each replica in turn.
    fn browser(&self, host: &str) -> Browser {
        Browser::round_robin(&self.addrs, host)
    }

    /// A new session of `user` on the store; its browser and JWT.
    async fn session(&self, user: &str, password: &str) -> (Browser, String) {
        self.session_on(STORE_HOST, user, password).await
    }

    /// A new session of `user` on `host`; its browser and JWT.
    async fn session_on(&self, host: &str, user: &str, password: &str) -> (Browser, String) {
        let browser = self.browser(host);
        let jwt = logged_in_as(&browser, user, password).await;
        (browser, jwt)
    }

    /// The upstream behind `host`.
    fn upstream(&self, host: &str) -> &RecordingUpstream {
        match host {
            FORUMS_HOST => &self.forums,
            _ => &self.store,
        }
    }

    /// Posts `body` as a FusionAuth webhook to replica `i`, signed HS256
    /// with [`SIGNING_SECRET`] (and with the bearer secret where the
    /// deployment wants it).
    async fn webhook(&self, i: usize, body: &str) -> Reply {
        let signature = hs256_signature(SIGNING_SECRET.as_bytes(), body.as_bytes());
        let bearer = format!("Bearer {WEBHOOK_SECRET}");
        let mut headers = vec![("x-fusionauth-signature-jwt", signature.as_str())];
        if self.bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        self.post_webhook(i, body, &headers).await
    }

    /// Posts `body` to replica `i`'s webhook endpoint with exactly `headers`
    /// (and a JSON content type).
    async fn post_webhook(&self, i: usize, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        Client::new(self.admins[i])
            .send(Method::POST, "admin", WEBHOOK_PATH, &all, body.to_owned())
            .await
    }

    /// Posts `logout_token` to replica `i`'s back-channel logout endpoint.
    async fn backchannel(&self, i: usize, logout_token: &str) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", logout_token)
            .finish();
        Client::new(self.admins[i])
            .send(
                Method::POST,
                "admin",
                BACKCHANNEL_PATH,
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            )
            .await
    }

    /// Posts `body` to replica `i`'s `/admin/revoke` with `token`, if any.
    async fn admin_revoke(&self, i: usize, token: Option<&str>, body: &str) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        Client::new(self.admins[i])
            .send(
                Method::POST,
                "admin",
                "/admin/revoke",
                &headers,
                body.to_owned(),
            )
            .await
    }

    /// Whether replica `i` serves `jwt` presented alone on `host` as an API
    /// call (the upstream then saw its session); `false` when refused with
    /// the API's "log in first" (401 JSON), which forwards nothing.
    async fn serves(&self, i: usize, host: &str, jwt: &str, context: &str) -> bool {
        let exp = claims(jwt)["exp"].as_u64().expect("exp");
        assert!(
            exp > now() + 1,
            "{context}: the JWT is about to expire: a refusal would prove nothing"
        );
        let upstream = self.upstream(host);
        let seen = upstream.requests().len();
        let thief = Browser::new(self.addrs[i], host);
        thief.set_cookie(JWT_COOKIE, jwt);
        let reply = thief.get_json("/api/account").await;
        if reply.status == 200 {
            let requests = upstream.requests();
            let sid = sid_of(jwt);
            assert!(
                requests[seen..]
                    .iter()
                    .any(|r| r.header(SID_HEADER) == Some(sid.as_str())),
                "{context}: served, but the upstream did not see session {sid}"
            );
            return true;
        }
        assert_login_required_json(&reply, context);
        assert_eq!(
            upstream.requests().len(),
            seen,
            "{context}: refused, yet forwarded"
        );
        false
    }

    /// Asserts every replica serves `jwt` on `host`.
    async fn assert_served(&self, host: &str, jwt: &str, context: &str) {
        for i in 0..self.addrs.len() {
            assert!(
                self.serves(i, host, jwt, &format!("{context}, replica {i}"))
                    .await,
                "{context}: replica {i} refused a live session\n{}",
                self.logs()
            );
        }
    }

    /// Waits until every replica refuses `jwt` on `host`, each within
    /// [`REVOCATION_BOUND`] of `since`; then presents it again, as a
    /// navigation and as an API call, on every replica, and asserts the
    /// upstream received nothing of its session after the refusal.
    async fn assert_refused_within_bound(
        &self,
        host: &str,
        jwt: &str,
        since: Instant,
        context: &str,
    ) {
        for i in 0..self.addrs.len() {
            let context = format!("{context}, replica {i}");
            loop {
                if !self.serves(i, host, jwt, &context).await {
                    break;
                }
                assert!(
                    since.elapsed() < REVOCATION_BOUND,
                    "{context}: still served {:?} after the revocation\n{}",
                    since.elapsed(),
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                since.elapsed() <= REVOCATION_BOUND,
                "{context}: refused only {:?} after the revocation",
                since.elapsed()
            );
        }
        let refused_from = self.upstream(host).requests().len();
        for i in 0..self.addrs.len() {
            for _ in 0..2 {
                let context = format!("{context}, replica {i}, after the refusal");
                assert!(!self.serves(i, host, jwt, &context).await, "{context}");
                let thief = Browser::new(self.addrs[i], host);
                thief.set_cookie(JWT_COOKIE, jwt);
                assert_login_redirect(&thief.get("/account").await, &context);
            }
        }
        let sid = sid_of(jwt);
        let leaked: Vec<_> = self.upstream(host).requests()[refused_from..]
            .iter()
            .filter(|r| r.header(SID_HEADER) == Some(sid.as_str()))
            .map(|r| r.uri.clone())
            .collect();
        assert!(
            leaked.is_empty(),
            "{context}: the upstream received session {sid} after the refusal: {leaked:?}"
        );
    }

    /// Every replica's log, for failure messages (in-process: none).
    fn logs(&self) -> String {
        match &self.gateways {
            Gateways::Memory { .. } => String::new(),
            Gateways::Redis { replicas, .. } => replicas
                .iter()
                .enumerate()
                .map(|(i, r)| format!("--- replica {i}\n{}\n", tail(&r.logs(), 30)))
                .collect(),
        }
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits (bounded) until `replica` reports Redis reachable.
async fn wait_store_up(replica: &GatewayProcess) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = sample(&scrape(replica.admin).await, "gateway_store_up", &[]);
        if up == Some(1.0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gateway_store_up is {up:?} 10 s on:\n{}",
            replica.logs()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The `sid` claim of `jwt`.
fn sid_of(jwt: &str) -> String {
    claims(jwt)["sid"]
        .as_str()
        .expect("the IdP's JWTs carry a sid")
        .to_owned()
}

/// Milliseconds since the epoch (FusionAuth's `createInstant`).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh event id (FusionAuth sends UUIDs; any unique id will do).
fn event_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "00000000-0000-4000-8000-{:06x}{:06x}",
        std::process::id() & 0xff_ffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Standard base64 (padded) of the SHA-256 of `body`: the
/// `request_body_sha256` claim.
fn body_digest(body: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// `X-FusionAuth-Signature-JWT` for `body`, HS256 with `secret`.
fn hs256_signature(secret: &[u8], body: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "request_body_sha256": body_digest(body) }),
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// A `jwt.refresh-token.revoke` for every refresh token of `sub` (all
/// applications), created now.
fn revoke_user_event(id: &str, sub: &str) -> String {
    revoke_user_event_at(id, sub, now_ms())
}

/// [`revoke_user_event`] created at `create_instant` (ms).
fn revoke_user_event_at(id: &str, sub: &str, create_instant: u64) -> String {
    json!({ "event": {
        "type": "jwt.refresh-token.revoke",
        "id": id,
        "createInstant": create_instant,
        "tenantId": "30663132-6464-6665-3032-326466613934",
        "userId": sub,
        "applicationTimeToLiveInSeconds": { "store": 60, "forums": 60 },
    }})
    .to_string()
}

/// A `jwt.refresh-token.revoke` for the one refresh token whose id (the
/// JWTs' `sid`) is `sid`, of `sub` at the store.
fn revoke_token_event(id: &str, sub: &str, sid: &str) -> String {
    json!({ "event": {
        "type": "jwt.refresh-token.revoke",
        "id": id,
        "createInstant": now_ms(),
        "userId": sub,
        "applicationId": "store",
        "applicationTimeToLiveInSeconds": { "store": 60 },
        "refreshToken": {
            "id": sid,
            "applicationId": "store",
            "userId": sub,
            "insertInstant": now_ms(),
        },
    }})
    .to_string()
}

/// A `user.deactivate` for `sub`.
fn deactivate_event(id: &str, sub: &str) -> String {
    json!({ "event": {
        "type": "user.deactivate",
        "id": id,
        "createInstant": now_ms(),
        "user": { "id": sub, "active": false, "email": "someone@example.com" },
    }})
    .to_string()
}

/// Sleeps until the clock's second is past `second`: JWTs issued from then
/// on have an `iat` after a revocation made in that second (`iat` has one
/// second's resolution, and a revocation covers its own second).
async fn sleep_past_second(second: u64) {
    let deadline = UNIX_EPOCH + Duration::from_secs(second + 1) + Duration::from_millis(20);
    let wait = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(wait <= Duration::from_millis(1100), "{wait:?}");
    tokio::time::sleep(wait).await;
}

/// How the stolen JWT's session is ended.
#[derive(Debug, Clone, Copy)]
enum Cause {
    /// The user logs out (through whichever replica the browser reaches).
    Logout,
    /// The IdP revokes the user's refresh tokens: a signed
    /// `jwt.refresh-token.revoke` webhook for the user.
    IdpRevocation,
    /// The user is deactivated at the IdP: a signed `user.deactivate`.
    Deactivation,
}

/// A JWT copied out of a logged-in browser, replayed alone after `cause`:
/// refused within a second on every replica, nothing of its session reaches
/// the upstream after that, the victim's own browser (with its refresh
/// cookie) is sent to the login page, and the user logging in again after
/// the revocation is served everywhere. Another user is untouched.
async fn stolen_jwt_is_refused(deployment: &Deployment, cause: Cause) {
    let context = format!("{cause:?}");
    let (victim, stolen) = deployment.session(USER, PASSWORD).await;
    let (_, bystander) = deployment.session(OTHER_USER, OTHER_PASSWORD).await;
    deployment
        .assert_served(STORE_HOST, &stolen, &format!("{context}: before"))
        .await;

    let revoked_in = now();
    match cause {
        Cause::Logout => {
            let reply = victim.logout().await;
            assert_login_redirect(&reply, &context);
            assert_session_cleared(&reply, &context);
        }
        Cause::IdpRevocation => {
            let reply = deployment
                .webhook(0, &revoke_user_event(&event_id(), SUB))
                .await;
            assert_eq!(reply.status, 200, "{context}: {}", reply.text());
        }
        Cause::Deactivation => {
            let reply = deployment
                .webhook(0, &deactivate_event(&event_id(), SUB))
                .await;
            assert_eq!(reply.status, 200, "{context}: {}", reply.text());
        }
    }
    let since = Instant::now();
    deployment
        .assert_refused_within_bound(STORE_HOST, &stolen, since, &context)
        .await;

    if !matches!(cause, Cause::Logout) {
        // The victim's own browser, refresh cookie and all: to the login
        // page, cookies cleared (no refresh buys the session back).
        let reply = victim.get("/account").await;
        assert_login_redirect(&reply, &format!("{context}: the victim's browser"));
        assert_session_cleared(&reply, &format!("{context}: the victim's browser"));
    }
    deployment
        .assert_served(STORE_HOST, &bystander, &format!("{context}: another user"))
        .await;

    // Logging in again after the revocation: a new session, served.
    sleep_past_second(revoked_in).await;
    let (again, fresh) = deployment.session(USER, PASSWORD).await;
    assert!(
        claims(&fresh)["iat"].as_u64().expect("iat") > revoked_in,
        "{context}: the new JWT must postdate the revocation"
    );
    deployment
        .assert_served(STORE_HOST, &fresh, &format!("{context}: logged in again"))
        .await;
    for _ in 0..deployment.addrs.len() {
        let reply = again.get("/account").await;
        assert_eq!(
            reply.status,
            200,
            "{context}: logged in again: {}",
            reply.text()
        );
    }
    assert!(
        !deployment
            .serves(0, STORE_HOST, &stolen, &format!("{context}: at the end"))
            .await,
        "{context}: the stolen JWT is served again"
    );
}

#[tokio::test]
async fn memory_a_stolen_jwt_is_refused_after_logout() {
    let deployment = Deployment::memory(&events_signed()).await;
    stolen_jwt_is_refused(&deployment, Cause::Logout).await;
}

#[tokio::test]
async fn memory_a_stolen_jwt_is_refused_after_the_idp_revokes_the_user() {
    let deployment = Deployment::memory(&events_signed()).await;
    stolen_jwt_is_refused(&deployment, Cause::IdpRevocation).await;
}

#[tokio::test]
async fn memory_a_stolen_jwt_is_refused_after_the_user_is_deactivated() {
    let deployment = Deployment::memory(&events_signed()).await;
    stolen_jwt_is_refused(&deployment, Cause::Deactivation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_stolen_jwt_is_refused_on_every_replica_after_logout() {
    let deployment = Deployment::redis(&events_signed()).await;
    stolen_jwt_is_refused(&deployment, Cause::Logout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_stolen_jwt_is_refused_on_every_replica_after_the_idp_revokes_the_user() {
    let deployment = Deployment::redis(&events_signed()).await;
    stolen_jwt_is_refused(&deployment, Cause::IdpRevocation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_stolen_jwt_is_refused_on_every_replica_after_the_user_is_deactivated() {
    let deployment = Deployment::redis(&events_signed()).await;
    stolen_jwt_is_refused(&deployment, Cause::Deactivation).await;
}

/// One refresh token revoked at the IdP (`refreshToken.id` = the session's
/// `sid`): that session ends, the same user's other session goes on.
async fn one_revoked_refresh_token_ends_one_session(deployment: &Deployment) {
    let (_, first) = deployment.session(USER, PASSWORD).await;
    let (_, second) = deployment.session(USER, PASSWORD).await;
    assert_ne!(sid_of(&first), sid_of(&second), "two logins, two sessions");
    let reply = deployment
        .webhook(0, &revoke_token_event(&event_id(), SUB, &sid_of(&first)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let since = Instant::now();
    deployment
        .assert_refused_within_bound(STORE_HOST, &first, since, "the revoked session")
        .await;
    deployment
        .assert_served(STORE_HOST, &second, "the user's other session")
        .await;
}

#[tokio::test]
async fn memory_a_revoked_refresh_token_ends_only_its_session() {
    let deployment = Deployment::memory(&events_signed()).await;
    one_revoked_refresh_token_ends_one_session(&deployment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_revoked_refresh_token_ends_only_its_session_on_every_replica() {
    let deployment = Deployment::redis(&events_signed()).await;
    one_revoked_refresh_token_ends_one_session(&deployment).await;
}

/// Posts a webhook that must be refused with `status` (401, or 200 for
/// what is acknowledged and ignored), then checks `jwt` is still served.
async fn assert_webhook_changes_nothing(
    deployment: &Deployment,
    body: &str,
    headers: &[(&str, &str)],
    status: u16,
    jwt: &str,
    case: &str,
) {
    let reply = deployment.post_webhook(0, body, headers).await;
    assert_eq!(reply.status, status, "{case}: {}", reply.text());
    if status == 401 {
        assert_eq!(
            reply.text(),
            "unauthorized\n",
            "{case}: one generic answer whatever failed"
        );
    }
    // Past any pub/sub delay a revocation would have.
    tokio::time::sleep(Duration::from_millis(100)).await;
    deployment
        .assert_served(STORE_HOST, jwt, &format!("after: {case}"))
        .await;
}

#[tokio::test]
async fn forged_or_unauthenticated_webhooks_revoke_nothing() {
    let deployment = Deployment::memory(&events_all()).await;
    let (_, stolen) = deployment.session(USER, PASSWORD).await;
    let bearer = format!("Bearer {WEBHOOK_SECRET}");
    let body = revoke_user_event(&event_id(), SUB);
    let good = hs256_signature(SIGNING_SECRET.as_bytes(), body.as_bytes());

    // The signature's bytes changed (its last character flipped).
    let mut forged = good.clone();
    let last = forged.pop().expect("a signature");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_webhook_changes_nothing(
        &deployment,
        &body,
        &[
            ("x-fusionauth-signature-jwt", forged.as_str()),
            ("authorization", bearer.as_str()),
        ],
        401,
        &stolen,
        "forged signature",
    )
    .await;

    // A genuine signature of another body: the body changed after signing.
    let innocent = revoke_user_event(&event_id(), "user-nobody");
    let signed_other = hs256_signature(SIGNING_SECRET.as_bytes(), innocent.as_bytes());
    assert_webhook_changes_nothing(
        &deployment,
        &body,
        &[
            ("x-fusionauth-signature-jwt", signed_other.as_str()),
            ("authorization", bearer.as_str()),
        ],
        401,
        &stolen,
        "body changed after signing",
    )
    .await;
    // The same body with one more space is another body too.
    let spaced = format!("{body} ");
    assert_webhook_changes_nothing(
        &deployment,
        &spaced,
        &[
            ("x-fusionauth-signature-jwt", good.as_str()),
            ("authorization", bearer.as_str()),
        ],
        401,
        &stolen,
        "whitespace added after signing",
    )
    .await;

    // Signed by keys the gateway does not trust: another HMAC key, the
    // IdP's access-token HMAC secret, an RSA key the IdP does not publish
    // (under an unknown kid, and under the IdP's own kid).
    let other_hmac = hs256_signature(b"another hmac key, also 32 bytes long", body.as_bytes());
    let idp_hmac = hs256_signature(crate::support::idp::HMAC_SECRET, body.as_bytes());
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let stranger = EncodingKey::from_rsa_pem(stranger.serialize_pem().as_bytes()).expect("key");
    let digest_claims = json!({ "request_body_sha256": body_digest(body.as_bytes()) });
    let rsa = |kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &digest_claims, &stranger).expect("sign")
    };
    let unknown_kid = rsa("not-published");
    let idp_kid = rsa(&deployment.idp().current_kid());
    for (signature, case) in [
        (&other_hmac, "HS256 with another key"),
        (&idp_hmac, "HS256 with the IdP's token secret"),
        (&unknown_kid, "RS256 with an unpublished key"),
        (&idp_kid, "RS256 with another key under the IdP's kid"),
    ] {
        assert_webhook_changes_nothing(
            &deployment,
            &body,
            &[
                ("x-fusionauth-signature-jwt", signature.as_str()),
                ("authorization", bearer.as_str()),
            ],
            401,
            &stolen,
            case,
        )
        .await;
    }

    // A signature without its digest claim, a missing signature.
    let no_digest = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": "webhook" }),
        &EncodingKey::from_secret(SIGNING_SECRET.as_bytes()),
    )
    .expect("sign");
    assert_webhook_changes_nothing(
        &deployment,
        &body,
        &[
            ("x-fusionauth-signature-jwt", no_digest.as_str()),
            ("authorization", bearer.as_str()),
        ],
        401,
        &stolen,
        "signature without request_body_sha256",
    )
    .await;
    assert_webhook_changes_nothing(
        &deployment,
        &body,
        &[("authorization", bearer.as_str())],
        401,
        &stolen,
        "no signature",
    )
    .await;

    // A good signature, but the shared secret missing or wrong.
    assert_webhook_changes_nothing(
        &deployment,
        &body,
        &[("x-fusionauth-signature-jwt", good.as_str())],
        401,
        &stolen,
        "no shared secret",
    )
    .await;
    for (authorization, case) in [
        (format!("Bearer {WEBHOOK_SECRET}x"), "wrong shared secret"),
        (
            format!("Bearer {SIGNING_SECRET}"),
            "the signing key as the secret",
        ),
        (
            format!("Basic {WEBHOOK_SECRET}"),
            "the secret in another scheme",
        ),
    ] {
        assert_webhook_changes_nothing(
            &deployment,
            &body,
            &[
                ("x-fusionauth-signature-jwt", good.as_str()),
                ("authorization", authorization.as_str()),
            ],
            401,
            &stolen,
            case,
        )
        .await;
    }

    // An event type the gateway does not act on, genuinely signed: 200,
    // nothing revoked (even though it names the user).
    let unknown = json!({ "event": {
        "type": "user.login.success",
        "id": event_id(),
        "createInstant": now_ms(),
        "userId": SUB,
        "user": { "id": SUB },
        "applicationId": "store",
    }})
    .to_string();
    let signed = hs256_signature(SIGNING_SECRET.as_bytes(), unknown.as_bytes());
    assert_webhook_changes_nothing(
        &deployment,
        &unknown,
        &[
            ("x-fusionauth-signature-jwt", signed.as_str()),
            ("authorization", bearer.as_str()),
        ],
        200,
        &stolen,
        "unknown event type",
    )
    .await;

    // The genuine request, for contrast: it revokes.
    let reply = deployment
        .post_webhook(
            0,
            &body,
            &[
                ("x-fusionauth-signature-jwt", good.as_str()),
                ("authorization", bearer.as_str()),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    deployment
        .assert_refused_within_bound(STORE_HOST, &stolen, Instant::now(), "genuine webhook")
        .await;
}

#[tokio::test]
async fn a_webhook_signed_by_the_idps_published_key_is_accepted() {
    let deployment = Deployment::memory(&events_all()).await;
    let (_, stolen) = deployment.session(USER, PASSWORD).await;
    let body = revoke_user_event(&event_id(), SUB);
    let signature = deployment
        .idp()
        .sign_claims(&json!({ "request_body_sha256": body_digest(body.as_bytes()) }));
    let bearer = format!("Bearer {WEBHOOK_SECRET}");
    let reply = deployment
        .post_webhook(
            0,
            &body,
            &[
                ("x-fusionauth-signature-jwt", signature.as_str()),
                ("authorization", bearer.as_str()),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    deployment
        .assert_refused_within_bound(STORE_HOST, &stolen, Instant::now(), "RS256 webhook")
        .await;
}

/// A delivery repeated with the same `event.id` changes nothing: neither
/// the same body again nor another body under that id (FusionAuth retries
/// with the same id; a captured request replayed carries it too).
async fn a_repeated_event_id_changes_nothing(deployment: &Deployment) {
    let (_, stolen) = deployment.session(USER, PASSWORD).await;
    let id = event_id();
    let first = revoke_user_event(&id, SUB);
    let revoked_in = now();
    let reply = deployment.webhook(0, &first).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    deployment
        .assert_refused_within_bound(STORE_HOST, &stolen, Instant::now(), "event A")
        .await;

    sleep_past_second(revoked_in).await;
    let (_, fresh) = deployment.session(USER, PASSWORD).await;
    deployment
        .assert_served(STORE_HOST, &fresh, "logged in again")
        .await;
    let last = deployment.addrs.len() - 1;
    // The same delivery again, on another replica.
    let reply = deployment.webhook(last, &first).await;
    assert_eq!(reply.status, 200, "redelivery: {}", reply.text());
    // The same id with a later createInstant: had it been acted on, it
    // would refuse the new session.
    let later = revoke_user_event_at(&id, SUB, now_ms());
    let reply = deployment.webhook(0, &later).await;
    assert_eq!(reply.status, 200, "same id, new body: {}", reply.text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    deployment
        .assert_served(STORE_HOST, &fresh, "after the repeated event id")
        .await;
    // A new id with the same content does revoke: the id made the
    // difference.
    let reply = deployment
        .webhook(0, &revoke_user_event(&event_id(), SUB))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    deployment
        .assert_refused_within_bound(STORE_HOST, &fresh, Instant::now(), "a new event id")
        .await;
}

#[tokio::test]
async fn memory_a_repeated_event_id_changes_nothing() {
    let deployment = Deployment::memory(&events_all()).await;
    a_repeated_event_id_changes_nothing(&deployment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_repeated_event_id_changes_nothing_on_any_replica() {
    let deployment = Deployment::redis(&events_signed()).await;
    a_repeated_event_id_changes_nothing(&deployment).await;
}

/// A logout token for the store, signed by the IdP, issued now, with
/// `changes` applied (a `null` removes a claim).
fn logout_token(idp: &TestIdp, changes: Value) -> String {
    let mut claims = json!({
        "iss": ISSUER,
        "aud": "store",
        "iat": now(),
        "jti": event_id(),
        "events": { LOGOUT_EVENT: {} },
    });
    for (name, value) in changes.as_object().expect("claims") {
        match value {
            Value::Null => {
                claims.as_object_mut().expect("claims").remove(name);
            }
            value => claims[name] = value.clone(),
        }
    }
    idp.sign_claims(&claims)
}

/// Asserts a back-channel answer: `status`, `Cache-Control: no-store`.
fn assert_backchannel(reply: &Reply, status: u16, case: &str) {
    assert_eq!(reply.status, status, "{case}: {}", reply.text());
    assert_eq!(
        reply.header("cache-control"),
        Some("no-store"),
        "{case}: {:?}",
        reply.headers
    );
}

#[tokio::test]
async fn backchannel_logout_of_a_session_ends_it_and_invalid_tokens_end_nothing() {
    let deployment = Deployment::memory(&events_all()).await;
    let (_, first) = deployment.session(USER, PASSWORD).await;
    let (_, second) = deployment.session(USER, PASSWORD).await;
    let sid = sid_of(&first);

    // Not logout tokens, or not for this app: 400, nothing revoked.
    let nonce = json!({ "sid": sid, "nonce": "n-0S6_WzA2Mj" });
    let wrong_aud = json!({ "sid": sid, "aud": "forums-of-someone-else" });
    let no_events = json!({ "sid": sid, "events": null });
    let other_event =
        json!({ "sid": sid, "events": { "http://schemas.openid.net/event/other": {} } });
    let no_jti = json!({ "sid": sid, "jti": null });
    let wrong_iss = json!({ "sid": sid, "iss": "https://elsewhere.test" });
    let too_old = json!({ "sid": sid, "iat": now() - 3600 });
    let nobody = json!({});
    for (changes, case) in [
        (nonce, "nonce present"),
        (wrong_aud, "wrong aud"),
        (no_events, "no events claim"),
        (other_event, "events without the logout member"),
        (no_jti, "no jti"),
        (wrong_iss, "wrong iss"),
        (too_old, "iat an hour ago"),
        (nobody, "neither sid nor sub"),
    ] {
        let token = logout_token(deployment.idp(), changes);
        let reply = deployment.backchannel(0, &token).await;
        assert_backchannel(&reply, 400, case);
        deployment
            .assert_served(STORE_HOST, &first, &format!("after: {case}"))
            .await;
    }
    // Signed by someone else (an HS256 token with a guessed key) and a form
    // without a token.
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "iss": ISSUER, "aud": "store", "iat": now(), "jti": event_id(),
                 "events": { LOGOUT_EVENT: {} }, "sid": sid }),
        &EncodingKey::from_secret(b"guessed key guessed key guessed!"),
    )
    .expect("sign");
    assert_backchannel(
        &deployment.backchannel(0, forged.as_str()).await,
        400,
        "forged",
    );
    let reply = Client::new(deployment.admins[0])
        .send(
            Method::POST,
            "admin",
            BACKCHANNEL_PATH,
            &[("content-type", "application/x-www-form-urlencoded")],
            "token=x",
        )
        .await;
    assert_backchannel(&reply, 400, "no logout_token");
    deployment
        .assert_served(STORE_HOST, &first, "after the invalid tokens")
        .await;

    // A valid one for the first session: 200, that session ends, the other
    // goes on.
    let jti = event_id();
    let token = logout_token(deployment.idp(), json!({ "sid": sid, "jti": jti }));
    assert_backchannel(&deployment.backchannel(0, &token).await, 200, "valid");
    deployment
        .assert_refused_within_bound(STORE_HOST, &first, Instant::now(), "back-channel sid")
        .await;
    deployment
        .assert_served(STORE_HOST, &second, "the user's other session")
        .await;

    // Its jti again, now naming the other session: acknowledged (200, as
    // the endpoint answers a repeated delivery) and ignored.
    let reused = logout_token(
        deployment.idp(),
        json!({ "sid": sid_of(&second), "jti": jti }),
    );
    assert_backchannel(&deployment.backchannel(0, &reused).await, 200, "reused jti");
    tokio::time::sleep(Duration::from_millis(100)).await;
    deployment
        .assert_served(STORE_HOST, &second, "after the reused jti")
        .await;
}

#[tokio::test]
async fn backchannel_logout_of_a_subject_ends_its_sessions_of_that_app_only() {
    let deployment = Deployment::memory(&events_all()).await;
    let (_, first) = deployment.session(USER, PASSWORD).await;
    let (_, second) = deployment.session(USER, PASSWORD).await;
    let (_, forums) = deployment.session_on(FORUMS_HOST, USER, PASSWORD).await;
    let (_, other) = deployment.session(OTHER_USER, OTHER_PASSWORD).await;

    let token = logout_token(deployment.idp(), json!({ "sub": SUB }));
    assert_backchannel(&deployment.backchannel(0, &token).await, 200, "sub only");
    let since = Instant::now();
    for jwt in [&first, &second] {
        deployment
            .assert_refused_within_bound(STORE_HOST, jwt, since, "back-channel sub")
            .await;
    }
    deployment
        .assert_served(FORUMS_HOST, &forums, "the user's forums session")
        .await;
    deployment
        .assert_served(STORE_HOST, &other, "another user's session")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_backchannel_jti_is_used_once_across_replicas() {
    let deployment = Deployment::redis(&format!("{}backchannel = true\n", events_signed())).await;
    let (_, first) = deployment.session(USER, PASSWORD).await;
    let (_, second) = deployment.session(USER, PASSWORD).await;
    let jti = event_id();
    let token = logout_token(
        deployment.idp(),
        json!({ "sid": sid_of(&first), "jti": jti }),
    );
    assert_backchannel(&deployment.backchannel(0, &token).await, 200, "valid");
    deployment
        .assert_refused_within_bound(STORE_HOST, &first, Instant::now(), "back-channel")
        .await;
    let reused = logout_token(
        deployment.idp(),
        json!({ "sid": sid_of(&second), "jti": jti }),
    );
    for i in 1..REPLICAS {
        assert_backchannel(&deployment.backchannel(i, &reused).await, 200, "reused jti");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    deployment
        .assert_served(STORE_HOST, &second, "after the reused jti")
        .await;
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_a_well_formed_request() {
    let deployment = Deployment::memory(&events_all()).await;
    let (_, stolen) = deployment.session(USER, PASSWORD).await;
    let body = json!({ "user": SUB }).to_string();
    for (token, case) in [
        (None, "no token"),
        (Some("admin-token-for-the-tests-012345678"), "wrong token"),
        (Some(WEBHOOK_SECRET), "the webhook's secret"),
    ] {
        let reply = deployment.admin_revoke(0, token, &body).await;
        assert_eq!(reply.status, 401, "{case}: {}", reply.text());
        deployment
            .assert_served(STORE_HOST, &stolen, &format!("after: {case}"))
            .await;
    }
    for bad in [
        "not json",
        "{}",
        "[]",
        r#"{"user": ""}"#,
        r#"{"user": 7}"#,
        r#"{"session": "sid-1"}"#,
        r#"{"app": "no-such-app"}"#,
        r#"{"user": "user-richard", "app": "no-such-app"}"#,
        r#"{"user": "user-richard", "session": "sid-1", "app": "store"}"#,
        r#"{"user": "user-richard", "admin": true}"#,
        "{\"user\": \"user\\nrichard\"}",
    ] {
        let reply = deployment.admin_revoke(0, Some(ADMIN_TOKEN), bad).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        deployment
            .assert_served(STORE_HOST, &stolen, &format!("after: {bad}"))
            .await;
    }
    // GET is not a revocation.
    let reply = Client::new(deployment.admins[0])
        .get_with(
            "admin",
            "/admin/revoke",
            &[("authorization", format!("Bearer {ADMIN_TOKEN}").as_str())],
        )
        .await;
    assert_eq!(reply.status, 405, "{}", reply.text());
    deployment
        .assert_served(STORE_HOST, &stolen, "after the GET")
        .await;
}

#[tokio::test]
async fn the_admin_api_revokes_a_user_in_every_app() {
    let deployment = Deployment::memory(&events_all()).await;
    let (_, store) = deployment.session(USER, PASSWORD).await;
    let (_, forums) = deployment.session_on(FORUMS_HOST, USER, PASSWORD).await;
    let (_, other) = deployment.session(OTHER_USER, OTHER_PASSWORD).await;
    let reply = deployment
        .admin_revoke(0, Some(ADMIN_TOKEN), &json!({ "user": SUB }).to_string())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer: Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(answer["revoked"], true, "{answer}");
    let since = Instant::now();
    deployment
        .assert_refused_within_bound(STORE_HOST, &store, since, "user, store")
        .await;
    deployment
        .assert_refused_within_bound(FORUMS_HOST, &forums, since, "user, forums")
        .await;
    deployment
        .assert_served(STORE_HOST, &other, "another user")
        .await;
}

#[tokio::test]
async fn the_admin_api_revokes_one_session() {
    let deployment = Deployment::memory(&events_all()).await;
    let (_, first) = deployment.session(USER, PASSWORD).await;
    let (_, second) = deployment.session(USER, PASSWORD).await;
    let body = json!({ "session": sid_of(&first), "app": "store" }).to_string();
    let reply = deployment.admin_revoke(0, Some(ADMIN_TOKEN), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    deployment
        .assert_refused_within_bound(STORE_HOST, &first, Instant::now(), "session")
        .await;
    deployment
        .assert_served(STORE_HOST, &second, "the user's other session")
        .await;
}

#[tokio::test]
async fn the_admin_api_revokes_every_session_of_an_app_and_no_other_apps() {
    let deployment = Deployment::memory(&events_all()).await;
    let (_, richard) = deployment.session(USER, PASSWORD).await;
    let (_, mallory) = deployment.session(OTHER_USER, OTHER_PASSWORD).await;
    let (_, forums) = deployment.session_on(FORUMS_HOST, USER, PASSWORD).await;
    let (_, forums_other) = deployment
        .session_on(FORUMS_HOST, OTHER_USER, OTHER_PASSWORD)
        .await;
    let revoked_in = now();
    let reply = deployment
        .admin_revoke(0, Some(ADMIN_TOKEN), &json!({ "app": "store" }).to_string())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let since = Instant::now();
    for jwt in [&richard, &mallory] {
        deployment
            .assert_refused_within_bound(STORE_HOST, jwt, since, "app store")
            .await;
    }
    for jwt in [&forums, &forums_other] {
        deployment
            .assert_served(FORUMS_HOST, jwt, "the forums app")
            .await;
    }
    // A login to the store after the revocation is served.
    sleep_past_second(revoked_in).await;
    let (_, fresh) = deployment.session(OTHER_USER, OTHER_PASSWORD).await;
    deployment
        .assert_served(STORE_HOST, &fresh, "a store login after the revocation")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_an_admin_revocation_on_one_replica_reaches_the_others() {
    let deployment = Deployment::redis(&format!(
        "{}admin_token = {ADMIN_TOKEN:?}\n",
        events_signed()
    ))
    .await;
    let (_, first) = deployment.session(THIRD_USER, THIRD_PASSWORD).await;
    let (_, second) = deployment.session(THIRD_USER, THIRD_PASSWORD).await;
    let body = json!({ "session": sid_of(&first), "app": "store" }).to_string();
    let reply = deployment.admin_revoke(1, Some(ADMIN_TOKEN), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    deployment
        .assert_refused_within_bound(STORE_HOST, &first, Instant::now(), "session")
        .await;
    deployment
        .assert_served(STORE_HOST, &second, "the user's other session")
        .await;
    let reply = deployment
        .admin_revoke(
            2,
            Some(ADMIN_TOKEN),
            &json!({ "user": THIRD_SUB }).to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    deployment
        .assert_refused_within_bound(STORE_HOST, &second, Instant::now(), "user")
        .await;
}

/// The demo's user `richard@example.com` at the development IdP.
const DEV_USER: &str = "richard@example.com";
const DEV_USER_ID: &str = "00000000-0000-0000-0000-000000000001";
/// The demo's other user.
const DEV_OTHER_USER: &str = "monica@example.com";

/// The development IdP (the demo's users, webhooks to the gateway's admin
/// listener, signed with [`SIGNING_SECRET`]) and one gateway in front of
/// the store, configured for it as the demo is (`kind = "fusionauth"`,
/// discovery). Returns the deployment, the IdP's address and what stops it.
async fn with_dev_idp() -> (Deployment, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    use gateway_examples::idp::{self as dev, DevIdpConfig, Directory, Webhook};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the development IdP");
    let idp_addr = listener.local_addr().expect("addr");
    let issuer = format!("http://{idp_addr}");
    let store = RecordingUpstream::start("store").await;
    let forums = RecordingUpstream::start("forums").await;
    let sid = format!("claims = {{ {SID_HEADER:?} = \"sid\" }}");
    let gateway = TestGateway::new()
        .idp_config(&format!(
            "kind = \"fusionauth\"\nissuer = {issuer:?}\napi_key = {:?}\n\
             algorithms = [\"RS256\"]\nleeway = \"0s\"",
            dev::DEFAULT_API_KEY
        ))
        .session_config(&format!(
            "cookie_key = {:?}",
            crate::support::gateway::COOKIE_KEY
        ))
        .login_config("min_failure_time = \"50ms\"")
        .app(store_app(store.addr).headers(&sid))
        .section(&events_signed())
        .start()
        .await;

    let mut config = DevIdpConfig::new(Directory::demo().expect("the demo users"));
    config.issuer = issuer;
    config.webhook = Some(Webhook {
        url: format!("http://{}{WEBHOOK_PATH}", gateway.admin),
        signing_secret: SIGNING_SECRET.to_owned(),
        bearer: None,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dev::serve(listener, config, async {
        let _ = stopped.await;
    }));
    assert!(
        gateway.wait_ready().await,
        "the gateway did not get ready with the development IdP"
    );
    let deployment = Deployment {
        idp: None,
        addrs: vec![gateway.addr],
        admins: vec![gateway.admin],
        bearer: false,
        gateways: Gateways::Memory { _gateway: gateway },
        store,
        forums,
    };
    (deployment, idp_addr, stop)
}

/// `DELETE /api/jwt/refresh{path_and_query}` at the development IdP with
/// its API key.
async fn dev_idp_delete(idp: SocketAddr, path_and_query: &str) -> Reply {
    Client::new(idp)
        .send(
            Method::DELETE,
            &idp.to_string(),
            &format!("/api/jwt/refresh{path_and_query}"),
            &[("authorization", gateway_examples::idp::DEFAULT_API_KEY)],
            "",
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_user_at_the_development_idp_refuses_their_jwt_within_a_second() {
    let password = gateway_examples::idp::DEMO_PASSWORD;
    let (deployment, idp, stop) = with_dev_idp().await;
    let (victim, stolen) = deployment.session(DEV_USER, password).await;
    let (_, bystander) = deployment.session(DEV_OTHER_USER, password).await;
    deployment
        .assert_served(STORE_HOST, &stolen, "before the revocation")
        .await;

    // The administrator revokes the user's refresh tokens at the IdP (as
    // at FusionAuth); its webhook tells the gateway.
    let reply = dev_idp_delete(idp, &format!("?userId={DEV_USER_ID}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    deployment
        .assert_refused_within_bound(STORE_HOST, &stolen, Instant::now(), "revoked at the IdP")
        .await;
    // The user's next click: the login page.
    let reply = victim.get("/shopping-cart").await;
    assert_login_redirect(&reply, "the victim's next click");
    assert_session_cleared(&reply, "the victim's next click");
    deployment
        .assert_served(STORE_HOST, &bystander, "another user")
        .await;

    // One refresh token revoked by its id (the JWTs' sid): that session
    // only.
    let (_, first) = deployment.session(DEV_OTHER_USER, password).await;
    let reply = dev_idp_delete(idp, &format!("/{}", sid_of(&first))).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    deployment
        .assert_refused_within_bound(STORE_HOST, &first, Instant::now(), "one refresh token")
        .await;
    deployment
        .assert_served(STORE_HOST, &bystander, "the user's other session")
        .await;
    let _ = stop.send(());
}
