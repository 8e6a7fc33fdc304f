//! Forward-auth mode: the subrequest of nginx `auth_request`, ingress-nginx
//! `auth-url`, Caddy `forward_auth`, Traefik `ForwardAuth` or Envoy
//! `ext_authz`, read into the original request it asks about, and the
//! answers each ingress needs.
//!
//! ```text
//! ingress   GET /.gateway-auth            X-Original-URI / X-Original-URL + ?host= /
//!                                         X-Forwarded-Uri /
//!                                         Envoy: /.gateway-auth/<original path>
//! gateway   peer a configured ingress?    403 if not, whatever it claims
//!           the original request          one ingress's headers only (others ignored)
//!           route, public path, session, verify, refresh, roles   (as proxy mode)
//! answer    200 + identity headers (+ the refresh's cookies, set-cookie mode)
//!           not logged in: 302 / 401 JSON, or for nginx and ingress-nginx
//!           401 + X-Gateway-Redirect
//! ```
//!
//! Only the headers of the configured ingress describe the original request:
//! the others are the client's (nginx, Caddy and Traefik pass the client's
//! headers into the subrequest), and a client's `X-Forwarded-Uri: /public`
//! must never make the gateway judge another path than the one the ingress
//! serves.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use ipnet::IpNet;

use crate::auth::error::Relogin;
use crate::auth::model::Identity;
use crate::config::forward_auth::{ForwardAuthConfig, Ingress};
use crate::proxy::body::Body;
use crate::proxy::headers;

/// Where nginx finds the URL to send a refused browser to (its
/// `error_page 401` location answers `302` to it).
pub const REDIRECT: HeaderName = HeaderName::from_static("x-gateway-redirect");

/// The `Cookie` header the app may see: the client's, without the
/// gateway's cookies (the JWT and the refresh cookie never reach the app in
/// proxy mode, and must not in forward-auth mode either).
pub const UPSTREAM_COOKIE: HeaderName = HeaderName::from_static("x-gateway-upstream-cookie");

/// nginx copies one value per header, and only the first `Set-Cookie` of a
/// subrequest (1.22): the cookies go in `X-Gateway-Cookie-1` … `-4`, which
/// the shipped config copies one by one.
pub const NGINX_COOKIE_SLOTS: usize = 4;

const COOKIE_SLOT: [HeaderName; NGINX_COOKIE_SLOTS] = [
    HeaderName::from_static("x-gateway-cookie-1"),
    HeaderName::from_static("x-gateway-cookie-2"),
    HeaderName::from_static("x-gateway-cookie-3"),
    HeaderName::from_static("x-gateway-cookie-4"),
];

/// Why a subrequest was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The peer is not a configured ingress.
    #[error("auth request from a peer that is not a configured ingress")]
    NotAnIngress,
    /// The original request is not described as the ingress describes it.
    #[error("auth request without a usable {0}")]
    Original(&'static str),
}

