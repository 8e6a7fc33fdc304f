//! The pages the gateway answers with itself: 404, 502, 503, 504 and friends.
//!
//! Input: status, a short title, one sentence for the user, the request id,
//! and whether the client prefers JSON. Output: a complete response with
//! `Cache-Control: no-store` and no internal detail: no upstream address, no
//! error chain (those go to the logs under the same request id).

use http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::auth::login::page::escape;
use crate::proxy::body::Body;

/// Whether the client asked for JSON rather than HTML.
///
/// API clients and XHR send `Accept: application/json`; browsers navigating
/// send `text/html`. When both appear, HTML wins (a browser).
pub fn wants_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    accept.contains("application/json") && !accept.contains("text/html")
}

/// Builds the gateway's own answer for `status`.
pub fn render(
    status: StatusCode,
    title: &str,
    message: &str,
    request_id: &HeaderValue,
    json: bool,
) -> Response<Body> {
    let request_id = request_id.to_str().unwrap_or("");
    let (content_type, body) = if json {
        let code = title.to_ascii_lowercase().replace(' ', "_");
        let body = serde_json::json!({
            "error": code,
            "message": message,
            "request_id": request_id,
        });
        ("application/json", body.to_string())
    } else {
        (
            "text/html; charset=utf-8",
            html(status, title, message, request_id),
        )
    };
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn html(status: StatusCode, title: &str, message: &str, request_id: &str) -> String {
    let code = status.as_u16();
    let title = escape(title);
    let message = escape(message);
    let request_id = escape(request_id);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{code} {title}</title>
<style>
  body {{ margin: 0; min-height: 100vh; display: grid; place-items: center;
         font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         background: #f4f5f7; color: #1f2328; }}
  main {{ background: #fff; padding: 2rem 2.5rem; border-radius: 12px; max-width: 28rem;
         margin: 1rem; box-shadow: 0 1px 3px rgba(0,0,0,.08), 0 8px 24px rgba(0,0,0,.06); }}
  h1 {{ font-size: 1.25rem; margin: 0 0 .5rem; }}
  .code {{ color: #8b949e; font-weight: 600; letter-spacing: .05em; }}
  small {{ color: #6e7781; }}
</style>
</head>
<body>
<main>
  <div class="code">{code}</div>
  <h1>{title}</h1>
  <p>{message}</p>
  <small>Request id: {request_id}</small>
</main>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_only_when_preferred() {
        let mut h = HeaderMap::new();
        assert!(!wants_json(&h));
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        assert!(wants_json(&h));
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,application/json;q=0.9"),
        );
        assert!(!wants_json(&h));
    }
}
