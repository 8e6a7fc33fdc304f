//! `TestIdp`: an identity provider on 127.0.0.1:0 for the protocol edge cases
//! a real IdP cannot be made to produce on demand. It speaks both dialects the
//! gateway knows (RFC 6749 token endpoint and RFC 7009 revocation; FusionAuth's
//! `/api/jwt/refresh`), signs RS256 (JWKS by `kid`) or HS256, and has knobs:
//! access token lifetime, one-time-use refresh tokens (a replay answers 400
//! and is counted), refusing every refresh, answering slowly, being down
//! (503), rotating its signing key (published in the JWKS at once, or only
//! later), padding its tokens past one cookie's size; with call counters.
//! Tests can also have it sign claims (and header fields) of their choosing,
//! and list the refresh tokens still active.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// HS256 secret used when the IdP signs with HMAC.
pub const HMAC_SECRET: &[u8] = b"test idp hmac secret, 32 bytes or more";
/// Issuer claim of every token.
pub const ISSUER: &str = "https://idp.test";
/// The FusionAuth-style API key accepted for revocation.
pub const API_KEY: &str = "test-api-key";

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
    public_pem: String,
    /// In the JWKS (a key can sign before the IdP publishes it).
    published: bool,
}

fn new_rsa_key(kid: &str) -> SigningKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let encoding =
        EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).expect("encoding key");
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    SigningKey {
        kid: kid.to_owned(),
        encoding,
        jwk,
        public_pem: pair.public_key_pem(),
        published: true,
    }
}

#[derive(Clone)]
struct RefreshRecord {
    sub: String,
    client: String,
    sid: String,
    used: bool,
    revoked: bool,
}

/// Call counters.
#[derive(Default)]
pub struct Counters {
    pub password_grants: AtomicUsize,
    pub refreshes: AtomicUsize,
    pub replays: AtomicUsize,
    pub revocations: AtomicUsize,
    pub jwks_fetches: AtomicUsize,
    /// Refreshes through FusionAuth's `POST /api/jwt/refresh` (also in `refreshes`).
    pub jwt_api_refreshes: AtomicUsize,
    /// Revocations through FusionAuth's `DELETE /api/jwt/refresh` (also in `revocations`).
    pub jwt_api_revocations: AtomicUsize,
    /// Every request, counted as it arrives (before the delay of
    /// [`TestIdp::set_delay`]): tells that a slow call is under way.
    pub received: AtomicUsize,
}

struct State {
    clients: HashMap<String, String>,
    users: HashMap<String, (String, String, Vec<String>)>,
    keys: Mutex<Vec<SigningKey>>,
    hs256: bool,
    access_ttl: AtomicU64,
    rotate: AtomicBool,
    reject_refresh: AtomicBool,
    down: AtomicBool,
    delay_ms: AtomicU64,
    extra_claim_bytes: AtomicUsize,
    refresh_tokens: Mutex<HashMap<String, RefreshRecord>>,
    next: AtomicUsize,
    counters: Counters,
}

/// A running test IdP.
pub struct TestIdp {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

/// Builder: `TestIdp::new().user(…).client(…).access_ttl(2).rotate_refresh().start().await`.
pub struct TestIdpBuilder {
    clients: HashMap<String, String>,
    users: HashMap<String, (String, String, Vec<String>)>,
    hs256: bool,
    access_ttl: u64,
    rotate: bool,
    extra_claim_bytes: usize,
}

impl TestIdp {
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> TestIdpBuilder {
        TestIdpBuilder {
            clients: HashMap::new(),
            users: HashMap::new(),
            hs256: false,
            access_ttl: 60,
            rotate: false,
            extra_claim_bytes: 0,
        }
    }

    pub fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://{}{}", self.addr, path)).expect("url")
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_reject_refresh(&self, reject: bool) {
        self.state.reject_refresh.store(reject, Ordering::SeqCst);
    }

    /// A new signing key becomes current; the old one stays published.
    pub fn rotate_key(&self) {
        let mut keys = self.state.keys.lock().expect("lock");
        let kid = format!("key-{}", keys.len() + 1);
        keys.push(new_rsa_key(&kid));
    }

