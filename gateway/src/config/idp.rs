//! `[idp]` and each app's `[apps.idp]` overrides: where the identity
//! provider is, which dialect it speaks, and how its tokens are checked; and
//! an app's client credentials at it.
//!
//! IdP settings are global with per-app overrides (`[apps.idp]` takes any key
//! of `[idp]`), so two apps may use two IdPs, or one IdP with different
//! audience rules.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use url::Url;

use super::error::{invalid, ConfigError};
use super::values::{claim_name, duration, duration_or_zero};

/// Which protocol dialect the IdP speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// RFC 6749 / RFC 7009.
    Oauth2,
    /// FusionAuth's APIs where they differ.
    Fusionauth,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// A secret that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One app's client at the IdP.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client id (FusionAuth: the application id).
    pub id: String,
    /// The client secret.
    pub secret: Secret,
    /// How to present them.
    pub auth: ClientAuth,
}

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
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
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

pub(super) fn url_at(value: Option<(String, String)>) -> Result<Option<Url>, ConfigError> {
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

/// Merges `[idp]` and `[apps.idp]` for app `i`.
pub(super) fn resolve_idp(
    global: &RawIdp,
    app: &RawIdp,
    i: usize,
) -> Result<IdpSettings, ConfigError> {
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
