//! Configuration: layered loading, then validation into typed config.
//!
//! Input: built-in defaults ← a TOML file ← `GATEWAY_<SECTION>__<KEY>`
//! environment variables (nested keys joined with `__`, e.g.
//! `GATEWAY_SERVER__LISTEN=127.0.0.1:9000`). Other `GATEWAY_…` variables
//! without `__` are not configuration and are ignored: Kubernetes sets
//! `GATEWAY_PORT`, `GATEWAY_SERVICE_HOST`, … in every pod of a namespace
//! with a Service named `gateway`. A `GATEWAY_X__Y` whose `X` is no section
//! is refused: it is meant as configuration, and misspelt.
//! Output: a [`Config`] whose values are already parsed (`SocketAddr`,
//! `Duration`, `Uri`, loaded TLS keys). Failure: a [`ConfigError`] whose message
//! names the offending key (`apps[1].upstream: "htp:/x" is not an http(s) URL`),
//! so `gateway check` and start-up say exactly what to fix.
//!
//! The raw structs mirror the file one to one and deny unknown keys; the shipped
//! `config.toml` documents every key and is loaded by a test.
//!
//! One file per section, each validating its raw table into typed values:
//! [`server`] (`[server]`, `[log]`, `[upstream]`, with [`tls`]), [`idp`],
//! [`session`] (`[session]`, `[login]`), [`store`], [`events`], [`forward_auth`], [`apps`] (`[[apps]]`, with the
//! login types in [`app_login`]); [`error`] and [`values`] are the leaves
//! they share. This folder imports nothing else of the crate: every other
//! layer reads the typed values defined here.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

pub mod app_login;
pub mod apps;
pub mod error;
pub mod events;
pub mod forward_auth;
pub mod idp;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod values;

pub use app_login::{AuthConfig, CookieSpec, IdentityHeaders, PathPattern};
pub use apps::{AppConfig, HostPattern, UpstreamTarget};
pub use error::ConfigError;
pub use events::EventsConfig;
pub use forward_auth::ForwardAuthConfig;
pub use idp::{Audience, Client, ClientAuth, IdpSettings, Kind, Secret};
pub use server::{LogConfig, LogFormat, ServerConfig, TlsConfig, UpstreamConfig};
pub use session::{LoginConfig, RefreshMode, SessionConfig, MIN_KEY_BYTES};
pub use store::{RedisSettings, StoreConfig, StoreKind};

use apps::RawApp;
use error::{describe_figment_error, invalid};
use events::RawEvents;
use forward_auth::RawForwardAuth;
use idp::RawIdp;
use server::{RawLog, RawServer, RawUpstream};
use session::{RawLogin, RawSession};
use store::RawStore;

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
    /// Where the state replicas share lives.
    pub store: StoreConfig,
    /// Webhooks, back-channel logout and the admin API.
    pub events: EventsConfig,
    /// The auth endpoint for an ingress, if on.
    pub forward_auth: Option<ForwardAuthConfig>,
    /// The apps behind the gateway, in file order.
    pub apps: Vec<AppConfig>,
    /// `GATEWAY_…` environment variables that are not configuration (no
    /// `__`) and were ignored, by name; logged once logging is up.
    pub ignored_variables: Vec<String>,
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
        let mut ignored_variables = Vec::new();
        if with_env {
            let (env, ignored) = environment()?;
            figment = figment.merge(env);
            ignored_variables = ignored;
        }
        let raw: RawConfig = figment
            .extract()
            .map_err(|e| ConfigError::Parse(describe_figment_error(e, origin)))?;
        let mut config = raw.validate()?;
        config.ignored_variables = ignored_variables;
        Ok(config)
    }
}

/// The configuration's top-level sections: the `SECTION` of
/// `GATEWAY_<SECTION>__<KEY>` (the fields of `RawConfig`).
const SECTIONS: &[&str] = &[
    "server",
    "log",
    "upstream",
    "idp",
    "session",
    "login",
    "store",
    "events",
    "forward_auth",
    "apps",
];

