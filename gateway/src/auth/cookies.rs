//! The gateway's cookies: attributes, chunking, sealing, and keeping them
//! away from the upstream.
//!
//! Input: a [`CookieSpec`] per cookie (name, `Secure`, optional `Domain`,
//! lifetime) and the request's `Cookie` headers. Output: the stored value
//! (reassembled from chunks), `Set-Cookie` values that store or clear it, and
//! a `Cookie` header with the gateway's cookies removed for the upstream
//! ([`scan`] and [`apply`], one pass).
//!
//! Rules (each tested): `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` unless
//! disabled, host-only unless a domain is configured, and the `__Host-` name
//! prefix when secure and host-only (the browser then refuses any variant a
//! sibling subdomain or plain-HTTP page tries to plant). Values over
//! [`CHUNK_SIZE`] bytes (a JWT with many claims) are split into `NAME.0`,
//! `NAME.1`, … and reassembled; chunks a shorter value no longer needs are
//! cleared. [`Sealer`] encrypts and authenticates a value (AES-256-GCM, the
//! `cookie` crate's private jar) so the refresh cookie is opaque and tamper-proof.

use std::time::Duration;

use cookie::{Cookie, CookieJar, Key, SameSite};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::config::{CookieSpec, MIN_KEY_BYTES};

/// Largest cookie value written in one piece; browsers cap a whole cookie
/// (name, value and attributes) at 4096 bytes.
pub const CHUNK_SIZE: usize = 4000;

/// How a stored value is laid out in the client's cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The client has none of it.
    #[default]
    Absent,
    /// One cookie named like the spec.
    Single,
    /// `n` numbered chunks.
    Chunks(usize),
}

/// The wire behaviour of a configured cookie ([`CookieSpec`] is defined with
/// the rest of the configuration).
impl CookieSpec {
    fn build(&self, name: String, value: String, max_age: Duration) -> HeaderValue {
        let mut cookie = Cookie::new(name, value);
        cookie.set_http_only(true);
        cookie.set_secure(self.secure);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_path("/");
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_max_age(cookie::time::Duration::seconds(
            max_age.as_secs().min(i64::MAX as u64) as i64,
        ));
        // Names and base64/JSON-free values are plain ASCII.
        HeaderValue::from_str(&cookie.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    fn chunk_name(wire: &str, i: usize) -> String {
        format!("{wire}.{i}")
    }

    /// `Set-Cookie` values storing `value`, replacing what `previous` left.
    pub fn store(&self, value: &str, previous: Layout) -> Vec<HeaderValue> {
        let wire = self.wire_name();
        let mut out = Vec::new();
        let chunks = split(value);
        if chunks.len() == 1 {
            out.push(self.build(wire.clone(), value.to_owned(), self.max_age));
            if let Layout::Chunks(n) = previous {
                out.extend((0..n).map(|i| {
                    self.build(Self::chunk_name(&wire, i), String::new(), Duration::ZERO)
                }));
            }
        } else {
            for (i, chunk) in chunks.iter().enumerate() {
                out.push(self.build(
                    Self::chunk_name(&wire, i),
                    (*chunk).to_owned(),
                    self.max_age,
                ));
            }
            match previous {
                Layout::Single => out.push(self.build(wire.clone(), String::new(), Duration::ZERO)),
                Layout::Chunks(n) if n > chunks.len() => out.extend((chunks.len()..n).map(|i| {
                    self.build(Self::chunk_name(&wire, i), String::new(), Duration::ZERO)
                })),
                _ => {}
            }
        }
        out
    }

    /// `Set-Cookie` values removing every piece the client has.
    pub fn clear(&self, previous: Layout) -> Vec<HeaderValue> {
        let wire = self.wire_name();
        match previous {
            Layout::Absent => Vec::new(),
            Layout::Single => vec![self.build(wire, String::new(), Duration::ZERO)],
            Layout::Chunks(n) => (0..n)
                .map(|i| self.build(Self::chunk_name(&wire, i), String::new(), Duration::ZERO))
                .collect(),
        }
    }

    /// The value the client holds, reassembled, and how it is laid out.
    /// Chunks must be contiguous from `.0`; a gap means a damaged value.
    pub fn read(&self, headers: &HeaderMap) -> (Option<String>, Layout) {
        let wire = self.wire_name();
        let (found, _) = scan(headers, [wire.as_str()], &[]);
        let [found] = found;
        found.value()
    }
}

/// One cookie's pieces as found in a request.
#[derive(Debug, Default)]
pub struct Found<'a> {
    single: Option<&'a [u8]>,
    chunks: Vec<(usize, &'a [u8])>,
}

impl<'a> Found<'a> {
    /// The raw value when it is a single cookie (not chunked).
    pub fn single(&self) -> Option<&'a [u8]> {
        if self.chunks.is_empty() {
            self.single
        } else {
            None
        }
    }

    /// The value, reassembled, and its layout. Chunks must be contiguous
    /// from `.0`; a gap (or a value that is not text) means a damaged value.
    pub fn value(self) -> (Option<String>, Layout) {
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
        let mut chunks = self.chunks;
        if !chunks.is_empty() {
            chunks.sort_unstable_by_key(|(i, _)| *i);
            let layout = Layout::Chunks(chunks.len());
            let contiguous = chunks
                .iter()
                .enumerate()
                .all(|(want, (got, _))| want == *got);
            let value = contiguous
                .then(|| {
                    text(
                        &chunks
                            .iter()
                            .flat_map(|(_, v)| v.iter().copied())
                            .collect::<Vec<u8>>(),
                    )
                })
                .flatten();
            return (value, layout);
        }
        match self.single {
            Some(value) => (text(value), Layout::Single),
            None => (None, Layout::Absent),
        }
    }
}

/// What to do with the request's `Cookie` header once the gateway's
/// cookies are taken out.
#[derive(Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// None of the gateway's cookies were there: leave it.
    Keep,
    /// Only the gateway's cookies were there: remove the header.
    Remove,
    /// Replace it with the app's own cookies, in order.
    Replace(HeaderValue),
}

