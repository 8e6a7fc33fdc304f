//! Forwarding: send the (already authorised) request to the app's upstream and
//! stream the answer back.
//!
//! Input: the client's request, the app it routed to and what the connection
//! knows (peer address, scheme). Output: the upstream's response with its body
//! streaming, never buffered. Failure modes: connection refused or broken →
//! [`Error::UpstreamUnreachable`] (502); connect or response-head timeout →
//! [`Error::UpstreamTimeout`] (504).
//!
//! HTTP/1.1 `Upgrade` requests (WebSocket) are forwarded with their upgrade
//! headers; on `101` both sides are upgraded and bytes are copied both ways in
//! a task tracked for graceful shutdown.

use std::time::{Duration, Instant};

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::task::TaskTracker;

use crate::body::Body;
use crate::config::UpstreamConfig;
use crate::error::Error;
use crate::proxy_headers;
use crate::request_id;

/// The pooled keep-alive clients shared by all apps: plain HTTP upstreams
/// skip the TLS connector's stream wrapper entirely.
pub struct Upstreams {
    http: Client<HttpConnector, Incoming>,
    https: Client<hyper_rustls::HttpsConnector<HttpConnector>, Incoming>,
    response_timeout: Duration,
}

impl Upstreams {
    /// Builds the pools from `[upstream]`.
    pub fn new(config: &UpstreamConfig) -> Upstreams {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let mut tls_tcp = http.clone();
        tls_tcp.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_only()
            .enable_http1()
            .wrap_connector(tls_tcp);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        Upstreams {
            http: builder.build(http),
            https: builder.build(https),
            response_timeout: config.response_timeout,
        }
    }

    fn request(&self, req: Request<Incoming>) -> hyper_util::client::legacy::ResponseFuture {
        if req.uri().scheme() == Some(&Scheme::HTTPS) {
            self.https.request(req)
        } else {
            self.http.request(req)
        }
    }
}

/// Where and how one request is forwarded.
pub struct Target<'a> {
    /// Upstream scheme.
    pub scheme: &'a Scheme,
    /// Upstream `host:port`.
    pub authority: &'a Authority,
    /// Send the client's `Host` (true) or the upstream authority (false).
    pub preserve_host: bool,
}

/// What the client connection contributes to the forwarded headers.
pub struct ClientSide<'a> {
    /// The TCP peer's address, as a header value.
    pub peer: &'a HeaderValue,
    /// `http` or `https`, as the client reached the gateway.
    pub proto: &'static str,
    /// Whether the peer is a trusted proxy.
    pub trusted: bool,
    /// The host the client asked for (authority or `Host`), as sent.
    pub host: Option<&'a HeaderValue>,
    /// The request id to pass upstream.
    pub request_id: &'a HeaderValue,
}

/// Forwards `req` and returns the upstream's response head with a streaming body.
///
/// The second value is the time the upstream took to answer, for metrics.
pub async fn forward(
    upstreams: &Upstreams,
    tunnels: &TaskTracker,
    mut req: Request<Incoming>,
    target: Target<'_>,
    client: ClientSide<'_>,
) -> Result<(Response<Body>, Duration), Error> {
    // Only HTTP/1.1 carries `Upgrade`; HTTP/2 forbids these fields.
    let upgrade = match req.version() {
        Version::HTTP_11 => proxy_headers::upgrade_request(req.headers()),
        _ => None,
    };
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));

    let headers = req.headers_mut();
    proxy_headers::remove_hop_by_hop(headers);
    if let Some(protocol) = &upgrade {
        proxy_headers::set_upgrade(headers, protocol.clone());
    }
    proxy_headers::set_forwarded(
        headers,
        client.peer,
        client.proto,
        client.host,
        client.trusted,
    );
    headers.insert(request_id::HEADER, client.request_id.clone());
    match (target.preserve_host, client.host) {
        (true, Some(host)) => {
            headers.insert(HOST, host.clone());
        }
        // The client sets `Host` from the absolute URI when it is absent.
        _ => {
            headers.remove(HOST);
        }
    }

    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(target.scheme.clone());
    parts.authority = Some(target.authority.clone());
    parts.path_and_query = Some(path);
    *req.uri_mut() =
        Uri::from_parts(parts).map_err(|_| Error::BadRequest("unusable request target"))?;
    *req.version_mut() = Version::HTTP_11;

    let started = Instant::now();
    let mut response =
        match tokio::time::timeout(upstreams.response_timeout, upstreams.request(req)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(classify(e)),
            Err(_) => return Err(Error::UpstreamTimeout("no response head in time")),
        };
    let elapsed = started.elapsed();

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let (Some(client_upgrade), Some(protocol)) = (client_upgrade, upgrade) else {
            // A 101 nobody asked for cannot be relayed.
            return Err(Error::UpstreamUnreachable(
                "unsolicited 101 from upstream".into(),
            ));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tunnels.spawn(tunnel(client_upgrade, upstream_upgrade));
        let (mut parts, _) = response.into_parts();
        proxy_headers::remove_hop_by_hop(&mut parts.headers);
        proxy_headers::set_upgrade(&mut parts.headers, protocol);
        return Ok((Response::from_parts(parts, Body::empty()), elapsed));
    }

    let (mut parts, body) = response.into_parts();
    proxy_headers::remove_hop_by_hop(&mut parts.headers);
    Ok((Response::from_parts(parts, Body::upstream(body)), elapsed))
}

/// Copies bytes both ways between the upgraded client and upstream connections.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    crate::metrics::connections().tunnels.increment(1.0);
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => tracing::debug!(bytes_up = up, bytes_down = down, "tunnel closed"),
        Err(e) => tracing::debug!(error = %e, "tunnel ended with an error"),
    }
    crate::metrics::connections().tunnels.decrement(1.0);
}

/// Connection timeouts are 504s; everything else before a response is a 502.
fn classify(e: hyper_util::client::legacy::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Error::UpstreamTimeout("connect timed out");
            }
        }
        source = err.source();
    }
    Error::UpstreamUnreachable(Box::new(e))
}
