//! Routing: request host (+ path prefix) → the app that owns it.
//!
//! Input: the request's host (`:authority` or `Host`, port ignored,
//! case-insensitive) and path. Output: the index of the most specific app:
//! an exact host beats a wildcard, a longer wildcard suffix beats a shorter one,
//! and within a host the longest path prefix (on a segment boundary) wins.
//! Failure: `None`, which the error mapping turns into the 404 page.
//!
//! Lookups are a hash probe for exact hosts plus a short scan of wildcard
//! suffixes; the table is built once at start-up and never locked.

use std::collections::HashMap;

use http::header::HOST;
use http::{HeaderMap, HeaderValue, Uri};

use crate::config::HostPattern;

/// A request without one well-formed host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No authority and no `Host` header.
    #[error("request has no Host header or authority")]
    Missing,
    /// More than one `Host` header (RFC 9112 §3.2: a 400): a proxy in front
    /// that reads the other one would route the request elsewhere.
    #[error("request has more than one Host header")]
    Repeated,
    /// Not `reg-name / IP-literal [":" port]`.
    #[error("request host is not a host name")]
    Malformed,
}

/// The host the client asked for: the URI's authority (HTTP/2, absolute-form)
/// or else the one `Host` header (RFC 9112 §3.2.2), checked to be a host name
/// or IP literal with an optional port and nothing else (no user info, path,
/// or characters outside letters, digits, `-`, `.`, `_` and `~`).
pub fn request_host(uri: &Uri, headers: &HeaderMap) -> Result<HeaderValue, HostError> {
    let mut hosts = headers.get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Repeated);
    }
    let host = match uri.authority() {
        Some(authority) => {
            HeaderValue::from_str(authority.as_str()).map_err(|_| HostError::Malformed)?
        }
        None => match header {
            Some(host) if !host.is_empty() => host.clone(),
            _ => return Err(HostError::Missing),
        },
    };
    if is_authority(host.as_bytes()) {
        Ok(host)
    } else {
        Err(HostError::Malformed)
    }
}

