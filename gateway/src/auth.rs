//! The login workflow's runtime state: per IdP (client, keys) and per app
//! (policy, cookies, verified-token cache, single-flight refreshes).
//!
//! Built once from the validated config. [`IdpState`] owns an IdP's HTTP
//! client and its signing keys: endpoints come from the config or from OIDC
//! discovery, keys from the JWKS (fetched at start-up in the background, and
//! again, rate-limited, when a token names a key id not seen yet, so key
//! rotation at the IdP needs no restart). [`AppAuth`] turns a token into an
//! [`Identity`] once and caches it until the token expires, so the steady
//! state of an authenticated request is one hash lookup.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue};
use quick_cache::sync::Cache;
use tokio_util::sync::CancellationToken;

use crate::config::{Audience, AuthConfig, IdpSettings, LoginConfig, SessionConfig};
use crate::cookies::{CookieSpec, Sealer};
use crate::csrf::Csrf;
use crate::idp::{self, Endpoints, Idp, Kind};
use crate::login_page::LoginPage;
use crate::metrics::{self, AuthMetrics};
use crate::refresh::RefreshResult;
use crate::single_flight::SingleFlight;
use crate::throttle::Throttle;
use crate::verify::{self, Claims, Keys, Policy, Verified, VerifyError};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who a verified token says the user is, with the upstream headers
/// computed once per token.
pub struct Identity {
    /// The token itself (the cache is keyed by its signature; a hit must
    /// be this very token).
    token: Box<str>,
    /// `exp`.
    pub exp: u64,
    /// `sub`.
    pub sub: Option<String>,
    /// `sid`, where the IdP sets one.
    pub sid: Option<String>,
    /// The roles claim.
    pub roles: Vec<String>,
    /// Identity headers for the upstream, in order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the token, nor the headers (one may carry the token).
        f.debug_struct("Identity")
            .field("sub", &self.sub)
            .field("sid", &self.sid)
            .field("exp", &self.exp)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// A token that passed every check, and whether it is still in time.
#[derive(Debug, Clone)]
pub enum Checked {
    /// Valid now.
    Valid(Arc<Identity>),
    /// Genuine, but past `exp` (plus leeway).
    Expired(Arc<Identity>),
}

/// An IdP as the gateway uses it: client and keys.
pub struct IdpState {
    settings: IdpSettings,
    client: ArcSwapOption<Idp>,
    keys: ArcSwap<Keys>,
    /// Keys (and endpoints) loaded: `/readyz` waits for this.
    ready: AtomicBool,
    /// When a token's unknown `kid` last caused a JWKS fetch.
    refetched: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for IdpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpState")
            .field("issuer", &self.settings.issuer)
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Whether tokens may be signed with published keys: with HMAC algorithms
/// only, a JWKS (even one that discovery names) is never fetched. Glewlwyd in
/// HS256 mode answers 403 there.
fn needs_jwks(settings: &IdpSettings) -> bool {
    use jsonwebtoken::Algorithm::{HS256, HS384, HS512};
    settings
        .algorithms
        .iter()
        .any(|a| !matches!(a, HS256 | HS384 | HS512))
}

fn hmac_keys(settings: &IdpSettings) -> Keys {
    Keys::new(
        None,
        settings.hmac_secret.as_ref().map(|s| s.expose().as_bytes()),
    )
}

impl IdpState {
    fn new(settings: IdpSettings) -> IdpState {
        let client = (!settings.discovery)
            .then(|| settings.token_endpoint.clone())
            .flatten()
            .and_then(|token| {
                build_client(
                    &settings,
                    idp::Discovered {
                        token_endpoint: token,
                        jwks_uri: settings.jwks_uri.clone(),
                        revocation_endpoint: settings.revocation_endpoint.clone(),
                    },
                )
            });
        let ready = client.is_some() && !needs_jwks(&settings);
        IdpState {
            keys: ArcSwap::from_pointee(hmac_keys(&settings)),
            client: ArcSwapOption::new(client.map(Arc::new)),
            ready: AtomicBool::new(ready),
            refetched: tokio::sync::Mutex::new(None),
            settings,
        }
    }

    /// The settings it was built from.
    pub fn settings(&self) -> &IdpSettings {
        &self.settings
    }

    /// Endpoints known and keys loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The IdP client, once its endpoints are known.
    pub fn client(&self) -> Option<Arc<Idp>> {
        self.client.load_full()
    }

