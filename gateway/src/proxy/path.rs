//! One request, one path: the path every later stage reads, and the upstream
//! receives.
//!
//! Input: the request path as the client sent it. Output: its normal form:
//! each segment percent-decoded once, `.` and `..` resolved, empty segments
//! dropped, `;params` kept on their segment but not part of its name, and
//! the result re-encoded canonically. Routing, public paths, policies and the
//! forwarded request all use that one form, so a path cannot mean one thing
//! to the gateway and another to the app (`/x/../admin`, `//admin`,
//! `/%61dmin` and `/admin;/users` are `/admin…` for both).
//!
//! Failure ([`BadPath`], a 400): what has no single reading. A literal `\`
//! (IIS reads it as `/`, others as a character); a percent-encoding that is
//! malformed or not UTF-8 (overlong forms such as `%c0%ae` for `.` included);
//! an encoded NUL, `/` or `\` inside a segment; an encoding that decodes to
//! another encoding (`%252e`, which an app that decodes twice reads as `.`).
//!
//! Most paths need none of this: a path of plain characters (letters,
//! digits, `-._~!$&'()*+,=:@`) without empty or dot segments is already
//! normal and comes back borrowed, with no allocation.

use std::borrow::Cow;

use percent_encoding::{percent_encode, AsciiSet, CONTROLS};

use crate::config::values::is_plain_path_byte;

/// A path with no single reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ambiguous request path: {0}")]
pub struct BadPath(pub &'static str);

/// Bytes re-encoded in a normal segment: everything outside RFC 3986's
/// `pchar`, plus `;` (a decoded `%3B` is a character, not a parameter) and
/// `%` itself.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(0x7f);

/// The normal form of `path` (an origin-form path, without the query).
pub fn normalise(path: &str) -> Result<Cow<'_, str>, BadPath> {
    if is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    if path.contains('\\') {
        return Err(BadPath("backslash"));
    }
    if path.bytes().any(|b| b.is_ascii_control()) {
        return Err(BadPath("control character"));
    }
    let Some(rest) = path.strip_prefix('/') else {
        // `*` (OPTIONS) and other forms hyper accepted: left as they are.
        return Ok(Cow::Borrowed(path));
    };
    let mut segments: Vec<String> = Vec::new();
    let raw: Vec<&str> = rest.split('/').collect();
    let last = raw.len() - 1;
    let mut trailing_slash = false;
    for (i, raw) in raw.into_iter().enumerate() {
        let (name, params) = match raw.find(';') {
            Some(at) => raw.split_at(at),
            None => (raw, ""),
        };
        let name = decode(name)?;
        match name.as_str() {
            "" => trailing_slash = i == last,
            "." => trailing_slash = i == last,
            ".." => {
                segments.pop();
                trailing_slash = i == last;
            }
            _ => {
                let mut segment = percent_encode(name.as_bytes(), SEGMENT).to_string();
                if !params.is_empty() {
                    segment.push_str(&encode_params(params)?);
                }
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// The path with each segment's `;params` left out: what names the
/// resource for routing, public paths and policies.
pub fn without_params(normal: &str) -> Cow<'_, str> {
    if !normal.contains(';') {
        return Cow::Borrowed(normal);
    }
    let mut out = String::with_capacity(normal.len());
    for (i, segment) in normal.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(segment.split(';').next().unwrap_or(""));
    }
    Cow::Owned(out)
}

/// Already normal: nothing to decode, resolve or collapse, and nothing the
/// normal form writes encoded (non-ASCII, `"`, `[`, `{`, `|` and the like,
/// which hyper accepts raw): one path, one spelling.
fn is_normal(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return false;
        }
        if !segment.bytes().all(is_plain_path_byte) {
            return false;
        }
    }
    true
}

/// One segment percent-decoded once, refused when that is not a single,
/// unambiguous text.
fn decode(raw: &str) -> Result<String, BadPath> {
    if !raw.contains('%') {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
            return Err(BadPath("malformed percent-encoding"));
        };
        out.push((hi * 16 + lo) as u8);
        i += 3;
    }
    let text = String::from_utf8(out).map_err(|_| BadPath("encoding is not UTF-8"))?;
    if text.contains(['\0', '/', '\\']) {
        return Err(BadPath("encoded NUL, slash or backslash"));
    }
    if has_encoding(&text) {
        return Err(BadPath("double percent-encoding"));
    }
    Ok(text)
}

/// `%XX` anywhere in `text`.
fn has_encoding(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'%'
            && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    })
}

/// `;params` of a segment, decoded and checked like the name, re-encoded
/// with their `;` and `=` kept.
fn encode_params(params: &str) -> Result<String, BadPath> {
    let mut out = String::with_capacity(params.len());
    for param in params.split(';').skip(1) {
        out.push(';');
        for (i, part) in param.split('=').enumerate() {
            if i > 0 {
                out.push('=');
            }
            out.extend(percent_encode(decode(part)?.as_bytes(), SEGMENT));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reading_for_every_spelling() {
        let table = [
            ("/", "/"),
            ("/cart", "/cart"),
            ("/static/app.css", "/static/app.css"),
            ("/admin/", "/admin/"),
            ("/x/../admin/users", "/admin/users"),
            ("//admin/users", "/admin/users"),
            ("/%61dmin/users", "/admin/users"),
            ("/admin;/users", "/admin;/users"),
            ("/static/../cart", "/cart"),
            ("/static/%2e%2e/cart", "/cart"),
            ("/static/..;/cart", "/cart"),
            ("/static//./x", "/static/x"),
            ("/../../etc", "/etc"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/a%20b", "/a%20b"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/a;jsessionid=ABC/b", "/a;jsessionid=ABC/b"),
            ("/a%3Bb", "/a%3Bb"),
            ("/café/x", "/caf%C3%A9/x"),
            ("/café/./x", "/caf%C3%A9/x"),
            ("/a[b/x", "/a%5Bb/x"),
            ("/a[b//x", "/a%5Bb/x"),
            ("*", "*"),
        ];
        for (raw, want) in table {
            assert_eq!(normalise(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for raw in [
            "/static\\..\\admin",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a%00b",
            "/%c0%ae%c0%ae/admin",
            "/%ff",
            "/%2",
            "/%zz",
            "/static/%252e%252e/admin",
            "/a;x=%2f",
            "/\0;x=1",
            "/\u{1}x/.",
        ] {
            assert!(normalise(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn params_are_not_part_of_the_name() {
        assert_eq!(without_params("/admin;/users"), "/admin/users");
        assert_eq!(without_params("/a;x=1/b;y"), "/a/b");
        assert!(matches!(without_params("/plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for raw in ["/", "/cart", "/static/app.css", "/a/b/", "/.well-known/x"] {
            assert!(matches!(normalise(raw), Ok(Cow::Borrowed(_))), "{raw}");
        }
    }
}
