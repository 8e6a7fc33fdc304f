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

use crate::connection::InFlight;

/// A response body sent to the client.
#[derive(Debug)]
pub struct Body {
    kind: Kind,
    in_flight: Option<InFlight>,
}

#[derive(Debug)]
enum Kind {
    /// Streamed from the upstream, frame by frame.
    Upstream(Incoming),
    /// Written by the gateway, already complete.
    Full(Option<Bytes>),
}

impl Body {
    /// The upstream's body, streamed.
    pub fn upstream(incoming: Incoming) -> Body {
        Body {
            kind: Kind::Upstream(incoming),
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

impl HttpBody for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Upstream(incoming) => Pin::new(incoming).poll_frame(cx),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream(incoming) => incoming.is_end_stream(),
            Kind::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream(incoming) => incoming.size_hint(),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
