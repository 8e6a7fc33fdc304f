//! Return-to targets: where the login page sends the user back to.
//!
//! Input: the `return_to` value from the login form or query. Output: the same
//! value if it is a same-host relative path, else `None` (the caller uses the
//! app's landing path). An open redirect through the login page would hand a
//! phishing site the gateway's credibility, so anything that a browser could
//! read as another origin is refused: scheme-relative `//evil`, `/\evil`
//! (browsers treat `\` as `/`), `https:evil`, control characters (browsers
//! strip tabs and newlines, turning `/\t/evil` into `//evil`), and the same
//! tricks percent-encoded, once or twice.

/// Longest accepted return-to, in bytes.
const MAX_LEN: usize = 2048;

/// `value` if it is a safe same-host relative path.
pub fn sanitise(value: &str) -> Option<&str> {
    if value.len() > MAX_LEN || !is_safe(value) {
        return None;
    }
    // Judge the decoded forms too: some servers and browsers decode before
    // resolving, and `%2F%2Fevil` must not become `//evil` anywhere.
    let once = percent_decode(value)?;
    if !is_safe(&once) {
        return None;
    }
    let twice = percent_decode(&once)?;
    if !is_safe(&twice) {
        return None;
    }
    Some(value)
}

fn is_safe(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !path.chars().any(|c| c.is_control() || c == '\\')
}

/// Percent-decodes `s`; `None` if the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_table() {
        let cases: &[(&str, bool)] = &[
            ("/", true),
            ("/shopping-cart", true),
            ("/cart?item=1&q=a%20b", true),
            ("/posts#latest", true),
            ("/a/b/../c", true),
            ("//evil.example.com", false),
            ("//evil.example.com/path", false),
            ("/\\evil.example.com", false),
            ("\\\\evil.example.com", false),
            ("https://evil.example.com", false),
            ("https:evil.example.com", false),
            ("javascript:alert(1)", false),
            ("evil.example.com", false),
            ("", false),
            ("/%2F%2Fevil.example.com", false),
            ("%2F%2Fevil.example.com", false),
            ("/%2Fevil.example.com", false),
            ("/%5Cevil.example.com", false),
            ("/%252F%252Fevil.example.com", false),
            ("%252F%252Fevil.example.com", false),
            ("/%252Fevil.example.com", false),
            ("/\t/evil.example.com", false),
            ("/\n/evil.example.com", false),
            ("/%09/evil.example.com", false),
            ("/%0d%0aSet-Cookie:x=y", false),
            ("/%ff", false),
        ];
        for (value, ok) in cases {
            assert_eq!(sanitise(value).is_some(), *ok, "{value:?}");
        }
        assert!(sanitise(&format!("/{}", "a".repeat(MAX_LEN))).is_none());
    }

    #[test]
    fn decoding_is_strict_about_truncated_escapes() {
        assert_eq!(percent_decode("/a%2").as_deref(), Some("/a%2"));
        assert_eq!(percent_decode("/a%zz").as_deref(), Some("/a%zz"));
        assert_eq!(percent_decode("/%41%42").as_deref(), Some("/AB"));
    }
}
