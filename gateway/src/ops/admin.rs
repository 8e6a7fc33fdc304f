//! The admin listener: `/healthz`, `/readyz`, `/metrics`, and whatever else
//! the caller hands it (the session-ending endpoints).
//!
//! Separate from the proxy listener so it can stay on a private address.
//! `/healthz` answers 200 while the process runs; `/readyz` answers 200 only
//! while the gateway accepts traffic (503 before start-up completes and while
//! draining); `/metrics` renders Prometheus text. Any other path goes to the
//! [`Other`] handler, or is a 404 without one.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Whether `/readyz` says ready, asked at each probe.
pub type Readiness = Arc<dyn Fn() -> bool + Send + Sync>;

/// The answer body of the admin listener.
pub type Body = http_body_util::Full<bytes::Bytes>;

/// Answers the paths the admin listener does not know itself.
pub type Other = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

/// Serves the admin endpoints until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    ready: Readiness,
    prometheus: PrometheusHandle,
    other: Option<Other>,
    cancel: CancellationToken,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (tcp, _) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ready = ready.clone();
        let prometheus = prometheus.clone();
        let other = other.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let own = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
                let answer: Pin<Box<dyn Future<Output = Response<Body>> + Send>> =
                    match (&other, own) {
                        (Some(other), false) => other(req),
                        _ => {
                            let answer = answer(&req, &ready, &prometheus);
                            Box::pin(async move { answer })
                        }
                    };
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

fn answer(
    req: &Request<Incoming>,
    ready: &Readiness,
    prometheus: &PrometheusHandle,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => {
            let mut response = text(StatusCode::OK, prometheus.render());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(Body::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
