//! `[forward_auth]`: the gateway as the authentication service beside an
//! ingress that does the proxying itself (nginx `auth_request`, Caddy
//! `forward_auth`, Envoy `ext_authz`, Traefik `ForwardAuth`). Off until
//! `ingresses` lists the addresses allowed to ask.

use ipnet::IpNet;
use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::values::ip_net;

/// `[forward_auth]`, when on.
#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    /// The auth endpoint's path on the proxy listener (Envoy appends the
    /// original path to it).
    pub path: String,
    /// Peers whose subrequests are answered; anyone else gets 403.
    pub ingresses: Vec<IpNet>,
    /// Which ingress asks: how it describes the original request and what
    /// it needs from a refusal.
    pub ingress: Ingress,
    /// How the cookies of a refresh reach the browser.
    pub refresh: DeliverCookies,
}

/// The ingress in front, and so how its subrequests are read and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// nginx `auth_request`: `X-Original-Method` and `X-Original-URI`,
    /// the `Host` header; a refusal is a 401 (nginx turns any other status into a
    /// 500), with where to send a browser in `X-Gateway-Redirect` and the
    /// cookies in numbered headers (nginx 1.22 copies only the first
    /// `Set-Cookie` of a subrequest).
    Nginx,
    /// Kubernetes ingress-nginx (`auth-url`): the original path and query
    /// in `X-Original-URL`, the method in `X-Original-Method`, and the host
    /// in the auth URL's `host=` parameter, which the Ingress's author
    /// writes (the subrequest's `Host` is the gateway's, and the host in
    /// `X-Original-URL` is the client's `Host` header, which nginx does not
    /// route on when the request line is absolute); refused like nginx,
    /// with a 401 its `auth-signin` page follows up. It cannot copy a
    /// subrequest's cookies to the browser, so it needs `refresh =
    /// "redirect"`.
    IngressNginx,
    /// Traefik `ForwardAuth` and Caddy `forward_auth`: `X-Forwarded-Method`,
    /// `-Host`, `-Uri`; a refusal goes to the browser as answered (302 to
    /// the login page, 401 JSON).
    Forwarded,
    /// Envoy `ext_authz` (HTTP service): the subrequest is the original
    /// request, its path behind `path`; a refusal goes to the browser as
    /// answered, except a 5xx (Envoy answers it with its own status and none
    /// of the gateway's headers): a refresh that could not be verified is
    /// a 302 to the refresh page or a 401, with the rotated refresh cookie.
    Envoy,
}

/// How the cookies of a refresh reach the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverCookies {
    /// Never refresh in the subrequest: a page load is sent to the app's
    /// `{gateway_path}/refresh`, which refreshes on a top-level answer and
    /// sends the browser back; a script's request gets 401 JSON asking for
    /// a reload. Works with every ingress.
    Redirect,
    /// Refresh in the subrequest and put the cookies on the allowing
    /// answer: only for an ingress configured to copy them onto the
    /// response (the shipped nginx, Envoy and Traefik configs do).
    SetCookie,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawForwardAuth {
    path: String,
    ingresses: Vec<String>,
    ingress: Option<String>,
    refresh: String,
}

impl Default for RawForwardAuth {
    fn default() -> Self {
        RawForwardAuth {
            path: "/.gateway-auth".into(),
            ingresses: Vec::new(),
            ingress: None,
            refresh: "redirect".into(),
        }
    }
}

impl Ingress {
    /// Whether it turns any refusal but a 401 or 403 into an error page
    /// (nginx's `auth_request`): a page load is then refused with a 401
    /// saying where to go.
    pub fn needs_401(self) -> bool {
        matches!(self, Ingress::Nginx | Ingress::IngressNginx)
    }
}

