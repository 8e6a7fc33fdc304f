//! `[session]` and `[login]`: how sessions are kept and renewed, and the
//! login form's defences, for every app.

use std::time::Duration;

use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::idp::Secret;
use super::values::{duration, duration_or_zero};

/// A cookie key shorter than this is refused at start-up.
pub const MIN_KEY_BYTES: usize = 32;

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
    /// Attempts one username may burst (per IdP: every app using the same
    /// IdP shares them).
    pub per_user_burst: u32,
    /// Attempts one username regains per minute.
    pub per_user_per_minute: u32,
    /// Keys each throttle remembers at most.
    pub throttle_max_keys: usize,
    /// A failed login never answers sooner than this after it arrived.
    pub min_failure_time: Duration,
    /// The login and logout forms must arrive whole within this (408 after).
    pub form_timeout: Duration,
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
    form_timeout: String,
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
            form_timeout: "10s".into(),
        }
    }
}

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
            form_timeout: duration("login.form_timeout", &self.form_timeout)?,
        })
    }
}