/// One pass over the request's `Cookie` headers (HTTP/2 may send several):
/// the pieces of each cookie named in `wires` (single or `NAME.N` chunks),
/// and how the header looks without them. Bytes are scanned with `memchr`
/// and nothing is validated or copied but the gateway's own values; the pass
/// allocates nothing unless a value is chunked or app cookies must be kept
/// beside the gateway's.
///
/// `others` are more names to take out without reading them (the other
/// apps' cookies: no upstream receives any app's session).
pub fn scan<'a, const N: usize>(
    headers: &'a HeaderMap,
    wires: [&str; N],
    others: &[Box<str>],
) -> ([Found<'a>; N], Rewrite) {
    let mut found: [Found<'a>; N] = std::array::from_fn(|_| Found::default());
    let mut ours = false;
    let mut theirs = false;
    for (name, value) in pairs(headers) {
        match classify(name, &wires) {
            Some((i, None)) => {
                ours = true;
                found[i].single = Some(value);
            }
            Some((i, Some(chunk))) => {
                ours = true;
                found[i].chunks.push((chunk, value));
            }
            None if is_any(name, others) => ours = true,
            None => theirs = true,
        }
    }
    let rewrite = match (ours, theirs) {
        (false, _) => Rewrite::Keep,
        (true, false) => Rewrite::Remove,
        (true, true) => {
            let mut kept: Vec<u8> = Vec::new();
            for (name, _, pair) in pieces(headers) {
                if classify(name, &wires).is_none() && !is_any(name, others) {
                    if !kept.is_empty() {
                        kept.extend_from_slice(b"; ");
                    }
                    // As sent: `tok` (a nameless cookie) must not become
                    // `tok=` (a cookie named `tok`).
                    kept.extend_from_slice(pair);
                }
            }
            match HeaderValue::from_bytes(&kept) {
                Ok(v) => Rewrite::Replace(v),
                Err(_) => Rewrite::Remove,
            }
        }
    };
    (found, rewrite)
}

/// Applies a [`Rewrite`] to the request's headers.
pub fn apply(headers: &mut HeaderMap, rewrite: Rewrite) {
    match rewrite {
        Rewrite::Keep => {}
        Rewrite::Remove => {
            headers.remove(COOKIE);
        }
        Rewrite::Replace(value) => {
            headers.insert(COOKIE, value);
        }
    }
}

/// `name=value` pairs of every `Cookie` header, trimmed; values as sent.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    pieces(headers).map(|(name, value, _)| (name, value))
}

/// [`pairs`], each with the whole trimmed pair as sent.
fn pieces(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8], &[u8])> {
    headers.get_all(COOKIE).iter().flat_map(|v| {
        split_pairs(v.as_bytes()).filter_map(|pair| {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                return None;
            }
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            Some((name.trim_ascii(), value.trim_ascii(), pair))
        })
    })
}

