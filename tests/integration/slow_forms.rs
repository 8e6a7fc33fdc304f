//! The login and logout forms are read within `login.form_timeout`: a client
//! that trickles its form a byte at a time gets 408 at the deadline, and the
//! gateway lets go of the connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::auth::{idp, store_upstream, STORE_HOST};
use crate::support::browser::{LOGIN_PATH, LOGOUT_PATH};
use crate::support::{AppSpec, Client, TestGateway};

/// Bytes the slow client announces in `Content-Length`; at one a second it
/// would take this many seconds to send them all.
const FORM_BYTES: usize = 20;
/// The trickle: one byte per this.
const BYTE_EVERY: Duration = Duration::from_secs(1);
/// Upper bound on the whole exchange, so that a gateway that waits for the
/// whole form fails this test instead of hanging it (not an assertion on
/// timing: the answer must be a 408 whatever it took).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Posts `FORM_BYTES` of form to `path` one byte at a time; returns the
/// status line of the answer, whether the gateway then closed the
/// connection, and how many body bytes had been sent by then.
async fn trickle(gw: &TestGateway, path: &str) -> (String, bool, usize) {
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {STORE_HOST}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {FORM_BYTES}\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.expect("head");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        for _ in 0..FORM_BYTES {
            tokio::time::sleep(BYTE_EVERY).await;
            if write.write_all(b"x").await.is_err() {
                return;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        // Keep the write half open: the client neither finishes nor leaves.
        std::future::pending::<()>().await;
    });
    let exchange = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        let mut status = None;
        loop {
            let n = read.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return (status.unwrap_or_default(), true);
            }
            received.extend_from_slice(&buf[..n]);
            if status.is_none() {
                if let Some(end) = received.windows(2).position(|w| w == b"\r\n") {
                    status = Some(String::from_utf8_lossy(&received[..end]).into_owned());
                }
            }
            if let Some(line) = &status {
                if !line.contains(" 408 ") {
                    // Not the answer this test waits for: stop here.
                    return (line.clone(), false);
                }
            }
        }
    };
    let (status, closed) = tokio::time::timeout(HANG_GUARD, exchange)
        .await
        .unwrap_or_else(|_| ("no answer".to_owned(), false));
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
    writer.abort();
    (status, closed, sent)
}

#[tokio::test]
async fn a_form_sent_a_byte_a_second_gets_408_and_the_connection_is_let_go() {
    /// A name of its own for the metrics, shared by the test process.
    const APP: &str = "slowforms";
    let idp = idp().start().await;
    let store = store_upstream().await;
    let gw = TestGateway::new()
        .idp(&idp)
        .login_config("form_timeout = \"2s\"")
        .app(AppSpec::new(APP, STORE_HOST, store.addr).login("store", "store-secret"))
        .start_ready()
        .await;

    for path in [LOGIN_PATH, LOGOUT_PATH] {
        let (status, closed, sent) = trickle(&gw, path).await;
        assert!(status.starts_with("HTTP/1.1 408"), "{path}: {status}");
        assert!(closed, "{path}: the connection was kept after the 408");
        assert!(
            sent < FORM_BYTES,
            "{path}: the whole form was read before the answer"
        );
    }
    assert!(store.requests().is_empty());

    let metrics = Client::new(gw.admin).get("admin", "/metrics").await.text();
    for form in ["login", "logout"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("gateway_form_timeouts_total{")
                    && l.contains(&format!("app=\"{APP}\""))
                    && l.contains(&format!("form=\"{form}\""))
            })
            .unwrap_or_else(|| panic!("no {form} form timeout counted:\n{metrics}"));
        assert!(line.ends_with(" 1"), "{line}");
    }
}
