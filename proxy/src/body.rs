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
    /// Trailers met while reading the prefix (the stream had ended).
    trailers: Option<http::HeaderMap>,
    rest: Option<Incoming>,
}

impl RequestBody {
    pub fn new(body: Incoming) -> RequestBody {
        RequestBody {
            prefix: None,
            trailers: None,
            rest: Some(body),
        }
    }

    /// Reads up to `max` bytes of the body for inspection and returns them,
    /// whether the body is longer than that (`truncated`), and the body to
    /// forward, which still yields every byte (and trailers) in order.
    pub async fn read_prefix(
        mut self,
        max: usize,
    ) -> Result<(Bytes, bool, RequestBody), hyper::Error> {
        use http_body_util::BodyExt;
        let mut buf = bytes::BytesMut::new();
        let mut ended = true;
        if let Some(prefix) = self.prefix.take() {
            buf.extend_from_slice(&prefix);
        }
        if let Some(rest) = self.rest.as_mut() {
            ended = false;
            while buf.len() <= max {
                match rest.frame().await {
                    None => {
                        ended = true;
                        break;
                    }
                    Some(frame) => match frame?.into_data() {
                        Ok(data) => buf.extend_from_slice(&data),
                        Err(frame) => {
                            // Trailers come last: the stream is over.
                            self.trailers = frame.into_trailers().ok();
                            ended = true;
                            break;
                        }
                    },
                }
            }
        }
        let all = buf.freeze();
        let truncated = all.len() > max;
        let inspected = if truncated {
            all.slice(..max)
        } else {
            all.clone()
        };
        let forward = RequestBody {
            prefix: (!all.is_empty()).then_some(all),
            trailers: self.trailers,
            rest: if ended { None } else { self.rest },
        };
        Ok((inspected, truncated, forward))
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
            None => Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
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
