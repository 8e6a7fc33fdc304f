//! Property tests for the parsers on the request path: whatever a client
//! sends (path, `Host`, `Cookie`, return-to, CSRF token), whatever an
//! upstream sends (`Set-Cookie`) and whatever an operator writes as a
//! duration, the parser answers without panicking, and what it accepts keeps
//! the invariant the rest of the gateway relies on: a normal path is normal
//! (idempotent; no empty, dot or encoded-separator segment), routing reads
//! one path whatever its spelling, an accepted host is a host and nothing
//! more, a return-to stays on the app's origin, no gateway cookie reaches the
//! upstream while every other cookie does (in order), chunked cookies read
//! back as stored, an upstream cannot set a gateway cookie under any spelling
//! a browser accepts, and a CSRF token checks only unchanged.
//!
//! Cases: `PROPTEST_CASES` per property, 2000 unless set: a few thousand
//! cases each in tests/run; `PROPTEST_CASES=100000` for a longer run.
//! A failure is shrunk and printed; nothing is persisted (no files written).

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use gateway::auth::cookies::{apply, scan, sets_any, Layout, CHUNK_SIZE};
use gateway::auth::csrf::Csrf;
use gateway::auth::return_to::sanitise;
use gateway::config::{CookieSpec, HostPattern};
use gateway::proxy::client_ip::client_ip;
use gateway::proxy::path::{normalise, without_params};
use gateway::proxy::route::{request_host, Router};
use gateway::{Config, ConfigError};
use http::header::{COOKIE, HOST};
use http::{HeaderMap, HeaderValue, Uri};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

/// Cases per property: `PROPTEST_CASES`, else 2000; failures not persisted.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    }
}

/// `%XX` → byte, for the checks below (the code under test has its own).
fn hex_escape(b: &[u8]) -> Option<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    Some((hex(*b.get(1)?)? * 16 + hex(*b.get(2)?)?) as u8)
}

// ---------------------------------------------------------------------------
// Path normalisation
// ---------------------------------------------------------------------------

/// What a path segment is made of, biased towards what tricks parsers.
fn path_atom() -> impl Strategy<Value = String> {
    const TRICKS: &[&str] = &[
        "", ".", "..", "%2e", "%2E%2e", "%2e%2e", "%2f", "%2F", "%5c", "%5C", "%00", "%c0%ae",
        "%25", "%252e", "%252f", "%2525", ";x=1", ";", ";x=%2e", "=", "a", "admin", "api", "v1",
        "\\", "é", "日本", "\u{202e}", "%C3%A9", "%e9", "%", "%2", "%zz", " ", "%20", "%3B", "%3b",
        "%3D", "%3d", "?", "#", "%3f", "%23", "~", "%7E",
    ];
    prop_oneof![
        6 => select(TRICKS).prop_map(str::to_owned),
        1 => any::<u8>().prop_map(|b| format!("%{b:02x}")),
        1 => any::<u8>().prop_map(|b| format!("%{b:02X}")),
        1 => "[a-z.;=%2eEfF]{1,4}",
        1 => any::<char>().prop_map(String::from),
    ]
}

/// A path as a client may send it: `/` then segments of tricky atoms, with
/// what `http::Uri` refuses in a path (controls, space, `<`, `>`, `` ` ``,
/// and `?`/`#`, which end it) percent-encoded: the path hyper hands over.
fn raw_path() -> impl Strategy<Value = String> {
    let segment = vec(path_atom(), 0..4).prop_map(|atoms| atoms.concat());
    vec(segment, 0..8)
        .prop_map(|segments| wire(&format!("/{}", segments.join("/"))))
        .prop_filter("a request path", |p| {
            Uri::try_from(p.as_str()).is_ok_and(|uri| uri.path() == p)
        })
}

