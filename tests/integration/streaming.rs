//! Bodies stream through the gateway in both directions, frame by frame; the
//! gateway never waits for a whole body before passing it on.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

use crate::support::upstream::full;
use crate::support::{AppSpec, RecordingUpstream, TestGateway};

const HOST_NAME: &str = "store.example.com";
/// Bound for every single step that should be quick.
const STEP: Duration = Duration::from_secs(5);

type UpstreamBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A body fed from a channel: each `Bytes` sent is one data frame; dropping the
/// sender ends the body. Its size is unknown, so HTTP/1.1 sends it chunked.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

impl ChannelBody {
    fn boxed_for_upstream(self) -> UpstreamBody {
        self.map_err(|never| match never {}).boxed()
    }
}

/// The same chunk `remaining` times, generated on demand (never stored whole),
/// with an exact size so HTTP/1.1 sends `Content-Length`.
struct RepeatBody {
    chunk: Bytes,
    remaining: usize,
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        self.remaining -= 1;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.chunk.len() * self.remaining) as u64)
    }
}

/// A one-shot slot a `Fn` handler can take its channel end from once.
fn slot<T>(value: T) -> Arc<Mutex<Option<T>>> {
    Arc::new(Mutex::new(Some(value)))
}

fn take<T>(slot: &Arc<Mutex<Option<T>>>) -> Option<T> {
    slot.lock().expect("lock").take()
}

/// An HTTP/1.1 connection to the gateway that can carry a streaming body.
async fn http1<B>(gw: &TestGateway) -> hyper::client::conn::http1::SendRequest<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(gw.addr)
        .await
        .expect("connect to the gateway");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("http1 handshake");
    tokio::spawn(conn);
    sender
}

/// Reads the next frame's data within `STEP`; `None` at the end of the body.
async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = timeout(STEP, body.frame())
            .await
            .expect("a response frame within 5 s")?
            .expect("response body frame");
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}

/// What the upstream saw when the first piece of the request body arrived.
struct FirstArrival {
    headers: HeaderMap,
    first: Bytes,
}

#[tokio::test]
async fn chunked_upload_reaches_the_upstream_before_the_client_finishes() {
    let (first_tx, first_rx) = oneshot::channel::<FirstArrival>();
    let (total_tx, total_rx) = oneshot::channel::<usize>();
    let (first_tx, total_tx) = (slot(first_tx), slot(total_tx));
    let upstream = RecordingUpstream::start_raw(move |req: Request<Incoming>| {
        let first_tx = take(&first_tx);
        let total_tx = take(&total_tx);
        async move {
            let (parts, mut body) = req.into_parts();
            let mut first_tx = first_tx;
            let mut total = 0;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return Response::builder()
                        .status(StatusCode::BAD_REQUEST)
                        .body(full("broken request body"))
                        .expect("response");
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                total += data.len();
                if let Some(tx) = first_tx.take() {
                    let _ = tx.send(FirstArrival {
                        headers: parts.headers.clone(),
                        first: data,
                    });
                }
            }
            if let Some(tx) = total_tx {
                let _ = tx.send(total);
            }
            Response::new(full(total.to_string()))
        }
    })
    .await;
    let gw = TestGateway::new()
        .app(AppSpec::new("store", HOST_NAME, upstream.addr))
        .start()
        .await;

    let chunk1 = Bytes::from(vec![b'a'; 10_000]);
    let chunk2 = Bytes::from(vec![b'b'; 25_000]);
    let (body_tx, body_rx) = mpsc::channel::<Bytes>(1);
    let request = Request::post("/upload")
        .header(HOST, HOST_NAME)
        .body(ChannelBody(body_rx))
        .expect("request");
    let mut sender = http1(&gw).await;
    let in_flight = tokio::spawn(async move { sender.send_request(request).await });

    body_tx.send(chunk1.clone()).await.expect("send chunk 1");
    let arrival = timeout(STEP, first_rx)
        .await
        .expect(
            "the first chunk reached the upstream within 5 s, while the client still held the rest",
        )
        .expect("upstream handler ran");
    assert!(!arrival.first.is_empty());
    assert!(
        chunk1.starts_with(&arrival.first),
        "the upstream's first bytes are the start of chunk 1"
    );
    // Still chunked on the upstream hop: the gateway did not buffer the body
    // to learn its length.
    assert_eq!(
        arrival.headers.get(TRANSFER_ENCODING).map(|v| v.as_bytes()),
        Some(&b"chunked"[..])
    );
    assert!(arrival.headers.get(CONTENT_LENGTH).is_none());

    body_tx.send(chunk2.clone()).await.expect("send chunk 2");
    drop(body_tx);
    let response = timeout(STEP, in_flight)
        .await
        .expect("response within 5 s")
        .expect("request task")
        .expect("response from the gateway");
    assert_eq!(response.status(), StatusCode::OK);
    let sent = chunk1.len() + chunk2.len();
    let upstream_total = timeout(STEP, total_rx)
        .await
        .expect("upstream total within 5 s")
        .expect("upstream reported its total");
    assert_eq!(upstream_total, sent);
    let body = timeout(STEP, response.into_body().collect())
        .await
        .expect("response body within 5 s")
        .expect("response body")
        .to_bytes();
    assert_eq!(body, sent.to_string());
}

