//! Configuration: layered loading, then validation into typed config.
//!
//! Input: built-in defaults ← a TOML file ← `GATEWAY_…` environment variables
//! (nested keys joined with `__`, e.g. `GATEWAY_SERVER__LISTEN=127.0.0.1:9000`).
//! Output: a [`Config`] whose values are already parsed (`SocketAddr`,
//! `Duration`, `Uri`, loaded TLS keys). Failure: a [`ConfigError`] whose message
//! names the offending key (`apps[1].upstream: "htp:/x" is not an http(s) URL`),
//! so `gateway check` and start-up say exactly what to fix.
//!
//! The raw structs mirror the file one to one and deny unknown keys; the shipped
//! `config.toml` documents every key and is loaded by a test.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use http::uri::{Authority, Scheme};
use ipnet::IpNet;
use serde::Deserialize;

use crate::route::HostPattern;

mod auth;

pub use auth::{
    Audience, AuthConfig, IdentityHeaders, IdpSettings, LoginConfig, PathPattern, RefreshMode,
    SessionConfig,
};
use auth::{RawApp, RawIdp, RawLogin, RawSession};

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners, timeouts and connection limits.
    pub server: ServerConfig,
    /// Log level, format and access log.
    pub log: LogConfig,
    /// How the gateway talks to upstream apps.
    pub upstream: UpstreamConfig,
    /// How sessions are kept and renewed.
    pub session: SessionConfig,
    /// The login form's defences.
    pub login: LoginConfig,
    /// The apps behind the gateway, in file order.
    pub apps: Vec<AppConfig>,
}

/// `[server]`: what the gateway listens on and how it treats client connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of the proxy listener.
    pub listen: SocketAddr,
    /// Address of the admin listener (health, readiness, metrics); `None` disables it.
    pub admin_listen: Option<SocketAddr>,
    /// TLS termination on the proxy listener; `None` serves plain HTTP (and h2c).
    pub tls: Option<TlsConfig>,
    /// Worker threads, each an event loop serving its share of the
    /// connections; `None` uses one per core.
    pub worker_threads: Option<usize>,
    /// Longest time a client may take to send a complete request head.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request and no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// An HTTP/1 keep-alive connection quiet for this long gives back its
    /// per-connection buffers (the socket stays open).
    pub idle_release_after: Duration,
    /// Largest request head (HTTP/1) or header list (HTTP/2) accepted, in bytes.
    pub max_header_bytes: usize,
    /// How long in-flight requests may run after SIGTERM/SIGINT before the process exits.
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-*` headers are trusted and appended to.
    pub trusted_proxies: Vec<IpNet>,
    /// Accept HTTP/2 (h2c prior knowledge, or ALPN `h2` under TLS).
    pub http2: bool,
}

/// `[server.tls]`: certificate and key, already loaded.
#[derive(Clone)]
pub struct TlsConfig {
    /// PEM certificate chain file.
    pub cert: PathBuf,
    /// PEM private key file.
    pub key: PathBuf,
    /// The rustls server configuration built from them (ALPN `h2` when
    /// `server.http2` is on, and `http/1.1`).
    pub server_config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `tracing` filter directive such as `info` or `gateway=debug,info`;
    /// `RUST_LOG`, when set, wins.
    pub level: String,
    /// Human-readable or JSON lines.
    pub format: LogFormat,
    /// Emit one `info` line per request (method, path, status, duration).
    pub access: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Multi-field human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[upstream]`: connection behaviour towards every app.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// TCP (and TLS) connect timeout; exceeded → 504.
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response head; exceeded → 504.
    pub response_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept per upstream and worker thread.
    pub pool_max_idle_per_host: usize,
}

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

/// A configuration that cannot be used, with the key to blame.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named with `--config` cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, type or unknown-key problems found while parsing the layers.
    #[error("{0}")]
    Parse(String),
    /// A value that parsed but makes no sense.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted key path, e.g. `apps[1].upstream`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// Loads defaults ← `path` ← `GATEWAY_…` environment, then validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_layers(&text, &path.display().to_string(), true)
    }

    /// Parses and validates a TOML document with no environment layer (for tests and tools).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_layers(text, "config", false)
    }

    fn from_layers(text: &str, origin: &str, with_env: bool) -> Result<Config, ConfigError> {
        let mut figment = Figment::new().merge(Toml::string(text));
        if with_env {
            figment = figment.merge(Env::prefixed("GATEWAY_").split("__"));
        }
        let raw: RawConfig = figment
            .extract()
            .map_err(|e| ConfigError::Parse(describe_figment_error(e, origin)))?;
        raw.validate()
    }
}