/// `path` with the characters a request target cannot carry percent-encoded.
fn wire(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii_alphanumeric()
            || (!c.is_ascii() && !c.is_control())
            || "!\"$%&'()*+,-./:;=@[\\]^_{|}~".contains(c)
        {
            out.push(c);
        } else {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Panics unless `n` is a normal path: what routing, public paths,
/// policies and the upstream all read.
fn assert_normal(raw: &str, n: &str) {
    assert!(n.starts_with('/'), "{raw:?} → {n:?}: not absolute");
    for bad in ["//", "/./", "/../", "\\"] {
        assert!(!n.contains(bad), "{raw:?} → {n:?}: contains {bad:?}");
    }
    assert!(
        !n.ends_with("/.") && !n.ends_with("/.."),
        "{raw:?} → {n:?}: ends in a dot segment"
    );
    let bytes = n.as_bytes();
    for (i, _) in n.match_indices('%') {
        if let Some(b) = hex_escape(&bytes[i..]) {
            assert!(
                !matches!(b, b'/' | b'\\' | 0),
                "{raw:?} → {n:?}: encoded separator or NUL"
            );
        }
    }
    let names = without_params(n);
    assert!(!names.contains(';'), "{raw:?} → {n:?}: {names:?} has ';'");
    for name in names.split('/').skip(1) {
        let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        assert!(
            decoded != "." && decoded != "..",
            "{raw:?} → {n:?}: dot segment {name:?}"
        );
    }
    match normalise(n) {
        Ok(again) => {
            assert_eq!(again, n, "{raw:?} → {n:?}: not idempotent");
            if !n.contains(['%', ';']) {
                assert!(
                    matches!(again, Cow::Borrowed(_)),
                    "{raw:?} → {n:?}: normal form reallocated"
                );
            }
        }
        Err(e) => panic!("{raw:?} → {n:?}: normal form refused: {e}"),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn normalised_paths_are_normal_and_stay_so(raw in raw_path()) {
        if let Ok(n) = normalise(&raw) {
            assert_normal(&raw, &n);
        }
    }

    #[test]
    fn normalise_takes_any_string(raw in any::<String>()) {
        let _ = normalise(&raw);
        let raw = wire(&format!("/{raw}"));
        if let Ok(n) = normalise(&raw) {
            assert_normal(&raw, &n);
        }
    }

    #[test]
    fn percent_encoding_a_character_does_not_change_the_normal_form(
        segments in vec(("[A-Za-z0-9._~!$&'()*+,=:@-]{0,6}", any::<u32>(), any::<bool>()), 0..6),
        trailing in any::<bool>(),
    ) {
        let mut plain = String::new();
        let mut encoded = String::new();
        for (segment, mask, upper) in &segments {
            plain.push('/');
            encoded.push('/');
            plain.push_str(segment);
            for (j, c) in segment.chars().enumerate() {
                match (mask & (1 << (j % 32)) != 0, upper) {
                    (false, _) => encoded.push(c),
                    (true, true) => encoded.push_str(&format!("%{:02X}", c as u32)),
                    (true, false) => encoded.push_str(&format!("%{:02x}", c as u32)),
                }
            }
        }
        if trailing || plain.is_empty() {
            plain.push('/');
            encoded.push('/');
        }
        prop_assert_eq!(normalise(&encoded), normalise(&plain), "{} / {}", encoded, plain);
    }

    /// What hyper accepts raw in a path but the normal form writes encoded
    /// (non-ASCII, `"`, `[`, `]`, `^`, `{`, `|`, `}`): raw or encoded, one
    /// normal form, so `/café/x` and `/café/./x` route alike.
    #[test]
    fn raw_and_encoded_spellings_share_one_normal_form(
        segments in vec((vec(prop_oneof![
            3 => "[a-z]".prop_map(String::from),
            1 => select(&["\"", "[", "]", "^", "{", "|", "}", "é", "日"][..]).prop_map(str::to_owned),
        ], 0..5), any::<u32>(), any::<bool>()), 1..5),
    ) {
        let mut raw = String::new();
        let mut encoded = String::new();
        let mut detour = String::new();
        for (i, (chars, mask, dot)) in segments.iter().enumerate() {
            raw.push('/');
            encoded.push('/');
            detour.push('/');
            for (j, c) in chars.iter().enumerate() {
                raw.push_str(c);
                detour.push_str(c);
                if mask & (1 << (j % 32)) != 0 {
                    for b in c.bytes() {
                        encoded.push_str(&format!("%{b:02X}"));
                    }
                } else {
                    encoded.push_str(c);
                }
            }
            if *dot && i + 1 < segments.len() {
                detour.push_str("/.");
            }
        }
        let one = normalise(&raw);
        prop_assert_eq!(&normalise(&encoded), &one, "{} / {}", encoded, raw);
        prop_assert_eq!(&normalise(&detour), &one, "{} / {}", detour, raw);
        if let Ok(n) = &one {
            assert_normal(&raw, n);
        }
    }
}

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

/// The apps of [`router`], by index.
const STORE_ROOT: usize = 0;
const STORE_ADMIN: usize = 1;
const STORE_API: usize = 2;
const WILD_ROOT: usize = 3;
const WILD_ADMIN: usize = 4;

/// `store.example.com` with `/`, `/admin` and `/api/v1`; `*.example.com`
/// with `/` and `/admin`.
fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let apps: Vec<(Vec<HostPattern>, &str)> = [
            ("store.example.com", "/"),
            ("store.example.com", "/admin"),
            ("store.example.com", "/api/v1"),
            ("*.example.com", "/"),
            ("*.example.com", "/admin"),
        ]
        .into_iter()
        .map(|(host, prefix)| (vec![HostPattern::parse(host).expect("valid host")], prefix))
        .collect();
        Router::new(
            apps.iter()
                .enumerate()
                .map(|(i, (hosts, prefix))| (i, hosts.as_slice(), *prefix)),
        )
    })
}

/// Which configured host a request host names.
#[derive(Debug, Clone, Copy)]
enum HostKind {
    Store,
    Wildcard,
    Unknown,
}

fn routed_host() -> impl Strategy<Value = (&'static str, HostKind)> {
    select(
        &[
            ("store.example.com", HostKind::Store),
            ("STORE.Example.COM:8443", HostKind::Store),
            ("store.example.com.", HostKind::Store),
            ("Store.example.com.:443", HostKind::Store),
            ("a.example.com", HostKind::Wildcard),
            ("deep.A.example.com:80", HostKind::Wildcard),
            ("example.com", HostKind::Unknown),
            ("evil-example.com", HostKind::Unknown),
            ("store.example.com.evil", HostKind::Unknown),
            ("[::1]:8080", HostKind::Unknown),
        ][..],
    )
}

/// The app the configuration means for `segments` on a host of `kind`.
fn meant(kind: HostKind, segments: &[&str]) -> Option<usize> {
    let admin = segments.first() == Some(&"admin");
    let api = segments.starts_with(&["api", "v1"]);
    match kind {
        HostKind::Store if admin => Some(STORE_ADMIN),
        HostKind::Store if api => Some(STORE_API),
        HostKind::Store => Some(STORE_ROOT),
        HostKind::Wildcard if admin => Some(WILD_ADMIN),
        HostKind::Wildcard => Some(WILD_ROOT),
        HostKind::Unknown => None,
    }
}

