//! Upgraded tunnels (WebSocket) are bounded in time: one with no bytes either
//! way for `server.tunnel_idle_timeout` is closed, on both sides, while an
//! active one lives on; `server.tunnel_max_lifetime` closes even an active
//! one. `/metrics` counts tunnel closes by reason.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use crate::support::metrics::{count, scrape};
use crate::support::process::GatewayProcess;
use crate::support::ws::WsEchoUpstream;

const HOST_NAME: &str = "chat.example.com";
/// Upper bound for one step (a handshake, an echo, a close).
const STEP: Duration = Duration::from_secs(5);
/// Pause between two echoes of an active tunnel: well below the idle
/// timeout used below, so the tunnel never goes quiet for that long.
const ECHO_EVERY: Duration = Duration::from_millis(100);
const CLOSED: &str = "gateway_tunnels_closed_total";

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn open(addr: SocketAddr) -> Ws {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (ws, response) = timeout(
        STEP,
        tokio_tungstenite::client_async(format!("ws://{HOST_NAME}/chat"), tcp),
    )
    .await
    .expect("handshake in time")
    .expect("WebSocket handshake through the gateway");
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    ws
}

/// Sends `text` and reads it back: `false` if the tunnel has ended instead.
async fn echoes(ws: &mut Ws, text: &str) -> bool {
    if ws.send(Message::text(text)).await.is_err() {
        return false;
    }
    loop {
        match timeout(STEP, ws.next())
            .await
            .expect("an echo or an end in time")
        {
            Some(Ok(Message::Text(got))) => {
                assert_eq!(got.as_str(), text);
                return true;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
            Some(Ok(other)) => panic!("unexpected message {other:?}"),
        }
    }
}

/// Waits (bounded) for the gateway to end the tunnel; panics if it does not.
async fn ends(ws: &mut Ws) {
    let end = timeout(STEP, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the tunnel ends in time");
    assert!(
        matches!(end, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
        "the tunnel carried data instead of ending: {end:?}"
    );
}

#[tokio::test]
async fn idle_tunnel_is_closed_while_an_active_one_survives() {
    let mut upstream = WsEchoUpstream::start().await;
    let gw = GatewayProcess::builder()
        .server("tunnel_idle_timeout = \"400ms\"\ntunnel_max_lifetime = \"1h\"")
        .app("chat", HOST_NAME, upstream.addr)
        .start()
        .await;
    let mut idle = open(gw.addr).await;
    let mut active = open(gw.addr).await;
    assert!(echoes(&mut idle, "hello").await);
    assert!(echoes(&mut active, "hello").await);

    // The quiet one is closed; meanwhile the active one keeps echoing.
    let quiet = tokio::spawn(async move {
        ends(&mut idle).await;
    });
    let mut rounds = 0;
    while !quiet.is_finished() {
        assert!(
            echoes(&mut active, &format!("round {rounds}")).await,
            "the active tunnel was closed; logs:\n{}",
            gw.logs()
        );
        rounds += 1;
        assert!(rounds < 100, "the idle tunnel was never closed");
        tokio::time::sleep(ECHO_EVERY).await;
    }
    quiet.await.expect("the idle tunnel ended");
    // Closed towards the upstream too.
    assert!(
        upstream.session_end().await.is_err(),
        "the upstream's side of the idle tunnel ended without a close handshake"
    );

    // The active one outlives several idle timeouts.
    for round in 0..12 {
        assert!(
            echoes(&mut active, &format!("after {round}")).await,
            "the active tunnel was closed; logs:\n{}",
            gw.logs()
        );
        tokio::time::sleep(ECHO_EVERY).await;
    }
    let metrics = scrape(gw.admin).await;
    assert_eq!(
        count(&metrics, CLOSED, &[("reason", "idle")]),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        count(&metrics, "gateway_open_tunnels", &[]),
        1.0,
        "{metrics}"
    );

    // A normal close is counted as such.
    timeout(STEP, active.close(None))
        .await
        .expect("close in time")
        .expect("close");
    assert_eq!(upstream.session_end().await, Ok(()));
    // The upstream's close reached the client; the client closes its side.
    ends(&mut active).await;
    drop(active);
    let mut closed = 0.0;
    for _ in 0..crate::support::POLL_ATTEMPTS {
        closed = count(&scrape(gw.admin).await, CLOSED, &[("reason", "closed")]);
        if closed == 1.0 {
            break;
        }
        tokio::time::sleep(crate::support::POLL_INTERVAL).await;
    }
    assert_eq!(closed, 1.0, "the normal close was counted");
    let metrics = scrape(gw.admin).await;
    assert_eq!(
        count(&metrics, CLOSED, &[("reason", "idle")]),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        count(&metrics, CLOSED, &[("reason", "lifetime")]),
        0.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn tunnel_lifetime_cap_closes_even_an_active_tunnel() {
    let mut upstream = WsEchoUpstream::start().await;
    let gw = GatewayProcess::builder()
        .server("tunnel_idle_timeout = \"1h\"\ntunnel_max_lifetime = \"1s\"")
        .app("chat", HOST_NAME, upstream.addr)
        .start()
        .await;
    let mut ws = open(gw.addr).await;
    let mut rounds = 0;
    while echoes(&mut ws, &format!("round {rounds}")).await {
        rounds += 1;
        assert!(
            rounds < 100,
            "an active tunnel outlived its lifetime cap many times over; logs:\n{}",
            gw.logs()
        );
        tokio::time::sleep(ECHO_EVERY).await;
    }
    assert!(rounds > 0, "the tunnel never carried a message");
    assert!(
        upstream.session_end().await.is_err(),
        "the upstream's side was closed too"
    );
    let metrics = scrape(gw.admin).await;
    assert_eq!(
        count(&metrics, CLOSED, &[("reason", "lifetime")]),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        count(&metrics, CLOSED, &[("reason", "idle")]),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        count(&metrics, "gateway_open_tunnels", &[]),
        0.0,
        "{metrics}"
    );
}