    /// Discovers endpoints (if configured) and loads the JWKS, retrying
    /// with backoff until both are done or `stop` fires.
    pub async fn load(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let wait = |backoff: &mut Duration| {
            let d = *backoff;
            *backoff = (*backoff * 2).min(Duration::from_secs(10));
            d
        };
        while self.client.load().is_none() {
            let Some(issuer) = self.settings.issuer.as_deref() else {
                return;
            };
            match idp::discover(issuer, self.settings.timeout).await {
                Ok(found) => {
                    let found = idp::Discovered {
                        token_endpoint: self
                            .settings
                            .token_endpoint
                            .clone()
                            .unwrap_or(found.token_endpoint),
                        jwks_uri: self.settings.jwks_uri.clone().or(found.jwks_uri),
                        revocation_endpoint: self
                            .settings
                            .revocation_endpoint
                            .clone()
                            .or(found.revocation_endpoint),
                    };
                    match build_client(&self.settings, found) {
                        Some(client) => self.client.store(Some(Arc::new(client))),
                        None => return,
                    }
                    tracing::info!(issuer, "IdP endpoints discovered");
                }
                Err(e) => {
                    tracing::warn!(issuer, error = %e, "OIDC discovery failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait(&mut backoff)) => continue,
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
        let Some(client) = self.client() else { return };
        if client.endpoints().jwks.is_none() || !needs_jwks(&self.settings) {
            self.ready.store(true, Ordering::Release);
            return;
        }
        loop {
            match self.fetch(&client, "startup").await {
                Ok(()) => {
                    self.ready.store(true, Ordering::Release);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS fetch failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait(&mut backoff)) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    async fn fetch(&self, client: &Idp, reason: &'static str) -> Result<(), idp::IdpError> {
        let result = client.fetch_jwks().await;
        metrics::jwks_fetch(reason, result.is_ok());
        let set = result?;
        let secret = self.settings.hmac_secret.as_ref();
        let keys = Keys::new(Some(&set), secret.map(|s| s.expose().as_bytes()));
        tracing::info!(keys = ?keys, reason, "JWKS loaded");
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// A token named `kid`, which the current keys lack: fetch the JWKS
    /// again, unless the last such fetch was under the configured interval
    /// ago. Concurrent callers share one fetch. True if `kid` is now known.
    async fn refetch_for(&self, kid: &str) -> bool {
        let mut last = self.refetched.lock().await;
        if self.keys.load().has_kid(kid) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < self.settings.jwks_refetch_interval) {
            return false;
        }
        let Some(client) = self.client() else {
            return false;
        };
        *last = Some(Instant::now());
        match self.fetch(&client, "unknown_kid").await {
            Ok(()) => {
                self.ready.store(true, Ordering::Release);
                self.keys.load().has_kid(kid)
            }
            Err(e) => {
                tracing::warn!(error = %e, kid, "JWKS refetch failed");
                false
            }
        }
    }
}

fn build_client(settings: &IdpSettings, found: idp::Discovered) -> Option<Idp> {
    let jwt_refresh = match settings.kind {
        Kind::Fusionauth => {
            let base = settings
                .api_url
                .clone()
                .unwrap_or_else(|| found.token_endpoint.clone());
            base.join("/api/jwt/refresh").ok()
        }
        Kind::Oauth2 => None,
    };
    let endpoints = Endpoints {
        kind: settings.kind,
        token: found.token_endpoint,
        jwt_refresh,
        revocation: found.revocation_endpoint,
        jwks: found.jwks_uri,
        api_key: settings.api_key.clone(),
        scope: settings.scope.clone(),
    };
    match Idp::new(endpoints, settings.timeout) {
        Ok(idp) => Some(idp),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the IdP client");
            None
        }
    }
}

/// What every app's login shares: the login throttles.
#[derive(Debug)]
pub struct LoginShared {
    /// The `[login]` settings.
    pub config: LoginConfig,
    /// Attempts per client IP.
    pub by_ip: Throttle,
    /// Attempts per app and username.
    pub by_user: Throttle,
}

impl LoginShared {
    /// Throttles sized from `[login]`.
    pub fn new(config: &LoginConfig) -> LoginShared {
        LoginShared {
            by_ip: Throttle::new(
                config.per_ip_burst,
                config.per_ip_per_minute,
                config.throttle_max_keys,
            ),
            by_user: Throttle::new(
                config.per_user_burst,
                config.per_user_per_minute,
                config.throttle_max_keys,
            ),
            config: config.clone(),
        }
    }
}

/// One app's login workflow at run time.
pub struct AppAuth {
    /// The app's name.
    pub app: String,
    /// Its `[[apps]]` login settings.
    pub config: AuthConfig,
    /// `[session]`.
    pub session: SessionConfig,
    /// Its IdP.
    pub idp: Arc<IdpState>,
    /// The token checks.
    pub policy: Policy,
    /// Seals the refresh cookie.
    pub sealer: Sealer,
    /// Signs CSRF tokens.
    pub csrf: Csrf,
    /// The CSRF cookie.
    pub csrf_cookie: CookieSpec,
    /// The login and logout pages.
    pub page: LoginPage,
    /// Shares refreshes of the same refresh token.
    pub flight: SingleFlight<RefreshResult>,
    /// Metrics handles.
    pub metrics: AuthMetrics,
    /// Wire names of the JWT, refresh and CSRF cookies.
    pub wires: [String; 3],
    /// Identity headers outside `X-Auth-Request-*` (which is stripped
    /// wholesale), e.g. `Authorization` when it carries the token.
    pub extra_identity_headers: Vec<HeaderName>,
    cache: Cache<u128, Arc<Identity>>,
}

impl std::fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAuth")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// Per-app login state (`None` for apps without login), and the IdPs they use.
pub type Built = (Vec<Option<Arc<AppAuth>>>, Vec<Arc<IdpState>>);

/// Builds the per-IdP and per-app state. IdPs with identical settings are
/// shared.
pub fn build(apps: &[crate::config::AppConfig], session: &SessionConfig) -> Result<Built, String> {
    let mut idps: Vec<Arc<IdpState>> = Vec::new();
    let mut out = Vec::with_capacity(apps.len());
    for app in apps {
        let Some(auth) = &app.auth else {
            out.push(None);
            continue;
        };
        let idp = match idps.iter().find(|i| i.settings == auth.idp) {
            Some(i) => i.clone(),
            None => {
                let state = Arc::new(IdpState::new(auth.idp.clone()));
                idps.push(state.clone());
                state
            }
        };
        out.push(Some(Arc::new(AppAuth::new(&app.name, auth, session, idp)?)));
    }
    Ok((out, idps))
}

impl AppAuth {
    fn new(
        app: &str,
        config: &AuthConfig,
        session: &SessionConfig,
        idp: Arc<IdpState>,
    ) -> Result<AppAuth, String> {
        let key = session
            .cookie_key
            .as_ref()
            .ok_or_else(|| "session.cookie_key: missing".to_owned())?;
        let sealer = Sealer::new(key.expose().as_bytes()).ok_or("session.cookie_key: too short")?;
        let s = &config.idp;
        let policy = Policy {
            algorithms: s.algorithms.clone(),
            issuer: s.issuer.clone(),
            audience: match &s.audience {
                Audience::ClientId => Some(config.client.id.clone()),
                Audience::Value(v) => Some(v.clone()),
                Audience::Off => None,
            },
            client_claim: s.client_claim.clone(),
            client_id: config.client.id.clone(),
            leeway: s.leeway.as_secs(),
        };
        let page = LoginPage::new(config.login_template.as_deref())
            .map_err(|e| format!("login template of app {app}: {e}"))?;
        let csrf_cookie = CookieSpec {
            name: format!("{}_csrf", csrf_base(&config.jwt_cookie.name)),
            secure: config.jwt_cookie.secure,
            domain: None,
            max_age: CSRF_MAX_AGE,
        };
        let extra_identity_headers = config
            .headers
            .names()
            .filter(|h| !h.as_str().starts_with(crate::identity::PREFIX))
            .cloned()
            .collect();
        let wires = [
            config.jwt_cookie.wire_name(),
            config.refresh_cookie.wire_name(),
            csrf_cookie.wire_name(),
        ];
        Ok(AppAuth {
            app: app.to_owned(),
            csrf: Csrf::new(key.expose().as_bytes(), app),
            csrf_cookie,
            sealer,
            policy,
            page,
            // An IdP outage is not remembered: the next request tries again.
            flight: SingleFlight::new(|r: &RefreshResult| {
                !matches!(r, Err(crate::refresh::RefreshFailure::Unavailable))
            }),
            metrics: AuthMetrics::new(app),
            extra_identity_headers,
            wires,
            cache: Cache::new(session.cache_capacity),
            config: config.clone(),
            session: session.clone(),
            idp,
        })
    }

    /// The identity of a token verified before, if it is still valid at
    /// `now` and not due for an early refresh: the steady state, no await.
    pub fn cached_valid(&self, token: &[u8], now: u64) -> Option<Arc<Identity>> {
        let identity = self.cached(token)?;
        match self.in_time(identity, now) {
            Checked::Valid(identity) if !self.due_for_refresh(&identity, now) => {
                self.metrics.cache(true);
                Some(identity)
            }
            _ => None,
        }
    }

    /// Verifies `token` (or finds it verified in the cache) at `now`.
    pub async fn check(&self, token: &str, now: u64) -> Result<Checked, VerifyError> {
        if let Some(identity) = self.cached(token.as_bytes()) {
            self.metrics.cache(true);
            return Ok(self.in_time(identity, now));
        }
        self.metrics.cache(false);
        let keys = self.idp.keys.load_full();
        let verified = match verify::verify(token, &keys, &self.policy, now) {
            Err(VerifyError::UnknownKid(kid)) => {
                if !self.idp.refetch_for(&kid).await {
                    return Err(VerifyError::UnknownKid(kid));
                }
                let keys = self.idp.keys.load_full();
                verify::verify(token, &keys, &self.policy, now)?
            }
            other => other?,
        };
        let claims = match verified {
            Verified::Valid(c) | Verified::Expired(c) => c,
        };
        let identity = Arc::new(self.identity(token, &claims));
        self.cache
            .insert(cache_key(token.as_bytes()), identity.clone());
        Ok(self.in_time(identity, now))
    }

    /// The cache is keyed by the signature's last 16 bytes (see
    /// [`cache_key`]); the entry is used only for the very token it was
    /// verified for.
    fn cached(&self, token: &[u8]) -> Option<Arc<Identity>> {
        let identity = self.cache.get(&cache_key(token))?;
        (identity.token.as_bytes() == token).then_some(identity)
    }

    fn in_time(&self, identity: Arc<Identity>, now: u64) -> Checked {
        if now >= identity.exp.saturating_add(self.policy.leeway) {
            Checked::Expired(identity)
        } else {
            Checked::Valid(identity)
        }
    }

    /// Whether a valid token is close enough to `exp` to refresh early.
    pub fn due_for_refresh(&self, identity: &Identity, now: u64) -> bool {
        let window = self.session.refresh_before.as_secs();
        window > 0 && now.saturating_add(window) >= identity.exp
    }

    fn identity(&self, token: &str, claims: &Claims) -> Identity {
        let s = &self.config.idp;
        let h = &self.config.headers;
        let roles: Vec<String> = claims
            .list(&s.roles_claim)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut headers = Vec::new();
        let mut push = |name: &Option<HeaderName>, value: Option<String>| {
            if let (Some(name), Some(value)) = (name, value) {
                match HeaderValue::from_bytes(value.as_bytes()) {
                    Ok(v) => headers.push((name.clone(), v)),
                    Err(_) => tracing::debug!(header = %name, "claim not usable as a header value"),
                }
            }
        };
        push(&h.user, claim_text(claims, &s.identity_claim));
        push(&h.email, claim_text(claims, &s.email_claim));
        push(&h.roles, (!roles.is_empty()).then(|| roles.join(",")));
        let token_value = match &h.access_token {
            Some(name) if name == AUTHORIZATION => Some(format!("Bearer {token}")),
            Some(_) => Some(token.to_owned()),
            None => None,
        };
        push(&h.access_token, token_value);
        for (name, claim) in &h.claims {
            push(&Some(name.clone()), claim_text(claims, claim));
        }
        Identity {
            token: token.into(),
            exp: claims.time("exp").unwrap_or(0),
            sub: claims.sub().map(str::to_owned),
            sid: claims.sid().map(str::to_owned),
            roles,
            headers,
        }
    }

    /// The name a sealed value is bound to: app and cookie, so a refresh
    /// cookie of one app does not open in another.
    pub fn seal_context(&self) -> String {
        format!("{}/{}", self.app, self.config.refresh_cookie.name)
    }
}

/// The verified-token cache's key: the last 16 bytes of the token, which
/// are the end of its signature. A signature is unpredictable, so 96 bits of
/// it (16 base64url characters) tell tokens apart without hashing a whole
/// token on every request; only tokens with a valid signature are ever
/// inserted, so a client cannot choose keys, and a lookup still compares the
/// whole token, so a collision could only cost a verification, never admit a
/// token.
fn cache_key(token: &[u8]) -> u128 {
    let mut tail = [0u8; 16];
    let n = token.len().min(16);
    tail[16 - n..].copy_from_slice(&token[token.len() - n..]);
    u128::from_le_bytes(tail)
}

/// CSRF tokens are accepted for this long after the login page was shown.
pub const CSRF_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);

/// `gw_jwt` → `gw`; the CSRF cookie sits beside the session cookies.
fn csrf_base(jwt_name: &str) -> &str {
    jwt_name
        .strip_suffix("_jwt")
        .or_else(|| jwt_name.strip_suffix("-jwt"))
        .unwrap_or(jwt_name)
}

/// A claim as header text: strings as they are, numbers and booleans
/// printed, lists comma-joined.
fn claim_text(claims: &Claims, name: &str) -> Option<String> {
    use serde_json::Value;
    match claims.0.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        _ => None,
    }
}