/// One segment of a canonical path, spelled another way.
#[derive(Debug, Clone)]
struct Spelling {
    /// Segments that resolve to nothing, written before it.
    detour: &'static str,
    /// Which of its characters are percent-encoded.
    encoded: u32,
    /// Upper-case hex digits.
    upper: bool,
    /// `;params` after it.
    params: &'static str,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (
        select(
            &[
                "",
                "",
                "./",
                "%2e/",
                "%2E/",
                "/",
                "x/../",
                "junk/%2e%2e/",
                "a;b/..;c/",
                "%2E/x/%2E%2E/",
                ".;p/",
                "admin/../",
                "api/v1/%2e%2E/..;/",
            ][..],
        ),
        any::<u32>(),
        any::<bool>(),
        select(&["", "", ";x=1", ";", ";jsessionid=ABC", ";a;b=c", ";%61=%62"][..]),
    )
        .prop_map(|(detour, encoded, upper, params)| Spelling {
            detour,
            encoded,
            upper,
            params,
        })
}

/// The path of `segments`, each spelled as told, with the given lead and tail.
fn spell(lead: &str, segments: &[(&str, Spelling)], tail: &str) -> String {
    let mut out = format!("/{lead}");
    for (i, (segment, how)) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(how.detour);
        for (j, c) in segment.chars().enumerate() {
            if how.encoded & (1 << (j % 32)) != 0 {
                let b = c as u32;
                out.push_str(&if how.upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                });
            } else {
                out.push(c);
            }
        }
        out.push_str(how.params);
    }
    out.push_str(tail);
    out
}

fn canonical_segment() -> impl Strategy<Value = &'static str> {
    select(
        &[
            "admin", "admin", "api", "api", "v1", "v1", "x", "users", "adminx", "Admin", "apiv1",
            "v2", "a", "_", "~", "-",
        ][..],
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn routing_is_idempotent_on_normal_paths(raw in raw_path(), (host, _) in routed_host()) {
        let r = router();
        if let Ok(n) = normalise(&raw) {
            let once = r.find(host, &without_params(&n));
            let again = normalise(&n).expect("a normal path normalises");
            prop_assert_eq!(once, r.find(host, &without_params(&again)), "{:?} → {:?}", raw, n);
        }
    }

    #[test]
    fn every_spelling_of_a_path_reaches_the_app_its_canonical_form_does(
        (host, kind) in routed_host(),
        segments in vec((canonical_segment(), spelling()), 0..5),
        lead in select(&["", "", "../", "../../", "%2e%2e/", "./", "/", ".;x/"][..]),
        tail in select(&["", "", "/", "/.", "/x/..", "/%2e", "//", "/x/..;/"][..]),
    ) {
        let canonical: Vec<&str> = segments.iter().map(|(s, _)| *s).collect();
        let raw = spell(lead, &segments, tail);
        let n = normalise(&raw).map_err(|e| TestCaseError::fail(format!("{raw:?}: {e}")))?;
        let want = meant(kind, &canonical);
        let plain = format!("/{}", canonical.join("/"));
        let r = router();
        prop_assert_eq!(r.find(host, &plain), want, "{}", plain);
        prop_assert_eq!(r.find(host, &without_params(&n)), want, "{:?} → {:?}", raw, n);
    }

    #[test]
    fn find_takes_any_host_and_path(host in any::<String>(), path in any::<String>()) {
        let _ = router().find(&host, &path);
    }
}

// ---------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------

