//! `[[apps]]`: each app's hosts, path prefix and upstream, and its login
//! keys (client, pages, public paths, roles, cookies, identity headers),
//! validated into [`AppConfig`].

use std::fmt;
use std::path::PathBuf;

use http::uri::{Authority, Scheme};
use serde::Deserialize;
use url::Url;

use super::app_login::{
    AuthConfig, CookieSpec, IdentityHeaders, PathPattern, RawCookies, RawHeaders,
};
use super::error::{invalid, ConfigError};
use super::idp::{resolve_idp, Client, ClientAuth, RawIdp, Secret};
use super::session::{SessionConfig, MIN_KEY_BYTES};
use super::values::{claim_name, cookie_name, duration, header_name, is_plain_path, local_path};

/// One `[[apps]]` entry: a web app behind the gateway.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Name used in logs, metrics and pages.
    pub name: String,
    /// Host names routed to this app (exact or `*.suffix`).
    pub hosts: Vec<HostPattern>,
    /// Path prefix this app owns on its hosts (`/` for all).
    pub path_prefix: String,
    /// Where requests are forwarded.
    pub upstream: UpstreamTarget,
    /// Send the client's `Host` upstream (true) or the upstream's own authority (false).
    pub preserve_host: bool,
    /// The login workflow; `None` when the app is served without login.
    pub auth: Option<AuthConfig>,
}

/// A parsed upstream base URL.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port` of the upstream.
    pub authority: Authority,
    /// The `Host` header for this upstream (port omitted when it is the default).
    pub host_header: http::HeaderValue,
    /// The URL as written, for messages.
    pub url: String,
}

/// A configured host name: `store.example.com` or `*.example.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Matches this host only (lower-case, no port).
    Exact(String),
    /// `*.example.com`: matches any host ending in `.example.com` (stored with the dot).
    Wildcard(String),
}

impl HostPattern {
    /// Parses a configured host name; the error says why it is unusable.
    pub fn parse(s: &str) -> Result<HostPattern, &'static str> {
        let lower = s.trim().to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        if name.is_empty() {
            return Err("is empty");
        }
        if name.contains(':') && !name.starts_with('[') {
            return Err("must not carry a port (ports are ignored when routing)");
        }
        let valid = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            Some(ip) => !wild && ip.parse::<std::net::Ipv6Addr>().is_ok(),
            None => name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }),
        };
        if !valid {
            return Err(
                "is not a host name (letters, digits, '-', '.'; optionally starting with \"*.\")",
            );
        }
        Ok(if wild {
            HostPattern::Wildcard(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_owned())
        })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// One `[[apps]]` entry as written. Validated here: the routing keys,
/// then the login keys.
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
    gateway_path: Option<String>,
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

/// `gateway_path` when not set: `/.gateway` below the app's path prefix,
/// where the router sends it to the app (`/api/.gateway` for `/api`).
pub(super) fn default_gateway_path(path_prefix: &str) -> String {
    match path_prefix {
        "/" => "/.gateway".to_owned(),
        prefix => format!("{prefix}/.gateway"),
    }
}

fn default_landing() -> String {
    "/".into()
}

impl RawApp {
    pub(super) fn validate(
        self,
        i: usize,
        idp: Option<&RawIdp>,
        session: &SessionConfig,
    ) -> Result<AppConfig, ConfigError> {
        let key = |field: &str| format!("apps[{i}].{field}");
        let name = self.name.trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                key("name"),
                format!(
                    "{:?} must be non-empty letters, digits, '-' or '_'",
                    self.name
                ),
            ));
        }
        if self.hosts.is_empty() {
            return Err(invalid(key("hosts"), "at least one host name is required"));
        }
        let hosts = self
            .hosts
            .iter()
            .enumerate()
            .map(|(h, s)| {
                HostPattern::parse(s)
                    .map_err(|why| invalid(format!("apps[{i}].hosts[{h}]"), format!("{s:?} {why}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !self.path_prefix.starts_with('/')
            || !is_plain_path(&self.path_prefix)
            || self
                .path_prefix
                .split('/')
                .any(|seg| seg == ".." || seg == ".")
        {
            return Err(invalid(
                key("path_prefix"),
                format!(
                    "{:?} must be an absolute path like \"/\" or \"/api\", of letters, \
                     digits and -._~!$&'()*+,=:@ (request paths are matched in their \
                     normal form, where anything else is percent-encoded)",
                    self.path_prefix
                ),
            ));
        }
        let path_prefix = normalise_prefix(&self.path_prefix);
        let upstream = upstream_target(&key("upstream"), &self.upstream)?;
        let preserve_host = self.preserve_host;
        let auth = self.validate_auth(i, &name, idp, session)?;
        Ok(AppConfig {
            name,
            hosts,
            path_prefix,
            upstream,
            preserve_host,
            auth,
        })
    }
}

/// `/api/` and `/api` own the same paths; keep one spelling.
pub(super) fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn upstream_target(key: &str, s: &str) -> Result<UpstreamTarget, ConfigError> {
    let bad = || invalid(key, format!("{s:?} is not an http(s) URL"));
    let url = url::Url::parse(s).map_err(|_| bad())?;
    let scheme = match url.scheme() {
        "http" => Scheme::HTTP,
        "https" => Scheme::HTTPS,
        _ => return Err(bad()),
    };
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(key, format!("{s:?} must not carry credentials")));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            key,
            format!("{s:?} must be scheme://host[:port] only (requests keep their own path)"),
        ));
    }
    let port = url.port_or_known_default().ok_or_else(bad)?;
    let authority = Authority::try_from(format!("{host}:{port}")).map_err(|_| bad())?;
    let host_header = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let host_header = http::HeaderValue::from_str(&host_header).map_err(|_| bad())?;
    Ok(UpstreamTarget {
        scheme,
        authority,
        host_header,
        url: s.to_owned(),
    })
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

        let gateway_path = self
            .gateway_path
            .unwrap_or_else(|| default_gateway_path(&normalise_prefix(&self.path_prefix)));
        let gateway_path = {
            let p = local_path(&key("gateway_path"), &gateway_path)?;
            let p = p.trim_end_matches('/').to_owned();
            if p.is_empty() || !is_plain_path(&p) {
                return Err(invalid(
                    key("gateway_path"),
                    format!("{gateway_path:?} must be a path below \"/\", like \"/.gateway\""),
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
                // Syntax only: the login page renders it (with sample
                // values) when the gateway's state is built, which
                // `gateway check` does too.
                minijinja::Environment::empty()
                    .template_from_str(&text)
                    .map_err(|e| {
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
pub(super) fn title_case(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
