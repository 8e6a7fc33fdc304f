//! The request path: one function that runs the stages in order.
//!
//! ```text
//! handle (outer): request id, span, metrics, Error → response
//!   └─ run (inner):
//!        route    host (+ path prefix) → app, or 404
//!        forward  strip hop-by-hop, set X-Forwarded-*, stream to the upstream
//! ```
//!
//! Authentication stages (own endpoints, session, verify, refresh, authorize)
//! slot in between `route` and `forward`; each is a plain async function
//! returning "continue" or "respond now".

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use http::header::HOST;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::body::Body;
use crate::config::{AppConfig, Config};
use crate::connection::Activity;
use crate::error::Error;
use crate::forward::{self, ClientSide, Target};
use crate::metrics::{AppMetrics, NO_APP};
use crate::pages;
use crate::pool::{self, Upstream};
use crate::request_id;
use crate::route::Router;

/// Everything the request path shares, built once at start-up.
pub struct Gateway {
    /// The configuration it runs with.
    pub config: Config,
    router: Router,
    apps: Vec<App>,
    unrouted: AppMetrics,
    /// Upgraded tunnels, waited for on graceful shutdown.
    pub tunnels: TaskTracker,
    /// Fired when the shutdown grace period is over: what is left is cut.
    pub stop: CancellationToken,
    /// Whether `/readyz` reports ready.
    pub ready: AtomicBool,
}

/// One app with its runtime state.
struct App {
    config: AppConfig,
    metrics: AppMetrics,
    upstream: Upstream,
}

impl Gateway {
    /// Builds the routing table, per-app state and the upstream pool.
    pub fn new(config: Config) -> Gateway {
        let router = Router::new(
            config
                .apps
                .iter()
                .enumerate()
                .map(|(i, app)| (i, app.hosts.as_slice(), app.path_prefix.as_str())),
        );
        let u = &config.upstream;
        let settings = Arc::new(pool::Settings::new(
            u.connect_timeout,
            u.pool_idle_timeout,
            u.pool_max_idle_per_host,
        ));
        let apps = config
            .apps
            .iter()
            .map(|app| App {
                metrics: AppMetrics::new(&app.name),
                upstream: Upstream::new(
                    app.upstream.scheme.clone(),
                    app.upstream.authority.clone(),
                    settings.clone(),
                ),
                config: app.clone(),
            })
            .collect();
        Gateway {
            router,
            apps,
            unrouted: AppMetrics::new(NO_APP),
            tunnels: TaskTracker::new(),
            stop: CancellationToken::new(),
            ready: AtomicBool::new(false),
            config,
        }
    }
}

/// What one client connection knows, shared by its requests.
pub struct ConnInfo {
    /// The shared gateway state.
    pub gateway: Arc<Gateway>,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer's IP address as a header value (for `X-Forwarded-For`).
    pub peer_value: HeaderValue,
    /// `https` under TLS, else `http`.
    pub proto: &'static str,
    /// Whether the peer is a trusted proxy.
    pub trusted: bool,
    /// Timing state for the header and idle timeouts.
    pub activity: Arc<Activity>,
}

/// Per-request facts the outer handler needs after the inner one ran.
struct RequestCtx {
    request_id: HeaderValue,
    app: Option<usize>,
}

/// The outer handler: owns the request id, the span, metrics, and the
/// conversion of errors into responses. Never fails.
pub async fn handle(
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let in_flight = conn.activity.begin_request();
    let gateway = &conn.gateway;
    // Only the access log needs the clock here.
    let started = gateway.config.log.access.then(Instant::now);
    let method = req.method().clone();
    let json = pages::wants_json(req.headers());
    let mut ctx = RequestCtx {
        request_id: request_id::from_incoming(req.headers().get(request_id::HEADER)),
        app: None,
    };
    let span = tracing::info_span!(
        "request",
        id = ctx.request_id.to_str().unwrap_or(""),
        method = %method,
        path = req.uri().path(),
        app = tracing::field::Empty,
    );
    let result = run(&conn, req, &mut ctx).instrument(span.clone()).await;
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            let status = error.status();
            if status.is_server_error() {
                tracing::warn!(parent: &span, error = %error, status = status.as_u16(), "request failed");
            } else {
                tracing::debug!(parent: &span, error = %error, status = status.as_u16(), "request refused");
            }
            error.into_response(&ctx.request_id, json)
        }
    };
    let status = response.status();
    let metrics = match ctx.app {
        Some(i) => &gateway.apps[i].metrics,
        None => &gateway.unrouted,
    };
    metrics.request(&method, status);
    if let Some(started) = started {
        tracing::info!(
            parent: &span,
            status = status.as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    response
        .headers_mut()
        .insert(request_id::HEADER, ctx.request_id);
    // The connection stays busy until hyper has written the whole body.
    response.body_mut().hold(in_flight);
    Ok(response)
}

/// The inner handler: the stages, in order.
async fn run(
    conn: &ConnInfo,
    req: Request<Incoming>,
    ctx: &mut RequestCtx,
) -> Result<Response<Body>, Error> {
    let gateway = &conn.gateway;

    // route
    let host = request_host(&req)?;
    let host_text = host.to_str().map_err(|_| Error::MissingHost)?;
    let index = gateway
        .router
        .find(host_text, req.uri().path())
        .ok_or_else(|| Error::UnknownHost {
            host: host_text.to_owned(),
        })?;
    ctx.app = Some(index);
    let app = &gateway.apps[index];
    tracing::Span::current().record("app", app.config.name.as_str());

    // forward
    let (response, upstream_time) = forward::forward(
        gateway.config.upstream.response_timeout,
        &gateway.tunnels,
        &gateway.stop,
        req,
        Target {
            upstream: &app.upstream,
            preserve_host: app.config.preserve_host,
            host_header: &app.config.upstream.host_header,
        },
        ClientSide {
            peer: &conn.peer_value,
            proto: conn.proto,
            trusted: conn.trusted,
            host: &host,
            request_id: &ctx.request_id,
        },
    )
    .await?;
    app.metrics.upstream_latency(upstream_time);
    Ok(response)
}

/// The host the client asked for: the URI authority (HTTP/2, absolute-form)
/// or else the `Host` header (RFC 9112 §3.2.2).
fn request_host(req: &Request<Incoming>) -> Result<HeaderValue, Error> {
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).map_err(|_| Error::MissingHost);
    }
    match req.headers().get(HOST) {
        Some(host) if !host.is_empty() => Ok(host.clone()),
        _ => Err(Error::MissingHost),
    }
}
