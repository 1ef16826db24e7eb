//! Serves HTTP/1.1 and HTTP/2 (chosen by ALPN, or by preface on plain HTTP) on
//! one established connection, handing every request the facts of the
//! connection it arrived on, under the connection's deadlines: a watchdog ends
//! it when a phase overruns (see `activity`) or when admission sheds it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::activity::{Activity, InFlight, Watched};
use super::Shared;
use crate::web::{ConnectionContext, TcpFacts};

pub(super) async fn serve<IO>(
    io: IO,
    context: ConnectionContext,
    tcp: TcpFacts,
    activity: Arc<Activity>,
    shared: &Shared,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = context.peer();
    let h2 = matches!(&context, ConnectionContext::Tls(attempt)
        if attempt.negotiated.as_ref().and_then(|n| n.alpn.as_deref()) == Some("h2"));
    activity.http_begins(h2);
    let deadlines = shared.config.deadlines;
    let app = shared.app.clone();
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let in_flight = requests.begin_request();
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(context.clone());
        parts.extensions.insert(tcp.clone());
        // GET and friends have no body: no timer for them.
        let body = if hyper::body::Body::is_end_stream(&body) {
            Body::new(body)
        } else {
            Body::new(TimedBody::new(body, deadlines.body))
        };
        let app = app.clone();
        async move {
            let request = axum::extract::Request::from_parts(parts, body);
            let response = match app.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _in_flight: in_flight,
                })
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.head);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        // Finds a dead peer; whether it answers is not activity (see `activity`).
        .keep_alive_interval(Some(deadlines.idle / 2))
        .keep_alive_timeout(deadlines.idle / 2);
    let io = TokioIo::new(Watched::new(io, activity.clone()));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let first_check = activity
        .check(Instant::now(), &deadlines)
        .unwrap_or_else(|_| Instant::now());
    let watchdog = tokio::time::sleep_until(first_check);
    tokio::pin!(watchdog);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
                }
                return;
            }
            () = watchdog.as_mut() => match activity.check(Instant::now(), &deadlines) {
                Ok(next) => watchdog.as_mut().reset(next),
                Err(overdue) => {
                    tracing::debug!(%peer, reason = overdue.as_str(), "connection closed by its deadline");
                    return;
                }
            },
        }
    }
}

/// A response body that keeps its request in flight until it is done (sent,
/// or dropped with the connection).
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that must arrive in full by a deadline counted from the
/// head: a total, so a client sending a byte a minute cannot hold a handler.
struct TimedBody {
    body: hyper::body::Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: std::time::Duration,
}

impl TimedBody {
    fn new(body: hyper::body::Incoming, limit: std::time::Duration) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

/// The request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in full within {0:?}")]
pub(crate) struct BodyTimeout(std::time::Duration);

impl hyper::body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(self.limit).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
