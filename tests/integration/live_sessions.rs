//! Live connections end with their session: a WebSocket tunnel or a
//! streaming response opened with a session's JWT is closed within a second
//! of that session's logout (or of a revocation covering it, such as the
//! admin API's), on both sides, while other users' connections on the same
//! gateway go on. Not at the JWT's `exp`: a WebSocket client cannot refresh
//! its cookies, so a tunnel outlives the token it was opened with, and still
//! ends with a logout made after that token expired.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant, Interval};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::auth::{
    assert_login_redirect, idp, logged_in, logged_in_as, sleep_past_expiry, store_app,
    store_browser, store_gateway, OTHER_PASSWORD, OTHER_USER, STORE_HOST, SUB,
};
use crate::support::browser::Browser;
use crate::support::metrics::{count, scrape};
use crate::support::ws::WsEchoUpstream;
use crate::support::{Client, RecordingUpstream, TestGateway};

/// What the issue promises: a logged-out session's live connections end
/// within this of the logout.
const WITHIN: Duration = Duration::from_secs(1);
/// Upper bound for one step that should be quick (a handshake, an echo).
const STEP: Duration = Duration::from_secs(5);
/// Pause between two echoes, or two chunks of a streaming answer.
const EVERY: Duration = Duration::from_millis(50);
const CLOSED: &str = "gateway_tunnels_closed_total";

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;
type UpstreamBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A WebSocket through the gateway, opened with `browser`'s cookies.
async fn open(gw: &TestGateway, browser: &Browser) -> Ws {
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let mut request = format!("ws://{STORE_HOST}/chat")
        .into_client_request()
        .expect("request");
    let cookies = browser.cookie_header().expect("a logged-in browser");
    request
        .headers_mut()
        .insert("cookie", cookies.parse().expect("cookie header"));
    let (ws, response) = timeout(STEP, tokio_tungstenite::client_async(request, tcp))
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

/// Waits (bounded) for the tunnel to end without a message; returns when.
async fn ended(mut ws: Ws) -> Instant {
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
        matches!(end, None | Some(Err(_))),
        "the tunnel carried a message instead of ending: {end:?}"
    );
    Instant::now()
}

/// Keeps `ws` echoing every [`EVERY`] until `until` has finished; returns
/// its result.
async fn echo_meanwhile<T>(ws: &mut Ws, until: tokio::task::JoinHandle<T>) -> T {
    let mut round = 0;
    while !until.is_finished() {
        assert!(
            echoes(ws, &format!("round {round}")).await,
            "another user's tunnel was closed"
        );
        round += 1;
        assert!(
            round < 200,
            "the logged-out session's connection never ended"
        );
        tokio::time::sleep(EVERY).await;
    }
    until.await.expect("the watched task")
}

