//! The demo store: a small shop that knows nothing about authentication.
//!
//! It trusts whatever `X-Auth-Request-*` headers arrive, exactly like a
//! legacy app put behind the gateway would.
//!
//! Routes: `GET /`, `GET /products`, `GET /shopping-cart`, `GET /static/*`
//! (including `GET /static/bench.txt`, the benchmark target); everything
//! else is a 404 page.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use tokio::net::TcpListener;

use crate::common::{self, Body, Site};

const SITE: Site = Site {
    name: "Store",
    accent: "#0f766e",
    nav: &[
        ("/", "Home"),
        ("/products", "Products"),
        ("/shopping-cart", "Cart"),
    ],
    head_extra: "<link rel=\"icon\" href=\"/static/logo.svg\" type=\"image/svg+xml\">\n\
                 <link rel=\"stylesheet\" href=\"/static/app.css\">\n",
};

/// Path of the benchmark asset.
const BENCH_PATH: &str = "/static/bench.txt";
/// Body of the benchmark asset: exactly 13 bytes.
const BENCH_BODY: &[u8] = b"hello, world\n";

/// Static assets: `(path, content type, body)`.
const STATIC_ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/static/app.css",
        "text/css; charset=utf-8",
        b".items li:hover { border-color: #0f766e; }\n\
          .price { float: right; font-variant-numeric: tabular-nums; }\n",
    ),
    (
        "/static/app.js",
        "text/javascript; charset=utf-8",
        b"console.log(\"store demo loaded\");\n",
    ),
    (
        "/static/logo.svg",
        "image/svg+xml",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
          <rect width=\"32\" height=\"32\" rx=\"6\" fill=\"#0f766e\"/>\
          <path d=\"M9 12h14l-2 11H11z\" fill=\"#fff\"/></svg>\n",
    ),
    (
        "/static/robots.txt",
        "text/plain; charset=utf-8",
        b"User-agent: *\nDisallow: /shopping-cart\n",
    ),
];

/// Product catalogue: `(name, description, price in cents)`.
const PRODUCTS: &[(&str, &str, u32)] = &[
    ("Espresso beans", "1 kg, dark roast", 2450),
    ("Ceramic mug", "350 ml, dishwasher safe", 1200),
    ("Pour-over kettle", "Gooseneck, 1 l", 4900),
    ("Paper filters", "Pack of 100", 650),
];

/// Fixed cart content: `(product index, quantity)`.
const CART: &[(usize, u32)] = &[(0, 2), (1, 1), (3, 3)];

/// Serves the store on `listener` until the future is dropped or aborted.
///
/// Speaks HTTP/1.1 (keep-alive) and HTTP/2, one task per connection;
/// dropping the future also closes the open connections.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    common::serve("store", listener, handle).await
}

/// Routes one request.
pub(crate) fn handle<B>(req: &Request<B>) -> Response<Body> {
    let path = req.uri().path();
    // Benchmark hot path first: no allocation beyond the header map.
    if path == BENCH_PATH && common::is_get_or_head(req.method()) {
        return bench_txt();
    }
    let asset = static_asset(path);
    let known = asset.is_some() || matches!(path, "/" | "/products" | "/shopping-cart");
    if !common::is_get_or_head(req.method()) {
        return if known {
            common::method_not_allowed(&SITE, req)
        } else {
            common::not_found(&SITE, req)
        };
    }
    if let Some((content_type, body)) = asset {
        return common::static_response(content_type, body);
    }
    match path {
        "/" => home(req),
        "/products" => products(req),
        "/shopping-cart" => shopping_cart(req),
        _ => common::not_found(&SITE, req),
    }
}

/// `GET /static/bench.txt`: 13 fixed bytes, `Content-Type: text/plain`.
fn bench_txt() -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BENCH_BODY)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Content type and bytes of the static asset at `path`, if any.
fn static_asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    if path == BENCH_PATH {
        return Some(("text/plain", BENCH_BODY));
    }
    STATIC_ASSETS
        .iter()
        .find(|(asset_path, _, _)| *asset_path == path)
        .map(|&(_, content_type, body)| (content_type, body))
}

fn home<B>(req: &Request<B>) -> Response<Body> {
    let content = format!(
        "<h1>Welcome to the Store</h1>\n{}\
         <p>Fresh coffee gear, shipped fast. This app has no login code at all: \
         the gateway in front of it decides who you are.</p>\n\
         <ul>\n<li><a href=\"/products\">Browse the products</a></li>\n\
         <li><a href=\"/shopping-cart\">Open your shopping cart</a></li>\n</ul>\n",
        common::signed_in_html(req.headers())
    );
    common::page(&SITE, req, "Home", &content)
}