/// Bytes of a `Host` header, biased towards what smuggles a second host.
fn host_bytes() -> impl Strategy<Value = Vec<u8>> {
    const NAMES: &[&str] = &[
        "store.example.com",
        "a",
        "Z",
        "0",
        "9",
        "-",
        ".",
        "_",
        "~",
        ":",
        ":8080",
        ":443",
        "[::1]",
        "[::ffff:1.2.3.4]",
        "[fe80::1%25eth0]",
        "1.2.3.4",
        "xn--caf-dma",
    ];
    const TRICKS: &[&str] = &[
        ":99999", "::", "[", "]", "[v1.x]", "@", "/", "?", "#", "\\", " ", "\t", "%", "%2f", "é",
        "*", ",", ":+1", ":-1",
    ];
    let piece = prop_oneof![
        6 => select(NAMES).prop_map(|p| p.as_bytes().to_vec()),
        2 => select(TRICKS).prop_map(|p| p.as_bytes().to_vec()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

/// Panics unless `host` is `reg-name / IP-literal [":" port]`.
fn assert_host(host: &HeaderValue) {
    let b = host.as_bytes();
    assert!(!b.is_empty(), "empty host accepted");
    for c in b"/@?#\\ " {
        assert!(!b.contains(c), "{host:?} accepted with {:?}", *c as char);
    }
    let (name, port) = match b.first() {
        Some(b'[') => {
            let end = b.iter().position(|&c| c == b']').expect("closing bracket");
            let inner = std::str::from_utf8(&b[1..end]).expect("ASCII literal");
            assert!(
                inner.parse::<std::net::Ipv6Addr>().is_ok(),
                "{host:?}: not an IPv6 literal"
            );
            (&b[..0], &b[end + 1..])
        }
        _ => match b.iter().position(|&c| c == b':') {
            Some(at) => (&b[..at], &b[at..]),
            None => (b, &b[b.len()..]),
        },
    };
    assert!(
        name.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(c)),
        "{host:?}: host name has other characters"
    );
    let colons = port.iter().filter(|&&c| c == b':').count();
    assert!(colons <= 1, "{host:?}: more than one ':' outside brackets");
    if let Some(digits) = port.strip_prefix(b":") {
        assert!(
            digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
            "{host:?}: port is not a port"
        );
    } else {
        assert!(port.is_empty(), "{host:?}: junk after the host");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn accepted_hosts_are_host_names(bytes in host_bytes()) {
        let Ok(value) = HeaderValue::from_bytes(&bytes) else {
            return Ok(());
        };
        let mut headers = HeaderMap::new();
        headers.insert(HOST, value);
        let origin_form = Uri::from_static("/");
        if let Ok(host) = request_host(&origin_form, &headers) {
            assert_host(&host);
            let _ = router().find(host.to_str().expect("accepted hosts are ASCII"), "/");
        }
        // The authority of an absolute-form or HTTP/2 request wins over `Host`.
        let mut absolute = b"http://".to_vec();
        absolute.extend_from_slice(&bytes);
        absolute.extend_from_slice(b"/x");
        if let Ok(uri) = Uri::try_from(absolute) {
            for headers in [&headers, &HeaderMap::new()] {
                if let Ok(host) = request_host(&uri, headers) {
                    assert_host(&host);
                }
            }
        }
    }

    #[test]
    fn host_patterns_parse_without_panic_and_round_trip(
        wild in any::<bool>(),
        bytes in host_bytes(),
        spaces in select(&["", " ", "\t", " \n"][..]),
    ) {
        let text = format!(
            "{spaces}{}{}{spaces}",
            if wild { "*." } else { "" },
            String::from_utf8_lossy(&bytes)
        );
        if let Ok(pattern) = HostPattern::parse(&text) {
            prop_assert_eq!(HostPattern::parse(&pattern.to_string()), Ok(pattern));
        }
    }

    #[test]
    fn host_patterns_take_any_string(text in any::<String>()) {
        let _ = HostPattern::parse(&text);
    }
}

// ---------------------------------------------------------------------------
// Return-to
// ---------------------------------------------------------------------------

/// A return-to value, biased towards what leaves the origin somewhere:
/// mostly starting with `/` (else nothing passes), then pieces.
fn return_to() -> impl Strategy<Value = String> {
    const SAFE: &[&str] = &[
        "/",
        "a",
        "cart",
        "..",
        ".",
        "?",
        "?x=1",
        "#",
        "#top",
        "@",
        ":",
        "evil.example",
        "%2e",
        "%41",
        "%20",
        "=",
        "&",
        "~",
        "%25",
        "%",
        "é",
    ];
    const TRICKS: &[&str] = &[
        "/",
        "//",
        "/\\",
        "\\",
        "https:",
        "http:",
        "javascript:",
        "%2f",
        "%2F",
        "%5c",
        "%5C",
        "%252f",
        "%252F%252F",
        "%25252f",
        "\t",
        "\n",
        "\r",
        "%09",
        "%0a",
        "%0D",
        "%00",
        "\u{a0}",
        "\u{3000}",
        "\u{2028}",
        "%e2%80%a8",
        "\u{ff0f}",
        "%ef%bc%8f",
        "\u{85}",
        "%c2%85",
        "%ff",
        "%c0%af",
    ];
    let piece = prop_oneof![
        6 => select(SAFE).prop_map(str::to_owned),
        3 => select(TRICKS).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
        1 => any::<u8>().prop_map(|b| format!("%{b:02x}")),
    ];
    let lead = prop_oneof![
        6 => Just("/"),
        1 => Just(""),
        2 => select(&["//", "/\\", "/\t/", "/\n/", "/%2f", "/%5C", "/%09/", "/%252f/", "https:"][..]),
    ];
    (lead, vec(piece, 0..10)).prop_map(|(lead, pieces)| format!("{lead}{}", pieces.concat()))
}

/// `https://app.example/` with `target` resolved against it, as a browser
/// follows `Location: target` from there.
fn resolve(target: &str) -> Option<url::Url> {
    url::Url::parse("https://app.example/")
        .expect("base URL")
        .join(target)
        .ok()
}

/// Panics unless `target` resolves on `https://app.example/`'s origin.
fn assert_same_origin(value: &str, target: &str) {
    let base = url::Url::parse("https://app.example/").expect("base URL");
    let url = base
        .join(target)
        .unwrap_or_else(|e| panic!("{value:?} accepted; {target:?} does not resolve: {e}"));
    assert_eq!(
        url.origin(),
        base.origin(),
        "{value:?} accepted; {target:?} resolves to {url}"
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn accepted_return_to_stays_on_the_origin(value in return_to()) {
        if let Some(target) = sanitise(&value) {
            prop_assert_eq!(target, value.as_str());
            assert_same_origin(&value, target);
            // Some servers and browsers decode before resolving: the once- and
            // twice-decoded forms stay too.
            let once = percent_encoding::percent_decode_str(target).decode_utf8_lossy();
            assert_same_origin(&value, &once);
            let twice = percent_encoding::percent_decode_str(&once).decode_utf8_lossy();
            assert_same_origin(&value, &twice);
        }
    }

    #[test]
    fn sanitise_takes_any_string(value in any::<String>()) {
        if let Some(target) = sanitise(&value) {
            prop_assert!(resolve(target).is_some_and(|u| u.host_str() == Some("app.example")));
        }
    }
}

// ---------------------------------------------------------------------------
// Cookies
// ---------------------------------------------------------------------------

/// The gateway's wire names for this app's cookies.
const JWT: &str = "__Host-gw_jwt";
const REFRESH: &str = "__Host-gw_refresh";
/// Another app's gateway cookies: also kept from the upstream.
const OTHERS: [&str; 2] = ["__Host-wiki_jwt", "__Host-wiki_refresh"];
const ALL: [&str; 4] = [JWT, REFRESH, OTHERS[0], OTHERS[1]];

/// Whether a request cookie named `name` is one of the gateway's (a name or
/// a chunk `NAME.N`, N of one to three digits).
fn is_gateway_name(name: &str) -> bool {
    ALL.iter().any(|wire| is_piece_of(name, wire))
}

/// Whether `name` is `wire` or a chunk `wire.N`, N of one to three digits.
fn is_piece_of(name: &str, wire: &str) -> bool {
    name.strip_prefix(wire).is_some_and(|rest| {
        rest.is_empty()
            || rest.strip_prefix('.').is_some_and(|n| {
                (1..=3).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit())
            })
    })
}

/// `name=value` pairs of every `Cookie` header as a server reads them:
/// split at `;`, trimmed, empty parts skipped, the name up to the first `=`.
fn cookie_pairs(headers: &HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .map(<[u8]>::trim_ascii)
        .filter(|part| !part.is_empty())
        .map(|part| match part.iter().position(|&b| b == b'=') {
            Some(at) => (
                part[..at].trim_ascii().to_vec(),
                part[at + 1..].trim_ascii().to_vec(),
            ),
            None => (part.to_vec(), Vec::new()),
        })
        .collect()
}

fn spaces() -> impl Strategy<Value = &'static str> {
    select(&["", "", "", " ", "  ", "\t", " \t"][..])
}

fn cookie_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(&ALL[..]).prop_map(str::to_owned),
        2 => (select(&ALL[..]), 0..4u8).prop_map(|(n, i)| format!("{n}.{i}")),
        2 => (
            select(&ALL[..]),
            select(&["x", ".x", ".", ".0000", ".1234", ".01", ".007", ".999", "_", "-", ".-1", ".+1"][..]),
        )
            .prop_map(|(n, suffix)| format!("{n}{suffix}")),
        1 => select(&[
            "__host-gw_jwt", "__HOST-GW_JWT", "gw_jwt", "__Host-gw", "theme", "cart", "__Host-",
            "", ".0",
        ][..])
            .prop_map(str::to_owned),
        2 => "[A-Za-z0-9_.-]{1,8}",
    ]
}

