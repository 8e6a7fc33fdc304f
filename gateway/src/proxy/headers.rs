//! Header rules of a proxy: hop-by-hop removal and `X-Forwarded-*`.
//!
//! Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, not the
//! message: `Connection`, every field `Connection` names, and the fields a
//! proxy must not forward (`Proxy-Connection`, `Keep-Alive`, `TE`,
//! `Transfer-Encoding`, `Upgrade`). They are removed in both directions;
//! framing is rebuilt by hyper for the next hop.
//!
//! `X-Forwarded-For/-Proto/-Host` are replaced with what this gateway saw,
//! unless the peer is a configured trusted proxy, in which case the peer is
//! appended to the chain it sent (and its proto/host are kept).

use std::net::IpAddr;

use http::header::{CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Version};
use ipnet::IpNet;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// RFC 7239 `Forwarded`: dropped unless from a trusted proxy (we do not generate it).
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
/// `X-Request-Id`, which the gateway sets on every forwarded request.
const X_REQUEST_ID: &[u8] = b"x-request-id";

/// What the gateway sets on every forwarded request, besides what the caller
/// reserves: a client's `_` spelling of any of these is never forwarded.
const SET_BY_PROXY: [&[u8]; 5] = [
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"forwarded",
    X_REQUEST_ID,
];

/// The rules a client's request headers are cleaned with, before the gateway
/// adds any of its own.
#[derive(Debug, Clone)]
pub struct ClientRules {
    /// Fields only a trusted proxy may send.
    trusted_only: Vec<HeaderName>,
    /// Drop every field whose name has an `_`.
    drop_underscores: bool,
    /// Fields the caller sets itself.
    reserved: Vec<HeaderName>,
    /// Prefixes of fields the caller sets itself.
    reserved_prefixes: Vec<&'static str>,
    /// The first bytes of every name above: a field without `_` whose name
    /// starts otherwise (most of them: `host`, `accept`, `cookie`, …) is
    /// decided by one lookup.
    first: [bool; 256],
}

impl ClientRules {
    /// Rules that refuse:
    /// - `trusted_only` fields from a peer that is not a trusted proxy;
    /// - with `drop_underscores`, every field whose name has an `_`
    ///   (nginx's `underscores_in_headers off`); otherwise the `_` spellings
    ///   of reserved, trusted-only and proxy-set fields;
    /// - `reserved` fields (the caller sets them: an app's identity headers)
    ///   and every field starting with one of `reserved_prefixes` (lower
    ///   case, `-` separated), in any `_`/`-` spelling.
    pub fn new(
        trusted_only: Vec<HeaderName>,
        drop_underscores: bool,
        reserved: Vec<HeaderName>,
        reserved_prefixes: Vec<&'static str>,
    ) -> ClientRules {
        let mut first = [false; 256];
        let names = trusted_only.iter().chain(&reserved).map(HeaderName::as_str);
        for name in names.chain(reserved_prefixes.iter().copied()) {
            if let Some(&b) = name.as_bytes().first() {
                first[usize::from(b)] = true;
            }
        }
        ClientRules {
            trusted_only,
            drop_underscores,
            reserved,
            reserved_prefixes,
            first,
        }
    }

    /// Whether the client's field `name` must not reach the upstream.
    fn refuses(&self, name: &HeaderName, trusted: bool) -> bool {
        let n = name.as_str().as_bytes();
        let underscore = n.contains(&b'_');
        if !underscore {
            // Only a reserved or trusted-only name can be refused now.
            match n.first() {
                Some(&b) if self.first[usize::from(b)] => {}
                _ => return false,
            }
        } else if self.drop_underscores {
            return true;
        }
        if self
            .reserved_prefixes
            .iter()
            .any(|p| n.len() >= p.len() && same_name(&n[..p.len()], p.as_bytes()))
        {
            return true;
        }
        if self
            .reserved
            .iter()
            .any(|r| same_name(n, r.as_str().as_bytes()))
        {
            return true;
        }
        let trusted_only = self
            .trusted_only
            .iter()
            .any(|t| same_name(n, t.as_str().as_bytes()));
        if trusted_only && (!trusted || underscore) {
            return true;
        }
        underscore && SET_BY_PROXY.iter().any(|s| same_name(n, s))
    }
}

