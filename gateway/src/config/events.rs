//! `[events]`: the endpoints that end sessions before their JWTs expire, all
//! on the admin listener: FusionAuth's webhooks, OpenID Connect back-channel
//! logout, and the admin API. Each is off until configured.

use std::time::Duration;

use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::idp::Secret;
use super::values::duration;

/// Shortest webhook signing secret or admin token accepted.
pub const MIN_SECRET_BYTES: usize = 16;

/// `[events]`.
#[derive(Debug, Clone, Default)]
pub struct EventsConfig {
    /// FusionAuth webhooks, if on.
    pub webhook: Option<Webhook>,
    /// Back-channel logout, if on.
    pub backchannel: Option<Backchannel>,
    /// The admin API's bearer token, if on.
    pub admin_token: Option<Secret>,
}

/// FusionAuth's webhooks.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Where FusionAuth posts.
    pub path: String,
    /// HMAC key FusionAuth signs `X-FusionAuth-Signature-JWT` with.
    pub signing_secret: Option<Secret>,
    /// Accept signatures by the IdP's published (JWKS) keys.
    pub signing_idp_keys: bool,
    /// A shared secret FusionAuth sends as `Authorization: Bearer …`.
    pub secret: Option<Secret>,
    /// JWT lifetime assumed when an event does not say.
    pub ttl: Duration,
}

/// OpenID Connect back-channel logout.
#[derive(Debug, Clone)]
pub struct Backchannel {
    /// Where the IdP posts `logout_token`.
    pub path: String,
    /// Oldest `iat` accepted.
    pub max_age: Duration,
    /// JWT lifetime assumed for a user-wide logout.
    pub ttl: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEvents {
    webhook_path: String,
    webhook_signing_secret: Option<String>,
    webhook_signing_idp_keys: bool,
    webhook_secret: Option<String>,
    webhook_ttl: String,
    backchannel: bool,
    backchannel_path: String,
    backchannel_max_age: String,
    admin_token: Option<String>,
}

impl Default for RawEvents {
    fn default() -> Self {
        RawEvents {
            webhook_path: "/events/fusionauth".into(),
            webhook_signing_secret: None,
            webhook_signing_idp_keys: false,
            webhook_secret: None,
            webhook_ttl: "1h".into(),
            backchannel: false,
            backchannel_path: "/events/backchannel-logout".into(),
            backchannel_max_age: "5m".into(),
            admin_token: None,
        }
    }
}

fn secret(key: &str, value: Option<String>, bearer: bool) -> Result<Option<Secret>, ConfigError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.len() < MIN_SECRET_BYTES => Err(invalid(
            key,
            format!(
                "is {} bytes; at least {MIN_SECRET_BYTES} are required (generate one with \
                 `openssl rand -base64 32`)",
                v.len()
            ),
        )),
        // Sent as `Authorization: Bearer <secret>`: one token, no spaces.
        Some(v) if bearer && !v.bytes().all(|b| b.is_ascii_graphic()) => Err(invalid(
            key,
            "must be printable ASCII without spaces (it is sent as a bearer token)",
        )),
        Some(v) => Ok(Some(Secret::new(v))),
    }
}

fn path(key: &str, value: &str) -> Result<String, ConfigError> {
    let ok = value.starts_with('/')
        && value.len() > 1
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
    if !ok || matches!(value, "/healthz" | "/readyz" | "/metrics") || value.starts_with("/admin") {
        return Err(invalid(
            key,
            format!(
                "{value:?}: use a path of letters, digits and / - _ . on the admin listener, \
                 other than /healthz, /readyz, /metrics and /admin…"
            ),
        ));
    }
    Ok(value.to_owned())
}

impl RawEvents {
    pub(super) fn validate(self) -> Result<EventsConfig, ConfigError> {
        let signing_secret = secret(
            "events.webhook_signing_secret",
            self.webhook_signing_secret,
            false,
        )?;
        let shared = secret("events.webhook_secret", self.webhook_secret, true)?;
        let ttl = duration("events.webhook_ttl", &self.webhook_ttl)?;
        let webhook =
            if signing_secret.is_some() || self.webhook_signing_idp_keys || shared.is_some() {
                Some(Webhook {
                    path: path("events.webhook_path", &self.webhook_path)?,
                    signing_secret,
                    signing_idp_keys: self.webhook_signing_idp_keys,
                    secret: shared,
                    ttl,
                })
            } else {
                None
            };
        let backchannel = if self.backchannel {
            Some(Backchannel {
                path: path("events.backchannel_path", &self.backchannel_path)?,
                max_age: duration("events.backchannel_max_age", &self.backchannel_max_age)?,
                ttl,
            })
        } else {
            None
        };
        if let (Some(w), Some(b)) = (&webhook, &backchannel) {
            if w.path == b.path {
                return Err(invalid(
                    "events.backchannel_path",
                    "is the same as events.webhook_path",
                ));
            }
        }
        Ok(EventsConfig {
            webhook,
            backchannel,
            admin_token: secret("events.admin_token", self.admin_token, true)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml_text: &str) -> Result<EventsConfig, String> {
        use figment::providers::Format;
        let raw: RawEvents = figment::Figment::new()
            .merge(figment::providers::Toml::string(toml_text))
            .extract()
            .map_err(|e| e.to_string())?;
        raw.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn everything_is_off_by_default() {
        let c = load("").expect("valid");
        assert!(c.webhook.is_none() && c.backchannel.is_none() && c.admin_token.is_none());
    }

    #[test]
    fn the_webhook_is_on_with_any_authenticity_setting() {
        let c = load("webhook_secret = \"0123456789abcdef0123\"").expect("valid");
        let w = c.webhook.expect("on");
        assert_eq!(w.path, "/events/fusionauth");
        assert!(w.secret.is_some() && w.signing_secret.is_none() && !w.signing_idp_keys);
        assert!(load("webhook_signing_idp_keys = true")
            .expect("valid")
            .webhook
            .is_some());
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("webhook_secret = \"short\"", "events.webhook_secret"),
            ("admin_token = \"short\"", "events.admin_token"),
            (
                "admin_token = \"with spaces, 32 characters long..\"",
                "events.admin_token",
            ),
            (
                "webhook_signing_idp_keys = true\nwebhook_path = \"/metrics\"",
                "events.webhook_path",
            ),
            (
                "backchannel = true\nbackchannel_path = \"x\"",
                "events.backchannel_path",
            ),
            (
                "backchannel = true\nwebhook_signing_idp_keys = true\nbackchannel_path = \"/e\"\nwebhook_path = \"/e\"",
                "events.backchannel_path",
            ),
            ("webhook_ttl = \"0s\"", "events.webhook_ttl"),
        ] {
            let err = load(text).expect_err(text);
            assert!(err.starts_with(key), "{text}: {err}");
        }
    }
}
