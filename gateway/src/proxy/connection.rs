//! Per-connection timing and memory: the header read timeout, the idle
//! keep-alive timeout, and releasing an idle HTTP/1 connection's buffers.
//!
//! hyper's own HTTP/1 header timer also runs while a keep-alive connection is
//! idle, which would make the idle timeout and the header timeout one number.
//! Here they are two: [`Tracked`] wraps the client stream and notes when bytes
//! arrive; the service marks a request in flight from its complete head until
//! its response body has been written. A watchdog in the connection task then
//! decides ([`Activity::check`]):
//!
//! - bytes of a new request head arrived `header_read_timeout` ago and the head
//!   is still incomplete → close (slow-loris defence);
//! - no request in flight and no traffic for `idle_timeout` → graceful close;
//! - no request in flight and no traffic for `idle_release_after` → **park**.
//!
//! Parking exists because hyper keeps about 24 KiB of buffers per HTTP/1
//! connection for as long as the connection lives. A parked connection gives
//! hyper an end-of-file on its next read (only when the socket has nothing to
//! read, nothing is in flight and hyper's last write went out whole), hyper
//! finishes cleanly without shutting the socket, and the task keeps just the
//! socket until the client speaks again; then a fresh hyper connection takes
//! over. Nothing the client sent is lost: hyper hands back any bytes it had
//! buffered and they are replayed first.
//!
//! Times are milliseconds since the connection's start, kept in atomics: the
//! stream wrapper and the request service run on the same task, but the service
//! future must be `Send`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

const NONE: u64 = u64::MAX;

/// The three client-side time limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest time a request head may take.
    pub header: Duration,
    /// Longest quiet time of a keep-alive connection.
    pub idle: Duration,
    /// Quiet time after which an HTTP/1 connection's buffers are released.
    pub release: Duration,
}

/// What the watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing yet; look again at this instant.
    WaitUntil(Instant),
    /// A request head has been arriving for too long: drop the connection.
    HeaderTimeout,
    /// Quiet long enough to release the HTTP state; the socket stays open.
    Park,
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
    park_requested: AtomicBool,
    recheck: AtomicBool,
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
            park_requested: AtomicBool::new(false),
            recheck: AtomicBool::new(false),
        }
    }

    /// Whether a request ended since the last call: the watchdog's deadline
    /// must be recomputed (the release timer starts now).
    pub fn take_recheck(&self) -> bool {
        self.recheck.load(Ordering::Relaxed) && self.recheck.swap(false, Ordering::Relaxed)
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.ms(Instant::now());
        self.last_io.store(now, Ordering::Relaxed);
        // The client spoke: a pending park request is void.
        self.park_requested.store(false, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 && !self.multiplexed.load(Ordering::Relaxed)
        {
            let _ =
                self.head_started
                    .compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io
            .store(self.ms(Instant::now()), Ordering::Relaxed);
    }

    /// Marks this connection as HTTP/2: frames flow between requests and h2
    /// bounds header blocks itself, so only the idle timeout applies.
    pub fn set_multiplexed(&self) {
        self.multiplexed.store(true, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
    }

    /// A request head is complete and its handling begins; the mark ends it
    /// when dropped (hold it in the response body).
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn idle_and_quiet(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
    }

    /// Asks the HTTP/1 connection to park at its next idle read.
    fn request_park(&self) {
        self.park_requested.store(true, Ordering::Relaxed);
    }

    fn park_wanted(&self) -> bool {
        self.park_requested.load(Ordering::Relaxed) && self.idle_and_quiet()
    }

    /// Called when a parked connection becomes active again.
    fn unpark(&self) {
        self.park_requested.store(false, Ordering::Relaxed);
    }

    /// Decides what to do at `now`. `parkable` is false for HTTP/2 and for an
    /// already parked connection.
    pub fn check(&self, now: Instant, limits: Limits, parkable: bool) -> Verdict {
        let now_ms = self.ms(now);
        let head = self.head_started.load(Ordering::Relaxed);
        if head != NONE && !self.multiplexed.load(Ordering::Relaxed) {
            let header_ms = limits.header.as_millis() as u64;
            if now_ms.saturating_sub(head) >= header_ms {
                return Verdict::HeaderTimeout;
            }
            return Verdict::WaitUntil(self.epoch + Duration::from_millis(head + header_ms));
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Verdict::WaitUntil(now + limits.idle);
        }
        let last = self.last_io.load(Ordering::Relaxed);
        let quiet = now_ms.saturating_sub(last);
        if quiet >= limits.idle.as_millis() as u64 {
            return Verdict::Idle;
        }
        let mut next = last + limits.idle.as_millis() as u64;
        if parkable && !self.park_requested.load(Ordering::Relaxed) {
            let release_ms = limits.release.as_millis() as u64;
            if quiet >= release_ms {
                self.request_park();
                return Verdict::Park;
            }
            next = next.min(last + release_ms);
        }
        Verdict::WaitUntil(self.epoch + Duration::from_millis(next))
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// Marks the end of a request's handling when dropped (also on cancellation).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.on_write();
        self.0.recheck.store(true, Ordering::Relaxed);
    }
}

/// A client stream whose readiness can be awaited without reading from it,
/// so a parked connection costs no buffer.
pub trait Parkable: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Resolves when the client has sent something (or closed).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Parkable for TcpStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
}

impl Parkable for tokio_rustls::server::TlsStream<TcpStream> {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Parking happens only when TLS had no plaintext left, so new data
        // can only arrive through the socket.
        self.get_ref().0.poll_read_ready(cx)
    }
}