/// `a; b; c` → `a`, ` b`, ` c`, finding each `;` with `memchr` (a JWT is
/// a kilobyte with none in it).
fn split_pairs(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b';', r) {
            Some(at) => {
                rest = Some(&r[at + 1..]);
                Some(&r[..at])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Whether `name` is one of `names` or a chunk of one.
fn is_any(name: &[u8], names: &[Box<str>]) -> bool {
    !names.is_empty() && classify_in(name, names.iter().map(|n| n.as_bytes())).is_some()
}

/// Whether an upstream's `Set-Cookie` value would set one of `names` (or a
/// chunk of one) in the browser. Judged on the bytes, as a browser parses
/// them (RFC 6265bis §5.6): the name ends at the first `=` of the part
/// before the first `;`; a nameless cookie (`=__Host-gw_jwt=…`, or no `=` at
/// all) is sent back by browsers as its value alone, so its value is judged
/// as a name; names compare without regard to ASCII case (the `__Host-`
/// prefix is matched that way by browsers).
pub fn sets_any(set_cookie: &[u8], names: &[Box<str>]) -> bool {
    let pair = match memchr::memchr(b';', set_cookie) {
        Some(at) => &set_cookie[..at],
        None => set_cookie,
    };
    let (name, value) = match memchr::memchr(b'=', pair) {
        Some(at) => (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii()),
        None => (&pair[..0], pair.trim_ascii()),
    };
    let judged = if name.is_empty() {
        match memchr::memchr(b'=', value) {
            Some(at) => value[..at].trim_ascii(),
            None => value,
        }
    } else {
        name
    };
    names.iter().any(|n| {
        let n = n.as_bytes();
        judged.len() >= n.len()
            && judged[..n.len()].eq_ignore_ascii_case(n)
            && chunk_suffix(&judged[n.len()..]).is_some()
    })
}

/// Which of `wires` `name` is, and its chunk index if it is a chunk.
fn classify(name: &[u8], wires: &[&str]) -> Option<(usize, Option<usize>)> {
    classify_in(name, wires.iter().map(|w| w.as_bytes()))
}

/// [`classify`] over any list of names.
fn classify_in<'n>(
    name: &[u8],
    wires: impl IntoIterator<Item = &'n [u8]>,
) -> Option<(usize, Option<usize>)> {
    wires
        .into_iter()
        .enumerate()
        .find_map(|(i, wire)| Some((i, chunk_suffix(name.strip_prefix(wire)?)?)))
}

/// What follows a cookie's name in one of its pieces: nothing (`Some(None)`,
/// the whole value) or `.N` (`Some(Some(N))`, a chunk); `None` for anything
/// else.
fn chunk_suffix(rest: &[u8]) -> Option<Option<usize>> {
    if rest.is_empty() {
        return Some(None);
    }
    let index = rest.strip_prefix(b".")?;
    if index.is_empty() || index.len() > 3 || !index.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = index
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    Some(Some(n))
}

fn split(value: &str) -> Vec<&str> {
    if value.len() <= CHUNK_SIZE {
        return vec![value];
    }
    // Cookie values here are ASCII (JWTs, sealed base64), so byte offsets are
    // character boundaries; fall back to one piece otherwise.
    if !value.is_ascii() {
        return vec![value];
    }
    value
        .as_bytes()
        .chunks(CHUNK_SIZE)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect()
}

/// Encrypts and authenticates cookie values (AES-256-GCM).
pub struct Sealer {
    key: Key,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer keyed by `master` (at least [`MIN_KEY_BYTES`] bytes of
    /// secret material; the encryption key is derived from it with HKDF).
    pub fn new(master: &[u8]) -> Option<Sealer> {
        (master.len() >= MIN_KEY_BYTES).then(|| Sealer {
            key: Key::derive_from(master),
        })
    }

    /// `plaintext` sealed under the cookie `name` (a value sealed for one
    /// name does not open under another).
    pub fn seal(&self, name: &str, plaintext: &str) -> String {
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key)
            .add(Cookie::new(name.to_owned(), plaintext.to_owned()));
        jar.get(name)
            .map(|c| c.value().to_owned())
            .unwrap_or_default()
    }

    /// The plaintext of a value sealed under `name`, if genuine.
    pub fn open(&self, name: &str, sealed: &str) -> Option<String> {
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(name.to_owned(), sealed.to_owned()));
        jar.private(&self.key)
            .get(name)
            .map(|c| c.value().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(secure: bool, domain: Option<&str>) -> CookieSpec {
        CookieSpec {
            name: "store_rt".into(),
            secure,
            domain: domain.map(str::to_owned),
            max_age: Duration::from_secs(3600),
        }
    }

    fn request(cookies: &[HeaderValue]) -> HeaderMap {
        // Turn Set-Cookie values into the Cookie header a browser would send.
        let pairs: Vec<String> = cookies
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| !v.contains("Max-Age=0"))
            .filter_map(|v| v.split(';').next().map(str::to_owned))
            .collect();
        let mut h = HeaderMap::new();
        if !pairs.is_empty() {
            h.insert(
                COOKIE,
                HeaderValue::from_str(&pairs.join("; ")).expect("cookie"),
            );
        }
        h
    }

    #[test]
    fn attributes_and_host_prefix() {
        let set = spec(true, None).store("v", Layout::Absent);
        assert_eq!(set.len(), 1);
        let text = set[0].to_str().expect("ascii");
        assert!(text.starts_with("__Host-store_rt=v"), "{text}");
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=3600",
        ] {
            assert!(text.contains(attr), "{attr} missing: {text}");
        }
        assert!(!text.contains("Domain"), "{text}");

        let text = spec(true, Some("example.com")).store("v", Layout::Absent)[0]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(text.starts_with("store_rt=v"), "{text}");
        assert!(text.contains("Domain=example.com"), "{text}");

        let text = spec(false, None).store("v", Layout::Absent)[0]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            text.starts_with("store_rt=v") && !text.contains("Secure"),
            "{text}"
        );
    }

    #[test]
    fn large_values_round_trip_in_chunks_and_stale_chunks_are_cleared() {
        let s = spec(true, None);
        let big: String = "x".repeat(CHUNK_SIZE * 2 + 10);
        let set = s.store(&big, Layout::Absent);
        assert_eq!(set.len(), 3);
        for v in &set {
            assert!(v.len() < 4096, "a chunk exceeds the browser limit");
        }
        let (value, layout) = s.read(&request(&set));
        assert_eq!(value.as_deref(), Some(big.as_str()));
        assert_eq!(layout, Layout::Chunks(3));

        // Shrinks to one chunk's worth: single cookie, the three chunks cleared.
        let set = s.store("small", Layout::Chunks(3));
        let cleared = set
            .iter()
            .filter(|v| v.to_str().is_ok_and(|t| t.contains("Max-Age=0")))
            .count();
        assert_eq!(cleared, 3);
        assert_eq!(
            s.read(&request(&set)),
            (Some("small".into()), Layout::Single)
        );

        // Grows back: the single cookie is cleared.
        let set = s.store(&big, Layout::Single);
        assert!(set.iter().any(|v| v
            .to_str()
            .is_ok_and(|t| t.starts_with("__Host-store_rt=;") && t.contains("Max-Age=0"))));
    }

    #[test]
    fn a_gap_in_the_chunks_reads_as_no_value() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("__Host-store_rt.0=a; __Host-store_rt.2=c"),
        );
        assert_eq!(spec(true, None).read(&h), (None, Layout::Chunks(2)));
    }

    #[test]
    fn one_scan_reads_chunks_and_rewrites_the_header() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("theme=dark; jwt.1=BB; rt=sealed; jwt.0=AA"),
        );
        h.append(COOKIE, HeaderValue::from_static("jwtx=keep; jwt.x=keep2"));
        let ([jwt, rt, csrf], rewrite) = scan(&h, ["jwt", "rt", "csrf"], &[]);
        assert_eq!(jwt.value(), (Some("AABB".into()), Layout::Chunks(2)));
        assert_eq!(rt.value(), (Some("sealed".into()), Layout::Single));
        assert_eq!(csrf.value(), (None, Layout::Absent));
        assert_eq!(
            rewrite,
            Rewrite::Replace(HeaderValue::from_static(
                "theme=dark; jwtx=keep; jwt.x=keep2"
            ))
        );
        apply(&mut h, rewrite);
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);

        let header = |v: &'static str| request(&[HeaderValue::from_static(v)]);
        let only_ours = header("jwt=a; rt=b");
        assert_eq!(scan(&only_ours, ["jwt", "rt"], &[]).1, Rewrite::Remove);
        let only_theirs = header("theme=dark");
        assert_eq!(scan(&only_theirs, ["jwt", "rt"], &[]).1, Rewrite::Keep);
        // Pairs are kept as sent: a nameless `tok` does not become `tok=`;
        // the other apps' cookies go too.
        let mut mixed = HeaderMap::new();
        mixed.insert(
            COOKIE,
            HeaderValue::from_static("tok; jwt=a; other_jwt.0=x; theme = dark"),
        );
        let others: [Box<str>; 1] = ["other_jwt".into()];
        assert_eq!(
            scan(&mixed, ["jwt", "rt"], &others).1,
            Rewrite::Replace(HeaderValue::from_static("tok; theme = dark"))
        );
    }

    #[test]
    fn strip_removes_only_gateway_cookies() {
        let rt = spec(true, None);
        let at = CookieSpec {
            name: "store_at".into(),
            ..spec(true, None)
        };
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static(
                "theme=dark; __Host-store_rt=secret; __Host-store_at.0=a; cart=3",
            ),
        );
        h.append(
            COOKIE,
            HeaderValue::from_static("__Host-store_at.1=b; __Host-store_rtx=keep"),
        );
        let (rt_wire, at_wire) = (rt.wire_name(), at.wire_name());
        let (_, rewrite) = scan(&h, [rt_wire.as_str(), at_wire.as_str()], &[]);
        apply(&mut h, rewrite);
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        assert_eq!(h[COOKIE], "theme=dark; cart=3; __Host-store_rtx=keep");

        let mut only_ours = HeaderMap::new();
        only_ours.insert(COOKIE, HeaderValue::from_static("__Host-store_rt=x"));
        let (_, rewrite) = scan(&only_ours, [rt_wire.as_str()], &[]);
        apply(&mut only_ours, rewrite);
        assert!(!only_ours.contains_key(COOKIE));
    }

    #[test]
    fn sealed_values_are_opaque_and_tamper_evident() {
        assert!(Sealer::new(&[7u8; 31]).is_none(), "short keys are refused");
        let sealer = Sealer::new(&[7u8; 32]).expect("key");
        let sealed = sealer.seal("rt", r#"{"rt":"refresh-token","sub":"user-1"}"#);
        assert!(!sealed.contains("refresh-token"));
        assert_eq!(
            sealer.open("rt", &sealed).as_deref(),
            Some(r#"{"rt":"refresh-token","sub":"user-1"}"#)
        );
        // Another name, another key, a flipped character: nothing.
        assert_eq!(sealer.open("at", &sealed), None);
        let other = Sealer::new(&[8u8; 32]).expect("key");
        assert_eq!(other.open("rt", &sealed), None);
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert_eq!(sealer.open("rt", &tampered), None);
    }
}