/// The environment layer: only `GATEWAY_<SECTION>__<KEY>` variables, and
/// the names of the other `GATEWAY_…` ones (ignored). A variable with `__`
/// whose first part is no section is refused.
fn environment() -> Result<(Env, Vec<String>), ConfigError> {
    let env = Env::prefixed("GATEWAY_");
    let mut ignored = Vec::new();
    // Keys come lower-cased, without the prefix.
    for (key, _) in env.iter() {
        let name = format!("GATEWAY_{}", key.as_str().to_ascii_uppercase());
        match key.as_str().split_once("__") {
            None => ignored.push(name),
            Some((section, _)) if SECTIONS.contains(&section) => {}
            Some((section, _)) => {
                return Err(ConfigError::Parse(format!(
                    "{section}: unknown section (from environment variable {name}; expected \
                     one of: {}; only GATEWAY_<SECTION>__<KEY> variables are configuration)",
                    SECTIONS.join(", ")
                )))
            }
        }
    }
    ignored.sort();
    let env = env.filter(|key| key.as_str().contains("__")).split("__");
    Ok((env, ignored))
}

// ---------------------------------------------------------------------------
// The raw file: one table per section, each validated in its own module.
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
    store: RawStore,
    #[serde(default)]
    events: RawEvents,
    #[serde(default)]
    forward_auth: RawForwardAuth,
    #[serde(default)]
    apps: Vec<RawApp>,
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let server = self.server.validate()?;
        let log = self.log.validate()?;
        let upstream = self.upstream.validate()?;
        let session = self.session.validate()?;
        let login = self.login.validate()?;
        let store = self.store.validate()?;
        let events = self.events.validate()?;
        let forward_auth = self.forward_auth.validate()?;
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
        check_apps_sharing_hosts(&apps)?;
        Ok(Config {
            server,
            log,
            upstream,
            session,
            login,
            store,
            events,
            forward_auth,
            apps,
            ignored_variables: Vec::new(),
        })
    }
}

