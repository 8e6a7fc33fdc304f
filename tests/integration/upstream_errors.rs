//! Upstream failures become clear pages with the right status: refused → 502,
//! too slow → 504; nothing internal is revealed.

use std::time::Duration;

use crate::support::{AppSpec, Client, RecordingUpstream, TestGateway};

#[tokio::test]
async fn upstream_down_is_a_502_page() {
    // Bind and drop: nothing listens on this port any more.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let gw = TestGateway::new()
        .app(AppSpec::new("store", "store.example.com", dead))
        .start()
        .await;
    let client = Client::new(gw.addr);
    let reply = client.get("store.example.com", "/").await;
    assert_eq!(reply.status, 502);
    let page = reply.text();
    assert!(page.contains("Bad gateway"), "{page}");
    assert!(
        !page.contains(&dead.to_string()),
        "the page leaks the upstream address: {page}"
    );
    let json = client
        .get_with(
            "store.example.com",
            "/api",
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(json.status, 502);
    let body: serde_json::Value = serde_json::from_slice(&json.body).expect("json");
    assert_eq!(body["error"], "bad_gateway");
}

#[tokio::test]
async fn slow_upstream_is_a_504_page() {
    let slow = RecordingUpstream::start_with(|_| async {
        // Longer than the gateway's response timeout below.
        tokio::time::sleep(Duration::from_secs(5)).await;
        http::Response::new(crate::support::upstream::full("too late"))
    })
    .await;
    let gw = TestGateway::new()
        .section("[upstream]\nresponse_timeout = \"300ms\"")
        .app(AppSpec::new("store", "store.example.com", slow.addr))
        .start()
        .await;
    let reply = Client::new(gw.addr).get("store.example.com", "/").await;
    assert_eq!(reply.status, 504);
    assert!(reply.text().contains("Gateway timeout"));
}

#[tokio::test]
async fn slow_answer_on_a_reused_connection_is_a_504_too() {
    // Pooled connections keep their response timer between requests: the
    // second request goes out on the first one's connection.
    let upstream = RecordingUpstream::start_with(|req| async move {
        if req.uri.path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        http::Response::new(crate::support::upstream::full("answer"))
    })
    .await;
    let gw = TestGateway::new()
        .section("[upstream]\nresponse_timeout = \"300ms\"")
        .app(AppSpec::new("store", "store.example.com", upstream.addr))
        .start()
        .await;
    let client = Client::new(gw.addr);
    for (path, status) in [("/", 200), ("/", 200), ("/slow", 504), ("/", 200)] {
        let reply = client.get("store.example.com", path).await;
        assert_eq!(reply.status, status, "GET {path}");
    }
    assert_eq!(upstream.requests().len(), 4);
    // One connection for the first three, a new one after the timeout.
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn upstream_connect_timeout_is_a_504() {
    // A listener whose accept queue is full never completes new handshakes:
    // backlog 0 plus one unaccepted connection keeps the next SYN waiting.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(0).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let gw = TestGateway::new()
        .section("[upstream]\nconnect_timeout = \"200ms\"\nresponse_timeout = \"3s\"")
        .app(AppSpec::new("store", "store.example.com", addr))
        .start()
        .await;
    let reply = Client::new(gw.addr).get("store.example.com", "/").await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    drop(listener);
}
