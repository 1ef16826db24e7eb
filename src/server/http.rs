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

use super::activity::{Activity, Deadlines, InFlight, Watched};
use super::Shared;
use crate::attempt::RequestFacts;
use crate::web::{ConnectionContext, TcpFacts};

// One list of settings for hyper's own builders and hyper-util's auto
// builder, whose wrappers have the same methods but other types.
// HTTP/1 runs without hyper's own header-read timer: the connection's
// watchdog already ends a head that takes longer than `deadlines.head` (see
// `activity`), and a second timer armed for every request head cost each
// short connection a boxed sleep and a trip through the timer wheel.
macro_rules! http1_settings {
    ($builder:expr) => {
        $builder.header_read_timeout(None)
    };
}

macro_rules! http2_settings {
    ($builder:expr, $deadlines:expr) => {
        $builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(64)
            // Finds a dead peer; whether it answers is not activity (see `activity`).
            .keep_alive_interval(Some($deadlines.idle / 2))
            .keep_alive_timeout($deadlines.idle / 2)
    };
}

/// A connection's HTTP, boxed once it starts: the task that awaits it keeps
/// only a pointer, so an idle connection costs its protocol state and nothing
/// more (an `async fn` that took the I/O and built the connection itself would
/// keep room for both, for the connection's whole life).
type Connection = Pin<Box<dyn Graceful>>;

/// A connection that can be asked to finish the request in flight and close
/// (at shutdown): HTTP/1 stops keep-alive, HTTP/2 sends GOAWAY.
trait Graceful: Future<Output = Result<(), axum::BoxError>> + Send {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

/// Serves HTTP on `io` until the peer leaves, a deadline passes, or admission
/// sheds the connection. HTTP/2 when TLS negotiated `h2`, HTTP/1.1 for any
/// other TLS connection (RFC 9113 §3.2: over TLS, HTTP/2 is only ever chosen
/// by ALPN), and either, by its preface, on plain HTTP.
pub(super) fn serve<IO>(
    io: IO,
    context: ConnectionContext,
    tcp: TcpFacts,
    activity: Arc<Activity>,
    shared: &Shared,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = context.peer();
    let protocol = match &context {
        ConnectionContext::Tls(attempt) => {
            match attempt.negotiated.as_ref().and_then(|n| n.alpn.as_deref()) {
                Some("h2") => Protocol::H2,
                _ => Protocol::H1,
            }
        }
        ConnectionContext::Plain { .. } => Protocol::Either,
    };
    activity.http_begins(protocol == Protocol::H2);
    let deadlines = shared.config.deadlines;
    let service = service(context, tcp, activity.clone(), shared);
    let io = TokioIo::new(Watched::new(io, activity.clone()));
    let connection: Connection = match protocol {
        Protocol::H1 => Box::pin(Closable {
            conn: http1().serve_connection(io, service),
            close: |conn| conn.graceful_shutdown(),
        }),
        Protocol::H2 => Box::pin(Closable {
            conn: http2(deadlines).serve_connection(io, service),
            close: |conn| conn.graceful_shutdown(),
        }),
        Protocol::Either => {
            let mut shutdown = shared.shutdown.clone();
            Box::pin(Closable {
                conn: async move {
                    // The auto connection borrows its builder: both live in
                    // this future, which therefore watches for shutdown itself.
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    http1_settings!(builder.http1());
                    http2_settings!(builder.http2(), deadlines);
                    let conn = builder.serve_connection(io, service);
                    tokio::pin!(conn);
                    tokio::select! {
                        result = conn.as_mut() => return result,
                        _ = shutdown.wait_for(|stopping| *stopping) => conn.as_mut().graceful_shutdown(),
                    }
                    conn.await
                },
                close: |_| {},
            })
        }
    };
    Box::pin(watch(
        connection,
        activity,
        deadlines,
        peer,
        shared.shutdown.clone(),
    ))
}

pin_project_lite::pin_project! {
    /// A connection future with its error boxed, and how to ask it to finish
    /// the request in flight and close. Polled in place: wrapping it in an
    /// `async` block instead would keep a second copy of the connection.
    struct Closable<C> {
        #[pin]
        conn: C,
        close: fn(Pin<&mut C>),
    }
}

impl<C, E> Future for Closable<C>
where
    C: Future<Output = Result<(), E>>,
    E: Into<axum::BoxError>,
{
    type Output = Result<(), axum::BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().conn.poll(cx).map_err(Into::into)
    }
}

impl<C, E> Graceful for Closable<C>
where
    C: Future<Output = Result<(), E>> + Send,
    E: Into<axum::BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        let this = self.project();
        (this.close)(this.conn);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    H1,
    H2,
    Either,
}

fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    http1_settings!(builder);
    builder
}

fn http2(deadlines: Deadlines) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2_settings!(builder, deadlines);
    builder
}

/// The application, handed every request with the facts of its connection,
/// its body under the body deadline, its response tracked until sent.
fn service(
    context: ConnectionContext,
    tcp: TcpFacts,
    requests: Arc<Activity>,
    shared: &Shared,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<hyper::Response<Body>, std::convert::Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    let deadlines = shared.config.deadlines;
    let app = shared.app.clone();
    hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let in_flight = requests.begin_request();
        let (mut parts, body) = req.into_parts();
        if let ConnectionContext::Tls(attempt) = &context {
            // Who the request says it is, for the attempt's own diagnosis.
            attempt
                .first_request
                .learn(|| RequestFacts::of(&parts.headers, parts.version));
        }
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
    })
}

/// Drives the connection under its watchdog: it ends when a phase overruns
/// its deadline (see `activity`). When the server shuts down, the connection
/// finishes the request in flight and closes.
async fn watch(
    mut connection: Connection,
    activity: Arc<Activity>,
    deadlines: Deadlines,
    peer: std::net::SocketAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut closing = false;
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
            _ = shutdown.wait_for(|stopping| *stopping), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
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
