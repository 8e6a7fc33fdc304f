//! Bounded resources on the client side: the open-files limit is raised to
//! the hard limit at start-up (and caps that do not fit in it are warned
//! about); the global and per-IP connection caps close the extra connection
//! at once while the others keep being served, and count it; HTTP/2 clients
//! are told the configured stream limit.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::support::client::read_store_response;
use crate::support::metrics::{count, scrape};
use crate::support::process::{open_files_limits, GatewayProcess, OpenFiles};
use crate::support::{AppSpec, RecordingUpstream, TestGateway, POLL_ATTEMPTS, POLL_INTERVAL};

const HOST_NAME: &str = "store.example.com";
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: store.example.com\r\n\r\n";
/// Upper bound for "the gateway answers" or "the gateway closes".
const STEP: Duration = Duration::from_secs(5);
const REFUSED: &str = "gateway_connections_refused_total";
/// The start of the warning about caps beyond the open-files limit.
const FITS_NOT: &str = "server.max_connections does not fit in the open files limit";

/// The soft limit a test child starts with: low, and below the hard limit.
fn lowered(limits: OpenFiles) -> OpenFiles {
    OpenFiles {
        soft: (limits.hard / 2).min(256),
        hard: limits.hard,
    }
}

#[tokio::test]
async fn open_files_soft_limit_is_raised_to_the_hard_limit() {
    let limits = lowered(open_files_limits());
    assert!(
        limits.soft < limits.hard,
        "this test needs a hard open-files limit above 2: {limits:?}"
    );
    let store = RecordingUpstream::start("store").await;
    let gw = GatewayProcess::builder()
        .open_files(limits)
        .server("max_connections = 100")
        .app("store", HOST_NAME, store.addr)
        .start()
        .await;
    let logged = gw.logged("open files limit");
    assert_eq!(logged.len(), 1, "one line about the limit: {}", gw.logs());
    assert_eq!(
        logged[0]["limit"].as_u64(),
        Some(limits.hard),
        "the soft limit is raised to the hard one; logs:\n{}",
        gw.logs()
    );
    assert_eq!(logged[0]["raised_from"].as_u64(), Some(limits.soft));
    // 100 connections fit: no warning.
    assert!(gw.logged(FITS_NOT).is_empty(), "{}", gw.logs());
    let metrics = scrape(gw.admin).await;
    assert_eq!(
        count(&metrics, "gateway_open_files_limit", &[]),
        limits.hard as f64,
        "{metrics}"
    );
}

#[tokio::test]
async fn connection_caps_beyond_the_open_files_limit_are_warned_about() {
    let hard = open_files_limits().hard.min(512);
    let store = RecordingUpstream::start("store").await;
    // Each proxied connection may need an upstream socket too: 2 × 1000 does
    // not fit in 512 descriptors.
    let gw = GatewayProcess::builder()
        .open_files(OpenFiles {
            soft: hard / 2,
            hard,
        })
        .server("max_connections = 1000")
        .app("store", HOST_NAME, store.addr)
        .start()
        .await;
    let warned = gw.logged(FITS_NOT);
    assert_eq!(warned.len(), 1, "{}", gw.logs());
    assert_eq!(warned[0]["limit"].as_u64(), Some(hard), "{}", gw.logs());
    assert_eq!(warned[0]["max_connections"].as_u64(), Some(1000));
    let line = gw
        .logs()
        .lines()
        .find(|l| l.contains(FITS_NOT))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains("\"level\":\"WARN\""), "{line}");
}

