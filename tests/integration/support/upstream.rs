//! `RecordingUpstream`: a real HTTP server on 127.0.0.1:0 that records every
//! request (head and whole body) and answers with a pluggable handler.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// The single value of header `name` as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type BoxBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<BoxBody>> + Send>>
        + Send
        + Sync,
>;

/// A running recording upstream.
pub struct RecordingUpstream {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: JoinHandle<()>,
}

/// A complete body for handler responses.
pub fn full(body: impl Into<Bytes>) -> BoxBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

impl RecordingUpstream {
    /// Answers `200 upstream NAME` to everything, recording each request.
    pub async fn start(name: &'static str) -> RecordingUpstream {
        Self::start_with(move |_req| async move { Response::new(full(format!("upstream {name}"))) })
            .await
    }

    /// Answers with `handler`. The recorded copy of the request is made by
    /// reading the whole body first, so custom handlers that want to stream the
    /// request body should use [`RecordingUpstream::start_raw`].
    pub async fn start_with<F, Fut>(handler: F) -> RecordingUpstream
    where
        F: Fn(Recorded) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let handler = Arc::new(handler);
        let raw: Handler = Arc::new(move |req: Request<Incoming>| {
            let log = log.clone();
            let handler = handler.clone();
            Box::pin(async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method,
                    uri: parts.uri,
                    version: parts.version,
                    headers: parts.headers,
                    body,
                };
                log.lock().expect("lock").push(recorded.clone());
                handler(recorded).await
            })
        });
        Self::spawn(raw, requests).await
    }

    /// Answers with `handler` given the raw streaming request; nothing is recorded.
    pub async fn start_raw<F, Fut>(handler: F) -> RecordingUpstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<BoxBody>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let raw: Handler = Arc::new(move |req| {
            let handler = handler.clone();
            Box::pin(async move { handler(req).await })
        });
        Self::spawn(raw, Arc::new(Mutex::new(Vec::new()))).await
    }

    async fn spawn(handler: Handler, requests: Arc<Mutex<Vec<Recorded>>>) -> RecordingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        RecordingUpstream {
            addr,
            requests,
            connections,
            task,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    /// The last request seen; panics if none.
    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("the upstream saw no request")
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