fn products<B>(req: &Request<B>) -> Response<Body> {
    let mut content = String::from("<h1>Products</h1>\n");
    content.push_str(&common::signed_in_html(req.headers()));
    content.push_str("<ul class=\"items\">\n");
    for (name, description, cents) in PRODUCTS {
        let _ = writeln!(
            content,
            "<li><strong>{name}</strong> <span class=\"price\">{}</span>\
             <div class=\"meta\">{description}</div></li>",
            format_price(*cents)
        );
    }
    content.push_str("</ul>\n<p><a href=\"/shopping-cart\">Go to the cart</a></p>\n");
    common::page(&SITE, req, "Products", &content)
}

fn shopping_cart<B>(req: &Request<B>) -> Response<Body> {
    let mut content = String::from("<h1>Shopping cart</h1>\n");
    content.push_str(&common::signed_in_html(req.headers()));
    content.push_str("<ul class=\"items\">\n");
    let mut total = 0;
    for &(index, quantity) in CART {
        let Some((name, _, cents)) = PRODUCTS.get(index) else {
            continue;
        };
        let line = cents * quantity;
        total += line;
        let _ = writeln!(
            content,
            "<li><strong>{name}</strong> <span class=\"price\">{}</span>\
             <div class=\"meta\">{quantity} × {}</div></li>",
            format_price(line),
            format_price(*cents)
        );
    }
    let _ = writeln!(
        content,
        "</ul>\n<p class=\"total\">Total: {}</p>",
        format_price(total)
    );
    common::page(&SITE, req, "Shopping cart", &content)
}

/// Formats cents as dollars, e.g. `2450` as `$24.50`.
fn format_price(cents: u32) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, StatusCode};

    #[tokio::test]
    async fn cart_shows_escaped_user_and_gateway_headers() -> Result<(), Box<dyn std::error::Error>>
    {
        let req = Request::builder()
            .uri("/shopping-cart")
            .header("host", "shop.example")
            .header("x-auth-request-user", "<script>")
            .body(())?;
        let resp = handle(&req);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get(CONTENT_TYPE),
            Some(&HeaderValue::from_static("text/html; charset=utf-8"))
        );
        let body = common::body_string(resp).await?;
        assert!(body.contains("Signed in as <strong>&lt;script&gt;</strong>"));
        assert!(body.contains("<th scope=\"row\">x-auth-request-user</th><td>&lt;script&gt;</td>"));
        assert!(!body.contains("<script>"));
        assert!(body.contains("Espresso beans"));
        Ok(())
    }

    #[tokio::test]
    async fn cart_without_identity_is_nobody() -> Result<(), Box<dyn std::error::Error>> {
        let req = Request::builder().uri("/shopping-cart").body(())?;
        let body = common::body_string(handle(&req)).await?;
        assert!(body.contains("Signed in as <strong>nobody</strong>"));
        Ok(())
    }

    #[tokio::test]
    async fn the_email_is_shown_over_an_opaque_user_id() -> Result<(), Box<dyn std::error::Error>> {
        let req = Request::builder()
            .uri("/shopping-cart")
            .header(
                "x-auth-request-user",
                "00000000-0000-0000-0000-000000000001",
            )
            .header("x-auth-request-email", "richard@example.com")
            .body(())?;
        let body = common::body_string(handle(&req)).await?;
        assert!(body.contains("Signed in as <strong>richard@example.com</strong>"));
        Ok(())
    }

    #[tokio::test]
    async fn bench_txt_is_exact() -> Result<(), Box<dyn std::error::Error>> {
        let req = Request::builder().uri("/static/bench.txt").body(())?;
        let resp = handle(&req);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get(CONTENT_TYPE),
            Some(&HeaderValue::from_static("text/plain"))
        );
        assert_eq!(common::body_string(resp).await?, "hello, world\n");
        Ok(())
    }

    #[test]
    fn static_assets_are_cacheable() -> Result<(), Box<dyn std::error::Error>> {
        let req = Request::builder().uri("/static/app.css").body(())?;
        let resp = handle(&req);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get(http::header::CACHE_CONTROL),
            Some(&HeaderValue::from_static("public, max-age=3600"))
        );
        assert_eq!(
            resp.headers().get(CONTENT_TYPE),
            Some(&HeaderValue::from_static("text/css; charset=utf-8"))
        );
        Ok(())
    }

    #[test]
    fn unknown_paths_and_methods() -> Result<(), Box<dyn std::error::Error>> {
        let req = Request::builder().uri("/nope").body(())?;
        assert_eq!(handle(&req).status(), StatusCode::NOT_FOUND);
        let req = Request::builder().uri("/static/missing.css").body(())?;
        assert_eq!(handle(&req).status(), StatusCode::NOT_FOUND);
        let req = Request::builder()
            .method(Method::POST)
            .uri("/products")
            .body(())?;
        assert_eq!(handle(&req).status(), StatusCode::METHOD_NOT_ALLOWED);
        Ok(())
    }
}
