//! WebSocket upgrades pass through the gateway: the handshake reaches the
//! upstream with its upgrade headers and the forwarding headers, messages echo
//! both ways, the close handshake completes, and plain requests to the same app
//! keep working.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::support::ws::WsEchoUpstream;
use crate::support::{AppSpec, Client, TestGateway};

const HOST_NAME: &str = "store.example.com";
const STEP: Duration = Duration::from_secs(5);

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// The next data or close message from the server, within 5 s.
async fn next_message(ws: &mut Ws) -> Option<Message> {
    loop {
        let next = timeout(STEP, ws.next())
            .await
            .expect("a message within 5 s");
        match next {
            None => return None,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(msg)) => return Some(msg),
            Some(Err(e)) => panic!("WebSocket read failed: {e}"),
        }
    }
}

async fn plain_request_works(client: &Client, upstream: &WsEchoUpstream, path: &str) {
    let reply = timeout(STEP, client.get(HOST_NAME, path))
        .await
        .expect("plain reply within 5 s");
    assert_eq!(reply.status, 200, "plain request to {path}");
    assert_eq!(reply.text(), "plain");
    let seen = upstream
        .plain()
        .pop()
        .expect("the upstream saw the plain request");
    assert_eq!(seen.uri.path(), path);
    assert_eq!(seen.header("host"), Some(HOST_NAME));
    assert!(seen.header("upgrade").is_none());
}

#[tokio::test]
async fn websocket_echo_through_the_gateway() {
    let mut upstream = WsEchoUpstream::start().await;
    let gw = TestGateway::new()
        .app(AppSpec::new("store", HOST_NAME, upstream.addr))
        .start()
        .await;
    let client = Client::new(gw.addr);

    // A plain request first: the app serves both kinds.
    plain_request_works(&client, &upstream, "/before").await;

    let tcp = TcpStream::connect(gw.addr)
        .await
        .expect("connect to the gateway");
    // The URL's host becomes the request's `Host`, which routes it.
    let (mut ws, response) = timeout(
        STEP,
        tokio_tungstenite::client_async(format!("ws://{HOST_NAME}/chat?room=1"), tcp),
    )
    .await
    .expect("WebSocket handshake within 5 s")
    .expect("WebSocket handshake through the gateway");
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert!(
        response.headers().contains_key("x-request-id"),
        "the 101 carries the request id"
    );

    let seen = upstream.upgrades();
    assert_eq!(seen.len(), 1, "one upgrade reached the upstream");
    let seen = &seen[0];
    assert_eq!(
        seen.uri.path_and_query().map(|p| p.as_str()),
        Some("/chat?room=1")
    );
    assert_eq!(seen.header("host"), Some(HOST_NAME));
    assert_eq!(
        seen.header("upgrade")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("websocket")
    );
    assert!(seen
        .header("connection")
        .is_some_and(|c| c.to_ascii_lowercase().contains("upgrade")));
    assert!(seen.header("sec-websocket-key").is_some());
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some(HOST_NAME));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));

    let text = Message::text("hello through the gateway");
    ws.send(text.clone()).await.expect("send text");
    assert_eq!(next_message(&mut ws).await, Some(text));

    let binary = Message::binary(vec![0u8, 1, 2, 254, 255]);
    ws.send(binary.clone()).await.expect("send binary");
    assert_eq!(next_message(&mut ws).await, Some(binary));

    // Larger than any single read, so the tunnel copies it in pieces.
    let large = Message::binary(
        (0..300_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    ws.send(large.clone()).await.expect("send large binary");
    assert_eq!(next_message(&mut ws).await, Some(large));

    // Several in flight at once come back in order.
    for i in 0..10 {
        ws.feed(Message::text(format!("message {i}")))
            .await
            .expect("feed");
    }
    ws.flush().await.expect("flush");
    for i in 0..10 {
        assert_eq!(
            next_message(&mut ws).await,
            Some(Message::text(format!("message {i}")))
        );
    }

    timeout(STEP, ws.close(None))
        .await
        .expect("close within 5 s")
        .expect("send close");
    match next_message(&mut ws).await {
        Some(Message::Close(_)) => {}
        other => panic!("expected the server's close frame, got {other:?}"),
    }
    assert_eq!(
        next_message(&mut ws).await,
        None,
        "stream ends after the close handshake"
    );
    assert_eq!(
        upstream.session_end().await,
        Ok(()),
        "upstream saw a clean close"
    );

    // The app still answers plain requests after the tunnel closed.
    plain_request_works(&client, &upstream, "/after").await;
    assert_eq!(upstream.upgrades().len(), 1);
}

#[tokio::test]
async fn shutdown_cuts_a_tunnel_after_the_grace_period() {
    let upstream = WsEchoUpstream::start().await;
    let gw = TestGateway::new()
        .server("shutdown_grace = \"200ms\"")
        .app(AppSpec::new("store", HOST_NAME, upstream.addr))
        .start()
        .await;
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut ws, _) = timeout(
        STEP,
        tokio_tungstenite::client_async(format!("ws://{HOST_NAME}/chat"), tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    ws.send(Message::text("still here")).await.expect("send");
    assert_eq!(
        next_message(&mut ws).await,
        Some(Message::text("still here"))
    );

    // The open tunnel does not hold shutdown beyond the grace period...
    timeout(STEP, gw.stop())
        .await
        .expect("serve returns after the grace period");
    // ...and is closed, not left running.
    let end = timeout(STEP, ws.next()).await.expect("the tunnel ends");
    assert!(
        matches!(end, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
        "tunnel still open after shutdown: {end:?}"
    );
}
