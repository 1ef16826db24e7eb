//! HTTP application (axum): routes, format negotiation, errors. Knows nothing of
//! sockets: the server hands every request a [`ConnectionContext`] describing the
//! connection it arrived on.
//!
//! Routes (both listeners):
//! - `GET /` — the report for this connection: HTML, JSON or text by negotiation.
//! - `GET /api/v1/connection` — the same report as JSON.
//! - `GET /api/v1/attempts` — the caller's recent HTTPS attempts (its own address only).
//! - `GET /static/*` — the page's CSS (embedded in the binary).
//! - `GET /healthz` — liveness.

mod assets;
mod error;
mod negotiate;
mod report;

pub use error::AppError;
pub use negotiate::Format;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::attempt::TlsAttempt;
use crate::profile::ServerProfile;
use crate::store::{AttemptStore, StoreLimits};

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub enum ConnectionContext {
    /// Over TLS: everything captured about this connection's handshake.
    Tls(Arc<TlsAttempt>),
    /// Over plain HTTP.
    Plain { peer: SocketAddr, local: SocketAddr },
}

impl ConnectionContext {
    pub fn peer(&self) -> SocketAddr {
        match self {
            ConnectionContext::Tls(attempt) => attempt.peer,
            ConnectionContext::Plain { peer, .. } => *peer,
        }
    }
}

/// State shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub profile: Arc<ServerProfile>,
    pub attempts: Arc<AttemptStore>,
}

impl AppState {
    pub fn new(profile: Arc<ServerProfile>, limits: StoreLimits) -> Self {
        Self {
            profile,
            attempts: Arc::new(AttemptStore::new(limits)),
        }
    }
}

/// Content-Security-Policy for every response: our own assets only, no inline
/// script or style, never framed.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(report::connection))
        .route("/api/v1/connection", get(report::connection_json))
        .route("/api/v1/attempts", get(report::attempts_json))
        .route("/static/{file}", get(assets::serve))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { AppError::NotFound })
        .with_state(state)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}
