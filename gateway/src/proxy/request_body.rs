//! The request body as it goes to the upstream: the client's data, never
//! its trailers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

/// A request body on its way to the upstream: the client's data frames, and
/// never its trailers. A trailer is a header that arrives late, after the
/// gateway has decided which headers the upstream may trust; rather than
/// judge them again, the gateway ends the body where they would begin.
#[derive(Debug)]
pub struct RequestBody(Incoming);

impl RequestBody {
    /// The client's body, trailers left out.
    pub fn new(incoming: Incoming) -> RequestBody {
        RequestBody(incoming)
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match Pin::new(&mut self.0).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => Poll::Ready(None),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}