fn cookie_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9=._-]{0,6}",
        1 => select(&["", "__Host-gw_jwt=x", "a b", "\"q\"", "=", "é"][..]).prop_map(str::to_owned),
    ]
}

/// One `;`-separated part of a `Cookie` header.
fn cookie_part() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (spaces(), cookie_name(), spaces(), spaces(), cookie_value(), spaces())
            .prop_map(|(a, name, b, c, value, d)| format!("{a}{name}{b}={c}{value}{d}")),
        1 => (spaces(), cookie_value()).prop_map(|(a, value)| format!("{a}={value}")),
        1 => (spaces(), cookie_name(), spaces()).prop_map(|(a, name, b)| format!("{a}{name}{b}")),
        1 => spaces().prop_map(str::to_owned),
    ]
}

/// The request's `Cookie` headers (HTTP/2 may send several).
fn cookie_headers() -> impl Strategy<Value = Vec<String>> {
    vec(
        vec(cookie_part(), 0..8).prop_map(|parts| parts.join(";")),
        0..3,
    )
}

/// Scans `headers` for this app's cookies (others for the other app),
/// rewrites them, and checks what the upstream receives.
fn strip_and_check(mut headers: HeaderMap) {
    let before = cookie_pairs(&headers);
    let others: Vec<Box<str>> = OTHERS.iter().map(|&n| n.into()).collect();
    let ([jwt, _refresh], rewrite) = scan(&headers, [JWT, REFRESH], &others);

    // What the gateway read of its JWT cookie, against the pairs.
    let exact: Vec<&[u8]> = before
        .iter()
        .filter(|(n, _)| n == JWT.as_bytes())
        .map(|(_, v)| v.as_slice())
        .collect();
    let chunks = before
        .iter()
        .filter(|(n, _)| {
            let n = String::from_utf8_lossy(n);
            n != JWT && is_piece_of(&n, JWT)
        })
        .count();
    let want_single = if chunks == 0 {
        exact.last().copied()
    } else {
        None
    };
    assert_eq!(jwt.single(), want_single, "single of {before:?}");
    let (_, layout) = jwt.value();
    let want_layout = match (chunks, exact.is_empty()) {
        (0, true) => Layout::Absent,
        (0, false) => Layout::Single,
        (n, _) => Layout::Chunks(n),
    };
    assert_eq!(layout, want_layout, "layout of {before:?}");

    apply(&mut headers, rewrite);
    let after = cookie_pairs(&headers);
    for (name, _) in &after {
        assert!(
            !is_gateway_name(&String::from_utf8_lossy(name)),
            "{before:?}: gateway cookie {name:?} left in {after:?}"
        );
    }
    let kept: Vec<_> = before
        .iter()
        .filter(|(name, _)| !is_gateway_name(&String::from_utf8_lossy(name)))
        .cloned()
        .collect();
    assert_eq!(after, kept, "{before:?}: app cookies not kept in order");
}

