//! `[store]`: where the state that replicas must share lives (refresh
//! single-flight and grace results, login throttles, the revocation list):
//! in this process (`memory`, one replica) or in Redis (`redis`, any number).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::idp::Secret;
use super::values::duration;

/// Where shared state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// In this process: one replica, nothing to run beside it.
    Memory,
    /// In Redis, shared by every replica using the same URL and prefix.
    Redis(RedisSettings),
}

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` (TLS) URL: host, port, user, database.
    /// Its password, if any, is in `password`, never here.
    pub url: url::Url,
    /// The password (from the URL, `store.password` or
    /// `GATEWAY_STORE__PASSWORD`).
    pub password: Option<Secret>,
    /// PEM CA certificates to trust for `rediss://` instead of the public
    /// roots.
    pub tls_ca: Option<Vec<u8>>,
    /// Multiplexed connections to spread commands over.
    pub pool_size: usize,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url.as_str())
            .field("password", &self.password)
            .field("tls_ca", &self.tls_ca.as_ref().map(|_| "…"))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// `[store]`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Memory or Redis.
    pub kind: StoreKind,
    /// Prepended to every key and channel name, so that several gateway
    /// deployments can share one Redis.
    pub key_prefix: String,
    /// The longest any one Redis operation may take before the gateway
    /// goes on without it.
    pub timeout: Duration,
}

impl StoreConfig {
    /// What `gateway check` and the start-up log say about the store: no
    /// password, ever.
    pub fn describe(&self) -> String {
        match &self.kind {
            StoreKind::Memory => "memory (this replica only)".to_owned(),
            StoreKind::Redis(r) => format!(
                "redis at {} (key prefix {:?}, timeout {}, {} connection{})",
                r.url,
                self.key_prefix,
                humantime::format_duration(self.timeout),
                r.pool_size,
                if r.pool_size == 1 { "" } else { "s" }
            ),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Memory,
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    kind: RawKind,
    url: Option<String>,
    password: Option<String>,
    tls_ca_file: Option<PathBuf>,
    key_prefix: String,
    timeout: String,
    pool_size: usize,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            kind: RawKind::Memory,
            url: None,
            password: None,
            tls_ca_file: None,
            key_prefix: "gateway:".into(),
            timeout: "50ms".into(),
            pool_size: 2,
        }
    }
}

/// Most key prefixes a deployment would choose; nothing that could open a
/// Redis Cluster hash tag (`{`, `}`) or split a command line.
fn prefix_ok(prefix: &str) -> bool {
    prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
}

impl RawStore {
    pub(super) fn validate(self) -> Result<StoreConfig, ConfigError> {
        if !prefix_ok(&self.key_prefix) {
            return Err(invalid(
                "store.key_prefix",
                format!(
                    "{:?}: use at most 64 letters, digits and - _ . : / (e.g. \"gateway:\")",
                    self.key_prefix
                ),
            ));
        }
        let timeout = duration("store.timeout", &self.timeout)?;
        if timeout > Duration::from_secs(5) {
            return Err(invalid(
                "store.timeout",
                "at most 5s: a request waits this long for Redis before going on without it",
            ));
        }
        let kind = match self.kind {
            RawKind::Memory => {
                for (key, set) in [
                    ("store.url", self.url.is_some()),
                    ("store.password", self.password.is_some()),
                    ("store.tls_ca_file", self.tls_ca_file.is_some()),
                ] {
                    if set {
                        return Err(invalid(key, "is set but store.kind is \"memory\"; set store.kind = \"redis\" to use it"));
                    }
                }
                StoreKind::Memory
            }
            RawKind::Redis => StoreKind::Redis(self.redis()?),
        };
        Ok(StoreConfig {
            kind,
            key_prefix: self.key_prefix,
            timeout,
        })
    }

