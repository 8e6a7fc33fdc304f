//! The response body type: either the upstream's streamed body or a small
//! body the gateway wrote itself (error pages, admin answers).
//!
//! An enum rather than a boxed trait object, so the proxied path costs no
//! allocation and no dynamic dispatch per frame.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

/// A response body sent to the client.
#[derive(Debug)]
pub enum Body {
    /// Streamed from the upstream, frame by frame.
    Upstream(Incoming),
    /// Written by the gateway, already complete.
    Full(Option<Bytes>),
}

impl Body {
    /// A complete body from bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Body::Full(None)
        } else {
            Body::Full(Some(bytes))
        }
    }

    /// No body at all.
    pub fn empty() -> Body {
        Body::Full(None)
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Upstream(incoming) => Pin::new(incoming).poll_frame(cx),
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Upstream(incoming) => incoming.is_end_stream(),
            Body::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Upstream(incoming) => incoming.size_hint(),
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}
