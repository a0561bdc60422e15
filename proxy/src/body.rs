//! The request body usher forwards: the caller's stream, optionally preceded
//! by bytes already read from it (when policy needs to see the body first).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// A streamed request body. Without a prefix it is the caller's body as is;
/// no copy, no buffering.
#[derive(Debug)]
pub struct RequestBody {
    prefix: Option<Bytes>,
    rest: Option<Incoming>,
}

impl RequestBody {
    pub fn new(body: Incoming) -> RequestBody {
        RequestBody {
            prefix: None,
            rest: Some(body),
        }
    }

    /// `prefix` (already read) then whatever `rest` still holds.
    pub fn prefixed(prefix: Bytes, rest: Option<Incoming>) -> RequestBody {
        RequestBody {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
        }
    }
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        RequestBody::new(body)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |r| r.size_hint());
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + prefix);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + prefix);
        }
        hint
    }
}