fn describe_figment_error(errors: figment::Error, origin: &str) -> String {
    let mut lines = Vec::new();
    for e in errors {
        // figment's path already ends with the offending field.
        let path = &e.path;
        let detail = match &e.kind {
            figment::error::Kind::UnknownField(_, expected) if !expected.is_empty() => {
                format!("unknown key (expected one of: {})", expected.join(", "))
            }
            figment::error::Kind::UnknownField(..) => "unknown key".to_owned(),
            figment::error::Kind::MissingField(field)
                if path.last().map(String::as_str) != Some(field) =>
            {
                push_missing(path, field, origin, &mut lines);
                continue;
            }
            figment::error::Kind::MissingField(_) => "missing required key".to_owned(),
            other => other.to_string(),
        };
        let from_env = e
            .metadata
            .as_ref()
            .is_some_and(|md| md.name.contains("environment"));
        if path.is_empty() {
            // Syntax errors: the parser's message carries line and column.
            lines.push(format!("{origin}: {}", detail.trim_end()));
        } else if from_env {
            let var = format!("GATEWAY_{}", path.join("__").to_uppercase());
            lines.push(format!(
                "{}: {detail} (from environment variable {var})",
                key_path(path)
            ));
        } else {
            lines.push(format!("{}: {detail} (in {origin})", key_path(path)));
        }
    }
    lines.join("\n")
}

fn push_missing(path: &[String], field: &str, origin: &str, lines: &mut Vec<String>) {
    let mut full = path.to_vec();
    full.push(field.to_owned());
    lines.push(format!(
        "{}: missing required key (in {origin})",
        key_path(&full)
    ));
}

/// `["apps", "1", "upstream"]` → `apps[1].upstream`.
fn key_path(parts: &[String]) -> String {
    let mut out = String::new();
    for part in parts {
        if part.chars().all(|c| c.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Raw structs: mirror the file, carry the built-in defaults.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    upstream: RawUpstream,
    idp: Option<RawIdp>,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    login: RawLogin,
    #[serde(default)]
    apps: Vec<RawApp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: String,
    admin_listen: Option<String>,
    tls: Option<RawTls>,
    worker_threads: Option<usize>,
    header_read_timeout: String,
    idle_timeout: String,
    idle_release_after: String,
    max_header_bytes: usize,
    shutdown_grace: String,
    trusted_proxies: Vec<String>,
    http2: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            admin_listen: Some("127.0.0.1:9090".into()),
            tls: None,
            worker_threads: None,
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            idle_release_after: "20ms".into(),
            max_header_bytes: 16 * 1024,
            shutdown_grace: "10s".into(),
            trusted_proxies: Vec::new(),
            http2: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: String,
    format: LogFormat,
    access: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: LogFormat::Pretty,
            access: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpstream {
    connect_timeout: String,
    response_timeout: String,
    pool_idle_timeout: String,
    pool_max_idle_per_host: usize,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            connect_timeout: "3s".into(),
            response_timeout: "30s".into(),
            pool_idle_timeout: "90s".into(),
            pool_max_idle_per_host: 64,
        }
    }
}

// ---------------------------------------------------------------------------
// Validation: raw → typed, naming the key on every refusal.
// ---------------------------------------------------------------------------

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let server = self.server.validate()?;
        let log = self.log.validate()?;
        let upstream = self.upstream.validate()?;
        let session = self.session.validate()?;
        let login = self.login.validate()?;
        if self.apps.is_empty() {
            return Err(invalid("apps", "at least one [[apps]] entry is required"));
        }
        let mut apps = Vec::with_capacity(self.apps.len());
        let mut names = HashSet::new();
        let mut routes: HashMap<(String, String), usize> = HashMap::new();
        for (i, raw) in self.apps.into_iter().enumerate() {
            let app = raw.validate(i, self.idp.as_ref(), &session)?;
            if !names.insert(app.name.clone()) {
                return Err(invalid(
                    format!("apps[{i}].name"),
                    format!("duplicate app name {:?}", app.name),
                ));
            }
            for host in &app.hosts {
                let key = (host.to_string(), app.path_prefix.clone());
                if let Some(&owner) = routes.get(&key) {
                    let why = if owner == i {
                        "is listed twice".to_owned()
                    } else {
                        format!("is already served by apps[{owner}] with the same path prefix")
                    };
                    return Err(invalid(
                        format!("apps[{i}].hosts"),
                        format!("duplicate host {:?} (path prefix {:?}) {why}", key.0, key.1),
                    ));
                }
                routes.insert(key, i);
            }
            apps.push(app);
        }
        Ok(Config {
            server,
            log,
            upstream,
            session,
            login,
            apps,
        })
    }
}

