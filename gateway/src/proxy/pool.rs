//! The upstream connection pool: keep-alive HTTP/1.1 connections to each
//! upstream.
//!
//! Input: a request for one upstream (by its slot). Output: the upstream's
//! response plus a [`Lease`] on the connection, which returns the connection
//! to the pool once the response body has been read to its end (the response
//! [`Body`](super::body::Body) holds the lease). Failure: connect refused or
//! reset → [`UpstreamError::Unreachable`]; connect or response head too slow
//! → [`UpstreamError::Timeout`].
//!
//! Idle connections wait in a bounded lock-free queue per upstream (a few
//! atomic operations to check one out or in, no lock, no hashing), oldest
//! first: the connection idle longest is the one most surely ready for its
//! next request. A connection found closed or idle too long is dropped; one the upstream closed just as the request went out hands the
//! request back unsent (hyper's `try_send_request`), and the request goes out
//! on another connection instead, so a race with an upstream's idle timeout
//! never fails a request.
//!
//! Each connection keeps its own response timer: moving a registered timer's
//! deadline later is one atomic operation, where a timer per request is a
//! registration with the runtime's timer wheel and a removal.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use http::uri::{Authority, Scheme};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::error::UpstreamError;
use super::request_body::RequestBody;

struct IdleConn {
    sender: SendRequest<RequestBody>,
    timer: Pin<Box<Sleep>>,
    since: Instant,
}

/// One upstream's connection settings.
pub struct Upstream {
    /// One idle queue per worker thread (plus one for other threads), so a
    /// connection is only ever used by the worker whose event loop drives it.
    idle: Arc<[ArrayQueue<IdleConn>]>,
    scheme: Scheme,
    authority: Authority,
    settings: Arc<Settings>,
}

/// Pool-wide settings from `[upstream]`.
pub struct Settings {
    /// Time allowed to connect (and complete TLS).
    pub connect_timeout: Duration,
    /// Idle connections older than this are not reused.
    pub idle_timeout: Duration,
    /// Idle connections kept per upstream and worker thread.
    pub max_idle: usize,
    /// Idle queues per upstream: the worker threads plus one.
    pub slots: usize,
    /// TLS for `https` upstreams (web PKI roots).
    pub tls: tokio_rustls::TlsConnector,
}

impl Settings {
    /// Settings with a TLS client that trusts the web PKI roots.
    pub fn new(
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
        workers: usize,
    ) -> Settings {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .map(|mut config| {
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(config)
            });
        let tls = match tls {
            Ok(config) => config,
            // The default provider always supports the safe default versions.
            Err(_) => Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            ),
        };
        Settings {
            connect_timeout,
            idle_timeout,
            max_idle,
            slots: workers + 1,
            tls: tokio_rustls::TlsConnector::from(tls),
        }
    }
}

/// A connection lent to one request; see [`Lease::release`].
pub struct Lease {
    idle: Arc<[ArrayQueue<IdleConn>]>,
    slot: usize,
    sender: SendRequest<RequestBody>,
    timer: Pin<Box<Sleep>>,
}

impl Lease {
    /// Returns the connection to the idle queue: call only once the response
    /// body has been read to its end, so the connection is free. A full queue
    /// drops (closes) the connection.
    pub fn release(self) {
        if !self.sender.is_closed() {
            let _ = self.idle[self.slot].push(IdleConn {
                sender: self.sender,
                timer: self.timer,
                since: Instant::now(),
            });
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Upstream {
    /// An upstream at `scheme://authority`.
    pub fn new(scheme: Scheme, authority: Authority, settings: Arc<Settings>) -> Upstream {
        Upstream {
            idle: (0..settings.slots.max(1))
                .map(|_| ArrayQueue::new(settings.max_idle.max(1)))
                .collect(),
            scheme,
            authority,
            settings,
        }
    }

    /// Sends `req` on an idle connection, or on a new one, and waits for
    /// the response head, all within `timeout`.
    pub async fn send(
        &self,
        mut req: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, Lease), UpstreamError> {
        const TIMED_OUT: UpstreamError = UpstreamError::Timeout("no response head in time");
        let deadline = tokio::time::Instant::now() + timeout;
        while let Some(IdleConn {
            mut sender,
            mut timer,
            ..
        }) = self.take_idle()
        {
            timer.as_mut().reset(deadline);
            let ready = tokio::select! {
                biased;
                ready = sender.ready() => ready.is_ok(),
                () = timer.as_mut() => return Err(TIMED_OUT),
            };
            if !ready {
                continue;
            }
            let sent = tokio::select! {
                biased;
                sent = sender.try_send_request(req) => sent,
                () = timer.as_mut() => return Err(TIMED_OUT),
            };
            match sent {
                Ok(response) => return Ok((response, self.lease(sender, timer))),
                Err(mut e) => match e.take_message() {
                    // Not sent: the connection was closing. Try the next one.
                    Some(unsent) => req = unsent,
                    None => return Err(UpstreamError::Unreachable(Box::new(e.into_error()))),
                },
            }
        }
        // Boxed: a new connection is the rare path, and its future (TCP,
        // TLS, handshake) is several kB that every request's future would
        // otherwise carry and copy.
        let mut timer = Box::pin(tokio::time::sleep_until(deadline));
        let mut sender = tokio::select! {
            biased;
            connected = Box::pin(self.connect()) => connected?,
            () = timer.as_mut() => return Err(TIMED_OUT),
        };
        let response = tokio::select! {
            biased;
            sent = sender.send_request(req) => sent.map_err(|e| UpstreamError::Unreachable(Box::new(e)))?,
            () = timer.as_mut() => return Err(TIMED_OUT),
        };
        Ok((response, self.lease(sender, timer)))
    }

    fn lease(&self, sender: SendRequest<RequestBody>, timer: Pin<Box<Sleep>>) -> Lease {
        Lease {
            idle: self.idle.clone(),
            slot: self.slot(),
            sender,
            timer,
        }
    }

    /// The calling worker's idle queue.
    fn slot(&self) -> usize {
        super::workers::current().min(self.idle.len() - 1)
    }

    /// The oldest idle connection that is still usable.
    fn take_idle(&self) -> Option<IdleConn> {
        while let Some(conn) = self.idle[self.slot()].pop() {
            if !conn.sender.is_closed() && conn.since.elapsed() < self.settings.idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, UpstreamError> {
        let timeout = self.settings.connect_timeout;
        let connecting = async {
            let tcp = TcpStream::connect(self.authority.as_str()).await?;
            // Small requests must not wait for Nagle.
            tcp.set_nodelay(true)?;
            if self.scheme == Scheme::HTTPS {
                let name = ServerName::try_from(self.authority.host().to_owned())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let tls = self.settings.tls.connect(name, tcp).await?;
                handshake(tls).await
            } else {
                handshake(tcp).await
            }
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(sender)) => Ok(sender),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err(UpstreamError::Timeout("connect timed out"))
            }
            Ok(Err(e)) => Err(UpstreamError::Unreachable(Box::new(e))),
            Err(_) => Err(UpstreamError::Timeout("connect timed out")),
        }
    }
}

/// HTTP/1.1 handshake; the connection runs in its own task (with upgrades,
/// for WebSocket tunnels) until the upstream or the pool lets go of it.
async fn handshake<T>(io: T) -> std::io::Result<SendRequest<RequestBody>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(io))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}