/// The Cookie-safe characters of RFC 6265 (`cookie-octet`): what the
/// gateway stores (JWTs, sealed base64) is made of them.
fn cookie_octets() -> impl Strategy<Value = Vec<u8>> {
    let octet = (0x21u8..0x7f).prop_filter("cookie-octet", |b| !b"\",;\\".contains(b));
    vec(octet, 1..48)
}

/// A stored value's length, dense around the chunk boundaries.
fn stored_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => 0..16usize,
        1 => CHUNK_SIZE - 8..=CHUNK_SIZE + 8,
        1 => 2 * CHUNK_SIZE - 8..=2 * CHUNK_SIZE + 8,
        1 => 3 * CHUNK_SIZE - 8..12_000,
        3 => 0..12_000usize,
    ]
}

/// `len` bytes of `pattern`, repeated.
fn fill(pattern: &[u8], len: usize) -> String {
    let bytes: Vec<u8> = pattern.iter().copied().cycle().take(len).collect();
    String::from_utf8(bytes).expect("ASCII pattern")
}

/// A browser's cookie jar for one host: `Set-Cookie` values applied in
/// order (`Max-Age=0` deletes), sent back in `order` over one or two
/// `Cookie` headers.
#[derive(Debug, Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn set(&mut self, set_cookies: &[HeaderValue]) {
        for set in set_cookies {
            assert!(set.len() < 4096, "a Set-Cookie over the browser limit");
            let text = set.to_str().expect("ASCII Set-Cookie");
            let pair = text.split(';').next().expect("split yields one part");
            let (name, value) = pair.split_once('=').expect("name=value");
            self.0.retain(|(n, _)| n != name);
            if !text.contains("Max-Age=0") {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn send(&self, order: &[u16; 8], split: usize) -> HeaderMap {
        let mut pairs: Vec<(u16, String)> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, (n, v))| (order[i % 8] ^ (i as u16), format!("{n}={v}")))
            .collect();
        pairs.sort();
        let pairs: Vec<String> = pairs.into_iter().map(|(_, p)| p).collect();
        let mut headers = HeaderMap::new();
        let split = split.min(pairs.len());
        for half in [&pairs[..split], &pairs[split..]] {
            if !half.is_empty() {
                let value = HeaderValue::from_str(&half.join("; ")).expect("Cookie header");
                headers.append(COOKIE, value);
            }
        }
        headers
    }
}

fn layout_of(value: &str) -> Layout {
    if value.len() <= CHUNK_SIZE {
        Layout::Single
    } else {
        Layout::Chunks(value.len().div_ceil(CHUNK_SIZE))
    }
}

/// Names an upstream must not set, as `sets_any` receives them.
fn protected() -> Vec<Box<str>> {
    ALL.iter().map(|&n| n.into()).collect()
}

