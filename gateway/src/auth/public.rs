//! The public-path stage: paths an app serves without login.
//!
//! Input: the request path as sent and the app's public patterns. Output:
//! whether the path is public. Patterns are matched on the *normalised* path
//! (percent-decoded, repeatedly; `\` read as `/`; `;params` dropped from
//! segments; `.` and `..` resolved; empty segments dropped), the way some
//! upstream server might read it. So `/static/../cart`, `/static/%2e%2e/cart`
//! or `/static/..;/cart` count as `/cart` and need a login, while the upstream
//! still receives the path exactly as the client sent it.

use std::borrow::Cow;

use super::app::AppAuth;

/// Whether `path` is one of the app's public paths.
pub fn is_public(auth: &AppAuth, path: &str) -> bool {
    let patterns = &auth.config.public_paths;
    if patterns.is_empty() {
        return false;
    }
    let normal = normalise(path);
    patterns.iter().any(|p| p.matches(&normal))
}

/// The path as an upstream might resolve it.
pub fn normalise(path: &str) -> Cow<'_, str> {
    let simple = path
        .bytes()
        .all(|b| !matches!(b, b'%' | b'\\' | b';' | b'.'))
        && !path.contains("//");
    if simple {
        return Cow::Borrowed(path);
    }
    let mut text = path.to_owned();
    // Decode until stable (bounded: double and triple encoding included).
    for _ in 0..3 {
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == text {
            break;
        }
        text = decoded;
    }
    let text = text.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    Cow::Owned(format!("/{}", segments.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_defeats_traversal_tricks() {
        let table = [
            ("/static/app.css", "/static/app.css"),
            ("/static/../cart", "/cart"),
            ("/static/%2e%2e/cart", "/cart"),
            ("/static/%252e%252e/cart", "/cart"),
            ("/static/..%2fcart", "/cart"),
            ("/static/..;/cart", "/cart"),
            ("/static\\..\\cart", "/cart"),
            ("/static//./x", "/static/x"),
            ("/../../etc", "/etc"),
            ("/", "/"),
        ];
        for (raw, want) in table {
            assert_eq!(normalise(raw), want, "{raw}");
        }
    }
}
