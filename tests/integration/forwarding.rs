//! What the upstream receives: hop-by-hop fields removed (RFC 9110 §7.6.1),
//! `X-Forwarded-*` set, the request id passed along, `Host` preserved or
//! rewritten, bodies and methods untouched.

use http::Method;

use crate::support::{AppSpec, Client, RecordingUpstream, TestGateway};

#[tokio::test]
async fn hop_by_hop_and_connection_named_fields_are_removed() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::store(store.addr).await;
    let reply = Client::new(gw.addr)
        .get_with(
            "store.example.com",
            "/",
            &[
                ("connection", "keep-alive, X-Secret-Hop"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("te", "trailers"),
                ("upgrade", "h2c"),
                ("x-secret-hop", "must not pass"),
                ("x-end-to-end", "passes"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = store.last();
    for name in [
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "x-secret-hop",
        "transfer-encoding",
    ] {
        assert!(
            seen.header(name).is_none(),
            "{name} reached the upstream: {:?}",
            seen.headers
        );
    }
    // The gateway's own hop to the upstream may say keep-alive, never the client's tokens.
    assert!(
        seen.header("connection")
            .is_none_or(|v| !v.to_ascii_lowercase().contains("x-secret-hop")),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header("x-end-to-end"), Some("passes"));
}

#[tokio::test]
async fn response_hop_by_hop_fields_are_removed() {
    let store = RecordingUpstream::start_with(|_| async {
        http::Response::builder()
            .header("connection", "x-upstream-private")
            .header("x-upstream-private", "secret")
            .header("keep-alive", "timeout=1")
            .header("x-app", "kept")
            .body(crate::support::upstream::full("ok"))
            .expect("response")
    })
    .await;
    let gw = TestGateway::store(store.addr).await;
    let reply = Client::new(gw.addr).get("store.example.com", "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-app"), Some("kept"));
    assert!(reply.header("x-upstream-private").is_none());
    assert!(reply.header("keep-alive").is_none());
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_client_are_replaced() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::store(store.addr).await;
    Client::new(gw.addr)
        .get_with(
            "store.example.com:8080",
            "/",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "for=203.0.113.7"),
            ],
        )
        .await;
    let seen = store.last();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some("store.example.com:8080")
    );
    assert_eq!(seen.header("forwarded"), None);
}

#[tokio::test]
async fn forwarded_chain_from_a_trusted_proxy_is_appended() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .server(r#"trusted_proxies = ["127.0.0.0/8"]"#)
        .app(AppSpec::new("store", "store.example.com", store.addr))
        .start()
        .await;
    Client::new(gw.addr)
        .get_with(
            "store.example.com",
            "/",
            &[
                ("x-forwarded-for", "203.0.113.7, 198.51.100.2"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "shop.example.com"),
            ],
        )
        .await;
    let seen = store.last();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.7, 198.51.100.2, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some("shop.example.com"));
}

#[tokio::test]
async fn request_id_is_generated_or_kept_and_passed_upstream() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::store(store.addr).await;
    let client = Client::new(gw.addr);

    let reply = client.get("store.example.com", "/").await;
    let minted = reply
        .header("x-request-id")
        .expect("a request id on the response")
        .to_owned();
    assert_eq!(minted.len(), 32);
    assert_eq!(store.last().header("x-request-id"), Some(minted.as_str()));

    let reply = client
        .get_with(
            "store.example.com",
            "/",
            &[("x-request-id", "trace-abc.123")],
        )
        .await;
    assert_eq!(reply.header("x-request-id"), Some("trace-abc.123"));
    assert_eq!(store.last().header("x-request-id"), Some("trace-abc.123"));

    let reply = client
        .get_with(
            "store.example.com",
            "/",
            &[("x-request-id", "bad id <script>")],
        )
        .await;
    let replaced = reply.header("x-request-id").expect("id").to_owned();
    assert_ne!(replaced, "bad id <script>");
    assert_eq!(store.last().header("x-request-id"), Some(replaced.as_str()));
}

#[tokio::test]
async fn host_is_preserved_or_rewritten_per_app() {
    let store = RecordingUpstream::start("store").await;
    let forums = RecordingUpstream::start("forums").await;
    let gw = TestGateway::new()
        .app(AppSpec::new("store", "store.example.com", store.addr))
        .app(
            AppSpec::new("forums", "forums.example.com", forums.addr)
                .extra("preserve_host = false"),
        )
        .start()
        .await;
    let client = Client::new(gw.addr);
    client.get("store.example.com", "/").await;
    client.get("forums.example.com", "/").await;
    assert_eq!(store.last().header("host"), Some("store.example.com"));
    assert_eq!(
        forums.last().header("host"),
        Some(forums.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn methods_bodies_and_queries_arrive_intact() {
    let store = RecordingUpstream::start_with(|req| async move {
        http::Response::builder()
            .status(201)
            .header("x-echo-method", req.method.as_str())
            .body(crate::support::upstream::full(req.body))
            .expect("response")
    })
    .await;
    let gw = TestGateway::store(store.addr).await;
    let client = Client::new(gw.addr);
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let body = format!("payload for {method}");
        let reply = client
            .send(
                method.clone(),
                "store.example.com",
                "/cart/items?x=1&y=%20",
                &[("content-type", "text/plain")],
                body.clone(),
            )
            .await;
        assert_eq!(reply.status, 201);
        assert_eq!(reply.header("x-echo-method"), Some(method.as_str()));
        assert_eq!(reply.text(), body);
        let seen = store.last();
        assert_eq!(seen.method, method);
        assert_eq!(
            seen.uri.path_and_query().map(|p| p.as_str()),
            Some("/cart/items?x=1&y=%20")
        );
        assert_eq!(seen.header("content-type"), Some("text/plain"));
    }
}

#[tokio::test]
async fn metrics_count_requests_by_app_method_and_status() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .app(AppSpec::new(
            "metrics-probe",
            "metrics.example.com",
            store.addr,
        ))
        .start()
        .await;
    let client = Client::new(gw.addr);
    for _ in 0..3 {
        assert_eq!(client.get("metrics.example.com", "/").await.status, 200);
    }
    let admin = Client::new(gw.admin);
    let metrics = admin.get("admin", "/metrics").await.text();
    assert!(
        metrics
            .contains(r#"gateway_requests_total{app="metrics-probe",method="GET",status="2xx"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gateway_upstream_duration_seconds_count{app="metrics-probe"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_open_connections"), "{metrics}");
    assert_eq!(admin.get("admin", "/healthz").await.status, 200);
    assert_eq!(admin.get("admin", "/readyz").await.status, 200);
    assert_eq!(admin.get("admin", "/nope").await.status, 404);
}
