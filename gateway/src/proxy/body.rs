//! The response body type: either the upstream's streamed body or a small
//! body the gateway wrote itself (error pages, admin answers).
//!
//! An enum rather than a boxed trait object, so the proxied path costs no
//! allocation and no dynamic dispatch per frame. A response body may hold the
//! request's [`InFlight`] mark: hyper drops the body once it has written the
//! last byte, so the connection counts as busy until then, not merely until
//! the response head was produced.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use super::connection::InFlight;
use super::cut::Cut;
use super::pool::Lease;

/// A response body sent to the client.
#[derive(Debug)]
pub struct Body {
    kind: Kind,
    in_flight: Option<InFlight>,
}

#[derive(Debug)]
enum Kind {
    /// Streamed from the upstream, frame by frame.
    Upstream(UpstreamBody),
    /// Written by the gateway, already complete.
    Full(Option<Bytes>),
}

impl Body {
    /// The upstream's body, streamed; `lease` goes back to the pool once the
    /// body has been read to its end; `cut`, if any, ends it early.
    pub fn upstream(incoming: Incoming, lease: Lease, cut: Option<Cut>) -> Body {
        Body {
            kind: Kind::Upstream(UpstreamBody {
                incoming,
                lease: Some(lease),
                cut,
            }),
            in_flight: None,
        }
    }

    /// A complete body from bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        Body {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
            in_flight: None,
        }
    }

    /// No body at all.
    pub fn empty() -> Body {
        Body::full(Bytes::new())
    }

    /// Keeps `mark` alive until the body has been written (or dropped).
    pub fn hold(&mut self, mark: InFlight) {
        self.in_flight = Some(mark);
    }

    /// The bytes of a body the gateway wrote itself (`None` for upstream bodies).
    pub fn as_full(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Full(bytes) => Some(bytes.as_deref().unwrap_or_default()),
            Kind::Upstream(_) => None,
        }
    }
}

/// Why a response body ended before its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Reading the upstream's body failed.
    #[error("upstream body: {0}")]
    Upstream(#[from] hyper::Error),
    /// The body's [`Cut`] fired.
    #[error("response body cut short by its handler")]
    Cut,
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().kind {
            Kind::Upstream(upstream) => upstream.poll_frame(cx),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(upstream) => upstream.incoming.is_end_stream(),
            Kind::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(upstream) => upstream.incoming.size_hint(),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// The upstream's body, the connection it arrives on, and what may end it
/// early.
#[derive(Debug)]
struct UpstreamBody {
    incoming: Incoming,
    lease: Option<Lease>,
    cut: Option<Cut>,
}

impl UpstreamBody {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // Before the next frame: a fired cut wins even over data already
        // waiting (or a body that would stream on without pause).
        if let Some(cut) = &mut self.cut {
            if cut.poll_fired(cx).is_ready() {
                // Abandoned half-way: the connection goes with the lease.
                self.lease = None;
                return Poll::Ready(Some(Err(BodyError::Cut)));
            }
        }
        let frame = Pin::new(&mut self.incoming).poll_frame(cx);
        match &frame {
            // The whole response arrived: the connection is free again.
            Poll::Ready(None) => self.release(),
            // A broken body leaves the connection unusable.
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        frame.map_err(BodyError::Upstream)
    }

    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release();
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Bodies hyper never needs to poll (HEAD, 204, 304, exact lengths
        // already read) are complete too; a body abandoned half-way is not,
        // and its connection is dropped with the lease.
        if self.incoming.is_end_stream() {
            self.release();
        }
    }
}
