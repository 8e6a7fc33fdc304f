//! Graceful shutdown: on SIGTERM/SIGINT (or the `serve` shutdown future) the
//! gateway closes its listeners, reports not-ready, lets requests in flight
//! finish within `server.shutdown_grace`, and exits 0; past the grace period
//! it exits anyway.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::process::{refuses_connections, GatewayProcess};
use crate::support::upstream::full;
use crate::support::{
    AppSpec, Client, RecordingUpstream, TestGateway, POLL_ATTEMPTS, POLL_INTERVAL,
};

const BODY: &str = "slow answer";

/// An upstream that records each request, then holds its answer (`200 slow
/// answer`) until `true` is sent on the returned channel.
async fn held_upstream() -> (watch::Sender<bool>, RecordingUpstream) {
    let (release, released) = watch::channel(false);
    let upstream = RecordingUpstream::start_with(move |_req| {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|go| *go).await;
            Response::new(full(BODY))
        }
    })
    .await;
    (release, upstream)
}

/// Polls `check` (200 × 25 ms); whether it came true in time.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..POLL_ATTEMPTS {
        if check().await {
            return true;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    false
}

/// One client HTTP/1.1 connection, kept open, whose closing can be observed.
struct Http1Conn {
    sender: SendRequest<Empty<Bytes>>,
    driver: JoinHandle<Result<(), hyper::Error>>,
}

type Answer = Result<(StatusCode, String), hyper::Error>;

impl Http1Conn {
    async fn open(addr: SocketAddr) -> Http1Conn {
        let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("handshake");
        Http1Conn {
            sender,
            driver: tokio::spawn(conn),
        }
    }

    async fn get(&mut self, host: &str, path: &str) -> Answer {
        let request = http::Request::get(path)
            .header(http::header::HOST, host)
            .body(Empty::new())
            .expect("request");
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// `GET` in a task of its own: the request stays in flight while the test
    /// goes on; the task gives the connection back with the answer.
    fn spawn_get(mut self, host: &'static str, path: &'static str) -> JoinHandle<(Self, Answer)> {
        tokio::spawn(async move {
            let answer = self.get(host, path).await;
            (self, answer)
        })
    }

    /// Whether the server closes the connection within `bound` (the sender
    /// stays alive, so the client does not close it itself).
    async fn closed_by_server_within(mut self, bound: Duration) -> bool {
        let closed = tokio::time::timeout(bound, &mut self.driver).await.is_ok();
        drop(self.sender);
        closed
    }
}

#[tokio::test]
async fn sigterm_drains_the_in_flight_request_then_exits_0() {
    let (release, upstream) = held_upstream().await;
    let mut gw = GatewayProcess::builder()
        .server("shutdown_grace = \"5s\"")
        .app("slow", "slow.test", upstream.addr)
        .start()
        .await;
    // An admin connection opened before the signal, as a prober keeps it.
    let mut admin = Http1Conn::open(gw.admin).await;
    let (status, body) = admin.get("admin", "/readyz").await.expect("readyz");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));

    let in_flight = Http1Conn::open(gw.addr)
        .await
        .spawn_get("slow.test", "/slow");
    assert!(
        eventually(|| {
            let seen = upstream.requests().len();
            async move { seen == 1 }
        })
        .await,
        "the request never reached the upstream; logs:\n{}",
        gw.logs()
    );

    gw.signal("TERM");

    // Draining: both listeners close, an open admin connection says 503.
    let (proxy, admin_addr) = (gw.addr, gw.admin);
    assert!(
        eventually(|| refuses_connections(admin_addr)).await,
        "admin listener still accepting after SIGTERM; logs:\n{}",
        gw.logs()
    );
    assert!(
        refuses_connections(proxy).await,
        "proxy listener still accepting during the drain"
    );
    let (status, body) = admin
        .get("admin", "/readyz")
        .await
        .expect("readyz on the open admin connection");
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/readyz while draining"
    );
    assert!(
        gw.try_exit_status().is_none(),
        "gateway exited with a request in flight; logs:\n{}",
        gw.logs()
    );
    assert!(
        !in_flight.is_finished(),
        "the in-flight request ended early"
    );

    release.send(true).expect("upstream still running");
    let (conn, answer) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("in-flight request answered within 10 s")
        .expect("request task");
    let (status, body) = answer.expect("the in-flight request completes");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, BODY);
    assert!(
        conn.closed_by_server_within(Duration::from_secs(5)).await,
        "the gateway kept the client connection open after its last answer"
    );

    let status = gw.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "exit status; logs:\n{}", gw.logs());
    assert!(
        refuses_connections(proxy).await,
        "proxy port open after exit"
    );
    assert!(
        refuses_connections(admin_addr).await,
        "admin port open after exit"
    );
    let messages = gw.log_messages();
    assert!(
        messages.iter().any(|m| m == "SIGTERM received"),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m == "drained, bye"), "{messages:?}");
    assert!(
        !messages.iter().any(|m| m.starts_with("grace period over")),
        "drain should not have needed the whole grace period: {messages:?}"
    );
}

