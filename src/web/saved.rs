//! Saved reports (`/r/{id}`, `/api/v1/reports/{id}`) and the operator's list
//! (`/admin`). A report is reachable only by its unguessable id; `/admin`, behind
//! a token, is the only listing.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::negotiate::{negotiate, Format};
use super::{AppError, AppState, ConnectionContext};
use crate::report::html::SavedPage;
use crate::report::run::ReadError;
use crate::report::RunReport;
use crate::reports::{valid_id, valid_label, ReportMeta, ReportStore, StoredReport};

#[derive(Debug, Deserialize)]
pub(super) struct FormatQuery {
    pub(super) format: Option<String>,
}

pub(super) async fn load(state: &AppState, id: &str) -> Result<StoredReport, AppError> {
    if !valid_id(id) {
        return Err(AppError::NotFound);
    }
    let store: Arc<dyn ReportStore> = state
        .reports
        .clone()
        .map_err(|why| AppError::Unavailable(why.to_owned()))?;
    let id = id.to_owned();
    match tokio::task::spawn_blocking(move || store.get(&id)).await {
        Ok(Ok(Some(report))) => Ok(report),
        Ok(Ok(None)) => Err(AppError::NotFound),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "reading a report failed");
            Err(AppError::Unavailable(err.public_message().to_owned()))
        }
        Err(err) => Err(AppError::Internal(err.to_string())),
    }
}

/// `GET /api/v1/reports/{id}`: the stored JSON, exactly as saved.
pub(super) async fn json(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let report = load(&state, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        report.body,
    )
        .into_response())
}

/// `GET /r/{id}`: the saved report as a page (or text for curl, JSON on request).
pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<FormatQuery>,
    request: Request,
) -> Result<Response, AppError> {
    let report = load(&state, &id).await?;
    let format = negotiate(request.headers(), query.format.as_deref());
    if format == Format::Json {
        return Ok((
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            report.body,
        )
            .into_response());
    }
    let doc = RunReport::from_json(&report.body).map_err(|err| match err {
        // An older document: its JSON is still served as saved.
        ReadError::Schema(_) => AppError::Outdated(format!(
            "{err}; its evidence is at /api/v1/reports/{id} as saved"
        )),
        other => AppError::Internal(format!("report {id}: {other}")),
    })?;
    let context = request
        .extensions()
        .get::<ConnectionContext>()
        .ok_or(AppError::NoConnection)?;
    let link = format!("{}/r/{id}", super::base_url(&request, context));
    let no_store = (header::CACHE_CONTROL, "no-store");
    Ok(match format {
        Format::Text => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                no_store,
            ],
            crate::report::text::render_saved(&doc, &link),
        )
            .into_response(),
        _ => ([no_store], Html(SavedPage::new(&doc, &link).render()?)).into_response(),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct AdminQuery {
    label: Option<String>,
}

#[derive(Debug, Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    reports: &'a [ReportMeta],
    label: Option<&'a str>,
}

impl AdminPage<'_> {
    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    fn time(&self, m: &ReportMeta) -> String {
        let t =
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(m.created_at_ms.max(0) as u64);
        humantime::format_rfc3339_seconds(t).to_string()
    }
}

/// Whether `headers` carry the admin token, as a Bearer token or as the
/// password of HTTP Basic auth (any user name).
fn authorized(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    use sha2::{Digest, Sha256};
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let presented = if let Some(token) = value.strip_prefix("Bearer ") {
        token.trim().to_owned()
    } else if let Some(encoded) = value.strip_prefix("Basic ") {
        match base64_decode(encoded.trim()).and_then(|raw| String::from_utf8(raw).ok()) {
            Some(pair) => pair
                .split_once(':')
                .map(|(_, p)| p.to_owned())
                .unwrap_or_default(),
            None => return false,
        }
    } else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    digest.ct_eq(expected).into()
}

/// `GET /admin[?label=]`: recent reports for the operator.
pub(super) async fn admin(
    State(state): State<Arc<AppState>>,
    Query(query): Query<AdminQuery>,
    headers: HeaderMap,
    Extension(context): Extension<ConnectionContext>,
) -> Result<Response, AppError> {
    let Some(expected) = &state.admin_token else {
        return Err(AppError::NotFound);
    };
    if let ConnectionContext::Plain { peer, .. } = context {
        // The token would cross the network in clear: refuse before reading
        // it, so a guess over plain HTTP learns nothing either. The host
        // itself (loopback) may use plain HTTP.
        if !peer.ip().to_canonical().is_loopback() {
            return Ok((
                StatusCode::FORBIDDEN,
                "the admin view is served over HTTPS only; never send its token over plain HTTP\n",
            )
                .into_response());
        }
    }
    if !authorized(&headers, expected) {
        return Ok((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"tlsdiag admin\", charset=\"UTF-8\"")],
            "the admin view needs the admin token (HTTP Basic password, or Authorization: Bearer)\n",
        )
            .into_response());
    }
    let label = match query.label.filter(|l| !l.is_empty()) {
        Some(l) if !valid_label(&l) => {
            return Err(AppError::BadRequest("not a valid label".into()))
        }
        other => other,
    };
    let store = state
        .reports
        .clone()
        .map_err(|why| AppError::Unavailable(why.to_owned()))?;
    let filter = label.clone();
    let reports = tokio::task::spawn_blocking(move || store.list(filter.as_deref(), 200))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Unavailable(e.public_message().to_owned()))?;
    let page = AdminPage {
        reports: &reports,
        label: label.as_deref(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(page.render()?)).into_response())
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_basic_credentials() {
        assert_eq!(base64_decode("dXNlcjpzM2NyZXQ=").unwrap(), b"user:s3cret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("not base64!").is_none());
    }

    #[test]
    fn checks_the_token_in_both_forms() {
        use sha2::{Digest, Sha256};
        let expected: [u8; 32] = Sha256::digest(b"s3cret").into();
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            authorized(&h, &expected)
        };
        assert!(with("Bearer s3cret"));
        assert!(with("Basic dXNlcjpzM2NyZXQ="));
        assert!(!with("Bearer wrong"));
        assert!(!with("Basic dXNlcjp3cm9uZw=="));
        assert!(!authorized(&HeaderMap::new(), &expected));
    }
}
