//! One app's login workflow at run time ([`AppAuth`]: policy, cookies,
//! verified-token cache, single-flight refreshes) and what every app's login
//! shares ([`LoginShared`]: the throttles).
//!
//! Built once from the validated config. [`AppAuth`] turns a token into an
//! [`Identity`] once and caches it until the token expires, so the steady
//! state of an authenticated request is one hash lookup.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue};
use quick_cache::sync::Cache;

use super::cookies::Sealer;
use super::csrf::Csrf;
use super::idp_state::{IdpState, KidSource};
use super::login::page::LoginPage;
use super::model::{Checked, Identity, RefreshFailure, RefreshResult, IDENTITY_PREFIX};
use super::revocation;
use super::single_flight::SingleFlight;
use super::throttle;
use super::verify::{self, Claims, Policy, Verified, VerifyError};
use crate::config::{AppConfig, Audience, AuthConfig, CookieSpec, LoginConfig, SessionConfig};
use crate::ops::metrics::AuthMetrics;
use crate::store::{Bucket, Entry, Store};

pub use crate::store::unix_now;

/// What every app's login shares: the `[login]` settings and the store
/// that keeps the throttles.
#[derive(Debug)]
pub struct LoginShared {
    /// The `[login]` settings.
    pub config: LoginConfig,
    /// Keeps the throttle buckets: per client IP (an IPv6 client per /64),
    /// whatever the app; per IdP and username, whatever the app (apps
    /// sharing an IdP share its users' attempts).
    pub store: Arc<Store>,
}

impl LoginShared {
    /// The login defences of `[login]`, with their buckets in `store`.
    pub fn new(config: &LoginConfig, store: Arc<Store>) -> LoginShared {
        LoginShared {
            config: config.clone(),
            store,
        }
    }

    /// Takes one attempt from the client address `ip`, or says how long
    /// until one is available.
    pub async fn check_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        self.store.throttle(Bucket::Ip, &throttle::ip_key(ip)).await
    }

    /// Takes one attempt from `username` at the IdP known as `idp` (its
    /// token endpoint), or says how long until one is available.
    pub async fn check_user(&self, idp: &str, username: &str) -> Result<(), Duration> {
        self.store
            .throttle(Bucket::User, &throttle::user_key(idp, username))
            .await
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
    /// The other apps' gateway cookies, taken out of this app's requests too.
    pub others: Vec<Box<str>>,
    /// Identity headers outside `X-Auth-Request-*` (which is stripped
    /// wholesale), e.g. `Authorization` when it carries the token.
    pub extra_identity_headers: Vec<HeaderName>,
    /// Shared state: cross-replica refreshes, the revocation list.
    pub store: Arc<Store>,
    /// The id under which every session of this app's client is revoked.
    client_revocation: Box<str>,
    cache: Cache<u128, Arc<Identity>>,
}

impl std::fmt::Debug for AppAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppAuth")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// The login workflow's state for every app.
#[derive(Debug)]
pub struct Built {
    /// Per app, in config order: its login state (`None` without login).
    pub apps: Vec<Option<Arc<AppAuth>>>,
    /// The IdPs they use.
    pub idps: Vec<Arc<IdpState>>,
    /// Every app's gateway cookies (wire and configured names): no upstream
    /// receives them and no upstream may set them, whatever its app.
    pub cookie_names: Vec<Box<str>>,
}

/// Builds the per-IdP and per-app state. IdPs with identical settings are
/// shared.
pub fn build(
    apps: &[AppConfig],
    session: &SessionConfig,
    store: &Arc<Store>,
) -> Result<Built, String> {
    let mut cookie_names: Vec<Box<str>> = Vec::new();
    for auth in apps.iter().filter_map(|app| app.auth.as_ref()) {
        let csrf = csrf_cookie(auth);
        for spec in [&auth.jwt_cookie, &auth.refresh_cookie, &csrf] {
            for name in [spec.wire_name(), spec.name.clone()] {
                if !cookie_names.iter().any(|n| **n == *name) {
                    cookie_names.push(name.into());
                }
            }
        }
    }
    let mut idps: Vec<Arc<IdpState>> = Vec::new();
    let mut out = Vec::with_capacity(apps.len());
    for app in apps {
        let Some(auth) = &app.auth else {
            out.push(None);
            continue;
        };
        let idp = match idps.iter().find(|i| *i.settings() == auth.idp) {
            Some(i) => i.clone(),
            None => {
                let state = Arc::new(IdpState::new(auth.idp.clone()));
                idps.push(state.clone());
                state
            }
        };
        let mut auth = AppAuth::new(&app.name, auth, session, idp, store.clone())?;
        auth.others = cookie_names
            .iter()
            .filter(|n| !auth.wires.iter().any(|w| **w == ***n))
            .cloned()
            .collect();
        out.push(Some(Arc::new(auth)));
    }
    Ok(Built {
        apps: out,
        idps,
        cookie_names,
    })
}

