//! Client-side timeouts: a slow request head is cut off after
//! `header_read_timeout`; an idle keep-alive connection survives longer than
//! that and is closed after `idle_timeout`. Oversized heads get 431.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::client::read_store_response;
use crate::support::{AppSpec, RecordingUpstream, TestGateway};

/// Upper bound for "the server closes the connection".
const CLOSE_BOUND: Duration = Duration::from_secs(5);

/// Reads until EOF (Ok(bytes)) or the bound passes (Err).
async fn read_until_closed(tcp: &mut TcpStream) -> Result<Vec<u8>, tokio::time::error::Elapsed> {
    tokio::time::timeout(CLOSE_BOUND, async {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
}

#[tokio::test]
async fn slow_request_head_is_cut_off() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .server("header_read_timeout = \"200ms\"\nidle_timeout = \"30s\"")
        .app(AppSpec::new("store", "store.example.com", store.addr))
        .start()
        .await;
    let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: store.example.com\r\nX-Slow: ")
        .await
        .expect("write");
    let got = read_until_closed(&mut tcp)
        .await
        .expect("the gateway closes a slow head");
    assert!(store.requests().is_empty());
    drop(got);

    // A connection that sends nothing at all is closed as well.
    let mut silent = TcpStream::connect(gw.addr).await.expect("connect");
    read_until_closed(&mut silent)
        .await
        .expect("the gateway closes a silent connection");
}

#[tokio::test]
async fn idle_keep_alive_outlives_the_header_timeout_then_closes() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .server("header_read_timeout = \"200ms\"\nidle_timeout = \"1500ms\"")
        .app(AppSpec::new("store", "store.example.com", store.addr))
        .start()
        .await;
    let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let request = b"GET / HTTP/1.1\r\nHost: store.example.com\r\n\r\n";
    tcp.write_all(request).await.expect("write");
    assert!(read_store_response(&mut tcp)
        .await
        .starts_with("HTTP/1.1 200"));

    // Three header timeouts of idleness: still open, because idle ≠ slow head.
    tokio::time::sleep(Duration::from_millis(600)).await;
    tcp.write_all(request)
        .await
        .expect("write on the idle connection");
    assert!(read_store_response(&mut tcp)
        .await
        .starts_with("HTTP/1.1 200"));
    assert_eq!(store.requests().len(), 2);

    // Then nothing: closed after the idle timeout.
    read_until_closed(&mut tcp)
        .await
        .expect("the gateway closes an idle connection");
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .server("max_header_bytes = 8192")
        .app(AppSpec::new("store", "store.example.com", store.addr))
        .start()
        .await;
    let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let big = "a".repeat(20_000);
    let head = format!("GET / HTTP/1.1\r\nHost: store.example.com\r\nX-Big: {big}\r\n\r\n");
    // The gateway may answer before reading everything; a write error is fine.
    let _ = tcp.write_all(head.as_bytes()).await;
    let got = read_until_closed(&mut tcp).await.expect("answer and close");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert!(store.requests().is_empty());
}
