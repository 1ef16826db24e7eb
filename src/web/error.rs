//! Errors a handler can return. Client mistakes get a 4xx with a short message;
//! internal faults get a generic 500 and the detail goes to the log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// Not found, with a sentence for the client saying what may be wrong.
    #[error("not found: {0}")]
    NotFoundBecause(&'static str),
    #[error("{0}")]
    BadRequest(String),
    /// The request carries no connection context: the router was called outside
    /// the server (a wiring bug, never the client's fault).
    #[error("missing connection context")]
    NoConnection,
    #[error("rendering failed: {0}")]
    Render(#[from] askama::Error),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("body over the {0}-byte limit")]
    TooLarge(u64),
    /// A dependency (report storage) cannot serve; the message is safe to show.
    #[error("{0}")]
    Unavailable(String),
    /// A stored report this version cannot render (its JSON is still served).
    #[error("{0}")]
    Outdated(String),
    /// This address has used its allowance; it may try again after the delay.
    #[error("too many requests; retry after {0:?}")]
    TooMany(std::time::Duration),
    /// The body is not of the one type this endpoint accepts.
    #[error("send the body as {0}")]
    MediaType(&'static str),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::NotFound => (StatusCode::NOT_FOUND, "not found\n").into_response(),
            AppError::NotFoundBecause(why) => {
                (StatusCode::NOT_FOUND, format!("not found: {why}\n")).into_response()
            }
            AppError::BadRequest(msg) => {
                (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response()
            }
            AppError::Unavailable(msg) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reports are unavailable: {msg}\n"),
            )
                .into_response(),
            AppError::Outdated(msg) => (StatusCode::GONE, format!("{msg}\n")).into_response(),
            AppError::TooMany(wait) => {
                // Whole seconds, rounded up: a client that waits this long gets in.
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, secs.to_string())],
                    format!(
                        "too many reports from your address; try again in {secs} s \
                         (your earlier reports are saved)\n"
                    ),
                )
                    .into_response()
            }
            AppError::MediaType(wanted) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("send the body with Content-Type: {wanted}\n"),
            )
                .into_response(),
            AppError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over the {limit}-byte limit\n"),
            )
                .into_response(),
            internal => {
                tracing::error!(error = %internal, "internal error while answering a request");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
            }
        }
    }
}