impl RawForwardAuth {
    pub(super) fn validate(self) -> Result<Option<ForwardAuthConfig>, ConfigError> {
        if self.ingresses.is_empty() {
            if self.ingress.is_some() {
                return Err(invalid(
                    "forward_auth.ingresses",
                    "is empty: list the addresses of the ingress (IPs or CIDR blocks) that may \
                     ask, or leave [forward_auth] out",
                ));
            }
            return Ok(None);
        }
        let ingresses = self
            .ingresses
            .iter()
            .enumerate()
            .map(|(i, s)| ip_net(&format!("forward_auth.ingresses[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        let ingress =
            match self.ingress.as_deref() {
                Some("nginx") => Ingress::Nginx,
                Some("ingress-nginx") => Ingress::IngressNginx,
                Some("traefik" | "caddy") => Ingress::Forwarded,
                Some("envoy") => Ingress::Envoy,
                Some(other) => {
                    return Err(invalid(
                        "forward_auth.ingress",
                        format!(
                        "{other:?}: expected \"nginx\", \"ingress-nginx\", \"caddy\", \"traefik\" \
                         or \"envoy\""
                    ),
                    ))
                }
                None => return Err(invalid(
                    "forward_auth.ingress",
                    "is missing: say which ingress asks (\"nginx\", \"ingress-nginx\", \"caddy\", \
                     \"traefik\" or \"envoy\"); it decides which headers describe the original \
                     request",
                )),
            };
        let refresh = match self.refresh.as_str() {
            "redirect" => DeliverCookies::Redirect,
            "set-cookie" => DeliverCookies::SetCookie,
            other => {
                return Err(invalid(
                    "forward_auth.refresh",
                    format!("{other:?}: expected \"redirect\" or \"set-cookie\""),
                ))
            }
        };
        if ingress == Ingress::IngressNginx && refresh == DeliverCookies::SetCookie {
            return Err(invalid(
                "forward_auth.refresh",
                "\"set-cookie\" with ingress-nginx: it cannot copy every cookie of the auth \
                 answer to the browser, and a dropped refresh cookie logs the user out; use \
                 \"redirect\"",
            ));
        }
        let path = self.path;
        let plain = path.len() > 1
            && path.starts_with('/')
            && !path.ends_with('/')
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
            && !path.contains("//")
            && !path.split('/').any(|s| s == "." || s == "..");
        if !plain {
            return Err(invalid(
                "forward_auth.path",
                format!("{path:?}: use a path of letters, digits and / - _ . (no trailing /)"),
            ));
        }
        Ok(Some(ForwardAuthConfig {
            path,
            ingresses,
            ingress,
            refresh,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml_text: &str) -> Result<Option<ForwardAuthConfig>, String> {
        use figment::providers::Format;
        let raw: RawForwardAuth = figment::Figment::new()
            .merge(figment::providers::Toml::string(toml_text))
            .extract()
            .map_err(|e| e.to_string())?;
        raw.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn off_without_ingresses() {
        assert!(load("").expect("valid").is_none());
    }

    #[test]
    fn on_with_ingresses_and_an_ingress_kind() {
        let c = load("ingresses = [\"127.0.0.1\", \"10.0.0.0/8\"]\ningress = \"caddy\"")
            .expect("valid")
            .expect("on");
        assert_eq!(c.path, "/.gateway-auth");
        assert_eq!(c.ingress, Ingress::Forwarded);
        assert_eq!(c.refresh, DeliverCookies::Redirect);
        assert_eq!(c.ingresses.len(), 2);
        let c = load("ingresses = [\"::1\"]\ningress = \"envoy\"\nrefresh = \"set-cookie\"")
            .expect("valid")
            .expect("on");
        assert_eq!(
            (c.ingress, c.refresh),
            (Ingress::Envoy, DeliverCookies::SetCookie)
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("ingress = \"nginx\"", "forward_auth.ingresses"),
            (
                "ingresses = [\"nope\"]\ningress = \"nginx\"",
                "forward_auth.ingresses[0]",
            ),
            ("ingresses = [\"127.0.0.1\"]", "forward_auth.ingress"),
            (
                "ingresses = [\"127.0.0.1\"]\ningress = \"haproxy\"",
                "forward_auth.ingress",
            ),
            (
                "ingresses = [\"127.0.0.1\"]\ningress = \"nginx\"\nrefresh = \"x\"",
                "forward_auth.refresh",
            ),
            (
                "ingresses = [\"127.0.0.1\"]\ningress = \"ingress-nginx\"\nrefresh = \"set-cookie\"",
                "forward_auth.refresh",
            ),
            (
                "ingresses = [\"127.0.0.1\"]\ningress = \"nginx\"\npath = \"auth\"",
                "forward_auth.path",
            ),
            (
                "ingresses = [\"127.0.0.1\"]\ningress = \"nginx\"\npath = \"/a/../b\"",
                "forward_auth.path",
            ),
            (
                "ingresses = [\"127.0.0.1\"]\ningress = \"nginx\"\npath = \"/auth/\"",
                "forward_auth.path",
            ),
        ] {
            let e = load(text).expect_err(text);
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
