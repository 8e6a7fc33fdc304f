//! The typed result of an app's login keys: its client, IdP settings, pages,
//! public paths, roles, cookies and identity headers, and the raw tables of
//! its cookies and headers.
//!
//! Only types and their small parsers: `apps` validates an `[[apps]]` entry
//! into them.

use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::idp::{Client, IdpSettings};
use super::values::is_plain_path;

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

    /// Where a browser is sent to refresh on a top-level answer (forward-auth
    /// mode), with `?return_to=`.
    pub fn refresh_path(&self) -> String {
        format!("{}/refresh", self.gateway_path)
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
    pub(super) fn parse(s: &str) -> Option<PathPattern> {
        if !s.starts_with('/') || !is_plain_path(s) {
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

/// One gateway cookie.
#[derive(Debug, Clone)]
pub struct CookieSpec {
    /// Name as configured (without the `__Host-` prefix).
    pub name: String,
    /// Send only over HTTPS.
    pub secure: bool,
    /// `Domain` attribute; `None` keeps the cookie on the exact host.
    pub domain: Option<String>,
    /// `Max-Age`.
    pub max_age: Duration,
}

impl CookieSpec {
    /// The name on the wire: `__Host-NAME` when secure and host-only.
    pub fn wire_name(&self) -> String {
        if self.secure && self.domain.is_none() {
            format!("__Host-{}", self.name)
        } else {
            self.name.clone()
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCookies {
    pub(super) jwt: String,
    pub(super) refresh: String,
    pub(super) secure: bool,
    pub(super) domain: Option<String>,
    pub(super) max_age: String,
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
pub(super) struct RawHeaders {
    pub(super) user: String,
    pub(super) email: String,
    pub(super) roles: String,
    pub(super) access_token: String,
    pub(super) claims: std::collections::BTreeMap<String, String>,
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
