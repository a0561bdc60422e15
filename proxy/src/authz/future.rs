//! The policy step's future, written out (no box): the body prefix being
//! read (when the policy asks for it), then the next step's response, to
//! which the decision's response headers are added.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use usher_policy::BodyInput;

use super::layer::{decide, Verdict};
use super::AuthzShared;
use crate::body::{BodyError, ReadPrefix, RequestBody};
use crate::respond::{ProxyBody, ProxyError};
use crate::target::{PeerIdentity, RemoteAddr};

/// What the decision needs once the body prefix is in.
pub(crate) struct AfterBody<T, S> {
    parts: http::request::Parts,
    target: Arc<T>,
    shared: Arc<AuthzShared>,
    /// The next step, polled ready.
    next: S,
}

pin_project_lite::pin_project! {
    #[project = AuthorizeProj]
    pub(crate) enum AuthorizeFuture<T, S, F> {
        ReadingBody {
            read: ReadPrefix,
            after: Option<AfterBody<T, S>>,
        },
        Next {
            #[pin]
            response: F,
            verdict: Option<Verdict>,
        },
        Refused {
            error: Option<ProxyError>,
        },
    }
}

impl<T, S, F> AuthorizeFuture<T, S, F> {
    pub(super) fn next(response: F, verdict: Verdict) -> Self {
        AuthorizeFuture::Next {
            response,
            verdict: Some(verdict),
        }
    }

    pub(super) fn refused(error: ProxyError) -> Self {
        AuthorizeFuture::Refused { error: Some(error) }
    }

    pub(super) fn reading(
        read: ReadPrefix,
        parts: http::request::Parts,
        target: Arc<T>,
        shared: Arc<AuthzShared>,
        next: S,
    ) -> Self {
        AuthorizeFuture::ReadingBody {
            read,
            after: Some(AfterBody {
                parts,
                target,
                shared,
                next,
            }),
        }
    }
}

impl<T, S> Future for AuthorizeFuture<T, S, S::Future>
where
    T: PeerIdentity + RemoteAddr,
    S: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = ProxyError>,
{
    type Output = Result<Response<ProxyBody>, ProxyError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                AuthorizeProj::ReadingBody { read, after } => {
                    let read = std::task::ready!(Pin::new(read).poll(cx));
                    let Some(mut after) = after.take() else {
                        return Poll::Pending;
                    };
                    let next = match read {
                        Err(BodyError::TooLarge(max)) => {
                            AuthorizeFuture::refused(ProxyError::BodyTooLarge { max })
                        }
                        Err(e) => AuthorizeFuture::refused(ProxyError::BodyUnreadable {
                            reason: e.to_string(),
                        }),
                        Ok((bytes, truncated, body)) => {
                            let input = BodyInput { bytes, truncated };
                            let decided = decide(
                                &*after.target,
                                &after.shared,
                                &mut after.parts,
                                Some(&input),
                            );
                            match decided {
                                Ok(verdict) => AuthorizeFuture::next(
                                    after.next.call(Request::from_parts(after.parts, body)),
                                    verdict,
                                ),
                                Err(err) => AuthorizeFuture::refused(err),
                            }
                        }
                    };
                    self.set(next);
                }
                AuthorizeProj::Next { response, verdict } => {
                    let mut resp = std::task::ready!(response.poll(cx))?;
                    if let Some(verdict) = verdict.take() {
                        verdict.apply(&mut resp);
                    }
                    return Poll::Ready(Ok(resp));
                }
                AuthorizeProj::Refused { error } => {
                    return match error.take() {
                        Some(err) => Poll::Ready(Err(err)),
                        // Polled after it finished.
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
