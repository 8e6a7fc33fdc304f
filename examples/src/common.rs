//! Code shared by the demo apps: the hyper server loop, the HTML page layout,
//! HTML escaping and the "What the gateway sent" header panel.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Response body type of every demo app.
pub(crate) type Body = Full<Bytes>;

/// A request handler: a plain function from request to response.
pub(crate) type Handler = fn(&Request<Incoming>) -> Response<Body>;

/// Serves HTTP/1.1 and HTTP/2 (with upgrades) on `listener`, one task per
/// connection, until the returned future is dropped.
///
/// Connection tasks are owned by a [`JoinSet`], so dropping or aborting the
/// future also closes every open connection. Accept errors (for example
/// running out of file descriptors) are logged and retried, never fatal.
pub(crate) async fn serve(
    name: &'static str,
    listener: TcpListener,
    handler: Handler,
) -> std::io::Result<()> {
    serve_until(name, listener, std::future::pending(), move |req| {
        std::future::ready(handler(&req))
    })
    .await
}

/// [`serve`] for an async `handler` that owns its request, until `shutdown`
/// completes; then every open connection is closed before it returns.
pub(crate) async fn serve_until<H, Fut>(
    name: &'static str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    handler: H,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(app = name, error = %err, "accept failed");
                        if !is_per_connection_error(&err) {
                            // Typically EMFILE/ENFILE: back off instead of spinning.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        continue;
                    }
                };
                // Small request/response exchanges: do not wait for Nagle.
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(app = name, %peer, error = %err, "set_nodelay failed");
                }
                let builder = Arc::clone(&builder);
                let handler = handler.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let answer = handler(req);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                    if let Err(err) = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(app = name, %peer, error = %err, "connection ended with error");
                    }
                });
            }
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(err) = joined {
                    tracing::warn!(app = name, error = %err, "connection task failed");
                }
            }
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// Whether an `accept` error concerns only the one incoming connection.
fn is_per_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::Interrupted
    )
}

/// Escapes `text` for use in HTML element content and quoted attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text);
    out
}

/// Appends `text` to `out`, HTML-escaped.
pub(crate) fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

/// Look and navigation of one demo app.
pub(crate) struct Site {
    /// App name, shown in the header bar and the page titles.
    pub name: &'static str,
    /// CSS colour of the header bar, links and highlights.
    pub accent: &'static str,
    /// Navigation links as `(href, label)`.
    pub nav: &'static [(&'static str, &'static str)],
    /// Extra raw HTML for `<head>` (stylesheets, icons). Must be trusted.
    pub head_extra: &'static str,
}