/// The CSRF cookie of an app: beside its session cookies, with their
/// `Secure`, always host-only.
fn csrf_cookie(config: &AuthConfig) -> CookieSpec {
    CookieSpec {
        name: format!("{}_csrf", csrf_base(&config.jwt_cookie.name)),
        secure: config.jwt_cookie.secure,
        domain: None,
        max_age: CSRF_MAX_AGE,
    }
}

impl AppAuth {
    fn new(
        app: &str,
        config: &AuthConfig,
        session: &SessionConfig,
        idp: Arc<IdpState>,
        store: Arc<Store>,
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
        let csrf_cookie = csrf_cookie(config);
        let extra_identity_headers = config
            .headers
            .names()
            .filter(|h| !h.as_str().starts_with(IDENTITY_PREFIX))
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
            // An IdP outage is not remembered, nor a refusal that may be a
            // replay: the next request tries again.
            flight: SingleFlight::new(|r: &RefreshResult| {
                !matches!(
                    r,
                    Err(RefreshFailure::Unavailable | RefreshFailure::Contested)
                )
            }),
            metrics: AuthMetrics::new(app),
            extra_identity_headers,
            wires,
            others: Vec::new(),
            cache: Cache::new(session.cache_capacity),
            client_revocation: revocation::client(&store, &config.client.id).into(),
            store,
            config: config.clone(),
            session: session.clone(),
            idp,
        })
    }

    /// The identity of a token verified before, if it is still valid at
    /// `now` and not due for an early refresh: the steady state, no await.
    pub fn cached_valid(&self, token: &[u8], now: u64) -> Option<Arc<Identity>> {
        let identity = self.cached(token)?;
        if !self.live(&identity, now) {
            return None;
        }
        match self.in_time(identity, now) {
            Checked::Valid(identity) if !self.due_for_refresh(&identity, now) => {
                self.metrics.cache(true);
                Some(identity)
            }
            _ => None,
        }
    }

    /// Verifies `token`, which a client presented (or finds it verified in
    /// the cache), at `now`. An unknown key id refetches the JWKS at most
    /// once per `jwks_refetch_interval`.
    pub async fn check(&self, token: &str, now: u64) -> Result<Checked, VerifyError> {
        self.check_from(token, now, KidSource::Client).await
    }

    /// Verifies `token`, which the IdP has just issued (password grant or
    /// refresh), at `now`. An unknown key id always refetches the JWKS;
    /// [`VerifyError::UnknownKid`] then means the IdP's key set lacks the
    /// key it signs with: the IdP's trouble, to be answered as "unavailable",
    /// never as the user's.
    pub async fn check_issued(&self, token: &str, now: u64) -> Result<Checked, VerifyError> {
        self.check_from(token, now, KidSource::Issued).await
    }

    async fn check_from(
        &self,
        token: &str,
        now: u64,
        source: KidSource,
    ) -> Result<Checked, VerifyError> {
        if let Some(identity) = self.cached(token.as_bytes()) {
            self.metrics.cache(true);
            if !self.live(&identity, now) {
                return Err(VerifyError::Revoked);
            }
            return Ok(self.in_time(identity, now));
        }
        self.metrics.cache(false);
        let keys = self.idp.keys();
        let verified = match verify::verify(token, &keys, &self.policy, now) {
            Err(VerifyError::UnknownKid(kid)) => {
                if !self.idp.refetch_for(&kid, source).await {
                    return Err(VerifyError::UnknownKid(kid));
                }
                let keys = self.idp.keys();
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
        // After the insert: a revocation arriving meanwhile either finds
        // the entry to remove, or is in the list this looks at.
        if !self.live(&identity, now) {
            return Err(VerifyError::Revoked);
        }
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
        let sid = claims.sid().map(str::to_owned);
        let sub = claims.sub().map(str::to_owned);
        let client = self.config.client.id.as_str();
        let store = &self.store;
        let mut revocations = vec![match &sid {
            Some(sid) => revocation::session(store, client, sid).into(),
            None => revocation::token(store, &self.app, token).into(),
        }];
        if let Some(sub) = &sub {
            revocations.push(revocation::user(store, sub, None).into());
            revocations.push(revocation::user(store, sub, Some(client)).into());
        }
        Identity {
            token: token.into(),
            exp: claims.time("exp").unwrap_or(0),
            iat: claims.time("iat").unwrap_or(0),
            sub,
            revocations: revocations.into(),
            sid,
            roles,
            headers,
            live_at: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether `identity`'s session is still live (not revoked) at `now`:
    /// two integers compared, unless the revocation list has grown since
    /// the last look (then one local lookup). A revoked token leaves the
    /// cache. The token's own `exp` plays no part: an expired token is live
    /// until its session is revoked.
    pub fn live(&self, identity: &Identity, now: u64) -> bool {
        self.live_at(identity, || now)
    }

    /// [`AppAuth::live`] now, reading the clock only if the revocation list
    /// has grown since `identity` was last found live.
    pub fn live_now(&self, identity: &Identity) -> bool {
        self.live_at(identity, unix_now)
    }

    fn live_at(&self, identity: &Identity, now: impl FnOnce() -> u64) -> bool {
        let generation = self.store.revocations();
        if identity.live_at.load(Ordering::Relaxed) == generation {
            return true;
        }
        let now = now();
        let revoked = identity
            .revocations
            .iter()
            .chain(std::iter::once(&self.client_revocation))
            .any(|id| self.store.is_revoked(id, identity.iat, now));
        if revoked {
            self.cache.remove(&cache_key(identity.token.as_bytes()));
            return false;
        }
        identity.live_at.store(generation, Ordering::Relaxed);
        true
    }

    /// Ends the session `identity` belongs to, on every replica, until its
    /// token would have expired anyway, and for at least
    /// [`REVOKED_AT_LEAST`].
    pub async fn revoke(&self, identity: &Identity) {
        let now = unix_now();
        let entry = Entry {
            before: u64::MAX,
            until: identity
                .exp
                .saturating_add(self.policy.leeway)
                .saturating_add(1)
                .max(now.saturating_add(REVOKED_AT_LEAST.as_secs())),
        };
        self.store
            .revoke(&identity.revocations[0], entry, now)
            .await;
        self.cache.remove(&cache_key(identity.token.as_bytes()));
    }

    /// Notes a session of `identity`'s user for the admin API's session
    /// list (with Redis only): at login (`login`, with the client's
    /// `address`), or at a refresh. Never per request. Sessions without
    /// `sid` are not listed. Field and value name nobody in the clear: the
    /// field is a keyed hash of the session, the value is sealed under the
    /// cookie key ([`SESSIONS_SEAL`]).
    pub async fn record_session(&self, identity: &Identity, address: Option<IpAddr>, login: bool) {
        let (Some(sub), Some(sid)) = (&identity.sub, &identity.sid) else {
            return;
        };
        let user = self.store.digest(&[b"sessions", sub.as_bytes()]);
        let kind = if login { "login" } else { "refresh" };
        let field = format!(
            "{}:{kind}",
            self.store
                .digest(&[b"session", self.app.as_bytes(), sid.as_bytes()])
        );
        let value = serde_json::json!({
            "session": sid,
            "app": self.app,
            "at": unix_now(),
            "address": address.map(|a| a.to_string()),
        })
        .to_string();
        let sealed = self.sealer.seal(SESSIONS_SEAL, &value);
        let ttl = self.config.refresh_cookie.max_age;
        self.store
            .record_session(&user, &field, &sealed, login, ttl)
            .await;
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

/// A logout's revocation lasts at least this long, even when the token it
/// was made with has expired already (a user idle on a page with a
/// WebSocket open): a tunnel outlives the JWT it was opened with, and the
/// entry must reach every replica (through Redis, or its reload after an
/// outage) for them to end the session's live connections.
pub const REVOKED_AT_LEAST: Duration = Duration::from_secs(60);

/// What session records in the store are sealed for (every app's sealer
/// has the same key).
pub const SESSIONS_SEAL: &str = "gateway/sessions";

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