/// Field names compared as CGI, PHP, Rack and WSGI read them: `_` and `-`
/// alike (`http` has lower-cased both already).
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(&x, &y)| {
            let dash = |c: u8| if c == b'_' { b'-' } else { c };
            dash(x) == dash(y)
        })
}

/// Cleans the client's request headers before the gateway adds anything:
/// hop-by-hop fields (and those `Connection` names) out, `Trailer` out (the
/// gateway does not forward request trailers), and every field [`ClientRules`]
/// refuses. Returns the `Upgrade` protocol of an HTTP/1.1 upgrade request,
/// which forwarding restores.
pub fn clean_request(
    headers: &mut HeaderMap,
    version: Version,
    trusted: bool,
    rules: &ClientRules,
) -> Option<HeaderValue> {
    // Only HTTP/1.1 carries `Upgrade`; HTTP/2 forbids these fields.
    let upgrade = match version {
        Version::HTTP_11 => upgrade_request(headers),
        _ => None,
    };
    remove_hop_by_hop(headers);
    // One look at the names; nothing allocated unless a field must go.
    let refuses = |name: &HeaderName| *name == TRAILER || rules.refuses(name, trusted);
    if headers.keys().any(refuses) {
        let refused: Vec<HeaderName> = headers.keys().filter(|n| refuses(n)).cloned().collect();
        for name in refused {
            headers.remove(name);
        }
    }
    upgrade
}

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        TE,
        TRANSFER_ENCODING,
        UPGRADE,
    ]
    .contains(name)
}

/// Removes hop-by-hop fields, including every field named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one scan of a few names is cheaper than six
    // hash lookups.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            // `Connection: host` must not remove the routing key; the caller
            // sets `Host` itself, after this.
            if name != HOST {
                headers.remove(name);
            }
        }
        headers.remove(CONNECTION);
    }
    for name in [KEEP_ALIVE, PROXY_CONNECTION, TE, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
}

/// The `Upgrade` protocol requested by an HTTP/1.1 client, if this is an
/// upgrade request (`Connection: upgrade` plus `Upgrade: …`).
pub fn upgrade_request(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if wants {
        headers.get(UPGRADE).cloned()
    } else {
        None
    }
}

/// Marks a message as an upgrade again after hop-by-hop removal.
pub fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// Whether `peer` is one of the configured trusted proxies.
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
    let peer = peer.to_canonical();
    !trusted.is_empty() && trusted.iter().any(|net| net.contains(&peer))
}

