//! The demo forums: a discussion board that knows nothing about
//! authentication.
//!
//! It trusts whatever `X-Auth-Request-*` headers arrive, exactly like a
//! legacy app put behind the gateway would.
//!
//! Routes: `GET /` and `GET /posts`; everything else is a 404 page.

use std::fmt::Write as _;

use http::{Request, Response};
use tokio::net::TcpListener;

use crate::common::{self, Body, Site};

const SITE: Site = Site {
    name: "Forums",
    accent: "#6d28d9",
    nav: &[("/", "Home"), ("/posts", "Posts")],
    // An inline icon: without one, browsers ask for `/favicon.ico`, a 404.
    head_extra: "<link rel=\"icon\" type=\"image/svg+xml\" href=\"data:image/svg+xml,\
                 %3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E\
                 %3Crect width='32' height='32' rx='6' fill='%236d28d9'/%3E\
                 %3Cpath d='M8 9h16v11H14l-5 4v-4H8z' fill='%23fff'/%3E%3C/svg%3E\">\n",
};

/// Fixed posts: `(title, author, replies, excerpt)`.
const POSTS: &[(&str, &str, u32, &str)] = &[
    (
        "Welcome to the forums",
        "admin",
        3,
        "Introduce yourself and read the house rules before posting.",
    ),
    (
        "Best grinder under $200?",
        "alice",
        12,
        "Burr or blade? Looking for something quiet for early mornings.",
    ),
    (
        "Latte art progress thread",
        "bob",
        27,
        "Post your hearts, tulips and rosettas. All skill levels welcome.",
    ),
    (
        "Descaling schedule",
        "carol",
        5,
        "How often do you descale with hard water?",
    ),
];

/// Serves the forums on `listener` until the future is dropped or aborted.
///
/// Speaks HTTP/1.1 (keep-alive) and HTTP/2, one task per connection;
/// dropping the future also closes the open connections.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    common::serve("forums", listener, handle).await
}

/// Routes one request.
pub(crate) fn handle<B>(req: &Request<B>) -> Response<Body> {
    let path = req.uri().path();
    let known = matches!(path, "/" | "/posts");
    if !common::is_get_or_head(req.method()) {
        return if known {
            common::method_not_allowed(&SITE, req)
        } else {
            common::not_found(&SITE, req)
        };
    }
    match path {
        "/" => home(req),
        "/posts" => posts(req),
        _ => common::not_found(&SITE, req),
    }
}

fn home<B>(req: &Request<B>) -> Response<Body> {
    let content = format!(
        "<h1>Welcome to the Forums</h1>\n{}\
         <p>Talk coffee with other enthusiasts. This app has no login code at all: \
         the gateway in front of it decides who you are.</p>\n\
         <p><a href=\"/posts\">Read the latest posts</a></p>\n",
        common::signed_in_html(req.headers())
    );
    common::page(&SITE, req, "Home", &content)
}

fn posts<B>(req: &Request<B>) -> Response<Body> {
    let mut content = String::from("<h1>Latest posts</h1>\n");
    content.push_str(&common::signed_in_html(req.headers()));
    content.push_str("<ul class=\"items\">\n");
    for (title, author, replies, excerpt) in POSTS {
        let _ = writeln!(
            content,
            "<li><strong>{}</strong><div>{}</div>\
             <div class=\"meta\">by {} · {replies} replies</div></li>",
            common::escape_html(title),
            common::escape_html(excerpt),
            common::escape_html(author),
        );
    }
    content.push_str("</ul>\n");
    common::page(&SITE, req, "Posts", &content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, StatusCode};

    #[tokio::test]
    async fn posts_show_escaped_user_and_gateway_headers() -> Result<(), Box<dyn std::error::Error>>
    {
        let req = Request::builder()
            .uri("/posts")
            .header("x-auth-request-user", "<script>")
            .header("cookie", "theme=dark")
            .body(())?;
        let resp = handle(&req);
        assert_eq!(resp.status(), StatusCode::OK);
        let body = common::body_string(resp).await?;
        assert!(body.contains("Signed in as <strong>&lt;script&gt;</strong>"));
        assert!(body.contains("<th scope=\"row\">x-auth-request-user</th><td>&lt;script&gt;</td>"));
        assert!(body.contains("<th scope=\"row\">cookie</th><td>theme=dark</td>"));
        assert!(!body.contains("<script>"));
        assert!(body.contains("Latte art progress thread"));
        assert!(body.contains("<title>Posts · Forums</title>"));
        Ok(())
    }

    #[test]
    fn unknown_paths_and_methods() -> Result<(), Box<dyn std::error::Error>> {
        let req = Request::builder().uri("/shopping-cart").body(())?;
        assert_eq!(handle(&req).status(), StatusCode::NOT_FOUND);
        let req = Request::builder()
            .method(Method::DELETE)
            .uri("/")
            .body(())?;
        assert_eq!(handle(&req).status(), StatusCode::METHOD_NOT_ALLOWED);
        Ok(())
    }
}
