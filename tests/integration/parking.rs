//! Idle HTTP/1 connections release their buffers ("park") and pick up again
//! transparently: nothing the client sends afterwards is lost, however it
//! arrives.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::client::read_store_response;
use crate::support::{
    AppSpec, Client, RecordingUpstream, TestGateway, POLL_ATTEMPTS, POLL_INTERVAL,
};

/// Comfortably longer than the `idle_release_after` used below.
const PAUSE: Duration = Duration::from_millis(150);

async fn parked_gauge(admin: &Client) -> f64 {
    let metrics = admin.get("admin", "/metrics").await.text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_parked_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn parked_connection_serves_the_next_request_however_it_arrives() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .server("idle_release_after = \"30ms\"")
        .app(AppSpec::new("store", "store.example.com", store.addr))
        .start()
        .await;
    let admin = Client::new(gw.admin);
    let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
    tcp.write_all(b"GET /one HTTP/1.1\r\nHost: store.example.com\r\n\r\n")
        .await
        .expect("write");
    assert!(read_store_response(&mut tcp)
        .await
        .starts_with("HTTP/1.1 200"));

    // Quiet: the connection parks (other tests may park too, so at least one).
    let mut parked = false;
    for _ in 0..POLL_ATTEMPTS {
        if parked_gauge(&admin).await >= 1.0 {
            parked = true;
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    assert!(parked, "an idle keep-alive connection was never parked");

    // The next request arrives in pieces, with pauses longer than the release
    // delay in between: every byte must reach the new HTTP state.
    for piece in [
        &b"POST /two HTTP/1.1\r\nHo"[..],
        b"st: store.example.com\r\nContent-Length: 5\r\n\r\n",
        b"he",
        b"llo",
    ] {
        tcp.write_all(piece).await.expect("write");
        tokio::time::sleep(PAUSE).await;
    }
    assert!(read_store_response(&mut tcp)
        .await
        .starts_with("HTTP/1.1 200"));
    let seen = store.last();
    assert_eq!(seen.uri.path(), "/two");
    assert_eq!(&seen.body[..], b"hello");

    // Two pipelined requests after a park both get answers, in order.
    tokio::time::sleep(PAUSE).await;
    tcp.write_all(b"GET /three HTTP/1.1\r\nHost: store.example.com\r\n\r\nGET /four HTTP/1.1\r\nHost: store.example.com\r\n\r\n")
        .await
        .expect("write");
    let first = read_store_response(&mut tcp).await;
    let second = if first.matches("HTTP/1.1 200").count() == 2 {
        first.clone()
    } else {
        read_store_response(&mut tcp).await
    };
    assert!(first.starts_with("HTTP/1.1 200") && second.contains("HTTP/1.1 200"));
    let paths: Vec<String> = store
        .requests()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(paths, ["/one", "/two", "/three", "/four"]);
}

#[tokio::test]
async fn a_slow_download_is_never_cut_by_parking() {
    // The upstream sends its body in two parts with a pause longer than the
    // release delay: the connection is busy, not idle, and must not park.
    let store = RecordingUpstream::start_raw(|_req| async {
        let (tx, rx) = tokio::sync::mpsc::channel::<
            Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
        >(2);
        tokio::spawn(async move {
            let _ = tx
                .send(Ok(http_body::Frame::data(bytes::Bytes::from_static(
                    b"first,",
                ))))
                .await;
            tokio::time::sleep(PAUSE).await;
            let _ = tx
                .send(Ok(http_body::Frame::data(bytes::Bytes::from_static(
                    b"second",
                ))))
                .await;
        });
        let body = http_body_util::StreamBody::new(ReceiverStream(rx));
        http::Response::new(http_body_util::BodyExt::boxed(
            http_body_util::BodyExt::map_err(body, |e: std::convert::Infallible| match e {}),
        ))
    })
    .await;
    let gw = TestGateway::new()
        .server("idle_release_after = \"10ms\"")
        .app(AppSpec::new("store", "store.example.com", store.addr))
        .start()
        .await;
    let reply = Client::new(gw.addr)
        .get("store.example.com", "/download")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "first,second");
}

/// `Stream` over an mpsc receiver (no extra crate for one adapter).
struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_util::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}