#[tokio::test]
async fn sigint_with_nothing_in_flight_exits_0() {
    let upstream = RecordingUpstream::start("idle").await;
    let mut gw = GatewayProcess::builder()
        .server("shutdown_grace = \"5s\"")
        .app("idle", "idle.test", upstream.addr)
        .start()
        .await;

    gw.signal("INT");

    let status = gw.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "exit status; logs:\n{}", gw.logs());
    assert!(
        refuses_connections(gw.addr).await,
        "proxy port open after exit"
    );
    assert!(
        refuses_connections(gw.admin).await,
        "admin port open after exit"
    );
    let messages = gw.log_messages();
    assert!(
        messages.iter().any(|m| m == "SIGINT received"),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m == "drained, bye"), "{messages:?}");
}

#[tokio::test]
async fn stop_in_process_waits_for_the_in_flight_request() {
    let (release, upstream) = held_upstream().await;
    let gw = TestGateway::new()
        .app(AppSpec::new("slow", "slow.test", upstream.addr))
        .start()
        .await;
    let (proxy, admin) = (gw.addr, gw.admin);
    let client = Client::new(proxy);
    let in_flight = tokio::spawn(async move { client.get("slow.test", "/slow").await });
    assert!(
        eventually(|| {
            let seen = upstream.requests().len();
            async move { seen == 1 }
        })
        .await,
        "the request never reached the upstream"
    );

    let stopping = tokio::spawn(gw.stop());
    assert!(
        eventually(|| refuses_connections(admin)).await,
        "admin listener still accepting after stop()"
    );
    assert!(
        refuses_connections(proxy).await,
        "proxy listener still accepting after stop()"
    );
    assert!(
        !stopping.is_finished(),
        "stop() returned with a request in flight"
    );

    release.send(true).expect("upstream still running");
    let reply = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("in-flight request answered within 10 s")
        .expect("the in-flight request completes");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), BODY);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stop() returns within 10 s of the last answer")
        .expect("stop() task");
}

#[tokio::test]
async fn grace_period_bounds_the_drain() {
    let upstream = RecordingUpstream::start_with(|_req| async {
        std::future::pending::<()>().await;
        Response::new(full("never"))
    })
    .await;
    let grace = Duration::from_millis(300);
    let mut gw = GatewayProcess::builder()
        .server("shutdown_grace = \"300ms\"")
        // Only the grace period may end this request, not a 504.
        .section("[upstream]\nresponse_timeout = \"1h\"")
        .app("stuck", "stuck.test", upstream.addr)
        .start()
        .await;
    let in_flight = Http1Conn::open(gw.addr).await.spawn_get("stuck.test", "/");
    assert!(
        eventually(|| {
            let seen = upstream.requests().len();
            async move { seen == 1 }
        })
        .await,
        "the request never reached the upstream; logs:\n{}",
        gw.logs()
    );

    let signalled = Instant::now();
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(5)).await;
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "exit status; logs:\n{}", gw.logs());
    assert!(
        took >= grace,
        "exited {took:?} after SIGTERM, before the {grace:?} grace period ended"
    );
    let messages = gw.log_messages();
    assert!(
        messages
            .iter()
            .any(|m| m == "grace period over, closing what is left"),
        "{messages:?}"
    );
    let (_, answer) = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the client sees the connection end within 5 s of exit")
        .expect("request task");
    assert!(
        answer.is_err(),
        "the stuck request got an answer: {answer:?}"
    );
}
