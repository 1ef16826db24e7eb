//! Serves HTTP/1.1 and HTTP/2 (chosen by ALPN, or by preface on plain HTTP) on
//! one established connection, handing every request the facts of the
//! connection it arrived on.

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;

use super::Shared;
use crate::web::{ConnectionContext, TcpFacts};

pub(super) async fn serve<IO>(io: IO, context: ConnectionContext, tcp: TcpFacts, shared: &Shared)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = context.peer();
    let app = shared.app.clone().map_request(
        move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(context.clone());
            req.extensions_mut().insert(tcp.clone());
            req
        },
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.idle_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(shared.config.idle_timeout / 2))
        .keep_alive_timeout(shared.config.idle_timeout / 2);
    if let Err(err) = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
        .await
    {
        tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
    }
}
