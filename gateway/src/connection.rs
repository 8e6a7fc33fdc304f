//! Per-connection timing: the header read timeout and the idle keep-alive timeout.
//!
//! hyper's own HTTP/1 header timer also runs while a keep-alive connection is
//! idle, which would make the idle timeout and the header timeout one number.
//! Here they are two: [`Tracked`] wraps the client socket and notes when bytes
//! arrive; the service notes when a request head is complete and when its
//! response is ready. A watchdog in the connection task then decides:
//!
//! - bytes of a new request head arrived `header_read_timeout` ago and the head
//!   is still incomplete → close (slow-loris defence);
//! - no request in flight and no traffic for `idle_timeout` → graceful close.
//!
//! Times are milliseconds since the connection's start, kept in atomics: the
//! socket wrapper and the request service run on the same task, but the service
//! future must be `Send`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

const NONE: u64 = u64::MAX;

/// What the watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing yet; look again at this instant.
    WaitUntil(Instant),
    /// A request head has been arriving for too long: drop the connection.
    HeaderTimeout,
    /// Idle for too long: close gracefully.
    Idle,
}

/// Shared timing state of one client connection.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    last_io: AtomicU64,
    head_started: AtomicU64,
    in_flight: AtomicU32,
    multiplexed: AtomicBool,
}

impl Activity {
    /// State for a connection accepted now.
    pub fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            last_io: AtomicU64::new(0),
            // The first request's head is due from the moment of accept.
            head_started: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            multiplexed: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 && !self.multiplexed.load(Ordering::Relaxed)
        {
            let _ =
                self.head_started
                    .compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request head is complete and its handling begins; the guard marks its end.
    pub fn begin_request(&self, version: http::Version) -> InFlight<'_> {
        if version == http::Version::HTTP_2 {
            // HTTP/2 frames (pings, window updates) flow between requests;
            // h2 bounds header blocks itself.
            self.multiplexed.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
        InFlight(self)
    }

    /// Decides what to do at `now` given the two timeouts.
    pub fn check(&self, now: Instant, header_timeout: Duration, idle_timeout: Duration) -> Verdict {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let header_ms = header_timeout.as_millis() as u64;
        let idle_ms = idle_timeout.as_millis() as u64;
        let head = self.head_started.load(Ordering::Relaxed);
        if head != NONE && !self.multiplexed.load(Ordering::Relaxed) {
            if now_ms.saturating_sub(head) >= header_ms {
                return Verdict::HeaderTimeout;
            }
            return Verdict::WaitUntil(self.epoch + Duration::from_millis(head + header_ms));
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::WaitUntil(now + idle_timeout);
        }
        let last = self.last_io.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= idle_ms {
            return Verdict::Idle;
        }
        Verdict::WaitUntil(self.epoch + Duration::from_millis(last + idle_ms))
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// Marks the end of a request's handling when dropped (also on cancellation).
pub struct InFlight<'a>(&'a Activity);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.on_write();
    }
}

/// A client socket that reports reads and writes to its [`Activity`].
pub struct Tracked<T> {
    inner: T,
    activity: std::sync::Arc<Activity>,
}

impl<T> Tracked<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: std::sync::Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn new_connection_must_send_a_head_in_time() {
        let a = Activity::new();
        let start = Instant::now();
        assert_eq!(a.check(start, HEAD, IDLE), Verdict::WaitUntil(start + HEAD));
        tokio::time::advance(HEAD).await;
        assert_eq!(a.check(Instant::now(), HEAD, IDLE), Verdict::HeaderTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_a_request_uses_the_idle_timeout() {
        let a = Activity::new();
        drop(a.begin_request(http::Version::HTTP_11));
        let t = Instant::now();
        assert_eq!(a.check(t, HEAD, IDLE), Verdict::WaitUntil(t + IDLE));
        tokio::time::advance(HEAD + Duration::from_secs(1)).await;
        assert!(matches!(
            a.check(Instant::now(), HEAD, IDLE),
            Verdict::WaitUntil(_)
        ));
        tokio::time::advance(IDLE).await;
        assert_eq!(a.check(Instant::now(), HEAD, IDLE), Verdict::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_idle() {
        let a = Activity::new();
        let guard = a.begin_request(http::Version::HTTP_11);
        tokio::time::advance(IDLE * 2).await;
        assert!(matches!(
            a.check(Instant::now(), HEAD, IDLE),
            Verdict::WaitUntil(_)
        ));
        drop(guard);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_of_the_next_head_start_the_header_timer() {
        let a = Activity::new();
        drop(a.begin_request(http::Version::HTTP_11));
        tokio::time::advance(Duration::from_secs(5)).await;
        a.on_read();
        tokio::time::advance(HEAD).await;
        assert_eq!(a.check(Instant::now(), HEAD, IDLE), Verdict::HeaderTimeout);
    }
}