/// Case changes a browser ignores when it matches a `__Host-` name.
fn recase(name: &str, mask: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask & (1 << (i % 64)) != 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// A `Set-Cookie` value a browser reads as setting a cookie named `name`.
fn set_cookie_forms(name: &str, value: &str, attrs: &str, form: u8) -> String {
    match form % 6 {
        0 => format!("{name}={value}{attrs}"),
        1 => format!(" {name} ={value}{attrs}"),
        2 => format!("\t{name}\t= {value} {attrs}"),
        3 => format!("={name}={value}{attrs}"),
        4 => format!("= {name} ={value}{attrs}"),
        _ => format!("{name}{attrs}"),
    }
}

/// Whether a browser would send a cookie named `name` back as one of the
/// gateway's (names compare without regard to ASCII case).
fn is_gateway_name_any_case(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ALL.iter()
        .any(|wire| is_piece_of(&name, &wire.to_ascii_lowercase()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_gateway_cookie_reaches_the_upstream_and_app_cookies_do(values in cookie_headers()) {
        let mut headers = HeaderMap::new();
        for value in &values {
            headers.append(COOKIE, HeaderValue::from_str(value).expect("Cookie header"));
        }
        strip_and_check(headers);
    }

    #[test]
    fn scan_takes_any_header_bytes(values in vec(vec(any::<u8>(), 0..64), 0..3)) {
        let mut headers = HeaderMap::new();
        for value in &values {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(COOKIE, value);
            }
        }
        let others: Vec<Box<str>> = OTHERS.iter().map(|&n| n.into()).collect();
        let ([jwt, refresh], rewrite) = scan(&headers, [JWT, REFRESH], &others);
        let _ = (jwt.single(), jwt.value(), refresh.value());
        apply(&mut headers, rewrite);
        for (name, _) in cookie_pairs(&headers) {
            prop_assert!(!is_gateway_name(&String::from_utf8_lossy(&name)), "{:?}", name);
        }
    }

    #[test]
    fn stored_values_read_back_whatever_was_there_before(
        old in (stored_len(), cookie_octets()),
        new in (stored_len(), cookie_octets()),
        order in any::<[u16; 8]>(),
        split in 0..6usize,
    ) {
        let spec = CookieSpec {
            name: "gw_jwt".into(),
            secure: false,
            domain: None,
            max_age: Duration::from_secs(3600),
        };
        let (old, new) = (fill(&old.1, old.0), fill(&new.1, new.0));
        let mut jar = Jar::default();
        // The app's own cookies, some with names close to the gateway's.
        jar.0.push(("theme".into(), "dark".into()));
        jar.0.push(("gw_jwtx".into(), "app".into()));
        jar.0.push(("gw_jwt.x".into(), "app".into()));
        jar.set(&spec.store(&old, Layout::Absent));
        let read = spec.read(&jar.send(&order, split));
        prop_assert_eq!(read, (Some(old.clone()), layout_of(&old)));

        jar.set(&spec.store(&new, layout_of(&old)));
        let read = spec.read(&jar.send(&order, split));
        prop_assert_eq!(read, (Some(new.clone()), layout_of(&new)));
        // Nothing stale is left: the jar holds the app's three and the new pieces.
        let pieces = match layout_of(&new) {
            Layout::Chunks(n) => n,
            _ => 1,
        };
        prop_assert_eq!(jar.0.len(), 3 + pieces, "{:?}", jar.0.iter().map(|(n, _)| n).collect::<Vec<_>>());
    }

    #[test]
    fn sets_any_takes_any_bytes(bytes in vec(any::<u8>(), 0..64)) {
        let _ = sets_any(&bytes, &protected());
    }

    #[test]
    fn upstream_cannot_set_a_gateway_cookie_under_any_spelling(
        name in select(&ALL[..]),
        chunk in prop_oneof![Just(None), (0..1000usize).prop_map(Some)],
        mask in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
        value in "[A-Za-z0-9._=-]{0,8}",
        attrs in select(&["", "; Path=/", "; HttpOnly; Secure", ";", "; Max-Age=0", ";x"][..]),
        form in any::<u8>(),
    ) {
        let mut name = name.to_owned();
        if let Some(i) = chunk {
            name = format!("{name}.{i}");
        }
        let name = if mask == 0 { name } else { recase(&name, mask) };
        let set = set_cookie_forms(&name, &value, attrs, form);
        prop_assert!(sets_any(set.as_bytes(), &protected()), "{:?} passes", set);
    }

    #[test]
    fn upstream_sets_its_own_cookies(
        name in prop_oneof![
            "[A-Za-z0-9_.-]{1,16}",
            select(&[
                "gw_jwt", "__Host-gw_jw", "__Host-gw_jwtx", "__Host-gw_jwt.x", "__Host-gw_jwt.1234",
                "__Host-gw_jwt.", "x__Host-gw_jwt", "Host-gw_jwt", "__Host-gw_jwt-", "__Host-gw_jwt..1",
            ][..]).prop_map(str::to_owned),
        ]
        .prop_filter("not a gateway name", |n| !is_gateway_name_any_case(n)),
        value in "[A-Za-z0-9._-]{0,8}",
        attrs in select(&["", "; Path=/", "; HttpOnly; Secure", ";", "; Max-Age=0"][..]),
        form in any::<u8>(),
    ) {
        let set = set_cookie_forms(&name, &value, attrs, form);
        prop_assert!(!sets_any(set.as_bytes(), &protected()), "{:?} refused", set);
    }
}

// ---------------------------------------------------------------------------
// CSRF
// ---------------------------------------------------------------------------

const CSRF_KEY: &[u8] = &[7u8; 64];
const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn csrf() -> &'static Csrf {
    static CSRF: OnceLock<Csrf> = OnceLock::new();
    CSRF.get_or_init(|| Csrf::new(CSRF_KEY, "store"))
}

/// Strings shaped like tokens, and anything else.
fn token_like() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        3 => "[A-Za-z0-9_=-]{70,80}".prop_map(Some),
        2 => any::<String>().prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn csrf_check_takes_anything(
        cookie in token_like(),
        form in token_like(),
        same in any::<bool>(),
        now in any::<u64>(),
        max_age in any::<u64>(),
    ) {
        let form = if same { cookie.clone() } else { form };
        let _ = csrf().check(cookie.as_deref(), form.as_deref(), now, max_age);
    }

    #[test]
    fn csrf_token_checks_only_unchanged(
        now in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), 1_600_000_000..2_000_000_000u64],
        max_age in any::<u64>(),
        at in any::<Index>(),
        replacement in prop_oneof![
            3 => select(BASE64URL.chars().collect::<Vec<_>>()),
            1 => any::<char>(),
        ],
    ) {
        let c = csrf();
        let token = c.issue(now);
        prop_assert!(c.check(Some(&token), Some(&token), now, max_age));
        let i = at.index(token.len());
        let original = token[i..].chars().next().expect("in range");
        prop_assume!(replacement != original);
        let mut changed = token.clone();
        changed.replace_range(i..i + original.len_utf8(), replacement.encode_utf8(&mut [0; 4]));
        prop_assert!(!c.check(Some(&changed), Some(&changed), now, max_age), "{}", changed);
        prop_assert!(!c.check(Some(&token), Some(&changed), now, max_age));
        prop_assert!(!c.check(Some(&changed), Some(&token), now, max_age));
    }
}

// ---------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A configuration with `[server] key = value` and one app without login.
fn load_with(key: &str, value: &str) -> Result<Config, ConfigError> {
    Config::from_toml(&format!(
        "[server]\n{key} = {}\n\n[[apps]]\nname = \"a\"\nhosts = [\"a.test\"]\n\
         upstream = \"http://127.0.0.1:3001\"\nauth = false\n",
        toml_string(value)
    ))
}