    fn redis(&self) -> Result<RedisSettings, ConfigError> {
        let raw = self.url.as_deref().ok_or_else(|| {
            invalid(
                "store.url",
                "missing: store.kind = \"redis\" needs a URL such as redis://127.0.0.1:6379/0",
            )
        })?;
        let mut url = url::Url::parse(raw).map_err(|e| {
            invalid(
                "store.url",
                format!("not a URL ({e}); expected redis://host:port/db or rediss://…"),
            )
        })?;
        if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(
                "store.url",
                "expected redis://host:port/db or rediss://host:port/db (TLS)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "store.url",
                "takes no query or fragment: set the password with store.password",
            ));
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(invalid(
                "store.url",
                format!("{db:?} is not a database number (the path is /0, /1, …)"),
            ));
        }
        let in_url = url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        });
        if in_url.is_some() && self.password.is_some() {
            return Err(invalid(
                "store.password",
                "the password is given twice, in store.url and in store.password: keep one",
            ));
        }
        // The password lives apart from the URL, so the URL can be shown.
        let _ = url.set_password(None);
        let password = self
            .password
            .clone()
            .or(in_url)
            .filter(|p| !p.is_empty())
            .map(Secret::new);
        let tls_ca =
            match &self.tls_ca_file {
                None => None,
                Some(_) if url.scheme() != "rediss" => {
                    return Err(invalid(
                        "store.tls_ca_file",
                        "is set but store.url is not rediss:// (TLS)",
                    ))
                }
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    invalid("store.tls_ca_file", format!("{}: {e}", path.display()))
                })?),
            };
        if self.pool_size == 0 || self.pool_size > 64 {
            return Err(invalid("store.pool_size", "must be between 1 and 64"));
        }
        Ok(RedisSettings {
            url,
            password,
            tls_ca,
            pool_size: self.pool_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml_text: &str) -> Result<StoreConfig, String> {
        use figment::providers::Format;
        let raw: RawStore = figment::Figment::new()
            .merge(figment::providers::Toml::string(toml_text))
            .extract()
            .map_err(|e| e.to_string())?;
        raw.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn memory_is_the_default() {
        let c = load("").expect("valid");
        assert_eq!(c.kind, StoreKind::Memory);
        assert_eq!(c.key_prefix, "gateway:");
        assert_eq!(c.timeout, Duration::from_millis(50));
    }

    #[test]
    fn the_password_is_taken_out_of_the_url() {
        let c = load("kind = \"redis\"\nurl = \"rediss://app:p%40ss@redis.internal:6380/2\"")
            .expect("valid");
        let StoreKind::Redis(r) = &c.kind else {
            panic!("redis")
        };
        assert_eq!(r.url.as_str(), "rediss://app@redis.internal:6380/2");
        assert_eq!(r.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert!(!c.describe().contains("p@ss"), "{}", c.describe());
        assert!(!format!("{c:?}").contains("p@ss"));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("kind = \"redis\"", "store.url"),
            ("kind = \"redis\"\nurl = \"http://x\"", "store.url"),
            ("kind = \"redis\"\nurl = \"redis://x/db\"", "store.url"),
            (
                "kind = \"redis\"\nurl = \"redis://x/0?password=y\"",
                "store.url",
            ),
            (
                "kind = \"redis\"\nurl = \"redis://:a@x/0\"\npassword = \"b\"",
                "store.password",
            ),
            (
                "kind = \"redis\"\nurl = \"redis://x\"\npool_size = 0",
                "store.pool_size",
            ),
            (
                "kind = \"redis\"\nurl = \"redis://x\"\ntls_ca_file = \"/ca.pem\"",
                "store.tls_ca_file",
            ),
            ("url = \"redis://x\"", "store.url"),
            ("key_prefix = \"a{b}\"", "store.key_prefix"),
            ("timeout = \"0s\"", "store.timeout"),
            ("timeout = \"1m\"", "store.timeout"),
        ] {
            let err = load(text).expect_err(text);
            assert!(err.starts_with(key), "{text}: {err}");
        }
    }
}