    /// A new signing key becomes current without being published in the
    /// JWKS (an IdP whose key set lags behind its signer), until
    /// [`TestIdp::publish_keys`].
    pub fn rotate_key_unpublished(&self) {
        let mut keys = self.state.keys.lock().expect("lock");
        let kid = format!("key-{}", keys.len() + 1);
        let mut key = new_rsa_key(&kid);
        key.published = false;
        keys.push(key);
    }

    /// Publishes every signing key in the JWKS.
    pub fn publish_keys(&self) {
        for key in self.state.keys.lock().expect("lock").iter_mut() {
            key.published = true;
        }
    }

    /// Whether tokens are signed HS256 with [`HMAC_SECRET`] (else RS256, JWKS by `kid`).
    pub fn is_hs256(&self) -> bool {
        self.state.hs256
    }

    /// Signs `claims` exactly as given, the way the IdP signs its own tokens
    /// (current key and `kid`, or HS256): for crafting genuine tokens with
    /// chosen claims.
    pub fn sign_claims(&self, claims: &Value) -> String {
        self.state.sign_value(claims)
    }

    /// Signs `claims` like [`TestIdp::sign_claims`], with `header`'s fields
    /// merged into the JOSE header the IdP writes (`alg`, `typ`, `kid`),
    /// replacing them where named: for genuine signatures over headers a
    /// real IdP would not write (`crit`, a numeric `kid`).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        self.state.sign_with_header(header, claims)
    }

