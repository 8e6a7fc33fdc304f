//! Forwarding: send the (already authorised) request to the app's upstream and
//! stream the answer back.
//!
//! Input: the client's request, cleaned of hop-by-hop and refused fields
//! ([`clean_request`](proxy_headers::clean_request)), the app it routed to and
//! what the connection knows (peer address, scheme). The body streams without
//! its trailers. Output: the upstream's response with its body
//! streaming, never buffered. Failure modes: connection refused or broken →
//! [`UpstreamError::Unreachable`] (502); connect or response-head timeout →
//! [`UpstreamError::Timeout`] (504).
//!
//! HTTP/1.1 `Upgrade` requests (WebSocket) are forwarded with their upgrade
//! headers; on `101` both sides are upgraded and become a [`Tunnels`] tunnel.
//!
//! What goes on streaming once the head is answered (a tunnel, or a body not
//! known to be small) can be given a [`Cut`], asked of the caller only then,
//! so that the caller can end it early; an answer complete with its head, or
//! with a small known length, costs the caller nothing.

use std::time::{Duration, Instant};

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use super::body::Body;
use super::cut::Cut;
use super::error::UpstreamError;
use super::headers as proxy_headers;
use super::pool::Upstream;
use super::request_body::RequestBody;
use super::request_id;
use super::tunnel::Tunnels;

/// Where and how one request is forwarded.
pub struct Target<'a> {
    /// The upstream's connection pool.
    pub upstream: &'a Upstream,
    /// Send the client's `Host` (true) or `host_header` (false).
    pub preserve_host: bool,
    /// The upstream's own `Host` value.
    pub host_header: &'a HeaderValue,
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
    pub host: &'a HeaderValue,
    /// The request id to pass upstream.
    pub request_id: &'a HeaderValue,
    /// The `Upgrade` protocol of an HTTP/1.1 upgrade request
    /// ([`clean_request`](proxy_headers::clean_request) found it).
    pub upgrade: Option<HeaderValue>,
}

/// A body of at most this many bytes, its length known, is not worth a
/// [`Cut`]: it is handed to the client's connection in one or two writes.
pub const SMALL_BODY: u64 = 64 * 1024;

/// Forwards `req` and returns the upstream's response head with a streaming body.
///
/// The second value is the time the upstream took to answer, for metrics.
/// `cut` is called once the upstream has answered, and only if the answer
/// goes on streaming (a tunnel, or a body neither empty nor of a known
/// length up to [`SMALL_BODY`]); what it returns ends that stream when
/// fired.
pub async fn forward(
    response_timeout: Duration,
    tunnels: &Tunnels,
    stop: &CancellationToken,
    mut req: Request<Incoming>,
    target: Target<'_>,
    client: ClientSide<'_>,
    cut: impl FnOnce() -> Option<Cut>,
) -> Result<(Response<Body>, Duration), UpstreamError> {
    let upgrade = client.upgrade;
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));

    // The client's hop-by-hop fields are gone already (`clean_request`, before
    // the gateway added anything a client could name in `Connection`).
    let headers = req.headers_mut();
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
    let host = match target.preserve_host {
        true => client.host.clone(),
        false => target.host_header.clone(),
    };
    headers.insert(HOST, host);

    // Origin-form (`/path?query`), as RFC 9112 §3.2.1 asks of a request to an
    // origin server: legacy apps do not all accept absolute-form.
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(path);
    *req.version_mut() = Version::HTTP_11;

    let started = Instant::now();
    let req = req.map(RequestBody::new);
    let (mut response, lease) = target.upstream.send(req, response_timeout).await?;
    let elapsed = started.elapsed();

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let (Some(client_upgrade), Some(protocol)) = (client_upgrade, upgrade) else {
            // A 101 nobody asked for cannot be relayed.
            return Err(UpstreamError::Unreachable(
                "unsolicited 101 from upstream".into(),
            ));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tunnels.spawn(client_upgrade, upstream_upgrade, stop.clone(), cut());
        let (mut parts, _) = response.into_parts();
        proxy_headers::remove_hop_by_hop(&mut parts.headers);
        proxy_headers::set_upgrade(&mut parts.headers, protocol);
        return Ok((Response::from_parts(parts, Body::empty()), elapsed));
    }

    let (mut parts, body) = response.into_parts();
    proxy_headers::remove_hop_by_hop(&mut parts.headers);
    let cut = if streams(&body) { cut() } else { None };
    Ok((
        Response::from_parts(parts, Body::upstream(body, lease, cut)),
        elapsed,
    ))
}

/// Whether `body` may go on arriving for a while after its head: not
/// already complete, and not of a known length up to [`SMALL_BODY`].
fn streams(body: &Incoming) -> bool {
    !body.is_end_stream()
        && body
            .size_hint()
            .exact()
            .is_none_or(|length| length > SMALL_BODY)
}