/// Whether `path` (as received) is the auth endpoint's: the path itself, or
/// (Envoy) below it.
pub fn is_auth_path(config: &ForwardAuthConfig, path: &str) -> bool {
    path.strip_prefix(config.path.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The original request the subrequest asks about: its method, its path
/// and query as the client sent them (not yet normal), and the subrequest's
/// headers (the client's, as the ingress passed them) with `Host` set to the
/// original host. Refused unless `peer` is a configured ingress.
pub fn original<B>(
    config: &ForwardAuthConfig,
    peer: std::net::IpAddr,
    subrequest: Request<B>,
) -> Result<Request<()>, Refused> {
    if !headers::is_trusted(peer, &config.ingresses) {
        return Err(Refused::NotAnIngress);
    }
    let (parts, _) = subrequest.into_parts();
    let mut headers = parts.headers;
    let (method, host, target) = match config.ingress {
        Ingress::Nginx => (
            one(&headers, "x-original-method", "X-Original-Method")?,
            host_of(&parts.uri, &headers)?,
            one(&headers, "x-original-uri", "X-Original-URI")?,
        ),
        Ingress::IngressNginx => {
            // the path from X-Original-URL; its host is the client's Host
            // header, which nginx does not route on when the request line
            // is absolute: the host comes from the auth URL the Ingress's
            // author wrote (`?host=`)
            let url = one(&headers, "x-original-url", "X-Original-URL")?;
            let url = Uri::try_from(url.as_bytes()).map_err(|_| Refused::Original("URL"))?;
            let (Some(_), Some(target)) = (url.authority(), url.path_and_query()) else {
                return Err(Refused::Original("URL (absolute)"));
            };
            if !matches!(url.scheme_str(), Some("http" | "https")) {
                return Err(Refused::Original("URL (http or https)"));
            }
            let target =
                HeaderValue::from_str(target.as_str()).map_err(|_| Refused::Original("URL"))?;
            let host = host_parameter(&parts.uri)?;
            (
                one(&headers, "x-original-method", "X-Original-Method")?,
                host,
                target,
            )
        }
        Ingress::Forwarded => (
            one(&headers, "x-forwarded-method", "X-Forwarded-Method")?,
            match headers.get("x-forwarded-host") {
                Some(_) => one(&headers, "x-forwarded-host", "X-Forwarded-Host")?,
                None => host_of(&parts.uri, &headers)?,
            },
            one(&headers, "x-forwarded-uri", "X-Forwarded-Uri")?,
        ),
        Ingress::Envoy => {
            let rest = parts
                .uri
                .path()
                .strip_prefix(config.path.as_str())
                .filter(|rest| rest.starts_with('/'))
                .ok_or(Refused::Original("path after the auth path"))?;
            let target = match parts.uri.query() {
                Some(query) => format!("{rest}?{query}"),
                None => rest.to_owned(),
            };
            let target = HeaderValue::from_str(&target).map_err(|_| Refused::Original("path"))?;
            let method = HeaderValue::from_str(parts.method.as_str())
                .map_err(|_| Refused::Original("method"))?;
            (method, host_of(&parts.uri, &headers)?, target)
        }
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| Refused::Original("method"))?;
    let target = target.to_str().map_err(|_| Refused::Original("URI"))?;
    if !target.starts_with('/') {
        return Err(Refused::Original("URI (origin-form)"));
    }
    let uri = Uri::try_from(target).map_err(|_| Refused::Original("URI"))?;
    headers.insert(HOST, host);
    let mut original = Request::new(());
    *original.method_mut() = method;
    *original.uri_mut() = uri;
    *original.headers_mut() = headers;
    Ok(original)
}

/// The single value of `name`; a header the ingress sets once, repeated,
/// means someone else added one.
fn one(headers: &HeaderMap, name: &str, what: &'static str) -> Result<HeaderValue, Refused> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) if !value.is_empty() => Ok(value.clone()),
        _ => Err(Refused::Original(what)),
    }
}

/// The one `host=` parameter of the auth URL.
fn host_parameter(uri: &Uri) -> Result<HeaderValue, Refused> {
    let mut hosts = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(name, _)| name == "host")
        .map(|(_, value)| value);
    match (hosts.next(), hosts.next()) {
        (Some(host), None) if !host.is_empty() => {
            HeaderValue::from_str(&host).map_err(|_| Refused::Original("host= parameter"))
        }
        _ => Err(Refused::Original("host= parameter (exactly one)")),
    }
}

/// The subrequest's own host: its authority (HTTP/2) or its one `Host`.
fn host_of(uri: &Uri, headers: &HeaderMap) -> Result<HeaderValue, Refused> {
    match uri.authority() {
        Some(authority) => {
            HeaderValue::from_str(authority.as_str()).map_err(|_| Refused::Original("host"))
        }
        None => one(headers, "host", "Host"),
    }
}

/// Whether an ingress of this kind gets a refresh's cookies on an allowing
/// answer in numbered headers, and has room for `count` of them.
pub fn can_carry(ingress: Ingress, count: usize) -> bool {
    !ingress.needs_401() || count <= NGINX_COOKIE_SLOTS
}

