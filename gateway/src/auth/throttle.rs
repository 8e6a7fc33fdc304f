//! Login throttling keys: what one login attempt is counted against.
//!
//! Input: a client address or an IdP and username. Output: the key its
//! bucket is kept under ([`ip_key`]: an IPv4 address, or an IPv6 client's
//! /64; [`user_key`]: the IdP and the normalised username). The buckets
//! themselves live in the store (in-process or in Redis).

use std::net::IpAddr;

/// The key a client address is throttled under: an IPv4 address itself, an
/// IPv6 address by its /64. A /64 is one network (a home or a cloud server
/// usually gets at least that), whose host is free to pick any of its 2^64
/// addresses: keyed by the whole address, it would have 2^64 buckets.
pub fn ip_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The key a username is throttled under: the IdP that checks the password
/// (`idp`, e.g. its token endpoint) and the username as the user would not
/// tell apart (surrounding spaces trimmed, lower-cased). Every app using the
/// same IdP shares it: N apps must not give N times the guesses.
pub fn user_key(idp: &str, username: &str) -> String {
    format!("{idp}\n{}", username.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_ipv4_by_the_address() {
        let key = |s: &str| ip_key(s.parse().expect("address"));
        assert_eq!(key("192.0.2.1"), "192.0.2.1");
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        // An IPv4-mapped address is the IPv4 one.
        assert_eq!(key("::ffff:192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn usernames_are_keyed_by_idp_and_normalised_name() {
        let idp = "https://idp.example.com/oauth2/token";
        assert_eq!(user_key(idp, "Richard"), user_key(idp, "  richard "));
        assert_eq!(user_key(idp, "RICHARD\t"), user_key(idp, "richard"));
        assert_ne!(user_key(idp, "richard"), user_key(idp, "richard2"));
        assert_ne!(
            user_key(idp, "richard"),
            user_key("https://other.example.com/token", "richard")
        );
    }
}