/// A client stream that reports reads and writes to its [`Activity`] and can
/// hand hyper an end-of-file to park.
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
    /// Bytes hyper had read but not used when the connection was parked.
    replay: Bytes,
    /// hyper's last write did not go out whole: it still holds data.
    write_backlog: bool,
    parked: bool,
}

impl<T> Tracked<T> {
    /// Wraps `inner`; `replay` is served before reading from it.
    pub fn new(inner: T, activity: Arc<Activity>, replay: Bytes) -> Self {
        activity.unpark();
        Tracked {
            inner,
            activity,
            replay,
            write_backlog: false,
            parked: false,
        }
    }

    /// Whether the end of this stream was a park rather than the client leaving.
    pub fn parked(&self) -> bool {
        self.parked
    }

    /// The stream itself.
    pub fn into_inner(self) -> T {
        self.inner
    }

    fn wrote(&mut self, result: &Poll<io::Result<usize>>, offered: usize) {
        match result {
            Poll::Ready(Ok(n)) => {
                if *n > 0 {
                    self.activity.on_write();
                }
                self.write_backlog = *n < offered;
            }
            Poll::Pending => self.write_backlog = true,
            Poll::Ready(Err(_)) => {}
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            this.activity.on_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                if this.activity.park_wanted() && !this.write_backlog {
                    // End-of-file to hyper: it finishes this idle connection
                    // and hands the stream back (see the module docs).
                    this.parked = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            ready => {
                if buf.filled().len() > before {
                    this.activity.on_read();
                }
                ready
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&result, buf.len());
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let offered = bufs.iter().map(|b| b.len()).sum();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&result, offered);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.parked {
            // hyper closes a finished connection; a parked one stays open.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        release: Duration::from_secs(2),
    };

    fn at(a: &Activity, ms: u64) -> Instant {
        a.epoch + Duration::from_millis(ms)
    }

    #[tokio::test(start_paused = true)]
    async fn new_connection_must_send_a_head_in_time() {
        let a = Activity::new();
        assert_eq!(
            a.check(at(&a, 0), LIMITS, true),
            Verdict::WaitUntil(at(&a, 10_000))
        );
        assert_eq!(
            a.check(at(&a, 10_000), LIMITS, true),
            Verdict::HeaderTimeout
        );
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_connection_parks_then_closes_after_the_idle_timeout() {
        let a = Arc::new(Activity::new());
        drop(a.begin_request());
        assert_eq!(
            a.check(at(&a, 0), LIMITS, true),
            Verdict::WaitUntil(at(&a, 2_000))
        );
        assert_eq!(a.check(at(&a, 2_000), LIMITS, true), Verdict::Park);
        assert!(a.park_wanted());
        // Parked: no second park, the idle timeout still applies.
        assert_eq!(
            a.check(at(&a, 2_001), LIMITS, false),
            Verdict::WaitUntil(at(&a, 60_000))
        );
        assert_eq!(a.check(at(&a, 60_000), LIMITS, false), Verdict::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_idle_nor_parked() {
        let a = Arc::new(Activity::new());
        let mark = a.begin_request();
        assert!(matches!(
            a.check(at(&a, 120_000), LIMITS, true),
            Verdict::WaitUntil(_)
        ));
        assert!(!a.park_wanted());
        drop(mark);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_of_the_next_head_start_the_header_timer() {
        let a = Arc::new(Activity::new());
        drop(a.begin_request());
        tokio::time::advance(Duration::from_secs(1)).await;
        a.on_read();
        assert!(!a.park_wanted());
        let now = Instant::now();
        assert_eq!(
            a.check(now + LIMITS.header, LIMITS, true),
            Verdict::HeaderTimeout
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http2_is_not_subject_to_the_header_timer() {
        let a = Arc::new(Activity::new());
        a.set_multiplexed();
        a.on_read();
        assert_eq!(
            a.check(at(&a, 30_000), LIMITS, false),
            Verdict::WaitUntil(at(&a, 60_000))
        );
    }
}