/// Whether `method` is one the demo apps answer (`GET` or `HEAD`).
pub(crate) fn is_get_or_head(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The user the gateway vouched for, HTML-escaped: the e-mail address
/// (`X-Auth-Request-Email`) when there is one, since `X-Auth-Request-User` is
/// often an opaque id (FusionAuth's `sub`); else the user; else `nobody`.
pub(crate) fn signed_in_as(headers: &HeaderMap) -> String {
    let shown = headers
        .get("x-auth-request-email")
        .filter(|v| !v.is_empty())
        .or_else(|| headers.get("x-auth-request-user"));
    match shown {
        Some(user) => escape_html(&String::from_utf8_lossy(user.as_bytes())),
        None => "nobody".to_owned(),
    }
}

/// The standard "Signed in as …" paragraph.
pub(crate) fn signed_in_html(headers: &HeaderMap) -> String {
    format!(
        "<p class=\"signed-in\">Signed in as <strong>{}</strong></p>\n",
        signed_in_as(headers)
    )
}

/// A full HTML page: `content` is trusted HTML, `title` is escaped here.
/// The header panel is appended after the content.
pub(crate) fn render_page<B>(site: &Site, req: &Request<B>, title: &str, content: &str) -> String {
    let mut html = String::with_capacity(4096 + content.len());
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {name}</title>
{head_extra}<style>
:root {{ --accent: {accent}; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; background: #f8fafc; color: #1e293b; line-height: 1.5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }}
.wrap {{ max-width: 44rem; margin: 0 auto; padding: 0 1rem; }}
header {{ background: var(--accent); color: #fff; }}
header .wrap {{ display: flex; flex-wrap: wrap; align-items: baseline; gap: .25rem 1.5rem; padding-top: .75rem; padding-bottom: .75rem; }}
header a {{ color: #fff; text-decoration: none; }}
.brand {{ font-size: 1.25rem; font-weight: 700; }}
nav {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
nav a {{ opacity: .85; }}
nav a:hover, nav a[aria-current] {{ opacity: 1; text-decoration: underline; }}
main.wrap {{ padding: 1.5rem 1rem 3rem; }}
h1 {{ font-size: 1.6rem; margin: 0 0 1rem; }}
a {{ color: var(--accent); }}
.signed-in {{ margin: 0 0 1.25rem; padding: .5rem .75rem; background: #fff; border-left: 4px solid var(--accent); }}
.items {{ list-style: none; margin: 0; padding: 0; }}
.items li {{ background: #fff; border: 1px solid #e2e8f0; border-radius: .5rem; padding: .75rem 1rem; margin-bottom: .5rem; }}
.items .meta {{ color: #64748b; font-size: .875rem; }}
.total {{ font-weight: 700; text-align: right; }}
.gateway {{ margin-top: 2.5rem; padding: .75rem 1rem; background: #fff; border: 1px dashed #94a3b8; border-radius: .5rem; font-size: .8125rem; }}
.gateway h2 {{ margin: 0 0 .5rem; font-size: .75rem; letter-spacing: .06em; text-transform: uppercase; color: #475569; }}
.gateway table {{ width: 100%; border-collapse: collapse; table-layout: fixed; }}
.gateway th, .gateway td {{ padding: .25rem .5rem .25rem 0; border-top: 1px solid #e2e8f0; text-align: left; vertical-align: top;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }}
.gateway th {{ width: 38%; font-weight: 600; }}
.gateway .absent {{ color: #94a3b8; font-style: italic; }}
</style>
</head>
<body>
<header><div class="wrap"><a class="brand" href="/">{name}</a><nav>"#,
        title = escape_html(title),
        name = site.name,
        head_extra = site.head_extra,
        accent = site.accent,
    );
    let path = req.uri().path();
    for (href, label) in site.nav {
        let current = if *href == path {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(html, "<a href=\"{href}\"{current}>{label}</a>");
    }
    html.push_str("</nav></div></header>\n<main class=\"wrap\">\n");
    html.push_str(content);
    push_gateway_panel(&mut html, req.headers());
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

/// Headers always listed in the panel, shown as absent when missing.
const PANEL_HEADERS: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Appends the "What the gateway sent" panel listing the identity and
/// forwarding headers and the cookies that reached the app.
pub(crate) fn push_gateway_panel(html: &mut String, headers: &HeaderMap) {
    html.push_str(
        "<section class=\"gateway\" aria-labelledby=\"gateway-title\">\n\
         <h2 id=\"gateway-title\">What the gateway sent</h2>\n<table>\n",
    );
    for name in PANEL_HEADERS {
        push_header_rows(html, headers, name);
    }
    let mut any_identity = false;
    for (name, value) in headers {
        // `HeaderName::as_str` is always lowercase.
        if name.as_str().starts_with("x-auth-request-") {
            any_identity = true;
            push_row(html, name.as_str(), Some(value));
        }
    }
    if !any_identity {
        push_row(html, "x-auth-request-*", None);
    }
    push_header_rows(html, headers, "cookie");
    html.push_str("</table>\n</section>\n");
}

/// One row per value of header `name`, or one "absent" row.
fn push_header_rows(html: &mut String, headers: &HeaderMap, name: &str) {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        push_row(html, name, None);
    }
    for value in values {
        push_row(html, name, Some(value));
    }
}

fn push_row(html: &mut String, name: &str, value: Option<&HeaderValue>) {
    html.push_str("<tr><th scope=\"row\">");
    push_escaped(html, name);
    html.push_str("</th>");
    match value {
        Some(value) => {
            html.push_str("<td>");
            push_escaped(html, &String::from_utf8_lossy(value.as_bytes()));
            html.push_str("</td>");
        }
        None => html.push_str("<td class=\"absent\">(not sent)</td>"),
    }
    html.push_str("</tr>\n");
}

/// An HTML response. Pages show per-user data, so they are never cached.
pub(crate) fn html_response(status: StatusCode, html: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(html)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A `200 OK` page.
pub(crate) fn page<B>(site: &Site, req: &Request<B>, title: &str, content: &str) -> Response<Body> {
    html_response(StatusCode::OK, render_page(site, req, title, content))
}

/// The `404 Not Found` page.
pub(crate) fn not_found<B>(site: &Site, req: &Request<B>) -> Response<Body> {
    let content = format!(
        "<h1>Page not found</h1>\n<p>There is nothing at <code>{}</code>. \
         Try the <a href=\"/\">home page</a>.</p>\n",
        escape_html(req.uri().path())
    );
    html_response(
        StatusCode::NOT_FOUND,
        render_page(site, req, "Not found", &content),
    )
}

/// The `405 Method Not Allowed` page, with `Allow: GET, HEAD`.
pub(crate) fn method_not_allowed<B>(site: &Site, req: &Request<B>) -> Response<Body> {
    let content = format!(
        "<h1>Method not allowed</h1>\n<p><code>{}</code> only answers GET.</p>\n",
        escape_html(req.uri().path())
    );
    let mut resp = html_response(
        StatusCode::METHOD_NOT_ALLOWED,
        render_page(site, req, "Method not allowed", &content),
    );
    resp.headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

/// A static asset: fixed bytes, cacheable for an hour.
pub(crate) fn static_response(content_type: &'static str, body: &'static [u8]) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    resp
}

/// Collects a response body into a string (tests only).
#[cfg(test)]
pub(crate) async fn body_string(
    resp: Response<Body>,
) -> Result<String, Box<dyn std::error::Error>> {
    use http_body_util::BodyExt as _;
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(bytes.to_vec())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html_escapes_markup_characters() {
        assert_eq!(
            escape_html(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#x27;y&#x27;)&lt;/script&gt;"
        );
    }

    #[test]
    fn escape_html_keeps_plain_text() {
        assert_eq!(escape_html(""), "");
        assert_eq!(escape_html("alice@example.com é"), "alice@example.com é");
    }

    #[test]
    fn panel_lists_gateway_headers_and_marks_absent_ones() -> Result<(), Box<dyn std::error::Error>>
    {
        let req = Request::builder()
            .header("x-auth-request-email", "a@example.com")
            .header("x-forwarded-proto", "https")
            .header("x-unrelated", "hidden")
            .body(())?;
        let mut html = String::new();
        push_gateway_panel(&mut html, req.headers());
        assert!(html.contains("What the gateway sent"));
        assert!(html.contains("<th scope=\"row\">x-auth-request-email</th><td>a@example.com</td>"));
        assert!(html.contains("<th scope=\"row\">x-forwarded-proto</th><td>https</td>"));
        assert!(html.contains("<th scope=\"row\">cookie</th><td class=\"absent\">"));
        assert!(!html.contains("x-unrelated"));
        Ok(())
    }

    #[test]
    fn signed_in_as_defaults_to_nobody() {
        assert_eq!(signed_in_as(&HeaderMap::new()), "nobody");
    }
}
