//! Two saved reports compared (`/compare/{a}/{b}`, `/api/v1/compare/{a}/{b}`),
//! and the form that leads there (`/compare?a=&b=`, from a saved report's
//! page and from `/admin`). Like a report, a comparison is reachable only
//! with both unguessable ids: nothing of either report is shown unless both
//! ids are well formed, different, and name reports that are kept. The
//! comparison itself is `crate::compare`'s, a pure function of the two
//! stored documents.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::negotiate::{negotiate, Format};
use super::saved::{load, FormatQuery};
use super::{AppError, AppState, ConnectionContext};
use crate::compare::html::ComparePage;
use crate::compare::{compare, Comparison, Side};
use crate::reports::{id_in, valid_id};

/// Both ids checked before either report is read: a malformed id, or the
/// same report twice, is the caller's mistake (400) whatever is stored.
fn checked<'a>(a: &'a str, b: &'a str) -> Result<(&'a str, &'a str), AppError> {
    if !valid_id(a) || !valid_id(b) {
        return Err(AppError::BadRequest(
            "not a report id: an id is the 32 lowercase hex characters at the end of a report's \
             link (/r/<id>)"
                .into(),
        ));
    }
    if a == b {
        return Err(AppError::BadRequest(
            "the same report twice: compare it with another run's report".into(),
        ));
    }
    Ok((a, b))
}

/// Reads both reports and compares them. Either one missing is a 404 that
/// does not say which: the page shows nothing of one without the other.
async fn comparison(state: &AppState, a: &str, b: &str) -> Result<Comparison, AppError> {
    let (a, b) = checked(a, b)?;
    let (stored_a, stored_b) = tokio::join!(load(state, a), load(state, b));
    let (stored_a, stored_b) = match (stored_a, stored_b) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(AppError::NotFound), _) | (_, Err(AppError::NotFound)) => {
            return Err(AppError::NotFoundBecause(
                "one of the two reports was not found: a link may be mistyped, or the report is \
                 past its retention",
            ))
        }
        (Err(err), _) | (_, Err(err)) => return Err(err),
    };
    let side = |id: &str, body: &str| {
        Side::from_json(id, body).map_err(|err| AppError::Internal(format!("report {id}: {err}")))
    };
    let (side_a, side_b) = (side(a, &stored_a.body)?, side(b, &stored_b.body)?);
    // The operator's AS table (`--asn-db`), when metrics keep one.
    let table = state
        .metrics
        .networks()
        .and_then(|n| n.lock().table.clone());
    Ok(compare(&side_a, &side_b, table.as_deref()))
}

fn json(c: &Comparison) -> Result<Response, AppError> {
    let body = crate::report::json_bytes(c).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/v1/compare/{a}/{b}`: the comparison as JSON.
pub(super) async fn api(
    State(state): State<Arc<AppState>>,
    Path((a, b)): Path<(String, String)>,
) -> Result<Response, AppError> {
    json(&comparison(&state, &a, &b).await?)
}

/// `GET /compare/{a}/{b}`: HTML, text for curl, JSON on request (negotiated
/// as `/r/{id}` is).
pub(super) async fn page(
    State(state): State<Arc<AppState>>,
    Path((a, b)): Path<(String, String)>,
    Query(query): Query<FormatQuery>,
    request: Request,
) -> Result<Response, AppError> {
    let format = negotiate(request.headers(), query.format.as_deref());
    let c = comparison(&state, &a, &b).await?;
    let no_store = (header::CACHE_CONTROL, "no-store");
    Ok(match format {
        Format::Json => json(&c)?,
        Format::Text => {
            let context = request
                .extensions()
                .get::<ConnectionContext>()
                .ok_or(AppError::NoConnection)?;
            let base = super::base_url(&request, context);
            (
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    no_store,
                ],
                crate::compare::text::render(&c, &base),
            )
                .into_response()
        }
        Format::Html => ([no_store], Html(ComparePage { c: &c }.render()?)).into_response(),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct CompareForm {
    a: Option<String>,
    b: Option<String>,
}

/// `GET /compare?a=&b=`: what the forms send (a pasted link or id each), on
/// to `/compare/{a}/{b}`.
pub(super) async fn form(Query(form): Query<CompareForm>) -> Result<Response, AppError> {
    let pasted = |v: Option<&str>, which: &str| {
        v.and_then(id_in).ok_or_else(|| {
            AppError::BadRequest(format!(
                "no report id in {which}: paste the other report's link (…/r/<id>) or its id"
            ))
        })
    };
    let a = pasted(form.a.as_deref(), "a")?;
    let b = pasted(form.b.as_deref(), "b")?;
    checked(&a, &b)?;
    Ok(Redirect::to(&format!("/compare/{a}/{b}")).into_response())
}
