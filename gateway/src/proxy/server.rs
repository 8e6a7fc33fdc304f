//! Listening and connection handling: accept (within the connection caps),
//! TLS, HTTP/1.1 + HTTP/2 on one port, timeouts, graceful shutdown.
//!
//! Input: a bound listener, the `[server]` settings, and the [`Handler`] that
//! answers each request (the gateway's request path, handed in as hyper hands
//! a service to a connection). Output: [`run`] serves until the `shutdown`
//! future resolves, then stops accepting, asks every connection to finish its
//! in-flight requests, waits up to `server.shutdown_grace`, and returns.
//! Failure: only set-up errors are returned; per-connection errors are logged
//! at debug level (clients hang up all the time).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::Admission;
use super::body::Body;
use super::connection::{Activity, Limits, Parkable, Tracked, Verdict};
use super::headers;
use super::tunnel::{TunnelLimits, Tunnels};
use super::workers::{self, Workers};
use crate::config::{Config, ServerConfig};
use crate::ops::metrics;

/// The sockets the gateway serves on, bound before [`serve`](crate::serve) is called so
/// that tests and embedding programs can use port 0.
#[derive(Debug)]
pub struct Listeners {
    /// The proxy listener.
    pub proxy: TcpListener,
    /// The admin listener (health, readiness, metrics), if any.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds `server.listen` and `server.admin_listen`.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let proxy = bind(config.server.listen).await?;
        let admin = match config.server.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { proxy, admin })
    }
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Answers the requests of the connections [`run`] accepts.
pub trait Handler: Send + Sync + Sized + 'static {
    /// Answers one request that arrived on `conn`. Never fails: errors are
    /// answers too.
    fn handle(
        conn: Arc<ConnInfo<Self>>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static;
}

/// What one client connection knows, shared by its requests.
pub struct ConnInfo<H> {
    /// The request handler.
    pub handler: Arc<H>,
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

/// What outlives single connections and ends with the server: upgraded
/// tunnels, the token that cuts them, and whether the listener accepts.
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Upgraded tunnels, waited for on graceful shutdown; [`run`] sets
    /// their limits from `[server]`.
    pub tunnels: Tunnels,
    /// Fired when the shutdown grace period is over: what is left is cut.
    pub stop: CancellationToken,
    /// Whether the listener is accepting.
    pub accepting: AtomicBool,
}

