//! Listening and connection handling: accept, TLS, HTTP/1.1 + HTTP/2 on one
//! port, timeouts, graceful shutdown.
//!
//! Input: bound listeners and a validated [`Config`]. Output: runs until the
//! `shutdown` future resolves, then stops accepting, asks every connection to
//! finish its in-flight requests, waits up to `server.shutdown_grace`, and
//! returns. Failure: only set-up errors are returned; per-connection errors are
//! logged at debug level (clients hang up all the time).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::connection::{Activity, Tracked, Verdict};
use crate::pipeline::{self, ConnInfo, Gateway};
use crate::{admin, metrics, proxy_headers};

/// The sockets the gateway serves on, bound before [`serve`] is called so
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

/// Serves until `shutdown` resolves, then drains gracefully.
pub async fn serve(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let prometheus = metrics::install();
    let tls = config.server.tls.as_ref().map(|tls| {
        let mut server_config = (*tls.server_config).clone();
        if !config.server.http2 {
            server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        TlsAcceptor::from(Arc::new(server_config))
    });
    let builder = Arc::new(connection_builder(&config));
    let grace = config.server.shutdown_grace;
    let gateway = Arc::new(Gateway::new(config));
    let cancel = CancellationToken::new();
    let connections = TaskTracker::new();

    if let Some(admin_listener) = listeners.admin {
        let addr = admin_listener.local_addr()?;
        tokio::spawn(admin::serve(
            admin_listener,
            gateway.clone(),
            prometheus.clone(),
            cancel.clone(),
        ));
        tracing::info!(%addr, "admin listening (/healthz, /readyz, /metrics)");
    }
    tokio::spawn(metrics_upkeep(prometheus, cancel.clone()));

    let listener = listeners.proxy;
    let addr = listener.local_addr()?;
    gateway.ready.store(true, Ordering::Release);
    tracing::info!(
        %addr,
        tls = tls.is_some(),
        apps = gateway.config.apps.len(),
        "gateway ready"
    );

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(serve_connection(
                        gateway.clone(),
                        builder.clone(),
                        tls.clone(),
                        tcp,
                        peer,
                        cancel.clone(),
                    ));
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
    gateway.ready.store(false, Ordering::Release);
    cancel.cancel();
    connections.close();
    gateway.tunnels.close();
    let drained = tokio::time::timeout(grace, async {
        connections.wait().await;
        gateway.tunnels.wait().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("drained, bye"),
        Err(_) => tracing::warn!(
            open_connections = connections.len(),
            open_tunnels = gateway.tunnels.len(),
            "grace period over, closing what is left"
        ),
    }
    Ok(())
}

fn connection_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // Our own watchdog separates the header timeout from the idle timeout.
        .header_read_timeout(None)
        .max_buf_size(config.server.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(config.server.max_header_bytes as u32)
        .max_concurrent_streams(256);
    if config.server.http2 {
        builder
    } else {
        builder.http1_only()
    }
}

async fn serve_connection(
    gateway: Arc<Gateway>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<TlsAcceptor>,
    tcp: TcpStream,
    peer: SocketAddr,
    cancel: CancellationToken,
) {
    let _open = OpenConnection::new();
    // Small responses must not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let info = Arc::new(ConnInfo {
        trusted: proxy_headers::is_trusted(peer.ip(), &gateway.config.server.trusted_proxies),
        proto: if tls.is_some() { "https" } else { "http" },
        gateway,
        peer,
        activity: activity.clone(),
    });
    match tls {
        None => {
            drive(
                TokioIo::new(Tracked::new(tcp, activity)),
                info,
                &builder,
                &cancel,
            )
            .await
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(
                info.gateway.config.server.header_read_timeout,
                acceptor.accept(tcp),
            );
            match handshake.await {
                Ok(Ok(stream)) => {
                    drive(
                        TokioIo::new(Tracked::new(stream, activity)),
                        info,
                        &builder,
                        &cancel,
                    )
                    .await
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Runs hyper on one connection under the watchdog of [`Activity`].
async fn drive<I>(
    io: I,
    info: Arc<ConnInfo>,
    builder: &auto::Builder<TokioExecutor>,
    cancel: &CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let server = &info.gateway.config.server;
    let (header_timeout, idle_timeout) = (server.header_read_timeout, server.idle_timeout);
    let activity = info.activity.clone();
    let peer = info.peer;
    let service = hyper::service::service_fn(move |req| pipeline::handle(info.clone(), req));
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let watchdog = tokio::time::sleep(header_timeout);
    tokio::pin!(watchdog);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = cancel.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = &mut watchdog => {
                match activity.check(tokio::time::Instant::now(), header_timeout, idle_timeout) {
                    Verdict::HeaderTimeout => {
                        tracing::debug!(%peer, "request head not received in time, closing");
                        return;
                    }
                    Verdict::Idle if closing => return,
                    Verdict::Idle => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        watchdog.as_mut().reset(tokio::time::Instant::now() + header_timeout);
                    }
                    Verdict::WaitUntil(at) => watchdog.as_mut().reset(at),
                }
            }
        }
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

/// Histograms accumulate samples until drained; drain them regularly even if
/// nobody scrapes.
async fn metrics_upkeep(
    handle: metrics_exporter_prometheus::PrometheusHandle,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