#[tokio::test]
async fn a_logged_out_sessions_tunnel_closes_within_a_second_while_another_users_stays_open() {
    let idp = idp().start().await;
    let mut upstream = WsEchoUpstream::start().await;
    let gw = store_gateway(&idp, upstream.addr).await;
    let richard = store_browser(&gw);
    logged_in(&richard).await;
    let mallory = store_browser(&gw);
    logged_in_as(&mallory, OTHER_USER, OTHER_PASSWORD).await;
    let revoked_before = count(&scrape(gw.admin).await, CLOSED, &[("reason", "revoked")]);

    let mut theirs = open(&gw, &richard).await;
    let mut other = open(&gw, &mallory).await;
    assert!(echoes(&mut theirs, "hello").await);
    assert!(echoes(&mut other, "hello").await);

    let logout = Instant::now();
    let watched = tokio::spawn(ended(theirs));
    assert_login_redirect(&richard.logout().await, "logout");
    let end = echo_meanwhile(&mut other, watched).await;
    let took = end.saturating_duration_since(logout);
    assert!(took < WITHIN, "the tunnel ended {took:?} after the logout");
    // Closed towards the upstream too (no close frame: the gateway does not
    // speak WebSocket).
    assert!(
        upstream.session_end().await.is_err(),
        "the upstream's side of the tunnel ended with a close handshake"
    );

    // The other user's tunnel lives on.
    for round in 0..5 {
        assert!(echoes(&mut other, &format!("after {round}")).await);
        tokio::time::sleep(EVERY).await;
    }
    // At least this one (the recorder is the test process's: other tests'
    // gateways count into it too).
    let metrics = scrape(gw.admin).await;
    assert!(
        count(&metrics, CLOSED, &[("reason", "revoked")]) - revoked_before >= 1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_tunnel_outlives_its_jwt_but_not_a_logout_made_after_it_expired() {
    // One-second tokens, no leeway: the tunnel's JWT is long expired when the
    // user, idle on the page, logs out.
    let idp = idp().access_ttl(1).start().await;
    let mut upstream = WsEchoUpstream::start().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .app(store_app(upstream.addr))
        .start_ready()
        .await;
    let richard = store_browser(&gw);
    let jwt = logged_in(&richard).await;
    let mut ws = open(&gw, &richard).await;
    assert!(echoes(&mut ws, "hello").await);

    sleep_past_expiry(&jwt).await;
    for round in 0..5 {
        assert!(
            echoes(&mut ws, &format!("after exp {round}")).await,
            "the tunnel was closed at its JWT's exp"
        );
        tokio::time::sleep(EVERY).await;
    }

    let logout = Instant::now();
    let watched = tokio::spawn(ended(ws));
    assert_login_redirect(&richard.logout().await, "logout with an expired JWT");
    let took = watched
        .await
        .expect("the watched tunnel")
        .saturating_duration_since(logout);
    assert!(took < WITHIN, "the tunnel ended {took:?} after the logout");
    assert!(upstream.session_end().await.is_err());
}

/// The admin API's bearer token in [`an_admin_revocation_of_a_user_closes_every_tunnel_of_theirs`].
const ADMIN_TOKEN: &str = "admin-token-for-live-sessions";

#[tokio::test]
async fn an_admin_revocation_of_a_user_closes_every_tunnel_of_theirs() {
    let idp = idp().start().await;
    let mut upstream = WsEchoUpstream::start().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .section(&format!("[events]\nadmin_token = {ADMIN_TOKEN:?}"))
        .app(store_app(upstream.addr))
        .start_ready()
        .await;
    // Two sessions of one user (a laptop and a phone), and another user.
    let laptop = store_browser(&gw);
    logged_in(&laptop).await;
    let phone = store_browser(&gw);
    logged_in(&phone).await;
    let mallory = store_browser(&gw);
    logged_in_as(&mallory, OTHER_USER, OTHER_PASSWORD).await;
    let mut on_laptop = open(&gw, &laptop).await;
    let mut on_phone = open(&gw, &phone).await;
    let mut other = open(&gw, &mallory).await;
    for ws in [&mut on_laptop, &mut on_phone, &mut other] {
        assert!(echoes(ws, "hello").await);
    }

    let revoked = Instant::now();
    let watched = tokio::spawn(async move {
        let (laptop, phone) = tokio::join!(ended(on_laptop), ended(on_phone));
        laptop.max(phone)
    });
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let reply = Client::new(gw.admin)
        .send(
            http::Method::POST,
            "admin",
            "/admin/revoke",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            format!(r#"{{"user": "{SUB}"}}"#),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let end = echo_meanwhile(&mut other, watched).await;
    let took = end.saturating_duration_since(revoked);
    assert!(
        took < WITHIN,
        "the user's tunnels ended {took:?} after the revocation"
    );
    for _ in 0..2 {
        assert!(upstream.session_end().await.is_err());
    }
    assert!(echoes(&mut other, "still here").await);
}

/// An endless answer: `tick\n` every [`EVERY`], length unknown (chunked
/// over HTTP/1.1).
struct Ticks(Interval);

impl Body for Ticks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_tick(cx)
            .map(|_| Some(Ok(Frame::data(Bytes::from_static(b"tick\n")))))
    }
}

/// An upstream that answers every request with [`Ticks`].
async fn ticking_upstream() -> RecordingUpstream {
    RecordingUpstream::start_raw(|_req: Request<Incoming>| async {
        let body: UpstreamBody = Ticks(tokio::time::interval(EVERY))
            .map_err(|never| match never {})
            .boxed();
        Response::new(body)
    })
    .await
}

/// `GET /events` over HTTP/1.1 with `browser`'s cookies: the answer's body,
/// its first chunk read.
async fn stream(gw: &TestGateway, browser: &Browser) -> Incoming {
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("http1 handshake");
    tokio::spawn(conn);
    let request = Request::get("/events")
        .header("host", STORE_HOST)
        .header("cookie", browser.cookie_header().expect("logged in"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = timeout(STEP, sender.send_request(request))
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    assert!(next_tick(&mut body).await, "the stream started");
    body
}

/// Reads on to the next data: `false` if the body ended (or broke) instead.
async fn next_tick(body: &mut Incoming) -> bool {
    loop {
        match timeout(STEP, body.frame())
            .await
            .expect("a chunk or an end in time")
        {
            Some(Ok(frame)) if frame.is_data() => return true,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return false,
        }
    }
}

#[tokio::test]
async fn a_logged_out_sessions_stream_stops_within_a_second_while_another_users_goes_on() {
    let idp = idp().start().await;
    let upstream = ticking_upstream().await;
    let gw = store_gateway(&idp, upstream.addr).await;
    let richard = store_browser(&gw);
    logged_in(&richard).await;
    let mallory = store_browser(&gw);
    logged_in_as(&mallory, OTHER_USER, OTHER_PASSWORD).await;
    let mut theirs = stream(&gw, &richard).await;
    let mut other = stream(&gw, &mallory).await;

    let logout = Instant::now();
    let watched = tokio::spawn(async move {
        while next_tick(&mut theirs).await {}
        Instant::now()
    });
    assert_login_redirect(&richard.logout().await, "logout");
    let mut ticks = 0;
    while !watched.is_finished() {
        assert!(next_tick(&mut other).await, "another user's stream ended");
        ticks += 1;
        assert!(ticks < 200, "the logged-out session's stream never ended");
    }
    let took = watched
        .await
        .expect("the watched stream")
        .saturating_duration_since(logout);
    assert!(took < WITHIN, "the stream ended {took:?} after the logout");

    // The other user's stream goes on.
    for _ in 0..5 {
        assert!(next_tick(&mut other).await, "another user's stream ended");
    }
}

/// `GET /events` on `client` with `cookies`: the answer's body, its first
/// chunk read.
async fn h2_stream(client: &mut h2::client::SendRequest<Bytes>, cookies: &str) -> h2::RecvStream {
    let request = Request::get(format!("http://{STORE_HOST}/events"))
        .header("cookie", cookies)
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("send");
    let response = timeout(STEP, response)
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    assert!(h2_tick(&mut body).await, "the stream started");
    body
}

/// Reads on to the next data: `false` if the stream ended or was reset.
async fn h2_tick(body: &mut h2::RecvStream) -> bool {
    match timeout(STEP, body.data())
        .await
        .expect("a chunk or an end in time")
    {
        Some(Ok(data)) => {
            let _ = body.flow_control().release_capacity(data.len());
            true
        }
        Some(Err(_)) | None => false,
    }
}

#[tokio::test]
async fn over_http2_only_the_logged_out_sessions_stream_is_reset() {
    let idp = idp().start().await;
    let upstream = ticking_upstream().await;
    let gw = store_gateway(&idp, upstream.addr).await;
    let richard = store_browser(&gw);
    logged_in(&richard).await;
    let mallory = store_browser(&gw);
    logged_in_as(&mallory, OTHER_USER, OTHER_PASSWORD).await;

    // Both users' streams on one connection (a proxy in front could do
    // that): the cut is the stream's, not the connection's.
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let (client, conn) = timeout(STEP, h2::client::handshake(tcp))
        .await
        .expect("handshake in time")
        .expect("h2c handshake");
    let driver = tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let theirs_cookies = richard.cookie_header().expect("logged in");
    let mut theirs = h2_stream(&mut client, &theirs_cookies).await;
    let mut other = h2_stream(&mut client, &mallory.cookie_header().expect("logged in")).await;

    let logout = Instant::now();
    let watched = tokio::spawn(async move {
        while h2_tick(&mut theirs).await {}
        Instant::now()
    });
    assert_login_redirect(&richard.logout().await, "logout");
    let mut ticks = 0;
    while !watched.is_finished() {
        assert!(h2_tick(&mut other).await, "another user's stream ended");
        ticks += 1;
        assert!(ticks < 200, "the logged-out session's stream never ended");
    }
    let took = watched
        .await
        .expect("the watched stream")
        .saturating_duration_since(logout);
    assert!(took < WITHIN, "the stream ended {took:?} after the logout");
    for _ in 0..5 {
        assert!(h2_tick(&mut other).await, "another user's stream ended");
    }
    assert!(!driver.is_finished(), "the connection itself stays open");
    driver.abort();
}
