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
pub(crate) struct RequestBody {
    prefix: Option<Bytes>,
    /// Trailers met while reading the prefix (the stream had ended).
    trailers: Option<http::HeaderMap>,
    rest: Option<Incoming>,
    /// `inbound.max_request_body`: more bytes than this end the stream
    /// with [`BodyError::TooLarge`].
    limit: Option<u64>,
    seen: u64,
    /// Where a failure is also kept, for the hop that forwards this body
    /// (see [`FailureSlot`]).
    failure: Option<FailureSlot>,
}

/// Keeps a forwarded body's failure for the side that awaits the response.
/// An HTTP/1 client returns the body's error as the request's; an HTTP/2
/// client resets the stream and reports only the reset, which would read
/// as the peer's failure (a 502) when it was the caller's body (a 400, or
/// the 413 of a body over the limit).
#[derive(Clone, Debug, Default)]
pub(crate) struct FailureSlot(std::sync::Arc<std::sync::OnceLock<BodyFailure>>);

/// A body's failure, kept by a [`FailureSlot`].
#[derive(Clone, Debug)]
pub(crate) enum BodyFailure {
    /// Reading the caller's body failed; the reason, for the log.
    Read(String),
    /// Over the limit (bytes).
    TooLarge(u64),
}

impl FailureSlot {
    pub(crate) fn get(&self) -> Option<&BodyFailure> {
        self.0.get()
    }

    fn record(&self, err: &BodyError) {
        let failure = match err {
            BodyError::Read(e) => BodyFailure::Read(crate::connect::error_chain(e)),
            BodyError::TooLarge(max) => BodyFailure::TooLarge(*max),
        };
        let _ = self.0.set(failure);
    }
}

/// Why a request body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error(transparent)]
    Read(#[from] hyper::Error),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
}

impl RequestBody {
    pub(crate) fn new(body: Incoming) -> RequestBody {
        RequestBody {
            prefix: None,
            trailers: None,
            rest: Some(body),
            limit: None,
            seen: 0,
            failure: None,
        }
    }

    /// A slot that will hold this body's failure, if it fails.
    pub(crate) fn watch_failure(&mut self) -> FailureSlot {
        self.failure
            .get_or_insert_with(FailureSlot::default)
            .clone()
    }

    /// Caps the body at `max` bytes (the stream fails beyond it).
    pub(crate) fn limit(mut self, max: u64) -> RequestBody {
        self.limit = Some(max);
        self
    }

    fn count(&mut self, n: usize) -> Result<(), BodyError> {
        self.seen += n as u64;
        match self.limit {
            Some(max) if self.seen > max => Err(BodyError::TooLarge(max)),
            _ => Ok(()),
        }
    }

    /// Reads up to `max` bytes of the body for inspection; the future
    /// yields them, whether the body is longer than that (`truncated`), and
    /// the body to forward, which still yields every byte (and trailers)
    /// in order.
    pub(crate) fn read_prefix(mut self, max: usize) -> ReadPrefix {
        let mut buf = bytes::BytesMut::new();
        if let Some(prefix) = self.prefix.take() {
            buf.extend_from_slice(&prefix);
        }
        ReadPrefix {
            body: Some(self),
            buf,
            max,
        }
    }
}

/// [`RequestBody::read_prefix`]: a named future, so the policy step that
/// awaits it needs no box.
#[derive(Debug)]
pub(crate) struct ReadPrefix {
    body: Option<RequestBody>,
    buf: bytes::BytesMut,
    max: usize,
}

impl std::future::Future for ReadPrefix {
    type Output = Result<(Bytes, bool, RequestBody), BodyError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(body) = this.body.as_mut() else {
            // Polled again after it finished: nothing more to give.
            return Poll::Pending;
        };
        let mut ended = true;
        if let Some(rest) = body.rest.as_mut() {
            ended = false;
            while this.buf.len() <= this.max {
                match std::task::ready!(Pin::new(&mut *rest).poll_frame(cx)) {
                    None => {
                        ended = true;
                        break;
                    }
                    Some(Err(e)) => {
                        this.body = None;
                        return Poll::Ready(Err(BodyError::Read(e)));
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => {
                            body.seen += data.len() as u64;
                            if let Some(limit) = body.limit {
                                if body.seen > limit {
                                    this.body = None;
                                    return Poll::Ready(Err(BodyError::TooLarge(limit)));
                                }
                            }
                            this.buf.extend_from_slice(&data)
                        }
                        Err(frame) => {
                            // Trailers come last: the stream is over.
                            body.trailers = frame.into_trailers().ok();
                            ended = true;
                            break;
                        }
                    },
                }
            }
        }
        let Some(body) = this.body.take() else {
            return Poll::Pending;
        };
        let all = std::mem::take(&mut this.buf).freeze();
        let truncated = all.len() > this.max;
        let inspected = if truncated {
            all.slice(..this.max)
        } else {
            all.clone()
        };
        let forward = RequestBody {
            prefix: (!all.is_empty()).then_some(all),
            trailers: body.trailers,
            rest: if ended { None } else { body.rest },
            limit: body.limit,
            // The prefix is counted when it was read.
            seen: body.seen,
            failure: body.failure,
        };
        Poll::Ready(Ok((inspected, truncated, forward)))
    }
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        RequestBody::new(body)
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        let this = &mut *self;
        let failed = match this.rest.as_mut() {
            Some(rest) => match Pin::new(rest).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.data_ref().map(|d| d.len()) {
                    Some(n) => match this.count(n) {
                        Ok(()) => return Poll::Ready(Some(Ok(frame))),
                        Err(e) => e,
                    },
                    None => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(Some(Err(e))) => BodyError::Read(e),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            },
            None => return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t)))),
        };
        if let Some(slot) = &this.failure {
            slot.record(&failed);
        }
        Poll::Ready(Some(Err(failed)))
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