/// A connection that got one answer and stays open.
async fn served_connection(addr: SocketAddr) -> TcpStream {
    let mut tcp = timeout(STEP, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    tcp.write_all(REQUEST).await.expect("write");
    let answer = read_store_response(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tcp
}

/// Another request on an open connection is answered.
async fn still_served(tcp: &mut TcpStream) {
    tcp.write_all(REQUEST).await.expect("write");
    let answer = read_store_response(tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Opens a connection and sends a request: `true` if the gateway closes it
/// without a byte of answer, `false` if it answers. The header timeout of the
/// gateways below is far beyond the bound, so a close is a refusal.
async fn refused(addr: SocketAddr) -> bool {
    let mut tcp = timeout(STEP, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect (the kernel accepts before the gateway decides)");
    // The gateway may have closed it already: a failed write is fine.
    let _ = tcp.write_all(REQUEST).await;
    let mut buf = [0u8; 1024];
    match timeout(STEP, tcp.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("the extra connection was neither served nor closed within {STEP:?}"),
    }
}

/// Polls until a new connection is served again; returns it and how many
/// attempts were refused before (the slot is freed once the closed
/// connection's task has ended on its worker).
async fn served_again(addr: SocketAddr) -> (TcpStream, usize) {
    let mut refusals = 0;
    for _ in 0..POLL_ATTEMPTS {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(REQUEST).await.expect("write");
        let mut buf = [0u8; 4096];
        match timeout(STEP, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return (tcp, refusals);
            }
            Ok(_) => refusals += 1,
            Err(_) => panic!("a connection was neither served nor closed within {STEP:?}"),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!("no slot was freed after a connection closed");
}

/// The cap scenario shared by the per-IP and the global test: two connections
/// served, the third closed at once and counted under `reason`, the first two
/// still served, and closing one frees a slot.
async fn cap_of_two(server: &str, reason: &str) {
    let store = RecordingUpstream::start("store").await;
    let gw = GatewayProcess::builder()
        .server(server)
        .server("header_read_timeout = \"60s\"\nidle_timeout = \"60s\"")
        .app("store", HOST_NAME, store.addr)
        .start()
        .await;
    let mut first = served_connection(gw.addr).await;
    let mut second = served_connection(gw.addr).await;

    assert!(
        refused(gw.addr).await,
        "a third connection was served; logs:\n{}",
        gw.logs()
    );
    still_served(&mut first).await;
    still_served(&mut second).await;
    assert_eq!(
        store.requests().len(),
        4,
        "the refused request never went upstream"
    );
    let metrics = scrape(gw.admin).await;
    assert_eq!(
        count(&metrics, REFUSED, &[("reason", reason)]),
        1.0,
        "{metrics}"
    );

    // Closing one frees its slot.
    drop(first);
    let (mut third, refusals) = served_again(gw.addr).await;
    still_served(&mut third).await;
    still_served(&mut second).await;
    assert!(refused(gw.addr).await, "the cap holds again");
    let metrics = scrape(gw.admin).await;
    assert_eq!(
        count(&metrics, REFUSED, &[("reason", reason)]),
        (2 + refusals) as f64,
        "{metrics}"
    );
    let other = if reason == "global" {
        "per_ip"
    } else {
        "global"
    };
    assert_eq!(
        count(&metrics, REFUSED, &[("reason", other)]),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        count(&metrics, "gateway_open_connections", &[]),
        2.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn per_ip_limit_closes_the_extra_connection_at_once() {
    cap_of_two("max_connections_per_ip = 2", "per_ip").await;
}

#[tokio::test]
async fn global_limit_closes_the_extra_connection_at_once() {
    cap_of_two("max_connections = 2\nmax_connections_per_ip = 0", "global").await;
}

#[tokio::test]
async fn trusted_proxies_are_exempt_from_the_per_ip_limit() {
    // A load balancer in front carries many clients' connections.
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .server("max_connections_per_ip = 1\ntrusted_proxies = [\"127.0.0.1\"]")
        .app(AppSpec::new("store", HOST_NAME, store.addr))
        .start()
        .await;
    let mut first = served_connection(gw.addr).await;
    let mut second = served_connection(gw.addr).await;
    still_served(&mut first).await;
    still_served(&mut second).await;
}

/// The stream limit an HTTP/2 client learns from the gateway's SETTINGS.
async fn announced_streams(addr: SocketAddr) -> usize {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, conn) = timeout(STEP, h2::client::handshake(tcp))
        .await
        .expect("handshake in time")
        .expect("h2c handshake");
    let driver = tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::get(format!("http://{HOST_NAME}/"))
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("send");
    // The server's SETTINGS come first on the connection: once an answer is
    // in, they have been applied.
    let response = timeout(STEP, response)
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(response.status(), 200);
    let streams = client.current_max_send_streams();
    driver.abort();
    streams
}

#[tokio::test]
async fn http2_announces_the_configured_stream_limit() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .server("http2_max_concurrent_streams = 7")
        .app(AppSpec::new("store", HOST_NAME, store.addr))
        .start()
        .await;
    assert_eq!(announced_streams(gw.addr).await, 7);

    let defaults = TestGateway::store(store.addr).await;
    assert_eq!(
        announced_streams(defaults.addr).await,
        128,
        "the documented default"
    );
}
