//! Upgraded tunnels (WebSocket and any other HTTP/1.1 `Upgrade`): once both
//! sides have switched protocols, bytes are copied both ways, within limits.
//!
//! Input: the client's and the upstream's pending upgrades. Output: a task,
//! tracked for graceful shutdown, that copies until one of these ends it
//! (the `reason` label of `gateway_tunnels_closed_total`):
//!
//! - `closed`: both sides have finished (either side's close is passed on);
//! - `error`: reading or writing either side failed;
//! - `idle`: no byte either way for `server.tunnel_idle_timeout`;
//! - `lifetime`: `server.tunnel_max_lifetime` since the upgrade;
//! - `revoked`: the request's handler fired the tunnel's [`Cut`] (the
//!   gateway does so when the session it was opened with is revoked);
//! - `shutdown`: the end of the shutdown grace period.
//!
//! Then both connections are closed. The gateway knows nothing of the
//! protocol inside, so a WebSocket cut for `idle`, `lifetime` or `revoked`
//! gets no close frame: its peers see the connection end (close code 1006).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cut::Cut;
use crate::ops::metrics;

/// How long a tunnel may stay quiet, and live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelLimits {
    /// No byte either way for this long closes the tunnel.
    pub idle: Duration,
    /// The tunnel is closed this long after the upgrade, busy or not.
    pub lifetime: Duration,
}

/// The open tunnels: tracked for graceful shutdown, and the limits they
/// run with.
#[derive(Debug, Default)]
pub struct Tunnels {
    tracker: TaskTracker,
    limits: OnceLock<TunnelLimits>,
}

impl Tunnels {
    /// Sets the limits of the tunnels opened from now on; the server does
    /// this once, from `[server]`, before it accepts. Until then tunnels run
    /// without time limits. Later calls change nothing.
    pub fn set_limits(&self, limits: TunnelLimits) {
        let _ = self.limits.set(limits);
    }

    /// Starts the tunnel between `client` and `upstream` once both upgrades
    /// complete; `stop` cuts it (the end of the shutdown grace period), and
    /// so does `cut` when its handler fires it. The tunnel holds `cut` until
    /// it ends.
    pub fn spawn(
        &self,
        client: OnUpgrade,
        upstream: OnUpgrade,
        stop: CancellationToken,
        cut: Option<Cut>,
    ) {
        let limits = self.limits.get().copied();
        self.tracker
            .spawn(tunnel(client, upstream, limits, stop, cut));
    }

    /// Accepts no new tunnels (shutdown has begun).
    pub fn close(&self) {
        self.tracker.close();
    }

    /// Resolves once closed and every tunnel has ended.
    pub async fn wait(&self) {
        self.tracker.wait().await;
    }

    /// Tunnels still open.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether no tunnel is open.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    Error,
    Idle,
    Lifetime,
    Revoked,
    Shutdown,
}

async fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    limits: Option<TunnelLimits>,
    stop: CancellationToken,
    mut cut: Option<Cut>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let handles = metrics::connections();
    handles.tunnels.increment(1.0);
    let activity = Arc::new(LastRead::new());
    let mut client = Watched::new(TokioIo::new(client), activity.clone());
    let mut upstream = Watched::new(TokioIo::new(upstream), activity.clone());
    let end = tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
            Ok((up, down)) => {
                tracing::debug!(bytes_up = up, bytes_down = down, "tunnel closed");
                End::Closed
            }
            Err(e) => {
                tracing::debug!(error = %e, "tunnel ended with an error");
                End::Error
            }
        },
        () = quiet_for(&activity, limits.map(|l| l.idle)) => End::Idle,
        () = expiry(limits.map(|l| l.lifetime)) => End::Lifetime,
        () = fired(cut.as_mut()) => End::Revoked,
        () = stop.cancelled() => End::Shutdown,
    };
    match end {
        End::Idle => tracing::debug!("tunnel closed: idle for server.tunnel_idle_timeout"),
        End::Lifetime => tracing::debug!("tunnel closed: server.tunnel_max_lifetime reached"),
        End::Revoked => tracing::debug!("tunnel cut by its handler"),
        End::Shutdown => tracing::debug!("tunnel cut at the end of the shutdown grace period"),
        End::Closed | End::Error => {}
    }
    // Counted before the sockets close, so whoever sees the close sees the count.
    let closes = &handles.tunnels_closed;
    match end {
        End::Closed => &closes.closed,
        End::Error => &closes.error,
        End::Idle => &closes.idle,
        End::Lifetime => &closes.lifetime,
        End::Revoked => &closes.revoked,
        End::Shutdown => &closes.shutdown,
    }
    .increment(1);
    handles.tunnels.decrement(1.0);
    drop((client, upstream));
    // The cut last: whoever holds its other end sees the tunnel gone only
    // once it is.
    drop(cut);
}

/// Resolves once nothing has been read from either side for `idle`
/// (never without a limit).
async fn quiet_for(activity: &LastRead, idle: Option<Duration>) {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::time::sleep_until(deadline).await;
        let next = activity.at() + idle;
        if next <= Instant::now() {
            return;
        }
        deadline = next;
    }
}

/// Resolves once `cut` fires (never without one).
async fn fired(cut: Option<&mut Cut>) {
    match cut {
        Some(cut) => cut.fired().await,
        None => std::future::pending().await,
    }
}

/// Resolves after `lifetime` (never without a limit).
async fn expiry(lifetime: Option<Duration>) {
    match lifetime {
        Some(lifetime) => tokio::time::sleep(lifetime).await,
        None => std::future::pending().await,
    }
}

/// When a tunnel last read a byte from either side, in milliseconds since
/// it opened. Both sides are polled by the tunnel's one task; the atomic only
/// keeps the task `Send`.
#[derive(Debug)]
struct LastRead {
    start: Instant,
    ms: AtomicU64,
}

impl LastRead {
    fn new() -> LastRead {
        LastRead {
            start: Instant::now(),
            ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = Instant::now()
            .saturating_duration_since(self.start)
            .as_millis() as u64;
        self.ms.store(ms, Ordering::Relaxed);
    }

    fn at(&self) -> Instant {
        self.start + Duration::from_millis(self.ms.load(Ordering::Relaxed))
    }
}

/// One side of a tunnel, noting every read that brings bytes. Every byte
/// written was read from the other side first, so reads are all the
/// activity there is.
struct Watched<T> {
    inner: T,
    activity: Arc<LastRead>,
}

impl<T> Watched<T> {
    fn new(inner: T, activity: Arc<LastRead>) -> Watched<T> {
        Watched { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn quiet_for_waits_for_a_full_idle_period_after_the_last_read() {
        let activity = LastRead::new();
        let idle = Duration::from_secs(10);
        let started = Instant::now();
        let watch = quiet_for(&activity, Some(idle));
        tokio::pin!(watch);
        // Reads at 6 s and 12 s push the end to 22 s.
        for at in [6, 12] {
            tokio::select! {
                () = &mut watch => panic!("closed while active"),
                () = tokio::time::sleep_until(started + Duration::from_secs(at)) => activity.touch(),
            }
        }
        watch.await;
        assert_eq!(Instant::now() - started, Duration::from_secs(22));
    }
}