/// Apps with login that share a host pattern: cookies are sent to every
/// path of the host (`Path=/`, which the `__Host-` prefix requires), so
/// each app needs cookie names of its own; and each app's login pages
/// (`gateway_path`) must be routed to that app, so they must lie under its
/// own `path_prefix` and under no longer prefix of another app on the host.
fn check_apps_sharing_hosts(apps: &[AppConfig]) -> Result<(), ConfigError> {
    let who = |i: usize| format!("apps[{i}] ({})", apps[i].name);
    let shared_host = |a: usize, b: usize| {
        apps[a]
            .hosts
            .iter()
            .find(|host| apps[b].hosts.contains(host))
            .map(ToString::to_string)
    };
    for (i, app) in apps.iter().enumerate() {
        let Some(auth) = &app.auth else { continue };
        let path = auth.gateway_path.as_str();
        if !under(&app.path_prefix, path) {
            // Which app would get the login pages instead, if any.
            let owner = apps
                .iter()
                .enumerate()
                .filter(|&(j, other)| j != i && under(&other.path_prefix, path))
                .filter_map(|(j, other)| shared_host(i, j).map(|host| (j, other, host)))
                .max_by_key(|(_, other, _)| other.path_prefix.len());
            let fate = match owner {
                Some((j, _, host)) => format!("be served by {} on host {host:?}", who(j)),
                None => "reach no app (404)".to_owned(),
            };
            return Err(invalid(
                format!("apps[{i}].gateway_path"),
                format!(
                    "{path:?} is outside the path_prefix {:?} of {}: requests for its login \
                     pages would {fate}; use a path under {:?}, like {:?}",
                    app.path_prefix,
                    who(i),
                    app.path_prefix,
                    apps::default_gateway_path(&app.path_prefix)
                ),
            ));
        }
        let longer = apps.iter().enumerate().find_map(|(j, other)| {
            let is_longer = other.path_prefix.len() > app.path_prefix.len();
            (is_longer && under(&other.path_prefix, path))
                .then(|| shared_host(i, j).map(|host| (j, other, host)))
                .flatten()
        });
        if let Some((j, other, host)) = longer {
            return Err(invalid(
                format!("apps[{i}].gateway_path"),
                format!(
                    "{path:?} lies under the path_prefix {:?} of {} on host {host:?}: \
                     requests for the login pages of {} would be served by {}; use a path \
                     outside {:?}",
                    other.path_prefix,
                    who(j),
                    who(i),
                    who(j),
                    other.path_prefix
                ),
            ));
        }
        // Cookie names, against every earlier app with login whose cookies
        // reach the same browser jar: a shared host, or a `cookies.domain`
        // that covers the other app's hosts.
        for (j, other) in apps.iter().enumerate().take(i) {
            let Some(other_auth) = &other.auth else {
                continue;
            };
            let Some(host) = shared_host(i, j).or_else(|| cookie_overlap(app, other)) else {
                continue;
            };
            let theirs = [
                other_auth.jwt_cookie.wire_name(),
                other_auth.refresh_cookie.wire_name(),
            ];
            for (field, cookie) in [("jwt", &auth.jwt_cookie), ("refresh", &auth.refresh_cookie)] {
                if theirs.contains(&cookie.wire_name()) {
                    let name = &cookie.name;
                    return Err(invalid(
                        format!("apps[{i}].cookies.{field}"),
                        format!(
                            "{} and {} both have login, their cookies both reach {host:?}, \
                             and both use the cookie {name:?}; cookies reach every path of a \
                             host (and every host of a cookies.domain), so such apps need \
                             cookie names of their own (set [apps.cookies] jwt and refresh)",
                            who(j),
                            who(i)
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Where the cookies of two apps with login meet in a browser, when one's
/// `cookies.domain` covers a host of the other or the two domains nest: a
/// host (or domain) that both apps' cookies are sent to.
fn cookie_overlap(a: &AppConfig, b: &AppConfig) -> Option<String> {
    let domain = |app: &AppConfig| {
        let auth = app.auth.as_ref()?;
        let d = auth.jwt_cookie.domain.as_deref()?;
        Some(d.trim_start_matches('.').to_ascii_lowercase())
    };
    // `name` is `domain` or below it.
    let within = |name: &str, domain: &str| {
        name == domain
            || name
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    let covers = |domain: &str, host: &HostPattern| match host {
        HostPattern::Exact(name) => within(name, domain),
        HostPattern::Wildcard(suffix) => within(suffix.trim_start_matches('.'), domain),
    };
    let (da, db) = (domain(a), domain(b));
    if let (Some(da), Some(db)) = (&da, &db) {
        if within(da, db) || within(db, da) {
            return Some(if da.len() > db.len() { da } else { db }.clone());
        }
    }
    for (domain, hosts) in [(&da, &b.hosts), (&db, &a.hosts)] {
        if let Some(domain) = domain {
            if let Some(host) = hosts.iter().find(|h| covers(domain, h)) {
                return Some(host.to_string());
            }
        }
    }
    None
}

/// Whether `path` is `prefix` or below it (on a segment boundary), as the
/// router matches prefixes.
fn under(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::apps::{normalise_prefix, title_case};
    use super::error::key_path;
    use super::idp::resolve_idp;
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
    fn sections_are_the_top_level_keys() {
        let e = err(&format!("[nope]\nx = 1\n{MINIMAL}"));
        assert!(
            e.contains(&format!("(expected one of: {})", SECTIONS.join(", "))),
            "SECTIONS must list RawConfig's fields in order: {e}"
        );
    }

    #[test]
    fn the_default_gateway_path_lies_under_the_prefix() {
        assert_eq!(apps::default_gateway_path("/"), "/.gateway");
        assert_eq!(apps::default_gateway_path("/api"), "/api/.gateway");
        assert!(under("/", "/.gateway"));
        assert!(under("/api", "/api/.gateway"));
        assert!(under("/api", "/api"));
        assert!(!under("/api", "/apix/.gateway"));
        assert!(!under("/api", "/.gateway"));
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