    /// The current RSA signing key's public key, PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_key_pem(&self) -> String {
        let keys = self.state.keys.lock().expect("lock");
        keys.last().expect("a key").public_pem.clone()
    }

    /// The current signing key's id.
    pub fn current_kid(&self) -> String {
        let keys = self.state.keys.lock().expect("lock");
        keys.last().expect("a key").kid.clone()
    }

    /// Refresh tokens issued and still usable (neither used nor revoked).
    pub fn active_refresh_tokens(&self) -> Vec<String> {
        let mut active: Vec<String> = self
            .state
            .refresh_tokens
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, r)| !r.used && !r.revoked)
            .map(|(t, _)| t.clone())
            .collect();
        active.sort();
        active
    }

    /// Changes the lifetime of access tokens issued from now on.
    pub fn set_access_ttl(&self, seconds: u64) {
        self.state.access_ttl.store(seconds, Ordering::SeqCst);
    }

    /// Whether this refresh token is still usable.
    pub fn refresh_token_active(&self, token: &str) -> bool {
        self.state
            .refresh_tokens
            .lock()
            .expect("lock")
            .get(token)
            .is_some_and(|r| !r.used && !r.revoked)
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestIdpBuilder {
    pub fn client(mut self, id: &str, secret: &str) -> Self {
        self.clients.insert(id.into(), secret.into());
        self
    }

    pub fn user(mut self, username: &str, password: &str, sub: &str, roles: &[&str]) -> Self {
        self.users.insert(
            username.into(),
            (
                password.into(),
                sub.into(),
                roles.iter().map(|r| r.to_string()).collect(),
            ),
        );
        self
    }

    pub fn access_ttl(mut self, seconds: u64) -> Self {
        self.access_ttl = seconds;
        self
    }

    pub fn rotate_refresh(mut self) -> Self {
        self.rotate = true;
        self
    }

    pub fn hs256(mut self) -> Self {
        self.hs256 = true;
        self
    }

    /// Every access token carries a `pad` claim of `bytes` characters (to
    /// test JWTs too big for one cookie).
    pub fn extra_claim_bytes(mut self, bytes: usize) -> Self {
        self.extra_claim_bytes = bytes;
        self
    }

    pub async fn start(self) -> TestIdp {
        let state = Arc::new(State {
            clients: self.clients,
            users: self.users,
            keys: Mutex::new(vec![new_rsa_key("key-1")]),
            hs256: self.hs256,
            access_ttl: AtomicU64::new(self.access_ttl),
            rotate: AtomicBool::new(self.rotate),
            reject_refresh: AtomicBool::new(false),
            down: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            extra_claim_bytes: AtomicUsize::new(self.extra_claim_bytes),
            refresh_tokens: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
            counters: Counters::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind idp");
        let addr = listener.local_addr().expect("addr");
        let served = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        TestIdp { addr, state, task }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn invalid_grant() -> Response<Full<Bytes>> {
    reply(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}))
}

impl State {
    fn sign(&self, sub: &str, client: &str, sid: &str, roles: &[String], username: &str) -> String {
        let iat = now();
        let mut claims = json!({
            "iss": ISSUER, "aud": client, "sub": sub, "sid": sid,
            "iat": iat, "exp": iat + self.access_ttl.load(Ordering::SeqCst),
            "roles": roles, "preferred_username": username, "email": format!("{username}@example.com"),
        });
        let pad = self.extra_claim_bytes.load(Ordering::SeqCst);
        if pad > 0 {
            claims["pad"] = json!("x".repeat(pad));
        }
        self.sign_value(&claims)
    }

    fn sign_value(&self, claims: &Value) -> String {
        if self.hs256 {
            let key = EncodingKey::from_secret(HMAC_SECRET);
            return jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
                .expect("sign");
        }
        let keys = self.keys.lock().expect("lock");
        let current = keys.last().expect("a key");
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(current.kid.clone());
        jsonwebtoken::encode(&header, claims, &current.encoding).expect("sign")
    }

    fn sign_with_header(&self, extra: &Value, claims: &Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let keys = self.keys.lock().expect("lock");
        let current = keys.last().expect("a key");
        let (alg, key, mut header) = if self.hs256 {
            (
                Algorithm::HS256,
                EncodingKey::from_secret(HMAC_SECRET),
                json!({"alg": "HS256", "typ": "JWT"}),
            )
        } else {
            (
                Algorithm::RS256,
                current.encoding.clone(),
                json!({"alg": "RS256", "typ": "JWT", "kid": current.kid}),
            )
        };
        for (k, v) in extra.as_object().expect("header fields") {
            header[k] = v.clone();
        }
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg).expect("sign");
        format!("{message}.{signature}")
    }

    fn new_refresh(&self, sub: &str, client: &str, sid: &str) -> String {
        let token = format!("rt-{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.refresh_tokens.lock().expect("lock").insert(
            token.clone(),
            RefreshRecord {
                sub: sub.into(),
                client: client.into(),
                sid: sid.into(),
                used: false,
                revoked: false,
            },
        );
        token
    }

    /// Validates a refresh token and returns (sub, sid, next refresh token).
    fn use_refresh(
        &self,
        token: &str,
        client: Option<&str>,
    ) -> Result<(String, String, String, String), ()> {
        self.counters.refreshes.fetch_add(1, Ordering::SeqCst);
        if self.reject_refresh.load(Ordering::SeqCst) {
            return Err(());
        }
        let mut tokens = self.refresh_tokens.lock().expect("lock");
        let record = tokens.get_mut(token).ok_or(())?;
        if record.revoked || client.is_some_and(|c| c != record.client) {
            return Err(());
        }
        if record.used {
            self.counters.replays.fetch_add(1, Ordering::SeqCst);
            return Err(());
        }
        let record = record.clone();
        let next = if self.rotate.load(Ordering::SeqCst) {
            if let Some(r) = tokens.get_mut(token) {
                r.used = true;
            }
            drop(tokens);
            self.new_refresh(&record.sub, &record.client, &record.sid)
        } else {
            token.to_owned()
        };
        Ok((record.sub, record.sid, record.client, next))
    }

    fn username_of(&self, sub: &str) -> (String, Vec<String>) {
        self.users
            .iter()
            .find(|(_, (_, s, _))| s == sub)
            .map(|(name, (_, _, roles))| (name.clone(), roles.clone()))
            .unwrap_or_default()
    }

    /// The authenticated client id (Basic or form), if its secret matches.
    fn client_of(&self, req_auth: Option<&str>, form: &HashMap<String, String>) -> Option<String> {
        let (id, secret) = match req_auth.and_then(|a| a.strip_prefix("Basic ")) {
            Some(b64) => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                let text = String::from_utf8(raw).ok()?;
                let (id, secret) = text.split_once(':')?;
                let decode = |s: &str| {
                    url::form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                };
                (decode(id)?, decode(secret)?)
            }
            None => (
                form.get("client_id")?.clone(),
                form.get("client_secret")?.clone(),
            ),
        };
        (self.clients.get(&id) == Some(&secret)).then_some(id)
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    state.counters.received.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if state.down.load(Ordering::SeqCst) {
        return reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "down"}));
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    match (method, path.as_str()) {
        (Method::GET, "/.well-known/jwks.json") => {
            state.counters.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let keys = state.keys.lock().expect("lock");
            let set = JwkSet {
                keys: keys
                    .iter()
                    .filter(|k| k.published)
                    .map(|k| k.jwk.clone())
                    .collect(),
            };
            reply(StatusCode::OK, serde_json::to_value(set).expect("jwks"))
        }
        (Method::POST, "/oauth2/token") => {
            let Some(client) = state.client_of(auth.as_deref(), &form) else {
                return reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
            };
            match form.get("grant_type").map(String::as_str) {
                Some("password") => {
                    state
                        .counters
                        .password_grants
                        .fetch_add(1, Ordering::SeqCst);
                    let (Some(username), Some(password)) =
                        (form.get("username"), form.get("password"))
                    else {
                        return invalid_grant();
                    };
                    match state.users.get(username) {
                        Some((pw, sub, roles)) if pw == password => {
                            let sid = format!("sid-{}", state.next.fetch_add(1, Ordering::SeqCst));
                            let refresh = state.new_refresh(sub, &client, &sid);
                            let access = state.sign(sub, &client, &sid, roles, username);
                            reply(
                                StatusCode::OK,
                                json!({"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": state.access_ttl.load(Ordering::SeqCst)}),
                            )
                        }
                        _ => invalid_grant(),
                    }
                }
                Some("refresh_token") => {
                    let token = form.get("refresh_token").cloned().unwrap_or_default();
                    match state.use_refresh(&token, Some(&client)) {
                        Ok((sub, sid, client, next)) => {
                            let (username, roles) = state.username_of(&sub);
                            let access = state.sign(&sub, &client, &sid, &roles, &username);
                            let mut body = json!({"access_token": access, "token_type": "Bearer"});
                            if state.rotate.load(Ordering::SeqCst) {
                                body["refresh_token"] = json!(next);
                            }
                            reply(StatusCode::OK, body)
                        }
                        Err(()) => invalid_grant(),
                    }
                }
                _ => reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "unsupported_grant_type"}),
                ),
            }
        }
        (Method::POST, "/api/jwt/refresh") => {
            state
                .counters
                .jwt_api_refreshes
                .fetch_add(1, Ordering::SeqCst);
            let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let token = parsed["refreshToken"].as_str().unwrap_or("").to_owned();
            match state.use_refresh(&token, None) {
                Ok((sub, sid, client, next)) => {
                    let (username, roles) = state.username_of(&sub);
                    let access = state.sign(&sub, &client, &sid, &roles, &username);
                    reply(
                        StatusCode::OK,
                        json!({"token": access, "refreshToken": next, "refreshTokenId": sid}),
                    )
                }
                Err(()) => reply(
                    StatusCode::BAD_REQUEST,
                    json!({"generalErrors": [{"code": "[RefreshTokenInvalid]"}]}),
                ),
            }
        }
        (Method::POST, "/oauth2/revoke") => {
            if state.client_of(auth.as_deref(), &form).is_none() {
                return reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
            }
            revoke(state, form.get("token").map(String::as_str).unwrap_or(""));
            reply(StatusCode::OK, json!({}))
        }
        (Method::DELETE, "/api/jwt/refresh") => {
            if auth.as_deref() != Some(API_KEY) {
                return reply(StatusCode::UNAUTHORIZED, json!({}));
            }
            let from_query: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let token = form
                .get("token")
                .or_else(|| from_query.get("token"))
                .cloned()
                .unwrap_or_default();
            state
                .counters
                .jwt_api_revocations
                .fetch_add(1, Ordering::SeqCst);
            revoke(state, &token);
            reply(StatusCode::OK, json!({}))
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
    }
}

fn revoke(state: &State, token: &str) {
    state.counters.revocations.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = state.refresh_tokens.lock().expect("lock").get_mut(token) {
        r.revoked = true;
    }
}
