//! The login workflow's configuration: `[idp]`, `[session]`, `[login]`, and
//! each app's own client, cookies, paths and identity headers.
//!
//! IdP settings are global with per-app overrides (`[apps.idp]` takes any key
//! of `[idp]`), so two apps may use two IdPs, or one IdP with different
//! audience rules. Everything is validated here, naming the key, so a running
//! gateway never discovers a bad secret or URL on a request.

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use url::Url;

use super::{duration, duration_or_zero, invalid, ConfigError};
use crate::cookies::{CookieSpec, MIN_KEY_BYTES};
use crate::idp::{Client, ClientAuth, Kind, Secret};

// ---------------------------------------------------------------------------
// Typed
// ---------------------------------------------------------------------------

/// One app's IdP settings: `[idp]` with the app's `[apps.idp]` applied.
#[derive(Debug, Clone, PartialEq)]
pub struct IdpSettings {
    /// Dialect.
    pub kind: Kind,
    /// Expected `iss`, and the base of OIDC discovery.
    pub issuer: Option<String>,
    /// Fetch `{issuer}/.well-known/openid-configuration` for endpoints not given.
    pub discovery: bool,
    /// Token endpoint.
    pub token_endpoint: Option<Url>,
    /// JWKS address.
    pub jwks_uri: Option<Url>,
    /// RFC 7009 revocation endpoint.
    pub revocation_endpoint: Option<Url>,
    /// FusionAuth's base URL for `/api/jwt/refresh` (defaults to the token
    /// endpoint's origin).
    pub api_url: Option<Url>,
    /// FusionAuth API key (revocation).
    pub api_key: Option<Secret>,
    /// `scope` for the password grant.
    pub scope: String,
    /// Accepted signing algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Shared secret for HS256/384/512.
    pub hmac_secret: Option<Secret>,
    /// Required `aud` member.
    pub audience: Audience,
    /// Claim naming the client a token was issued to.
    pub client_claim: String,
    /// Claim that names the user in `X-Auth-Request-User`.
    pub identity_claim: String,
    /// Claim holding the user's e-mail address.
    pub email_claim: String,
    /// Claim holding the user's roles.
    pub roles_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Timeout of each call to the IdP.
    pub timeout: Duration,
    /// Least time between two JWKS fetches caused by unknown key ids.
    pub jwks_refetch_interval: Duration,
}

/// The `aud` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// `aud` must contain the app's client id.
    ClientId,
    /// `aud` must contain this value.
    Value(String),
    /// `aud` is not checked (the client claim still is).
    Off,
}

/// `[session]`: how sessions are kept and renewed, for every app.
#[derive(Clone)]
pub struct SessionConfig {
    /// Master key for sealing refresh cookies and signing CSRF tokens.
    pub cookie_key: Option<Secret>,
    /// Refresh this long before `exp` (0: only once expired).
    pub refresh_before: Duration,
    /// How long a finished refresh keeps answering requests that still carry
    /// the old refresh token (other tabs, requests already in flight).
    pub refresh_grace: Duration,
    /// Refresh only for a genuine, merely expired JWT of the same subject and
    /// session (`true`), or whenever a refresh cookie is present (`false`).
    pub strict_binding: bool,
    /// Refresh inline (forward the request at once) or answer GET
    /// navigations with a redirect to the same URL.
    pub refresh_mode: RefreshMode,
    /// Verified tokens remembered per app.
    pub cache_capacity: usize,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("cookie_key", &self.cookie_key.as_ref().map(|_| "***"))
            .field("refresh_before", &self.refresh_before)
            .field("refresh_grace", &self.refresh_grace)
            .field("strict_binding", &self.strict_binding)
            .field("refresh_mode", &self.refresh_mode)
            .field("cache_capacity", &self.cache_capacity)
            .finish()
    }
}

/// What a refresh on a GET navigation answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefreshMode {
    /// Forward the request with the new identity (default).
    Inline,
    /// 302 to the same URL with the new cookies (the article's variant);
    /// other requests are still refreshed inline.
    Redirect,
}

