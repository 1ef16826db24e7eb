//! The metrics listener (`--metrics-addr`): `GET /metrics` in the Prometheus
//! text format, on a port of its own so it can be bound where only the
//! operator's Prometheus reaches. Small and strict: HTTP/1.1 only, a few
//! connections at once, each with a deadline; it takes no part in admission
//! and is not counted in the connection series.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Body;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Shared;
use crate::metrics::feed::{self, FeedTasks};
use crate::metrics::{ListenerStats, Metrics, MetricsSettings, CONTENT_TYPE};

/// Scrapes served at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 16;
/// A scrape connection's whole life, and its request head's.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// The metrics set up by `Server::bind`: the counters, and when
/// `--metrics-addr` is set, the bound listener and the accounting tasks.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub metrics: Arc<Metrics>,
    pub serving: Option<(TcpListener, FeedTasks)>,
}

impl Prepared {
    pub fn addr(&self) -> Option<SocketAddr> {
        self.serving
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }
}

/// Loads the AS table (a bad one stops the start, with the reason) and binds
/// the listener.
pub(super) async fn prepare(settings: &MetricsSettings) -> Result<Prepared> {
    let Some(addr) = settings.addr else {
        return Ok(Prepared {
            metrics: Arc::new(Metrics::new()),
            serving: None,
        });
    };
    let table = match &settings.asn_db {
        Some(path) => {
            let file = path.clone();
            let (stamp, table) = tokio::task::spawn_blocking(move || feed::load(&file))
                .await
                .context("loading the AS table")?
                .with_context(|| format!("loading the AS table {}", path.display()))?;
            tracing::info!(path = %path.display(), ranges = table.ranges(), "AS table loaded");
            Some((path.clone(), stamp, table))
        }
        None => None,
    };
    let (feed, tasks) = feed::new(settings.top_networks, table, settings.asn_db_reload);
    let listener = super::listen(addr).with_context(|| super::bind_hint("metrics", addr))?;
    Ok(Prepared {
        metrics: Arc::new(Metrics::with_feed(feed)),
        serving: Some((listener, tasks)),
    })
}

/// Serves scrapes (and runs the accounting) until the server stops; never
/// completes when metrics are off.
pub(super) async fn run(prepared: Option<(TcpListener, FeedTasks)>, shared: Arc<Shared>) {
    let Some((listener, tasks)) = prepared else {
        return std::future::pending().await;
    };
    if let Err(err) = tasks.start() {
        tracing::error!(error = %err, "cannot start the metrics accounting thread: per-network counts stay empty");
    }
    let places = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics listener: too many scrapes at once");
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &shared)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_DEADLINE)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_DEADLINE, connection).await {
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "metrics connection error"),
                Err(_) => tracing::debug!(%peer, "metrics connection closed by its deadline"),
                Ok(Ok(())) => {}
            }
            drop(place);
        });
    }
}

fn answer<B>(req: &Request<B>, shared: &Shared) -> Response<Body> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(hyper::header::CACHE_CONTROL, "no-store")
            .body(Body::from(body))
            .unwrap_or_default()
    };
    let text = "text/plain; charset=utf-8";
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            text,
            "metrics are at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, text, "GET only\n".into());
    }
    let packets = shared.state.packets.usage();
    let body = shared
        .state
        .metrics
        .render(&listener_stats(shared), packets.as_ref());
    reply(StatusCode::OK, CONTENT_TYPE, body)
}

/// Each listener's admission figures, read now.
fn listener_stats(shared: &Shared) -> Vec<ListenerStats> {
    use std::sync::atomic::Ordering::Relaxed;
    let a = &shared.admission;
    let mut listeners = vec![("https", &a.https), ("http", &a.http)];
    if shared.config.probe_addr.is_some() {
        listeners.push(("probe", &a.probe));
    }
    listeners
        .into_iter()
        .map(|(listener, admission)| {
            let c = &admission.counters;
            let refused = c.refused.load(Relaxed);
            ListenerStats {
                listener,
                accepted: c.admitted.load(Relaxed) + refused,
                refused,
                shed: c.shed.load(Relaxed),
                proxy_rejected: c.proxy_rejected.load(Relaxed),
                open: admission.held() as u64,
            }
        })
        .collect()
}
