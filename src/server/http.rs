//! Serves HTTP/1.1 and HTTP/2 (chosen by ALPN, or by preface on plain HTTP) on
//! one established connection, handing every request the facts of the
//! connection it arrived on, under the connection's deadlines: a watchdog ends
//! it when a phase overruns (see `activity`) or when admission sheds it. On
//! the HTTPS port the same timer samples what we sent, for the attempt's record.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::activity::{Activity, Deadlines, InFlight, Watched};
use super::Shared;
use crate::attempt::{AfterHandshake, RequestFacts, SentData};
use crate::tcp::TcpHandle;
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

/// How often, and for how long after HTTP begins, a followed connection's
/// sending side is sampled. A stall shows within a second of becoming one;
/// after the window only the final snapshot is taken, so a long-lived
/// connection costs nothing more.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
const FOLLOW_FOR: Duration = Duration::from_secs(30);

/// An attempt's record of what we sent after its handshake, kept up to date
/// while the connection lives, so a response the client never receives is on
/// record (and on the plain-HTTP report) while the connection still hangs.
pub(super) struct Follow {
    pub after: AfterHandshake,
    pub handle: TcpHandle,
}

impl Follow {
    fn sample(&self) {
        if let Some(info) = self.handle.info() {
            self.after.update(SentData::from_tcp(&info));
        }
    }
}

/// Serves HTTP on `io` until the peer leaves, a deadline passes, or admission
/// sheds the connection. HTTP/2 when TLS negotiated `h2`, HTTP/1.1 for any
/// other TLS connection (RFC 9113 §3.2: over TLS, HTTP/2 is only ever chosen
/// by ALPN), and either, by its preface, on plain HTTP. With `follow`, what
/// we send is sampled into the attempt's record, and once more at the end.
pub(super) fn serve<IO>(
    io: IO,
    context: ConnectionContext,
    tcp: TcpFacts,
    follow: Option<Follow>,
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
        Watch {
            activity,
            deadlines,
            peer,
            follow,
        },
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
            // The test run this request belongs to makes the whole
            // connection (its hello, SYN, TCP facts) that run's own.
            if let Some(run) = parts.uri.query().and_then(crate::attempt::named_in_query) {
                attempt.run.learn(run);
            }
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

/// What [`watch`] keeps an eye on besides the connection itself.
struct Watch {
    activity: Arc<Activity>,
    deadlines: Deadlines,
    peer: std::net::SocketAddr,
    follow: Option<Follow>,
}

/// Drives the connection under its watchdog: it ends when a phase overruns
/// its deadline (see `activity`). When the server shuts down, the connection
/// finishes the request in flight and closes. One timer serves both the
/// watchdog and the follow samples: the sooner of the two arms it, so a
/// short connection registers a single timer for its whole HTTP phase.
async fn watch(
    mut connection: Connection,
    watch: Watch,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let Watch {
        activity,
        deadlines,
        peer,
        follow,
    } = watch;
    let start = Instant::now();
    let mut closing = false;
    let mut check_at = activity.check(start, &deadlines).unwrap_or(start);
    let mut sample_at = follow.as_ref().map(|_| start + FOLLOW_EVERY);
    let timer = tokio::time::sleep_until(sooner(check_at, sample_at));
    tokio::pin!(timer);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
                }
                break;
            }
            _ = shutdown.wait_for(|stopping| *stopping), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = timer.as_mut() => {
                let now = Instant::now();
                if let (Some(follow), Some(at)) = (&follow, sample_at) {
                    if now >= at {
                        follow.sample();
                        sample_at = (now - start < FOLLOW_FOR).then(|| now + FOLLOW_EVERY);
                    }
                }
                if now >= check_at {
                    match activity.check(now, &deadlines) {
                        Ok(next) => check_at = next,
                        Err(overdue) => {
                            tracing::debug!(%peer, reason = overdue.as_str(), "connection closed by its deadline");
                            break;
                        }
                    }
                }
                timer.as_mut().reset(sooner(check_at, sample_at));
            }
        }
    }
    // The last word on what we sent, while the socket is still open.
    if let Some(follow) = follow {
        follow.sample();
    }
}

fn sooner(at: Instant, other: Option<Instant>) -> Instant {
    other.map_or(at, |other| other.min(at))
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
