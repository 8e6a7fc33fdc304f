//! Upstream keep-alive: connections are reused, and an upstream that closes
//! its side never fails a request.

use crate::support::{Client, RecordingUpstream, TestGateway};

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::store(store.addr).await;
    let client = Client::new(gw.addr);
    for i in 0..20 {
        let reply = client.get("store.example.com", &format!("/item/{i}")).await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(store.requests().len(), 20);
    // The test runtime is single-threaded, so one worker's pool serves all.
    assert_eq!(
        store.connections(),
        1,
        "upstream connections were not reused"
    );
}

#[tokio::test]
async fn upstream_closing_each_connection_never_fails_a_request() {
    let store = RecordingUpstream::start_with(|_| async {
        http::Response::builder()
            .header("connection", "close")
            .body(crate::support::upstream::full("closing"))
            .expect("response")
    })
    .await;
    let gw = TestGateway::store(store.addr).await;
    let client = Client::new(gw.addr);
    for _ in 0..10 {
        let reply = client.get("store.example.com", "/").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "closing");
    }
    assert_eq!(store.connections(), 10);
}

#[tokio::test]
async fn head_and_empty_responses_return_their_connection() {
    let store = RecordingUpstream::start_with(|req| async move {
        let status = if req.uri.path() == "/gone" { 204 } else { 200 };
        http::Response::builder()
            .status(status)
            .body(crate::support::upstream::full(if status == 204 {
                ""
            } else {
                "x"
            }))
            .expect("response")
    })
    .await;
    let gw = TestGateway::store(store.addr).await;
    let client = Client::new(gw.addr);
    for _ in 0..3 {
        let head = client
            .send(
                http::Method::HEAD,
                "store.example.com",
                "/",
                &[],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(head.status, 200);
        assert_eq!(client.get("store.example.com", "/gone").await.status, 204);
    }
    assert_eq!(store.connections(), 1);
}