#[tokio::test]
async fn chunked_download_reaches_the_client_before_the_upstream_finishes() {
    const FIRST: &[u8] = b"first chunk, sent at once\n";
    const SECOND: &[u8] = b"second chunk, sent when released\n";
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = slot(release_rx);
    let upstream = RecordingUpstream::start_raw(move |_req: Request<Incoming>| {
        let release = take(&release_rx);
        async move {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(FIRST)).await;
                // The second chunk only follows the test's release; a dropped
                // or late release ends the body short, failing the test.
                if let Some(release) = release {
                    if let Ok(Ok(())) = timeout(Duration::from_secs(10), release).await {
                        let _ = tx.send(Bytes::from_static(SECOND)).await;
                    }
                }
            });
            Response::new(ChannelBody(rx).boxed_for_upstream())
        }
    })
    .await;
    let gw = TestGateway::new()
        .app(AppSpec::new("store", HOST_NAME, upstream.addr))
        .start()
        .await;

    let request = Request::get("/download")
        .header(HOST, HOST_NAME)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let mut sender = http1(&gw).await;
    let response = timeout(STEP, sender.send_request(request))
        .await
        .expect("response head within 5 s")
        .expect("response from the gateway");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get(CONTENT_LENGTH).is_none(),
        "the gateway must not buffer the body to compute a length"
    );
    assert_eq!(
        response
            .headers()
            .get(TRANSFER_ENCODING)
            .map(|v| v.as_bytes()),
        Some(&b"chunked"[..])
    );
    let mut body = response.into_body();

    let mut got = Vec::new();
    while got.len() < FIRST.len() {
        let data = next_data(&mut body)
            .await
            .expect("the body must not end before the first chunk");
        got.extend_from_slice(&data);
    }
    assert_eq!(got, FIRST, "first chunk arrives whole, before the release");
    // Nothing more can come, and the body must stay open, until the release.
    assert!(
        timeout(Duration::from_millis(100), body.frame())
            .await
            .is_err(),
        "the body produced a frame or ended before the second chunk was released"
    );

    release_tx
        .send(())
        .expect("upstream waiting for the release");
    let mut rest = Vec::new();
    while let Some(data) = next_data(&mut body).await {
        rest.extend_from_slice(&data);
    }
    assert_eq!(rest, SECOND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_passes_through_whole() {
    // 64 MiB keeps the run fast while being far larger than any buffer on the
    // way. That memory stays flat for a 1 GiB body is measured by the
    // benchmark, not asserted here.
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 1024;
    const TOTAL: usize = CHUNK * CHUNKS;

    let (seen_tx, seen_rx) = oneshot::channel::<(Option<String>, usize)>();
    let seen_tx = slot(seen_tx);
    let upstream = RecordingUpstream::start_raw(move |req: Request<Incoming>| {
        let seen_tx = take(&seen_tx);
        async move {
            let length = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = req.into_body();
            let mut total = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => total += frame.data_ref().map_or(0, Bytes::len),
                    Err(_) => break,
                }
            }
            if let Some(tx) = seen_tx {
                let _ = tx.send((length, total));
            }
            Response::new(full(total.to_string()))
        }
    })
    .await;
    let gw = TestGateway::new()
        .app(AppSpec::new("store", HOST_NAME, upstream.addr))
        .start()
        .await;

    let chunk = Bytes::from((0..CHUNK).map(|i| i as u8).collect::<Vec<u8>>());
    let request = Request::put("/big")
        .header(HOST, HOST_NAME)
        .body(RepeatBody {
            chunk,
            remaining: CHUNKS,
        })
        .expect("request");
    let mut sender = http1(&gw).await;
    let response = timeout(Duration::from_secs(60), sender.send_request(request))
        .await
        .expect("64 MiB upload answered within 60 s")
        .expect("response from the gateway");
    assert_eq!(response.status(), StatusCode::OK);
    let body = timeout(STEP, response.into_body().collect())
        .await
        .expect("response body within 5 s")
        .expect("response body")
        .to_bytes();
    assert_eq!(body, TOTAL.to_string());
    let (length, counted) = timeout(STEP, seen_rx)
        .await
        .expect("upstream count within 5 s")
        .expect("upstream reported its count");
    assert_eq!(counted, TOTAL, "the upstream counted every byte");
    assert_eq!(
        length,
        Some(TOTAL.to_string()),
        "Content-Length passed through"
    );
}