/// Serves `listener` until `shutdown` resolves, then drains gracefully.
pub async fn run<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    server: &ServerConfig,
    lifecycle: &Lifecycle,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let tls = server
        .tls
        .as_ref()
        .map(|tls| TlsAcceptor::from(tls.server_config.clone()));
    let protocols = Arc::new(Protocols::new(server));
    let trusted = Arc::new(server.trusted_proxies.clone());
    let grace = server.shutdown_grace;
    let cancel = CancellationToken::new();
    let connections = TaskTracker::new();
    let workers = Workers::start(workers::count(server.worker_threads))?;
    let mut admission = Admission::new(server.max_connections, server.max_connections_per_ip);
    lifecycle.tunnels.set_limits(TunnelLimits {
        idle: server.tunnel_idle_timeout,
        lifetime: server.tunnel_max_lifetime,
    });

    let addr = listener.local_addr()?;
    lifecycle.accepting.store(true, Ordering::Release);
    tracing::info!(%addr, tls = tls.is_some(), "gateway ready");

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let trusted = headers::is_trusted(peer.ip(), &trusted);
                    // Over a cap: closed at once, before any byte is read,
                    // and without a task (counted and logged by `admit`).
                    let Ok(slot) = admission.admit(peer.ip(), trusted) else {
                        drop(tcp);
                        continue;
                    };
                    // Handed over as a plain socket and registered again on
                    // the worker that serves it, so its readiness events
                    // reach that worker's event loop directly rather than
                    // through this one.
                    let tcp = match tcp.into_std() {
                        Ok(tcp) => tcp,
                        Err(e) => {
                            tracing::debug!(error = %e, "accepted connection lost before serving");
                            continue;
                        }
                    };
                    let (handler, protocols, tls, cancel) =
                        (handler.clone(), protocols.clone(), tls.clone(), cancel.clone());
                    workers.spawn(&connections, async move {
                        // Gives the connection's place back however it ends.
                        let _slot = slot;
                        let tcp = match TcpStream::from_std(tcp) {
                            Ok(tcp) => tcp,
                            Err(e) => {
                                tracing::debug!(error = %e, "accepted connection lost before serving");
                                return;
                            }
                        };
                        // Past the grace period, dropping `workers` drops
                        // their runtimes and this task with them.
                        serve_connection(handler, protocols, tls, tcp, peer, trusted, cancel).await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }

    tracing::info!(grace = ?grace, "shutting down: no new connections, draining in-flight requests");
    drop(listener);
    lifecycle.accepting.store(false, Ordering::Release);
    cancel.cancel();
    connections.close();
    lifecycle.tunnels.close();
    let drained = tokio::time::timeout(grace, async {
        connections.wait().await;
        lifecycle.tunnels.wait().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("drained, bye"),
        Err(_) => tracing::warn!(
            open_connections = connections.len(),
            open_tunnels = lifecycle.tunnels.len(),
            "grace period over, closing what is left"
        ),
    }
    // Cut whatever outlived the grace period, so that an embedding program's
    // runtime is left with no gateway tasks: `stop` ends the tunnels, and the
    // workers' runtimes go with every connection task still on them.
    lifecycle.stop.cancel();
    drop(workers);
    Ok(())
}

/// hyper's per-protocol connection builders, configured once.
struct Protocols {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    http2: bool,
    limits: Limits,
}

impl Protocols {
    fn new(server: &ServerConfig) -> Protocols {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .keep_alive(true)
            .writev(false)
            // Our own watchdog separates the header timeout from the idle timeout.
            .header_read_timeout(None)
            .max_buf_size(server.max_header_bytes.max(8192));
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(server.max_header_bytes as u32)
            .max_concurrent_streams(server.http2_max_concurrent_streams)
            .max_send_buf_size(server.http2_max_send_buf_size);
        Protocols {
            h1,
            h2,
            http2: server.http2,
            limits: Limits {
                header: server.header_read_timeout,
                idle: server.idle_timeout,
                release: server.idle_release_after,
            },
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits for the client's first bytes (no HTTP state exists before them) and
/// tells HTTP/2 prior knowledge from HTTP/1.
async fn sniff_h2(tcp: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // Only part of the preface so far; `peek` would answer at once with
        // the same bytes, so wait a moment for the rest (bounded by the caller).
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn serve_connection<H: Handler>(
    handler: Arc<H>,
    protocols: Arc<Protocols>,
    tls: Option<TlsAcceptor>,
    tcp: TcpStream,
    peer: SocketAddr,
    trusted: bool,
    cancel: CancellationToken,
) {
    let _open = OpenConnection::new();
    // Small responses must not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let info = Arc::new(ConnInfo {
        trusted,
        proto: if tls.is_some() { "https" } else { "http" },
        handler,
        peer,
        peer_value: headers::peer_value(peer.ip()),
        activity: Arc::new(Activity::new()),
    });
    let header_timeout = protocols.limits.header;
    let Some(acceptor) = tls else {
        let sniffed = tokio::select! {
            () = cancel.cancelled() => return,
            sniffed = tokio::time::timeout(header_timeout, async {
                if protocols.http2 { sniff_h2(&tcp).await } else { tcp.readable().await.map(|()| false) }
            }) => sniffed,
        };
        match sniffed {
            // Boxed: the HTTP/2 state is large, and keeping it out of this
            // task keeps every idle HTTP/1 connection small.
            Ok(Ok(true)) => Box::pin(serve_h2(tcp, info, &protocols, &cancel)).await,
            Ok(Ok(false)) => serve_h1(tcp, info, &protocols, &cancel).await,
            Ok(Err(_)) => {}
            Err(_) => tracing::debug!(%peer, "nothing received in time, closing"),
        }
        return;
    };
    // Boxed for the same reason: TLS state is large.
    Box::pin(async move {
        let handshake = tokio::time::timeout(header_timeout, acceptor.accept(tcp));
        match handshake.await {
            Ok(Ok(stream)) => {
                if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    serve_h2(stream, info, &protocols, &cancel).await;
                } else {
                    serve_h1(stream, info, &protocols, &cancel).await;
                }
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    })
    .await;
}

/// HTTP/1.1 with keep-alive, upgrades, and parking while idle.
async fn serve_h1<S: Parkable, H: Handler>(
    mut stream: S,
    info: Arc<ConnInfo<H>>,
    protocols: &Protocols,
    cancel: &CancellationToken,
) {
    let limits = protocols.limits;
    let activity = info.activity.clone();
    let peer = info.peer;
    let mut replay = Bytes::new();
    let watchdog = tokio::time::sleep(limits.header);
    tokio::pin!(watchdog);
    // Registered once: a fresh `cancelled()` per loop pass would lock the
    // token's waiter list on every request.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        // Active: hyper owns the stream and its buffers.
        let io = TokioIo::new(Tracked::new(stream, activity.clone(), replay));
        let service_info = info.clone();
        let service = hyper::service::service_fn(move |req| H::handle(service_info.clone(), req));
        let mut conn = Box::pin(protocols.h1.serve_connection(io, service).with_upgrades());
        let mut closing = false;
        // Polled again on entry: the parked loop below may have left the
        // watchdog reset after it fired, with no waker registered.
        let (mut cancel_armed, mut watchdog_armed) = (false, false);
        let ended = loop {
            tokio::select! {
                // Order matters: a response finishing inside `conn`'s poll sets
                // the recheck flag that the next branch reads in the same pass.
                biased;
                result = conn.as_mut() => break result,
                // A request finished: let the watchdog compute its new deadline.
                // A timer already due within the release period needs no change
                // (the common case under load: no timer work per request).
                () = std::future::poll_fn(|_| recheck_ready(&activity)) => {
                    let soon = tokio::time::Instant::now() + limits.release.min(limits.idle);
                    if watchdog.deadline() > soon {
                        watchdog.as_mut().reset(soon);
                        // It may have fired unseen (and so lost its waker).
                        watchdog_armed = false;
                    }
                }
                () = std::future::poll_fn(|cx| {
                    poll_gated(cancelled.as_mut(), &mut cancel_armed, cancel.is_cancelled(), cx)
                }), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = std::future::poll_fn(|cx| {
                    let fired = watchdog.is_elapsed();
                    poll_gated(watchdog.as_mut(), &mut watchdog_armed, fired, cx)
                }) => {
                    let now = tokio::time::Instant::now();
                    match activity.check(now, limits, !closing) {
                        Verdict::HeaderTimeout => {
                            tracing::debug!(%peer, "request head not received in time, closing");
                            return;
                        }
                        Verdict::Idle if closing => return,
                        Verdict::Idle => {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                            watchdog.as_mut().reset(now + limits.header);
                        }
                        // hyper reads an end-of-file at its next poll and finishes.
                        Verdict::Park => watchdog.as_mut().reset(now + limits.header),
                        Verdict::WaitUntil(at) => watchdog.as_mut().reset(at),
                    }
                }
            }
        };
        if let Err(e) = ended {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
            return;
        }
        // `None`: the connection was upgraded and now belongs to its tunnel.
        let Some(parts) = Pin::into_inner(conn).into_parts() else {
            return;
        };
        let tracked = parts.io.into_inner();
        if !tracked.parked() || closing {
            return;
        }
        // Keep only the unread bytes, if any: anything still referring to
        // hyper's buffer (even an empty slice of it) would pin the whole buffer.
        replay = match parts.read_buf.is_empty() {
            true => Bytes::new(),
            false => Bytes::copy_from_slice(&parts.read_buf),
        };
        drop(parts.read_buf);
        drop(parts.service);
        stream = tracked.into_inner();

        // Parked: only the socket is kept until the client speaks again.
        let _parked = Parked::new();
        loop {
            tokio::select! {
                ready = std::future::poll_fn(|cx| stream.poll_readable(cx)) => {
                    if ready.is_err() {
                        return;
                    }
                    break;
                }
                () = &mut cancelled => return,
                () = &mut watchdog => {
                    match activity.check(tokio::time::Instant::now(), limits, false) {
                        Verdict::WaitUntil(at) => watchdog.as_mut().reset(at),
                        _ => return,
                    }
                }
            }
        }
    }
}

/// Polls `fut`, a cancellation or a timer that a `select!` loop would
/// otherwise poll at every wake-up of the connection's task (several per
/// request under load), only when it may have fired: the first time, which
/// registers the task's waker (valid for the task's whole life), and then
/// only once `fired` (the token's or timer's own cheap check) says so. A
/// token's future locks its waiter list and a timer re-registers its waker
/// at every poll. A fired timer has given up its waker, so after a `Ready`
/// the next poll registers it again.
fn poll_gated<F: Future<Output = ()>>(
    fut: Pin<&mut F>,
    armed: &mut bool,
    fired: bool,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<()> {
    if *armed && !fired {
        return std::task::Poll::Pending;
    }
    *armed = true;
    let poll = fut.poll(cx);
    if poll.is_ready() {
        *armed = false;
    }
    poll
}

/// Ready once after each finished request. No waker is registered: the flag is
/// only ever set while the connection future is being polled by this task.
fn recheck_ready(activity: &Activity) -> std::task::Poll<()> {
    if activity.take_recheck() {
        std::task::Poll::Ready(())
    } else {
        std::task::Poll::Pending
    }
}

/// HTTP/2 (h2c prior knowledge or ALPN `h2`): only the idle timeout applies.
async fn serve_h2<S: Parkable, H: Handler>(
    stream: S,
    info: Arc<ConnInfo<H>>,
    protocols: &Protocols,
    cancel: &CancellationToken,
) {
    let limits = protocols.limits;
    let activity = info.activity.clone();
    activity.set_multiplexed();
    let peer = info.peer;
    let io = TokioIo::new(Tracked::new(stream, activity.clone(), Bytes::new()));
    let service = hyper::service::service_fn(move |req| H::handle(info.clone(), req));
    let conn = protocols.h2.serve_connection(io, service);
    tokio::pin!(conn);
    let watchdog = tokio::time::sleep(limits.idle);
    tokio::pin!(watchdog);
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let (mut cancel_armed, mut watchdog_armed) = (false, false);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "HTTP/2 connection ended with an error");
                }
                return;
            }
            () = std::future::poll_fn(|cx| {
                poll_gated(cancelled.as_mut(), &mut cancel_armed, cancel.is_cancelled(), cx)
            }), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = std::future::poll_fn(|cx| {
                let fired = watchdog.is_elapsed();
                poll_gated(watchdog.as_mut(), &mut watchdog_armed, fired, cx)
            }) => {
                let now = tokio::time::Instant::now();
                match activity.check(now, limits, false) {
                    Verdict::WaitUntil(at) => watchdog.as_mut().reset(at),
                    _ if closing => return,
                    _ => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        watchdog.as_mut().reset(now + limits.header);
                    }
                }
            }
        }
    }
}

/// Keeps the parked-connections gauge right, however parking ends.
struct Parked;

impl Parked {
    fn new() -> Parked {
        metrics::connections().parked.increment(1.0);
        Parked
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        metrics::connections().parked.decrement(1.0);
    }
}

/// Keeps the open-connections gauge right, however the task ends.
struct OpenConnection;

impl OpenConnection {
    fn new() -> OpenConnection {
        let handles = metrics::connections();
        handles.open.increment(1.0);
        handles.accepted.increment(1);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::connections().open.decrement(1.0);
    }
}
