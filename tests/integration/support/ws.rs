//! `WsEchoUpstream`: a raw TCP upstream that accepts WebSocket upgrades with
//! `tokio_tungstenite::accept_hdr_async` and echoes every text and binary
//! message, and answers plain (non-upgrade) HTTP/1.1 requests with
//! `200 plain` through hyper.
//!
//! Each connection's request head is peeked (not consumed) to pick the side.
//! Plain responses carry `Connection: close`, so the gateway never pools a
//! plain connection and later sends an upgrade request over it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Response, Uri};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::Message;

/// The head of a request the upstream saw.
#[derive(Debug, Clone)]
pub struct SeenHead {
    pub uri: Uri,
    pub headers: HeaderMap,
}

impl SeenHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How one WebSocket session ended: `Ok` after a close handshake, else why not.
pub type SessionEnd = Result<(), String>;

/// A running WebSocket echo upstream.
pub struct WsEchoUpstream {
    pub addr: SocketAddr,
    upgrades: Arc<Mutex<Vec<SeenHead>>>,
    plain: Arc<Mutex<Vec<SeenHead>>>,
    ends: mpsc::UnboundedReceiver<SessionEnd>,
    task: JoinHandle<()>,
}

impl WsEchoUpstream {
    pub async fn start() -> WsEchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let upgrades = Arc::new(Mutex::new(Vec::new()));
        let plain = Arc::new(Mutex::new(Vec::new()));
        let (end_tx, ends) = mpsc::unbounded_channel();
        let (up, pl) = (upgrades.clone(), plain.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (up, pl, end_tx) = (up.clone(), pl.clone(), end_tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(5), is_websocket_upgrade(&tcp))
                        .await
                    {
                        Ok(Ok(true)) => {
                            let _ = end_tx.send(echo(tcp, up).await);
                        }
                        Ok(Ok(false)) => serve_plain(tcp, pl).await,
                        _ => {}
                    }
                });
            }
        });
        WsEchoUpstream {
            addr,
            upgrades,
            plain,
            ends,
            task,
        }
    }

    /// Heads of the upgrade requests accepted so far.
    pub fn upgrades(&self) -> Vec<SeenHead> {
        self.upgrades.lock().expect("lock").clone()
    }

    /// Heads of the plain requests answered so far.
    pub fn plain(&self) -> Vec<SeenHead> {
        self.plain.lock().expect("lock").clone()
    }

    /// How the next WebSocket session ended; waits at most 5 s.
    pub async fn session_end(&mut self) -> SessionEnd {
        tokio::time::timeout(Duration::from_secs(5), self.ends.recv())
            .await
            .expect("a WebSocket session ended within 5 s")
            .expect("upstream running")
    }
}

impl Drop for WsEchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Peeks at the request head: is it a WebSocket upgrade?
async fn is_websocket_upgrade(tcp: &TcpStream) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            return Ok(head
                .lines()
                .any(|line| line.starts_with("upgrade:") && line.contains("websocket")));
        }
        if n == buf.len() {
            return Ok(false);
        }
        // `peek` returns at once while data is buffered; wait for the rest.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// The callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
async fn echo(tcp: TcpStream, upgrades: Arc<Mutex<Vec<SeenHead>>>) -> SessionEnd {
    let record = move |req: &Request, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
        upgrades.lock().expect("lock").push(SeenHead {
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        });
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, record)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut saw_close = false;
    loop {
        match ws.next().await {
            Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                ws.send(msg).await.map_err(|e| format!("echo: {e}"))?;
            }
            // tungstenite queues the close reply and flushes it on the next poll,
            // which then reports the end of the stream.
            Some(Ok(Message::Close(_))) => saw_close = true,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("read: {e}")),
            None if saw_close => return Ok(()),
            None => return Err("connection ended without a close frame".into()),
        }
    }
}

async fn serve_plain(tcp: TcpStream, plain: Arc<Mutex<Vec<SeenHead>>>) {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        plain.lock().expect("lock").push(SeenHead {
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        });
        async move {
            let response = Response::builder()
                .header(http::header::CONNECTION, "close")
                .body(Full::new(Bytes::from_static(b"plain")))
                .expect("response");
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), service)
        .await;
}
