//! Parsers for the kinds of values several sections share (addresses,
//! durations, URLs, header and cookie names, local paths), each refusing
//! with the key's name.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use super::error::{invalid, ConfigError};

pub(super) fn socket_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        invalid(
            key,
            format!("{s:?} is not an address like 127.0.0.1:8080 or [::1]:8080"),
        )
    })
}

pub(super) fn ip_net(key: &str, s: &str) -> Result<IpNet, ConfigError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| invalid(key, format!("{s:?} is not an IP address or CIDR block")))
}

pub(super) fn duration_or_zero(key: &str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s).map_err(|e| {
        invalid(
            key,
            format!("{s:?} is not a duration like \"10s\" or \"2m\": {e}"),
        )
    })
}

pub(super) fn duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    let d = duration_or_zero(key, s)?;
    if d.is_zero() {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(d)
}

pub(super) fn header_name(key: &str, s: &str) -> Result<Option<HeaderName>, ConfigError> {
    if s.is_empty() {
        return Ok(None);
    }
    HeaderName::try_from(s)
        .map(Some)
        .map_err(|_| invalid(key, format!("{s:?} is not a header name")))
}

pub(super) fn cookie_name(key: &str, s: &str) -> Result<String, ConfigError> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(invalid(
            key,
            format!("{s:?} must be letters, digits, '-' or '_'"),
        ));
    }
    Ok(s.to_owned())
}

/// An absolute path on the app's host, without dot segments.
pub(super) fn local_path(key: &str, s: &str) -> Result<String, ConfigError> {
    if !s.starts_with('/')
        || s.starts_with("//")
        || s.contains(['\\', '#', ' '])
        || s.chars().any(char::is_control)
        || s.split(['/', '?']).any(|seg| seg == "." || seg == "..")
    {
        return Err(invalid(
            key,
            format!("{s:?} must be an absolute path on the app's host, like \"/\" or \"/cart\""),
        ));
    }
    Ok(s.to_owned())
}

pub(super) fn claim_name(key: String, s: String) -> Result<String, ConfigError> {
    if s.trim().is_empty() {
        return Err(invalid(key, "must name a claim"));
    }
    Ok(s)
}

/// A byte a normal request path holds as it is (RFC 3986 `pchar` without
/// `%` and `;`): the gateway writes every other byte percent-encoded, so a
/// configured path made of anything else would never match a request.
pub fn is_plain_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&b)
}

/// Whether `path` is written as the gateway normalises request paths:
/// plain bytes between slashes.
pub(super) fn is_plain_path(path: &str) -> bool {
    path.bytes().all(|b| b == b'/' || is_plain_path_byte(b))
}