/// `[login]`: the login form's defences.
#[derive(Debug, Clone)]
pub struct LoginConfig {
    /// Attempts a client IP may burst.
    pub per_ip_burst: u32,
    /// Attempts a client IP regains per minute.
    pub per_ip_per_minute: u32,
    /// Attempts one username may burst (per app).
    pub per_user_burst: u32,
    /// Attempts one username regains per minute.
    pub per_user_per_minute: u32,
    /// Keys each throttle remembers at most.
    pub throttle_max_keys: usize,
    /// A failed login never answers sooner than this after it arrived.
    pub min_failure_time: Duration,
}

/// One app's login workflow.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The app's client at the IdP.
    pub client: Client,
    /// Where the IdP is and how its tokens are checked.
    pub idp: IdpSettings,
    /// Shown on the login page.
    pub title: String,
    /// Reserved prefix of the gateway's own pages on this app (`/.gateway`).
    pub gateway_path: String,
    /// Where a login without a return-to lands.
    pub landing_path: String,
    /// Where logout sends the browser (default: the login page).
    pub logout_redirect: Option<String>,
    /// Paths served without login.
    pub public_paths: Vec<PathPattern>,
    /// Roles a user must hold (all of them).
    pub required_roles: Vec<String>,
    /// A login page template replacing the built-in one.
    pub login_template: Option<String>,
    /// The JWT cookie.
    pub jwt_cookie: CookieSpec,
    /// The refresh cookie (sealed).
    pub refresh_cookie: CookieSpec,
    /// Claims → headers for the upstream.
    pub headers: IdentityHeaders,
}

impl AuthConfig {
    /// `{gateway_path}/login`.
    pub fn login_path(&self) -> String {
        format!("{}/login", self.gateway_path)
    }

    /// `{gateway_path}/logout`.
    pub fn logout_path(&self) -> String {
        format!("{}/logout", self.gateway_path)
    }
}

/// A public path: exact (`/about`) or prefix (`/static/*` owns `/static/…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// This path only.
    Exact(String),
    /// This directory and everything below it (stored without the `/*`).
    Prefix(String),
}

impl PathPattern {
    fn parse(s: &str) -> Option<PathPattern> {
        if !s.starts_with('/') || s.contains(['?', '#', '%', '\\', ' ']) {
            return None;
        }
        let (path, prefix) = match s.strip_suffix("/*") {
            Some(dir) => (dir, true),
            None => (s, false),
        };
        if path.contains('*') || path.split('/').any(|seg| seg == "." || seg == "..") {
            return None;
        }
        Some(if prefix {
            PathPattern::Prefix(path.to_owned())
        } else {
            PathPattern::Exact(path.to_owned())
        })
    }

    /// Whether `path` (already normalised) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => path == p,
            PathPattern::Prefix(dir) => path
                .strip_prefix(dir.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

/// Which headers carry the identity upstream. `None` turns one off.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// The identity claim (default `X-Auth-Request-User`).
    pub user: Option<HeaderName>,
    /// The e-mail claim (default `X-Auth-Request-Email`).
    pub email: Option<HeaderName>,
    /// The roles, comma-joined (default `X-Auth-Request-Roles`).
    pub roles: Option<HeaderName>,
    /// The raw JWT (off by default); `Authorization` gets `Bearer …`.
    pub access_token: Option<HeaderName>,
    /// More claims: header → claim name.
    pub claims: Vec<(HeaderName, String)>,
}

impl IdentityHeaders {
    /// Every header this mapping may set.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        [&self.user, &self.email, &self.roles, &self.access_token]
            .into_iter()
            .flatten()
            .chain(self.claims.iter().map(|(h, _)| h))
    }
}

// ---------------------------------------------------------------------------
// Raw
// ---------------------------------------------------------------------------

