//! Routing by host, by wildcard and by path prefix; unknown hosts get a 404
//! page that reveals nothing internal.

use crate::support::{AppSpec, Client, RecordingUpstream, TestGateway};

#[tokio::test]
async fn routes_by_host_wildcard_and_prefix() {
    let store = RecordingUpstream::start("store").await;
    let forums = RecordingUpstream::start("forums").await;
    let api = RecordingUpstream::start("api").await;
    let tenants = RecordingUpstream::start("tenants").await;
    let gw = TestGateway::new()
        .app(AppSpec::new("store", "store.example.com", store.addr))
        .app(AppSpec::new("forums", "forums.example.com", forums.addr))
        .app(AppSpec::new("api", "store.example.com", api.addr).prefix("/api"))
        .app(AppSpec::new("tenants", "*.example.com", tenants.addr))
        .start()
        .await;
    let client = Client::new(gw.addr);

    let cases = [
        ("store.example.com", "/shopping-cart", "upstream store"),
        ("STORE.EXAMPLE.COM:8443", "/", "upstream store"),
        ("forums.example.com", "/posts", "upstream forums"),
        ("store.example.com", "/api", "upstream api"),
        ("store.example.com", "/api/items?id=1", "upstream api"),
        ("store.example.com", "/apix", "upstream store"),
        ("acme.example.com", "/", "upstream tenants"),
        ("deep.acme.example.com", "/x", "upstream tenants"),
    ];
    for (host, path, want) in cases {
        let reply = client.get(host, path).await;
        assert_eq!(reply.status, 200, "{host}{path}");
        assert_eq!(reply.text(), want, "{host}{path}");
    }
    // Paths and queries arrive unchanged, in origin-form.
    assert_eq!(api.last().uri.to_string(), "/api/items?id=1");
}

#[tokio::test]
async fn unknown_host_gets_a_404_page_in_html_or_json() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::store(store.addr).await;
    let client = Client::new(gw.addr);

    let html = client.get("example.com", "/").await;
    assert_eq!(html.status, 404);
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = html.text();
    assert!(page.contains("Not found"), "{page}");
    assert!(
        !page.contains(&store.addr.to_string()),
        "404 page leaks the upstream: {page}"
    );
    assert!(!page.contains("store"), "404 page names an app: {page}");

    let json = client
        .get_with("nope.test", "/", &[("accept", "application/json")])
        .await;
    assert_eq!(json.status, 404);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&json.body).expect("json body");
    assert_eq!(body["error"], "not_found");
    assert_eq!(
        body["request_id"],
        json.header("x-request-id").expect("request id")
    );
    assert!(store.requests().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn http2_requests_route_by_authority() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::store(store.addr).await;
    let reply = Client::h2c(gw.addr).get("store.example.com", "/cart").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "upstream store");
    let seen = store.last();
    assert_eq!(
        seen.version,
        http::Version::HTTP_11,
        "upstream hop is HTTP/1.1"
    );
    assert_eq!(seen.header("host"), Some("store.example.com"));
}

#[tokio::test]
async fn request_without_host_is_a_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::store(store.addr).await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    tcp.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut answer),
    )
    .await
    .expect("answer in time")
    .expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.0 400"), "{text}");
    assert!(store.requests().is_empty());
}