/// Allowed: 200, the identity's headers (none for a public path or an app
/// without login) for the ingress to copy upstream, the client's `Cookie`
/// without any of the gateway's cookies ([`UPSTREAM_COOKIE`], for the
/// ingress to send upstream instead of the client's), and a refresh's
/// cookies for it to copy onto the answer.
pub fn allow(
    ingress: Ingress,
    identity: Option<&Identity>,
    original: &HeaderMap,
    cookies: Vec<HeaderValue>,
) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    let h = response.headers_mut();
    if let Some(identity) = identity {
        for (name, value) in &identity.headers {
            h.insert(name.clone(), value.clone());
        }
    }
    if let Some(cookie) = joined_cookies(original) {
        // Traefik and ingress-nginx copy headers under their own names
        // only: for them the same value as `Cookie`, which they put in
        // place of the client's when told to copy it
        if matches!(ingress, Ingress::Forwarded | Ingress::IngressNginx) {
            h.insert(http::header::COOKIE, cookie.clone());
        }
        h.insert(UPSTREAM_COOKIE, cookie);
    }
    add_cookies(ingress, h, cookies);
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Not logged in, for nginx: 401 with the login page (or for a script,
/// nothing) in [`REDIRECT`] and the cookies to set (cleared ones) in
/// numbered headers.
/// Every other ingress passes the usual answer (302 or 401 JSON) through.
pub fn login_required_for_nginx(relogin: Relogin) -> Response<Body> {
    let mut response = Response::new(Body::full(r#"{"error":"login_required"}"#));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let h = response.headers_mut();
    if relogin.navigation {
        if let Ok(location) = HeaderValue::from_str(&relogin.location) {
            h.insert(REDIRECT, location);
        }
    }
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(WWW_AUTHENTICATE, relogin.challenge);
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    add_cookies(Ingress::Nginx, h, relogin.clear);
    response
}

/// The session needs a refresh the subrequest must not make: a page load
/// goes to the app's refresh page (`location`, with its return-to), which
/// renews the cookies on a top-level answer; a script is told to reload.
pub fn refresh_elsewhere(ingress: Ingress, location: &str, navigation: bool) -> Response<Body> {
    let mut response = match navigation {
        true => Response::new(Body::empty()),
        false => Response::new(Body::full(r#"{"error":"reload"}"#)),
    };
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let location = HeaderValue::from_str(location).ok();
    match (navigation, ingress, location) {
        (true, ingress, Some(location)) if ingress.needs_401() => {
            h.insert(REDIRECT, location);
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
        (true, _, Some(location)) => {
            h.insert(http::header::LOCATION, location);
            *response.status_mut() = StatusCode::FOUND;
        }
        _ => {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
    }
    response
}

/// The `Cookie` fields left (already without the gateway's cookies), as one
/// header value; `None` when there are none.
fn joined_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut joined = Vec::new();
    for value in headers.get_all(http::header::COOKIE) {
        let value = value.as_bytes().trim_ascii();
        if value.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value);
    }
    HeaderValue::from_bytes(&joined)
        .ok()
        .filter(|v| !v.is_empty())
}

fn add_cookies(ingress: Ingress, h: &mut HeaderMap, cookies: Vec<HeaderValue>) {
    if ingress.needs_401() {
        for (slot, cookie) in COOKIE_SLOT.iter().zip(cookies) {
            h.insert(slot.clone(), cookie);
        }
    } else {
        for cookie in cookies {
            h.append(SET_COOKIE, cookie);
        }
    }
}

/// The configured ingresses (for the log line at start-up).
pub fn describe(config: &ForwardAuthConfig) -> String {
    let nets: Vec<String> = config.ingresses.iter().map(IpNet::to_string).collect();
    format!("{} from {}", config.path, nets.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::forward_auth::DeliverCookies;

    fn config(ingress: Ingress) -> ForwardAuthConfig {
        ForwardAuthConfig {
            path: "/.gateway-auth".into(),
            ingresses: vec!["127.0.0.1/32".parse().expect("net")],
            ingress,
            refresh: DeliverCookies::Redirect,
        }
    }

    const INGRESS: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn subrequest(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::builder().uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).expect("request")
    }

    #[test]
    fn the_auth_path_and_below_it_only() {
        let c = config(Ingress::Envoy);
        assert!(is_auth_path(&c, "/.gateway-auth"));
        assert!(is_auth_path(&c, "/.gateway-auth/cart"));
        assert!(!is_auth_path(&c, "/.gateway-authx"));
        assert!(!is_auth_path(&c, "/x/.gateway-auth"));
    }

    #[test]
    fn nginx_reads_x_original_and_host_only() {
        let req = subrequest(
            "/.gateway-auth",
            &[
                ("host", "store.test"),
                ("x-original-uri", "/cart?item=1"),
                ("x-original-method", "POST"),
                // the client's, passed through by nginx: never read
                ("x-forwarded-uri", "/public/x"),
                ("x-forwarded-host", "forums.test"),
                ("x-original-url", "http://forums.test/public/x"),
            ],
        );
        let o = original(&config(Ingress::Nginx), INGRESS, req).expect("read");
        assert_eq!(o.method(), Method::POST);
        assert_eq!(o.uri(), "/cart?item=1");
        assert_eq!(o.headers()["host"], "store.test");
    }

    #[test]
    fn forwarded_reads_x_forwarded_only() {
        let req = subrequest(
            "/.gateway-auth",
            &[
                ("host", "gateway.internal"),
                ("x-forwarded-host", "store.test"),
                ("x-forwarded-uri", "/cart"),
                ("x-forwarded-method", "GET"),
                ("x-original-uri", "/public/x"),
            ],
        );
        let o = original(&config(Ingress::Forwarded), INGRESS, req).expect("read");
        assert_eq!((o.method(), o.uri().path()), (&Method::GET, "/cart"));
        assert_eq!(o.headers()["host"], "store.test");
        // without X-Forwarded-Host: the Host the ingress kept (Caddy 2.6 sends both)
        let req = subrequest(
            "/.gateway-auth",
            &[
                ("host", "store.test"),
                ("x-forwarded-uri", "/cart"),
                ("x-forwarded-method", "GET"),
            ],
        );
        let o = original(&config(Ingress::Forwarded), INGRESS, req).expect("read");
        assert_eq!(o.headers()["host"], "store.test");
    }

    #[test]
    fn ingress_nginx_reads_x_original_url_only() {
        let req = subrequest(
            "/.gateway-auth?host=store.test",
            &[
                ("host", "gateway.auth.svc"),
                // the client's Host, not what nginx routed on
                ("x-original-url", "https://forums.test/cart?item=1"),
                ("x-original-method", "GET"),
                ("x-original-uri", "/static/x"),
                ("x-forwarded-uri", "/static/x"),
                ("x-forwarded-host", "forums.test"),
            ],
        );
        let o = original(&config(Ingress::IngressNginx), INGRESS, req).expect("read");
        assert_eq!(o.uri(), "/cart?item=1");
        assert_eq!(o.headers()["host"], "store.test");
        for url in [
            "/cart",
            "ftp://store.test/cart",
            "//store.test/cart",
            "not a url",
        ] {
            let req = subrequest(
                "/.gateway-auth?host=store.test",
                &[("x-original-url", url), ("x-original-method", "GET")],
            );
            assert!(
                original(&config(Ingress::IngressNginx), INGRESS, req).is_err(),
                "{url}"
            );
        }
    }

    #[test]
    fn ingress_nginx_needs_exactly_one_host_parameter() {
        let headers = [
            ("host", "store.test"),
            ("x-original-url", "https://store.test/cart"),
            ("x-original-method", "GET"),
        ];
        for uri in [
            "/.gateway-auth",
            "/.gateway-auth?host=",
            "/.gateway-auth?host=store.test&host=forums.test",
            "/.gateway-auth?hostname=store.test",
        ] {
            let req = subrequest(uri, &headers);
            assert!(
                original(&config(Ingress::IngressNginx), INGRESS, req).is_err(),
                "{uri}"
            );
        }
    }

    #[test]
    fn envoy_reads_the_path_below_the_auth_path() {
        let mut req = subrequest(
            "/.gateway-auth/cart?item=1",
            &[("host", "store.test"), ("x-forwarded-uri", "/public/x")],
        );
        *req.method_mut() = Method::DELETE;
        let o = original(&config(Ingress::Envoy), INGRESS, req).expect("read");
        assert_eq!(o.method(), Method::DELETE);
        assert_eq!(o.uri(), "/cart?item=1");
        let req = subrequest("/.gateway-auth", &[("host", "store.test")]);
        assert!(original(&config(Ingress::Envoy), INGRESS, req).is_err());
    }

    #[test]
    fn refusals() {
        let ok = [
            ("host", "store.test"),
            ("x-original-uri", "/cart"),
            ("x-original-method", "GET"),
        ];
        let c = config(Ingress::Nginx);
        let other: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(
            original(&c, other, subrequest("/.gateway-auth", &ok)).err(),
            Some(Refused::NotAnIngress)
        );
        assert!(original(&c, INGRESS, subrequest("/.gateway-auth", &ok)).is_ok());
        for broken in [
            vec![("host", "store.test"), ("x-original-method", "GET")],
            vec![("host", "store.test"), ("x-original-uri", "/cart")],
            vec![
                ("host", "store.test"),
                ("x-original-uri", "/cart"),
                ("x-original-uri", "/public"),
                ("x-original-method", "GET"),
            ],
            vec![
                ("host", "store.test"),
                ("x-original-uri", "http://evil/cart"),
                ("x-original-method", "GET"),
            ],
            vec![
                ("host", "store.test"),
                ("x-original-uri", "/cart"),
                ("x-original-method", "G E T"),
            ],
            vec![("x-original-uri", "/cart"), ("x-original-method", "GET")],
        ] {
            assert!(
                matches!(
                    original(&c, INGRESS, subrequest("/.gateway-auth", &broken)),
                    Err(Refused::Original(_))
                ),
                "{broken:?}"
            );
        }
    }

    #[test]
    fn nginx_gets_cookies_in_numbered_headers_and_a_401() {
        let cookies = vec![
            HeaderValue::from_static("a=1"),
            HeaderValue::from_static("b=2"),
        ];
        let mut original = HeaderMap::new();
        original.append(http::header::COOKIE, HeaderValue::from_static("theme=dark"));
        original.append(http::header::COOKIE, HeaderValue::from_static(" lang=en "));
        let r = allow(Ingress::Nginx, None, &original, cookies.clone());
        assert_eq!(r.headers()[UPSTREAM_COOKIE], "theme=dark; lang=en");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-gateway-cookie-1"], "a=1");
        assert_eq!(r.headers()["x-gateway-cookie-2"], "b=2");
        assert!(!r.headers().contains_key(SET_COOKIE));
        let r = allow(Ingress::Envoy, None, &HeaderMap::new(), cookies);
        assert!(!r.headers().contains_key(UPSTREAM_COOKIE));
        assert_eq!(r.headers().get_all(SET_COOKIE).iter().count(), 2);
        assert!(can_carry(Ingress::Nginx, 4) && !can_carry(Ingress::Nginx, 5));
        assert!(can_carry(Ingress::Envoy, 9));
        let r = refresh_elsewhere(Ingress::Nginx, "/.gateway/refresh?return_to=%2F", true);
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[REDIRECT], "/.gateway/refresh?return_to=%2F");
        let r = refresh_elsewhere(Ingress::Forwarded, "/.gateway/refresh?return_to=%2F", true);
        assert_eq!(r.status(), 302);
        let r = refresh_elsewhere(Ingress::Forwarded, "/.gateway/refresh?return_to=%2F", false);
        assert_eq!(r.status(), 401);
    }
}
