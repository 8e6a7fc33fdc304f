//! The client's address behind trusted proxies.
//!
//! Input: the peer's address, the request's `X-Forwarded-For` headers and the
//! configured trusted proxies (`server.trusted_proxies`). Output: the address
//! to hold the client to (login throttling). Never fails: whatever cannot be
//! trusted falls back to an address the gateway saw itself.
//!
//! A peer that is not a trusted proxy is the client, whatever it sends. From
//! a trusted peer, `X-Forwarded-For` (all its fields, in order, as one list)
//! is walked from the right: each trusted proxy appended the address it saw,
//! so the first hop that is not itself a trusted proxy is the client, and
//! everything left of it was written by the client and is never read. A hop
//! that is not an address (`unknown`, an obfuscated RFC 7239 identifier,
//! garbage) ends the walk at the peer: what stands left of it cannot be
//! trusted, and a client must not be able to pick its own throttle bucket by
//! writing one. If every hop is trusted, the leftmost is the client.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

use super::headers::is_trusted;

/// The client's address: `peer`, or, when `peer` is one of `trusted`, the
/// first untrusted hop of `X-Forwarded-For` from the right.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hops: Vec<&[u8]> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        hops.extend(value.as_bytes().split(|b| *b == b','));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return peer;
        };
        client = ip;
        if !is_trusted(ip, trusted) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` element: an address, optionally with a port as
/// some proxies write it (`192.0.2.1:4711`, `[2001:db8::1]:4711`), in its
/// canonical form (an IPv4-mapped IPv6 address is the IPv4 one).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim();
    let ip = text
        .parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("network")).collect()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().expect("header value"));
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let headers = xff(&["198.51.100.7"]);
        assert_eq!(
            client_ip(ip("203.0.113.1"), &headers, &[]),
            ip("203.0.113.1")
        );
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.1"), &headers, &trusted),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn the_walk_from_the_right_stops_at_the_first_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8", "192.168.1.1/32"]);
        let peer = ip("10.0.0.1");
        let table: &[(&[&str], &str)] = &[
            // No header: the peer itself.
            (&[], "10.0.0.1"),
            // One proxy.
            (&["203.0.113.5"], "203.0.113.5"),
            // Two proxies: the inner one is skipped.
            (&["203.0.113.5, 10.0.0.2"], "203.0.113.5"),
            (&["203.0.113.5,192.168.1.1,10.0.0.2"], "203.0.113.5"),
            // Whatever the client wrote on the left is not read.
            (&["1.2.3.4, 5.6.7.8, 203.0.113.5, 10.0.0.2"], "203.0.113.5"),
            // Several header fields are one list, in order.
            (&["1.2.3.4", "203.0.113.5", "10.0.0.2"], "203.0.113.5"),
            // Every hop trusted: the leftmost.
            (&["10.1.1.1, 10.0.0.2"], "10.1.1.1"),
            // Ports and spacing as some proxies write them.
            (&[" 203.0.113.5:4711 ,10.0.0.2"], "203.0.113.5"),
            (&["[2001:db8::5]:4711"], "2001:db8::5"),
            // IPv4-mapped IPv6 is IPv4 (and may be a trusted proxy).
            (&["203.0.113.5, ::ffff:10.0.0.2"], "203.0.113.5"),
            (&["::ffff:203.0.113.5"], "203.0.113.5"),
        ];
        for (headers, want) in table {
            assert_eq!(
                client_ip(peer, &xff(headers), &trusted),
                ip(want),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn an_unparsable_hop_means_the_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        for headers in [
            &["198.51.100.1, unknown"][..],
            &["198.51.100.1, unknown, 10.0.0.2"],
            &["198.51.100.1, _hidden"],
            &["198.51.100.1, "],
            &["198.51.100.1,,10.0.0.2"],
            &["198.51.100.1, 999.1.1.1"],
            &[""],
        ] {
            assert_eq!(
                client_ip(peer, &xff(headers), &trusted),
                peer,
                "{headers:?}"
            );
        }
        // Garbage left of the client is never reached.
        assert_eq!(
            client_ip(peer, &xff(&["garbage, 203.0.113.5"]), &trusted),
            ip("203.0.113.5")
        );
        // Bytes that are not UTF-8.
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"203.0.113.5, \xff").expect("value"),
        );
        assert_eq!(client_ip(peer, &headers, &trusted), peer);
    }

    #[test]
    fn a_mapped_peer_is_matched_as_ipv4() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &xff(&["203.0.113.5"]), &trusted),
            ip("203.0.113.5")
        );
    }
}