impl RawServer {
    fn validate(self) -> Result<ServerConfig, ConfigError> {
        let listen = socket_addr("server.listen", &self.listen)?;
        let admin_listen = match self.admin_listen.as_deref() {
            None | Some("") => None,
            Some(s) => Some(socket_addr("server.admin_listen", s)?),
        };
        if admin_listen.is_some_and(|a| a == listen && a.port() != 0) {
            return Err(invalid(
                "server.admin_listen",
                "must differ from server.listen",
            ));
        }
        let tls = match self.tls {
            None => None,
            Some(t) => Some(TlsConfig {
                server_config: crate::tls::server_config(&t.cert, &t.key, self.http2)?,
                cert: t.cert,
                key: t.key,
            }),
        };
        if self.worker_threads == Some(0) {
            return Err(invalid("server.worker_threads", "must be at least 1"));
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err(invalid(
                "server.max_header_bytes",
                format!(
                    "{} is out of range (1024 to 1048576)",
                    self.max_header_bytes
                ),
            ));
        }
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, s)| ip_net(&format!("server.trusted_proxies[{i}]"), s))
            .collect::<Result<_, _>>()?;
        Ok(ServerConfig {
            listen,
            admin_listen,
            tls,
            worker_threads: self.worker_threads,
            header_read_timeout: duration("server.header_read_timeout", &self.header_read_timeout)?,
            idle_timeout: duration("server.idle_timeout", &self.idle_timeout)?,
            idle_release_after: duration_or_zero(
                "server.idle_release_after",
                &self.idle_release_after,
            )?,
            max_header_bytes: self.max_header_bytes,
            shutdown_grace: duration_or_zero("server.shutdown_grace", &self.shutdown_grace)?,
            trusted_proxies,
            http2: self.http2,
        })
    }
}

impl RawLog {
    fn validate(self) -> Result<LogConfig, ConfigError> {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            return Err(invalid(
                "log.level",
                format!("{:?} is not a valid filter: {e}", self.level),
            ));
        }
        Ok(LogConfig {
            level: self.level,
            format: self.format,
            access: self.access,
        })
    }
}

impl RawUpstream {
    fn validate(self) -> Result<UpstreamConfig, ConfigError> {
        Ok(UpstreamConfig {
            connect_timeout: duration("upstream.connect_timeout", &self.connect_timeout)?,
            response_timeout: duration("upstream.response_timeout", &self.response_timeout)?,
            pool_idle_timeout: duration("upstream.pool_idle_timeout", &self.pool_idle_timeout)?,
            pool_max_idle_per_host: self.pool_max_idle_per_host,
        })
    }
}

impl RawApp {
    fn validate(
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
            || self.path_prefix.contains(['?', '#', ' '])
            || self
                .path_prefix
                .split('/')
                .any(|seg| seg == ".." || seg == ".")
        {
            return Err(invalid(
                key("path_prefix"),
                format!(
                    "{:?} must be an absolute path like \"/\" or \"/api\"",
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
fn normalise_prefix(prefix: &str) -> String {
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

fn socket_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        invalid(
            key,
            format!("{s:?} is not an address like 127.0.0.1:8080 or [::1]:8080"),
        )
    })
}

fn ip_net(key: &str, s: &str) -> Result<IpNet, ConfigError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| invalid(key, format!("{s:?} is not an IP address or CIDR block")))
}

fn duration_or_zero(key: &str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s).map_err(|e| {
        invalid(
            key,
            format!("{s:?} is not a duration like \"10s\" or \"2m\": {e}"),
        )
    })
}

fn duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    let d = duration_or_zero(key, s)?;
    if d.is_zero() {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[apps]]
        name = "store"
        hosts = ["store.localhost"]
        upstream = "http://127.0.0.1:3001"
        auth = false
    "#;

    fn err(toml: &str) -> String {
        match Config::from_toml(toml) {
            Ok(_) => panic!("config unexpectedly valid:\n{toml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_toml(MINIMAL).expect("valid");
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.apps[0].path_prefix, "/");
        assert_eq!(c.apps[0].upstream.authority.as_str(), "127.0.0.1:3001");
        assert!(c.apps[0].preserve_host);
    }

    #[test]
    fn key_paths_are_named() {
        assert_eq!(
            key_path(&["apps".into(), "1".into(), "upstream".into()]),
            "apps[1].upstream"
        );
        assert_eq!(
            key_path(&["server".into(), "listen".into()]),
            "server.listen"
        );
    }

    #[test]
    fn upstream_scheme_is_checked() {
        let e = err(&MINIMAL.replace("http://127.0.0.1:3001", "htp:/x"));
        assert_eq!(e, r#"apps[0].upstream: "htp:/x" is not an http(s) URL"#);
    }

    #[test]
    fn upstream_default_ports() {
        let c =
            Config::from_toml(&MINIMAL.replace("http://127.0.0.1:3001", "https://app.internal"))
                .expect("valid");
        assert_eq!(c.apps[0].upstream.authority.as_str(), "app.internal:443");
    }

    #[test]
    fn prefix_is_normalised() {
        assert_eq!(normalise_prefix("/api/"), "/api");
        assert_eq!(normalise_prefix("/"), "/");
        assert_eq!(normalise_prefix("//"), "/");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = err("[server\nlisten = 1");
        assert!(e.contains("line 1"), "{e}");
        assert!(e.contains("column"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err(&format!("{MINIMAL}\nbogus = 1\n"));
        assert!(e.starts_with("apps[0].bogus: unknown key"), "{e}");
        let e = err(&format!("[server]\nlisen = \"x\"\n{MINIMAL}"));
        assert!(e.starts_with("server.lisen: unknown key"), "{e}");
    }
}