/// `reg-name / IP-literal [":" port]`, with the reg-name limited to
/// unreserved characters: what a browser sends for a host name.
fn is_authority(bytes: &[u8]) -> bool {
    let (host, port) = match bytes.first() {
        Some(b'[') => match memchr::memchr(b']', bytes) {
            Some(end) => (&bytes[..=end], &bytes[end + 1..]),
            None => return false,
        },
        _ => match memchr::memchr(b':', bytes) {
            Some(at) => (&bytes[..at], &bytes[at..]),
            None => (bytes, &bytes[bytes.len()..]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    let host_ok = match host {
        [b'[', inner @ .., b']'] => std::str::from_utf8(inner)
            .ok()
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        [] => false,
        name => name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')),
    };
    port_ok && host_ok
}

/// Path prefixes served on one host, longest first.
#[derive(Debug, Default)]
struct Prefixes(Vec<(String, usize)>);

impl Prefixes {
    fn insert(&mut self, prefix: &str, app: usize) {
        self.0.push((prefix.to_owned(), app));
        self.0
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    }

    fn find(&self, path: &str) -> Option<usize> {
        self.0
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|&(_, app)| app)
    }
}

/// `/api` owns `/api` and `/api/…` but not `/apix`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The routing table, built once from the apps' host patterns and prefixes.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, Prefixes>,
    /// Wildcard suffixes (with their leading dot), longest first.
    wildcard: Vec<(String, Prefixes)>,
}

impl Router {
    /// Builds the table from `(app index, host patterns, path prefix)` triples.
    pub fn new<'a>(apps: impl IntoIterator<Item = (usize, &'a [HostPattern], &'a str)>) -> Router {
        let mut router = Router::default();
        for (app, hosts, prefix) in apps {
            for host in hosts {
                match host {
                    HostPattern::Exact(h) => router
                        .exact
                        .entry(h.clone())
                        .or_default()
                        .insert(prefix, app),
                    HostPattern::Wildcard(suffix) => {
                        match router.wildcard.iter_mut().find(|(s, _)| s == suffix) {
                            Some((_, prefixes)) => prefixes.insert(prefix, app),
                            None => {
                                let mut prefixes = Prefixes::default();
                                prefixes.insert(prefix, app);
                                router.wildcard.push((suffix.clone(), prefixes));
                            }
                        }
                    }
                }
            }
        }
        router
            .wildcard
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        router
    }

    /// The app serving `host` (as sent: any case, optional port) and `path`.
    pub fn find(&self, host: &str, path: &str) -> Option<usize> {
        let host = strip_port(host);
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        // A fully qualified name may end with a dot; route it like the bare name.
        let host = host.strip_suffix('.').unwrap_or(host);
        if let Some(app) = self.exact.get(host).and_then(|p| p.find(path)) {
            return Some(app);
        }
        self.wildcard
            .iter()
            .filter(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .find_map(|(_, prefixes)| prefixes.find(path))
    }
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rfind(':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_host_names_or_ip_literals() {
        for good in [
            "store.example.com",
            "store.example.com:8443",
            "localhost",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
            "my_host.internal",
        ] {
            assert!(is_authority(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "evil.com/.example.com",
            "user@store.example.com",
            "store.example.com:80:80",
            "store.example.com:http",
            "store.example.com:123456",
            "[::1",
            "[evil]",
            "a b",
            "evil.com\\.example.com",
            "evil.com?.example.com",
            "evil.com#.example.com",
        ] {
            assert!(!is_authority(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn one_host_header_only() {
        let mut h = HeaderMap::new();
        h.append(HOST, HeaderValue::from_static("store.example.com"));
        let uri = Uri::from_static("/");
        assert!(request_host(&uri, &h).is_ok());
        h.append(HOST, HeaderValue::from_static("admin.example.com"));
        assert_eq!(request_host(&uri, &h), Err(HostError::Repeated));
    }

    fn router(apps: &[(&[&str], &str)]) -> Router {
        let parsed: Vec<(Vec<HostPattern>, String)> = apps
            .iter()
            .map(|(hosts, prefix)| {
                (
                    hosts
                        .iter()
                        .map(|h| HostPattern::parse(h).expect("host"))
                        .collect(),
                    prefix.to_string(),
                )
            })
            .collect();
        Router::new(
            parsed
                .iter()
                .enumerate()
                .map(|(i, (h, p))| (i, h.as_slice(), p.as_str())),
        )
    }

    #[test]
    fn most_specific_match_wins() {
        let r = router(&[
            (&["store.example.com"], "/"),
            (&["*.example.com"], "/"),
            (&["store.example.com"], "/api"),
            (&["*.eu.example.com"], "/"),
        ]);
        let cases = [
            ("store.example.com", "/", Some(0)),
            ("STORE.Example.COM:8443", "/cart", Some(0)),
            ("store.example.com", "/api", Some(2)),
            ("store.example.com", "/api/items", Some(2)),
            ("store.example.com", "/apix", Some(0)),
            ("forums.example.com", "/", Some(1)),
            ("a.eu.example.com", "/", Some(3)),
            ("example.com", "/", None),
            ("evil-example.com", "/", None),
            ("store.example.com.", "/", Some(0)),
            ("other.test", "/", None),
        ];
        for (host, path, want) in cases {
            assert_eq!(r.find(host, path), want, "{host} {path}");
        }
    }

    #[test]
    fn falls_back_to_wildcard_when_exact_host_lacks_the_prefix() {
        let r = router(&[(&["store.example.com"], "/api"), (&["*.example.com"], "/")]);
        assert_eq!(r.find("store.example.com", "/api/x"), Some(0));
        assert_eq!(r.find("store.example.com", "/cart"), Some(1));
    }

    #[test]
    fn ports_are_ignored() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("a.b"), "a.b");
    }

    #[test]
    fn bad_host_patterns_are_refused() {
        for bad in ["", "*.", "a b", "host:80", "a..b", "*.*.x"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            HostPattern::parse("*.Example.com"),
            Ok(HostPattern::Wildcard(".example.com".into()))
        );
    }
}