/// The peer address as a header value, formatted once per connection.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Sets `X-Forwarded-For/-Proto/-Host` for the upstream. `peer` is
/// [`peer_value`] of the TCP peer.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    proto: &'static str,
    host: &HeaderValue,
    trusted: bool,
) {
    let xff = match (trusted, joined(headers, &X_FORWARDED_FOR)) {
        (true, Some(chain)) => {
            HeaderValue::from_str(&format!("{chain}, {}", peer.to_str().unwrap_or("unknown"))).ok()
        }
        _ => Some(peer.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    if !trusted {
        headers.remove(FORWARDED);
    }
}

/// All values of a repeated field joined with `, ` (RFC 9110 §5.3).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
    let first = values.next()?;
    Some(values.fold(first.to_owned(), |mut acc, v| {
        acc.push_str(", ");
        acc.push_str(v);
        acc
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn removes_hop_by_hop_and_connection_named_fields() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret , bogus header"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("host", "a"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["host", "accept"]);
    }

    fn rules_with(drop_underscores: bool) -> ClientRules {
        ClientRules::new(
            ["x-real-ip", "x-original-url", "x-forwarded-prefix"]
                .into_iter()
                .map(HeaderName::from_static)
                .collect(),
            drop_underscores,
            vec![HeaderName::from_static("remote-user")],
            vec!["x-auth-request-"],
        )
    }

    fn rules() -> ClientRules {
        rules_with(false)
    }

    #[test]
    fn client_spellings_of_reserved_fields_are_removed() {
        let mut h = map(&[
            ("x-auth-request-user", "victim"),
            ("x_auth_request_user", "victim"),
            ("x-auth_request-email", "victim"),
            ("remote_user", "victim"),
            ("remote-user", "victim"),
            ("x_forwarded_for", "6.6.6.6"),
            ("x_request_id", "forged"),
            ("x_real_ip", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("x-original-url", "/admin"),
            ("trailer", "x-auth-request-user"),
            ("x_custom", "kept"),
            ("accept", "*/*"),
        ]);
        assert!(clean_request(&mut h, Version::HTTP_11, false, &rules()).is_none());
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x_custom"]);
    }

    #[test]
    fn trusted_proxies_may_send_trusted_only_fields() {
        let mut h = map(&[("x-real-ip", "1.2.3.4"), ("x_real_ip", "6.6.6.6")]);
        clean_request(&mut h, Version::HTTP_11, true, &rules());
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-real-ip"]);
    }

    #[test]
    fn underscores_can_be_dropped_wholesale() {
        let mut h = map(&[("x_custom", "1"), ("accept", "*/*")]);
        let rules = rules_with(true);
        clean_request(&mut h, Version::HTTP_11, false, &rules);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn connection_cannot_name_away_what_comes_later() {
        let mut h = map(&[
            ("connection", "upgrade, x-auth-request-user"),
            ("upgrade", "websocket"),
        ]);
        let upgrade = clean_request(&mut h, Version::HTTP_11, false, &rules());
        assert_eq!(
            upgrade.as_ref().map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert!(h.is_empty());
    }

    #[test]
    fn upgrade_needs_both_fields() {
        assert!(
            upgrade_request(&map(&[("connection", "Upgrade"), ("upgrade", "websocket")])).is_some()
        );
        assert!(upgrade_request(&map(&[
            ("connection", "keep-alive, upgrade"),
            ("upgrade", "websocket")
        ]))
        .is_some());
        assert!(upgrade_request(&map(&[("upgrade", "websocket")])).is_none());
        assert!(upgrade_request(&map(&[("connection", "upgrade")])).is_none());
    }

    #[test]
    fn forwarded_for_untrusted_peer_is_replaced() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        let host = HeaderValue::from_static("store.example.com");
        set_forwarded(
            &mut h,
            &peer_value("10.0.0.9".parse().expect("ip")),
            "http",
            &host,
            false,
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "store.example.com");
        assert!(!h.contains_key("forwarded"));
    }

    #[test]
    fn a_mapped_ipv4_peer_is_trusted_as_ipv4() {
        let nets = ["10.0.0.0/8".parse().expect("net")];
        assert!(is_trusted("::ffff:10.0.0.9".parse().expect("ip"), &nets));
        assert!(!is_trusted("::ffff:11.0.0.9".parse().expect("ip"), &nets));
    }

    #[test]
    fn forwarded_for_trusted_peer_is_appended() {
        let mut h = map(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("x-forwarded-proto", "https"),
        ]);
        let host = HeaderValue::from_static("store.example.com");
        let trusted = is_trusted(
            "10.0.0.9".parse().expect("ip"),
            &["10.0.0.0/8".parse().expect("net")],
        );
        assert!(trusted);
        set_forwarded(
            &mut h,
            &peer_value("10.0.0.9".parse().expect("ip")),
            "http",
            &host,
            trusted,
        );
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "store.example.com");
    }
}