/// Duration-like text: numbers and units, with signs, dots, spaces and junk.
fn duration_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        6 => "[0-9]{1,4}",
        1 => "[0-9]{18,25}",
        1 => select(&["0", "00", "-1", "+1", "1.5", ".5", "1e3", "1_000", ""][..])
            .prop_map(str::to_owned),
    ];
    let unit = select(
        &[
            "s", "ms", "m", "h", "d", "days", "us", "µs", "ns", "sec", "min", "y", "w", "M",
            "months", "", "S", "\u{0}", "x",
        ][..],
    );
    let space = select(&["", "", " ", "  ", "\t", "\n"][..]);
    let term = (number, space.clone(), unit)
        .prop_map(|(number, space, unit)| format!("{number}{space}{unit}"));
    (space.clone(), vec((term, space.clone()), 1..4), space).prop_map(|(lead, terms, tail)| {
        let terms: String = terms.into_iter().map(|(t, s)| t + s).collect();
        format!("{lead}{terms}{tail}")
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_duration_text_loads_or_is_refused_by_name(
        text in prop_oneof![3 => duration_text(), 1 => any::<String>()],
        key in select(&["idle_timeout", "shutdown_grace"][..]),
    ) {
        match load_with(key, &text) {
            Ok(config) => {
                if key == "idle_timeout" {
                    prop_assert!(!config.server.idle_timeout.is_zero());
                }
            }
            Err(ConfigError::Invalid { key: blamed, .. }) => {
                prop_assert_eq!(blamed, format!("server.{key}"), "{:?}", text);
            }
            Err(e) => return Err(TestCaseError::fail(format!("{text:?}: {e}"))),
        }
    }

    #[test]
    fn seconds_and_milliseconds_load(n in prop_oneof![0..10u64, any::<u32>().prop_map(u64::from)], ms in any::<bool>()) {
        let (text, want) = if ms {
            (format!("{n}ms"), Duration::from_millis(n))
        } else {
            (format!("{n}s"), Duration::from_secs(n))
        };
        let grace = load_with("shutdown_grace", &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(grace.server.shutdown_grace, want);
        match load_with("idle_timeout", &text) {
            Ok(config) => prop_assert_eq!(config.server.idle_timeout, want),
            Err(e) => prop_assert!(n == 0, "{:?}: {}", text, e),
        }
    }
}

// ---------------------------------------------------------------------------
// X-Forwarded-For
// ---------------------------------------------------------------------------

/// Trusted proxies of the properties below.
fn trusted() -> Vec<ipnet::IpNet> {
    ["10.0.0.0/8", "fd00::/8"]
        .iter()
        .map(|n| n.parse().expect("net"))
        .collect()
}

/// One `X-Forwarded-For` hop: trusted and untrusted addresses (some with
/// ports, some IPv4-mapped), and what is not an address.
fn xff_hop() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u8..4, any::<u8>()).prop_map(|(net, host)| match net {
            0 => format!("10.1.2.{host}"),
            1 => format!("203.0.113.{host}"),
            2 => format!("fd00::{host:x}"),
            _ => format!("2001:db8::{host:x}"),
        }),
        1 => any::<u8>().prop_map(|h| format!("[2001:db8::{h:x}]:4711")),
        1 => any::<u8>().prop_map(|h| format!("::ffff:10.9.9.{h}")),
        1 => select(&["unknown", "_hidden", "", " ", "300.1.1.1", "evil"][..]).prop_map(str::to_owned),
        1 => "[ -~]{0,12}",
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Whatever a client writes, the address it is held to is the peer or an
    /// address a trusted proxy vouched for; and hops written left of that
    /// address never change it (a client cannot pick its throttle bucket).
    #[test]
    fn the_client_address_is_never_the_clients_choice(
        hops in vec(xff_hop(), 0..6),
        forged in vec(xff_hop(), 0..4),
        peer_trusted in any::<bool>(),
    ) {
        let trusted = trusted();
        let peer: std::net::IpAddr = if peer_trusted { "10.0.0.1" } else { "198.51.100.7" }
            .parse()
            .expect("ip");
        let headers = |list: &[String]| {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                h.insert("x-forwarded-for", v);
            }
            h
        };
        let got = client_ip(peer, &headers(&hops), &trusted);
        if !peer_trusted {
            prop_assert_eq!(got, peer);
        }
        let parsed: Vec<std::net::IpAddr> = hops
            .iter()
            .filter_map(|h| {
                h.trim()
                    .parse::<std::net::IpAddr>()
                    .or_else(|_| h.trim().parse::<std::net::SocketAddr>().map(|s| s.ip()))
                    .ok()
                    .map(|ip| ip.to_canonical())
            })
            .collect();
        prop_assert!(got == peer || parsed.contains(&got), "{:?} -> {}", hops, got);
        // Anything prepended (what a client writes before the proxies append
        // theirs) changes nothing once an untrusted hop or the peer decided.
        let decided_inside = got != peer
            && !trusted.iter().any(|n| n.contains(&got));
        if decided_inside || !peer_trusted {
            let mut longer = forged.clone();
            longer.extend(hops.iter().cloned());
            prop_assert_eq!(client_ip(peer, &headers(&longer), &trusted), got, "{:?} + {:?}", forged, hops);
        }
    }
}