/// `[idp]` and `[apps.idp]`: every key optional so an app's table can
/// override just one; defaults are applied when the two are merged.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdp {
    kind: Option<Kind>,
    issuer: Option<String>,
    discovery: Option<bool>,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    revocation_endpoint: Option<String>,
    api_url: Option<String>,
    api_key: Option<String>,
    scope: Option<String>,
    algorithms: Option<Vec<String>>,
    hmac_secret: Option<String>,
    audience: Option<String>,
    client_claim: Option<String>,
    identity_claim: Option<String>,
    email_claim: Option<String>,
    roles_claim: Option<String>,
    leeway: Option<String>,
    timeout: Option<String>,
    jwks_refetch_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSession {
    cookie_key: Option<String>,
    refresh_before: String,
    refresh_grace: String,
    binding: Binding,
    refresh_mode: RefreshMode,
    cache_capacity: usize,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Binding {
    Strict,
    Relaxed,
}

impl Default for RawSession {
    fn default() -> Self {
        RawSession {
            cookie_key: None,
            refresh_before: "0s".into(),
            refresh_grace: "10s".into(),
            binding: Binding::Strict,
            refresh_mode: RefreshMode::Inline,
            cache_capacity: 10_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLogin {
    per_ip_burst: u32,
    per_ip_per_minute: u32,
    per_user_burst: u32,
    per_user_per_minute: u32,
    throttle_max_keys: usize,
    min_failure_time: String,
}

impl Default for RawLogin {
    fn default() -> Self {
        RawLogin {
            per_ip_burst: 20,
            per_ip_per_minute: 20,
            per_user_burst: 5,
            per_user_per_minute: 5,
            throttle_max_keys: 100_000,
            min_failure_time: "400ms".into(),
        }
    }
}

/// One `[[apps]]` entry as written. The routing keys are validated in
/// `config`, the login keys here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) name: String,
    pub(super) hosts: Vec<String>,
    #[serde(default = "default_prefix")]
    pub(super) path_prefix: String,
    pub(super) upstream: String,
    #[serde(default = "yes")]
    pub(super) preserve_host: bool,
    #[serde(default = "yes")]
    auth: bool,
    client_id: Option<String>,
    client_secret: Option<String>,
    #[serde(default = "default_client_auth")]
    client_auth: ClientAuth,
    title: Option<String>,
    #[serde(default = "default_gateway_path")]
    gateway_path: String,
    #[serde(default = "default_landing")]
    landing_path: String,
    logout_redirect: Option<String>,
    #[serde(default)]
    public_paths: Vec<String>,
    #[serde(default)]
    required_roles: Vec<String>,
    login_template: Option<PathBuf>,
    #[serde(default)]
    cookies: RawCookies,
    #[serde(default)]
    headers: RawHeaders,
    #[serde(default)]
    idp: RawIdp,
}

fn default_prefix() -> String {
    "/".into()
}

fn yes() -> bool {
    true
}

fn default_client_auth() -> ClientAuth {
    ClientAuth::ClientSecretBasic
}

fn default_gateway_path() -> String {
    "/.gateway".into()
}

fn default_landing() -> String {
    "/".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCookies {
    jwt: String,
    refresh: String,
    secure: bool,
    domain: Option<String>,
    max_age: String,
}

impl Default for RawCookies {
    fn default() -> Self {
        RawCookies {
            jwt: "gw_jwt".into(),
            refresh: "gw_refresh".into(),
            secure: true,
            domain: None,
            max_age: "30days".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHeaders {
    user: String,
    email: String,
    roles: String,
    access_token: String,
    claims: std::collections::BTreeMap<String, String>,
}

impl Default for RawHeaders {
    fn default() -> Self {
        RawHeaders {
            user: "X-Auth-Request-User".into(),
            email: "X-Auth-Request-Email".into(),
            roles: "X-Auth-Request-Roles".into(),
            access_token: String::new(),
            claims: Default::default(),
        }
    }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

impl RawSession {
    pub(super) fn validate(self) -> Result<SessionConfig, ConfigError> {
        let cookie_key = match self.cookie_key {
            None => None,
            Some(k) if k.len() < MIN_KEY_BYTES => {
                return Err(invalid(
                    "session.cookie_key",
                    format!(
                        "is {} bytes; at least {MIN_KEY_BYTES} are required \
                         (generate one with `openssl rand -base64 48`)",
                        k.len()
                    ),
                ))
            }
            Some(k) => Some(Secret::new(k)),
        };
        if self.cache_capacity == 0 {
            return Err(invalid("session.cache_capacity", "must be at least 1"));
        }
        Ok(SessionConfig {
            cookie_key,
            refresh_before: duration_or_zero("session.refresh_before", &self.refresh_before)?,
            refresh_grace: duration_or_zero("session.refresh_grace", &self.refresh_grace)?,
            strict_binding: matches!(self.binding, Binding::Strict),
            refresh_mode: self.refresh_mode,
            cache_capacity: self.cache_capacity,
        })
    }
}

impl RawLogin {
    pub(super) fn validate(self) -> Result<LoginConfig, ConfigError> {
        for (key, value) in [
            ("login.per_ip_burst", self.per_ip_burst),
            ("login.per_ip_per_minute", self.per_ip_per_minute),
            ("login.per_user_burst", self.per_user_burst),
            ("login.per_user_per_minute", self.per_user_per_minute),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.throttle_max_keys == 0 {
            return Err(invalid("login.throttle_max_keys", "must be at least 1"));
        }
        Ok(LoginConfig {
            per_ip_burst: self.per_ip_burst,
            per_ip_per_minute: self.per_ip_per_minute,
            per_user_burst: self.per_user_burst,
            per_user_per_minute: self.per_user_per_minute,
            throttle_max_keys: self.throttle_max_keys,
            min_failure_time: duration_or_zero("login.min_failure_time", &self.min_failure_time)?,
        })
    }
}

/// `field` from the app's table, else from `[idp]`, with the key of the one used.
macro_rules! pick {
    ($app:expr, $global:expr, $i:expr, $field:ident) => {
        match (&$app.$field, &$global.$field) {
            (Some(v), _) => Some((
                v.clone(),
                format!("apps[{}].idp.{}", $i, stringify!($field)),
            )),
            (None, Some(v)) => Some((v.clone(), format!("idp.{}", stringify!($field)))),
            (None, None) => None,
        }
    };
}

fn url_at(value: Option<(String, String)>) -> Result<Option<Url>, ConfigError> {
    let Some((s, key)) = value else {
        return Ok(None);
    };
    if s.is_empty() {
        return Ok(None);
    }
    match Url::parse(&s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(Some(u)),
        _ => Err(invalid(key, format!("{s:?} is not an http(s) URL"))),
    }
}

fn algorithm(key: &str, s: &str) -> Result<Algorithm, ConfigError> {
    use Algorithm::*;
    let alg = match s.to_ascii_uppercase().as_str() {
        "HS256" => HS256,
        "HS384" => HS384,
        "HS512" => HS512,
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EDDSA" => EdDSA,
        _ => {
            return Err(invalid(
                key,
                format!(
                    "{s:?} is not an accepted algorithm (HS256/384/512, RS256/384/512, \
                     PS256/384/512, ES256, ES384, EdDSA; never \"none\")"
                ),
            ))
        }
    };
    Ok(alg)
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn claim_name(key: String, s: String) -> Result<String, ConfigError> {
    if s.trim().is_empty() {
        return Err(invalid(key, "must name a claim"));
    }
    Ok(s)
}

/// Merges `[idp]` and `[apps.idp]` for app `i`.
fn resolve_idp(global: &RawIdp, app: &RawIdp, i: usize) -> Result<IdpSettings, ConfigError> {
    let kind = pick!(app, global, i, kind).map_or(Kind::Oauth2, |(k, _)| k);
    let issuer = pick!(app, global, i, issuer).filter(|(s, _)| !s.is_empty());
    if let Some((s, key)) = &issuer {
        if Url::parse(s).is_err() {
            return Err(invalid(key.clone(), format!("{s:?} is not a URL")));
        }
    }
    let token_endpoint = url_at(pick!(app, global, i, token_endpoint))?;
    let jwks_uri = url_at(pick!(app, global, i, jwks_uri))?;
    let revocation_endpoint = url_at(pick!(app, global, i, revocation_endpoint))?;
    let api_url = url_at(pick!(app, global, i, api_url))?;
    let discovery = pick!(app, global, i, discovery).map_or(
        // Discover by default when an issuer is given but no token endpoint.
        issuer.is_some() && token_endpoint.is_none(),
        |(d, _)| d,
    );
    if discovery && issuer.is_none() {
        return Err(invalid(
            format!("apps[{i}].idp.issuer"),
            "discovery needs idp.issuer (the base of /.well-known/openid-configuration)",
        ));
    }
    if !discovery && token_endpoint.is_none() {
        return Err(invalid(
            format!("apps[{i}].idp.token_endpoint"),
            "missing: set idp.token_endpoint, or idp.issuer with discovery",
        ));
    }
    let algorithms = match pick!(app, global, i, algorithms) {
        None => vec![Algorithm::RS256],
        Some((list, key)) => {
            if list.is_empty() {
                return Err(invalid(key, "must name at least one algorithm"));
            }
            list.iter()
                .enumerate()
                .map(|(n, s)| algorithm(&format!("{key}[{n}]"), s))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let hmac_secret = pick!(app, global, i, hmac_secret).filter(|(s, _)| !s.is_empty());
    if let Some((s, key)) = &hmac_secret {
        if s.len() < 32 {
            return Err(invalid(
                key.clone(),
                format!("is {} bytes; HS256 needs at least 32", s.len()),
            ));
        }
    }
    if algorithms.iter().any(|a| is_hmac(*a)) && hmac_secret.is_none() {
        return Err(invalid(
            format!("apps[{i}].idp.hmac_secret"),
            "missing: an HMAC algorithm is allowed, so the shared secret is required",
        ));
    }
    if hmac_secret.is_some() && !algorithms.iter().any(|a| is_hmac(*a)) {
        return Err(invalid(
            format!("apps[{i}].idp.algorithms"),
            "idp.hmac_secret is set but no HS* algorithm is allowed",
        ));
    }
    if algorithms.iter().any(|a| !is_hmac(*a)) && jwks_uri.is_none() && !discovery {
        return Err(invalid(
            format!("apps[{i}].idp.jwks_uri"),
            "missing: an asymmetric algorithm is allowed, so the IdP's JWKS address is required",
        ));
    }
    let audience = match pick!(app, global, i, audience) {
        None => Audience::ClientId,
        Some((s, _)) if s.is_empty() || s == "off" => Audience::Off,
        Some((s, _)) if s == "client_id" => Audience::ClientId,
        Some((s, _)) => Audience::Value(s),
    };
    let api_key = pick!(app, global, i, api_key)
        .filter(|(s, _)| !s.is_empty())
        .map(|(s, _)| Secret::new(s));
    let text = |v: Option<(String, String)>, default: &str, key: &str| {
        let (s, key) = v.unwrap_or_else(|| (default.to_owned(), format!("idp.{key}")));
        claim_name(key, s)
    };
    let timing = |v: Option<(String, String)>, default: &str, key: &str, zero_ok: bool| {
        let (s, key) = v.unwrap_or_else(|| (default.to_owned(), format!("idp.{key}")));
        if zero_ok {
            duration_or_zero(&key, &s)
        } else {
            duration(&key, &s)
        }
    };
    Ok(IdpSettings {
        kind,
        issuer: issuer.map(|(s, _)| s),
        discovery,
        token_endpoint,
        jwks_uri,
        revocation_endpoint,
        api_url,
        api_key,
        scope: pick!(app, global, i, scope)
            .map_or_else(|| "openid offline_access".to_owned(), |(s, _)| s),
        algorithms,
        hmac_secret: hmac_secret.map(|(s, _)| Secret::new(s)),
        audience,
        client_claim: text(pick!(app, global, i, client_claim), "aud", "client_claim")?,
        identity_claim: text(
            pick!(app, global, i, identity_claim),
            "sub",
            "identity_claim",
        )?,
        email_claim: text(pick!(app, global, i, email_claim), "email", "email_claim")?,
        roles_claim: text(pick!(app, global, i, roles_claim), "roles", "roles_claim")?,
        leeway: timing(pick!(app, global, i, leeway), "30s", "leeway", true)?,
        timeout: timing(pick!(app, global, i, timeout), "5s", "timeout", false)?,
        jwks_refetch_interval: timing(
            pick!(app, global, i, jwks_refetch_interval),
            "30s",
            "jwks_refetch_interval",
            true,
        )?,
    })
}

fn header_name(key: &str, s: &str) -> Result<Option<HeaderName>, ConfigError> {
    if s.is_empty() {
        return Ok(None);
    }
    HeaderName::try_from(s)
        .map(Some)
        .map_err(|_| invalid(key, format!("{s:?} is not a header name")))
}

fn cookie_name(key: &str, s: &str) -> Result<String, ConfigError> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(invalid(
            key,
            format!("{s:?} must be letters, digits, '-' or '_'"),
        ));
    }
    Ok(s.to_owned())
}

/// An absolute path on the app's host, without dot segments.
fn local_path(key: &str, s: &str) -> Result<String, ConfigError> {
    if !s.starts_with('/')
        || s.starts_with("//")
        || s.contains(['\\', '#', ' '])
        || s.chars().any(char::is_control)
        || s.split(['/', '?']).any(|seg| seg == "." || seg == "..")
    {
        return Err(invalid(
            key,
            format!("{s:?} must be an absolute path on the app's host, like \"/\" or \"/cart\""),
        ));
    }
    Ok(s.to_owned())
}

impl RawApp {
    /// The app's login workflow, or `None` for `auth = false`.
    pub(super) fn validate_auth(
        self,
        i: usize,
        name: &str,
        global_idp: Option<&RawIdp>,
        session: &SessionConfig,
    ) -> Result<Option<AuthConfig>, ConfigError> {
        let key = |field: &str| format!("apps[{i}].{field}");
        if !self.auth {
            return Ok(None);
        }
        let client_id = match self.client_id {
            Some(id) if !id.is_empty() => id,
            _ => {
                return Err(invalid(
                    key("client_id"),
                    "missing: every app with login needs its IdP client id \
                     (set auth = false to serve an app without login)",
                ))
            }
        };
        let client_secret = match self.client_secret {
            Some(s) if !s.is_empty() => Secret::new(s),
            _ => {
                return Err(invalid(
                    key("client_secret"),
                    "missing: every app with login needs its IdP client secret",
                ))
            }
        };
        let Some(global_idp) = global_idp else {
            return Err(invalid(
                "idp",
                format!("missing: apps[{i}] ({name}) has login, so an [idp] section is required"),
            ));
        };
        if session.cookie_key.is_none() {
            return Err(invalid(
                "session.cookie_key",
                format!(
                    "missing: apps[{i}] ({name}) has login, so a key of at least {MIN_KEY_BYTES} \
                     bytes is required to seal its cookies (generate one with \
                     `openssl rand -base64 48`; GATEWAY_SESSION__COOKIE_KEY works too)"
                ),
            ));
        }
        let idp = resolve_idp(global_idp, &self.idp, i)?;

        let gateway_path = {
            let p = local_path(&key("gateway_path"), &self.gateway_path)?;
            let p = p.trim_end_matches('/').to_owned();
            if p.is_empty() || p.contains('?') {
                return Err(invalid(
                    key("gateway_path"),
                    format!(
                        "{:?} must be a path below \"/\", like \"/.gateway\"",
                        self.gateway_path
                    ),
                ));
            }
            p
        };
        let landing_path = local_path(&key("landing_path"), &self.landing_path)?;
        let logout_redirect = match self.logout_redirect {
            None => None,
            Some(s) if s.starts_with('/') => Some(local_path(&key("logout_redirect"), &s)?),
            Some(s) => match Url::parse(&s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(s),
                _ => {
                    return Err(invalid(
                        key("logout_redirect"),
                        format!("{s:?} is neither a path nor an http(s) URL"),
                    ))
                }
            },
        };
        let public_paths = self
            .public_paths
            .iter()
            .enumerate()
            .map(|(n, s)| {
                PathPattern::parse(s).ok_or_else(|| {
                    invalid(
                        format!("apps[{i}].public_paths[{n}]"),
                        format!("{s:?} must be an exact path (\"/about\") or a directory (\"/static/*\")"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let login_template = match self.login_template {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    invalid(key("login_template"), format!("{}: {e}", path.display()))
                })?;
                crate::login_page::LoginPage::new(Some(&text)).map_err(|e| {
                    invalid(key("login_template"), format!("{}: {e}", path.display()))
                })?;
                Some(text)
            }
        };
        let c = self.cookies;
        let max_age = duration(&key("cookies.max_age"), &c.max_age)?;
        let domain = c.domain.filter(|d| !d.is_empty());
        if let Some(d) = &domain {
            if !d
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            {
                return Err(invalid(
                    key("cookies.domain"),
                    format!("{d:?} is not a domain name"),
                ));
            }
        }
        let jwt_name = cookie_name(&key("cookies.jwt"), &c.jwt)?;
        let refresh_name = cookie_name(&key("cookies.refresh"), &c.refresh)?;
        if jwt_name == refresh_name {
            return Err(invalid(
                key("cookies.refresh"),
                "must differ from cookies.jwt",
            ));
        }
        let spec = |name: String| CookieSpec {
            name,
            secure: c.secure,
            domain: domain.clone(),
            max_age,
        };
        let h = self.headers;
        let mut claims = Vec::new();
        for (header, claim) in &h.claims {
            let hk = format!("apps[{i}].headers.claims.{header}");
            let Some(name) = header_name(&hk, header)? else {
                continue;
            };
            claims.push((name, claim_name(hk, claim.clone())?));
        }
        let headers = IdentityHeaders {
            user: header_name(&key("headers.user"), &h.user)?,
            email: header_name(&key("headers.email"), &h.email)?,
            roles: header_name(&key("headers.roles"), &h.roles)?,
            access_token: header_name(&key("headers.access_token"), &h.access_token)?,
            claims,
        };
        Ok(Some(AuthConfig {
            client: Client {
                id: client_id,
                secret: client_secret,
                auth: self.client_auth,
            },
            idp,
            title: self.title.unwrap_or_else(|| title_case(name)),
            gateway_path,
            landing_path,
            logout_redirect,
            public_paths,
            required_roles: self.required_roles,
            login_template,
            jwt_cookie: spec(jwt_name),
            refresh_cookie: spec(refresh_name),
            headers,
        }))
    }
}

/// `store` → `Store`.
fn title_case(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        let exact = PathPattern::parse("/about").expect("exact");
        assert!(exact.matches("/about"));
        assert!(!exact.matches("/about/x"));
        let dir = PathPattern::parse("/static/*").expect("prefix");
        assert!(dir.matches("/static"));
        assert!(dir.matches("/static/a.css"));
        assert!(!dir.matches("/staticx"));
        for bad in ["static", "/a/../b", "/a/*/b", "/%2e", "/a?b"] {
            assert!(PathPattern::parse(bad).is_none(), "{bad}");
        }
    }

    fn app_idp(global: &str, app: &str) -> Result<IdpSettings, ConfigError> {
        let global: RawIdp = toml_de(global);
        let app: RawIdp = toml_de(app);
        resolve_idp(&global, &app, 3)
    }

    fn toml_de<T: serde::de::DeserializeOwned>(text: &str) -> T {
        use figment::providers::{Format, Toml};
        figment::Figment::new()
            .merge(Toml::string(text))
            .extract()
            .expect("test TOML")
    }

    #[test]
    fn an_app_overrides_single_idp_keys() {
        let global = r#"
            token_endpoint = "http://idp.test/token"
            jwks_uri = "http://idp.test/jwks"
            audience = "off"
            client_claim = "azp"
        "#;
        let merged = app_idp(global, r#"client_claim = "client_id""#).expect("valid");
        assert_eq!(merged.client_claim, "client_id", "the app's value wins");
        assert_eq!(merged.audience, Audience::Off, "the global value stays");
        assert_eq!(
            merged.token_endpoint.expect("token").as_str(),
            "http://idp.test/token"
        );
        assert_eq!(
            merged.scope, "openid offline_access",
            "the default fills in"
        );
        assert!(!merged.discovery, "explicit endpoints: no discovery");

        let e = app_idp(global, r#"token_endpoint = "nope""#).expect_err("bad URL");
        assert_eq!(
            e.to_string(),
            r#"apps[3].idp.token_endpoint: "nope" is not an http(s) URL"#
        );
        let e = app_idp(global, r#"algorithms = ["HS256"]"#).expect_err("no secret");
        assert!(
            e.to_string()
                .starts_with("apps[3].idp.hmac_secret: missing"),
            "{e}"
        );
    }

    #[test]
    fn an_issuer_alone_means_discovery() {
        let merged = app_idp(r#"issuer = "https://idp.test""#, "").expect("valid");
        assert!(merged.discovery);
        assert!(merged.token_endpoint.is_none());
    }

    #[test]
    fn title_from_name() {
        assert_eq!(title_case("store"), "Store");
    }
}
