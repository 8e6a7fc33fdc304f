//! Ending a stream early: what a request leaves streaming after its
//! response head (the response body, or the tunnel it upgraded to) can be
//! ended at once by whoever handled the request.
//!
//! Input: a [`CancellationToken`] the handler may fire at any time, and a
//! value the stream keeps alive for as long as it lasts (typically the
//! handler's registration of the stream somewhere, released on drop).
//! Output: a stream that ends as soon as the token fires. A body ends with an
//! error frame ([`BodyError::Cut`](super::body::BodyError::Cut)), so hyper
//! abandons the response: HTTP/1.1 closes the connection mid-body (the
//! client sees an incomplete message), HTTP/2 resets the stream. A tunnel
//! closes both connections (`reason="revoked"` in
//! `gateway_tunnels_closed_total`).
//!
//! The proxy core does not know why a handler fires the token; the gateway's
//! request path does so when the session a stream was opened with is
//! revoked.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The "end now" of one stream, and what the stream keeps alive until it
/// ends.
pub struct Cut {
    /// Resolves once the handler fires the token.
    fired: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Dropped with the stream, whether it ended on its own or was cut.
    _held: Box<dyn Any + Send + Sync>,
}

impl Cut {
    /// A cut fired by `token`, holding `held` until the stream ends.
    pub fn new(token: CancellationToken, held: impl Any + Send + Sync) -> Cut {
        Cut {
            fired: Box::pin(token.cancelled_owned()),
            _held: Box::new(held),
        }
    }

    /// Ready once the token has fired (and, unlike a future, ready again on
    /// every later poll).
    pub fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.fired.as_mut().poll(cx)
    }

    /// Resolves once the token has fired.
    pub async fn fired(&mut self) {
        std::future::poll_fn(|cx| self.poll_fired(cx)).await;
    }
}

impl std::fmt::Debug for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cut").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Counts its drops.
    struct Held(Arc<AtomicUsize>);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn fires_with_its_token_and_releases_what_it_holds_on_drop() {
        let token = CancellationToken::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut cut = Cut::new(token.clone(), Held(drops.clone()));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(cut.poll_fired(&mut cx).is_pending());
        token.cancel();
        cut.fired().await;
        // Still fired when asked again.
        assert!(cut.poll_fired(&mut cx).is_ready());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(cut);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
