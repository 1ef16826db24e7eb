//! The connection report handlers.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::negotiate::{negotiate, Format};
use super::{AppError, AppState, ConnectionContext, TcpFacts};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::attempt::RequestFacts;
use crate::diagnose::{self, IpVersion, Observations};
use crate::report::html::ReportPage;
use crate::report::{
    text, AttemptDetail, AttemptView, AttemptsReport, ConnectionReport, HttpFacts,
};

#[derive(Debug, Deserialize)]
pub(super) struct FormatQuery {
    format: Option<String>,
}

pub(super) async fn connection(
    State(state): State<Arc<AppState>>,
    Query(query): Query<FormatQuery>,
    request: Request,
) -> Result<Response, AppError> {
    let format = negotiate(request.headers(), query.format.as_deref());
    let shared = super::observe::shared(&state, peer(&request)?.ip()).await;
    let report = build(&state, &request, &shared)?;
    render(&report, format)
}

pub(super) async fn connection_json(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, AppError> {
    let shared = super::observe::shared(&state, peer(&request)?.ip()).await;
    render(&build(&state, &request, &shared)?, Format::Json)
}

/// The client address of the connection `request` arrived on.
pub(super) fn peer(request: &Request) -> Result<std::net::SocketAddr, AppError> {
    Ok(request
        .extensions()
        .get::<ConnectionContext>()
        .ok_or(AppError::NoConnection)?
        .peer())
}

/// The caller's own recent HTTPS attempts, and nobody else's.
pub(super) async fn attempts_json(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, AppError> {
    let context = request
        .extensions()
        .get::<ConnectionContext>()
        .ok_or(AppError::NoConnection)?;
    let peer = context.peer();
    let shared = super::observe::shared(&state, peer.ip()).await;
    let mut report = AttemptsReport::new(peer, recent_attempts(&state, peer, usize::MAX, &shared));
    report.shared_attempts = shared.view(&state);
    json_response(&report)
}

/// One of the caller's own attempts in full: the whole parsed hello, every
/// logged read, the fingerprint strings (each list still capped, see
/// `report::MAX_LISTED`). Another address's attempt is not found.
pub(super) async fn attempt_json(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
    request: Request,
) -> Result<Response, AppError> {
    let context = request
        .extensions()
        .get::<ConnectionContext>()
        .ok_or(AppError::NoConnection)?;
    let peer = context.peer();
    let shared = super::observe::shared(&state, peer.ip()).await;
    let attempt =
        super::observe::own_attempt(&state, peer.ip(), id, &shared).ok_or(AppError::NotFound)?;
    let detail = AttemptDetail::new(&attempt, diagnose::attempt(&attempt, &state.profile()));
    json_response(&detail)
}

fn json_response<T: serde::Serialize>(value: &T) -> Result<Response, AppError> {
    let body = crate::report::json_bytes(value).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// How far back a report looks for attempts that shape its headline: the
/// customer's tries of the last minutes, not last hour's.
const HEADLINE_WINDOW: Duration = Duration::from_secs(600);

fn recent_attempts(
    state: &AppState,
    peer: std::net::SocketAddr,
    max: usize,
    shared: &super::observe::Shared,
) -> Vec<AttemptView> {
    super::observe::attempts(state, peer.ip(), state.attempts_ttl(), shared)
        .iter()
        .take(max)
        .map(|a| AttemptView::new(a, diagnose::attempt(a, &state.profile())))
        .collect()
}

/// The report for the connection `request` arrived on; `shared` is what
/// other instances saw from its address (read beforehand: this is not async).
pub(super) fn build(
    state: &AppState,
    request: &Request,
    shared: &super::observe::Shared,
) -> Result<ConnectionReport, AppError> {
    let context = request
        .extensions()
        .get::<ConnectionContext>()
        .ok_or(AppError::NoConnection)?;
    let http = http_facts(request);
    let peer = context.peer();
    let profile = state.profile();
    // One read of the store and the in-flight registry for both lists: the
    // listed window and the headline's.
    let ttl = state.attempts_ttl();
    let seen = super::observe::seen(state, peer.ip(), ttl.max(HEADLINE_WINDOW), shared);
    let now = SystemTime::now();
    let listed: Vec<_> = seen
        .within(now, ttl)
        .take(crate::report::MAX_RECENT_IN_REPORT)
        .collect();
    let mut attempts: Vec<_> = seen.within(now, HEADLINE_WINDOW).collect();
    let syn = request
        .extensions()
        .get::<TcpFacts>()
        .and_then(|t| t.syn.as_deref().cloned());
    if let ConnectionContext::Tls(own) = context {
        // This very connection always counts, recorded yet or not.
        if !attempts.iter().any(|a| a.id == own.id) {
            attempts.insert(0, own.clone());
        }
    }
    // Most attempts are both listed and weighed for the headline: each is
    // judged once.
    let mut judged = diagnose::Judged::of(listed.iter().chain(&attempts), &profile);
    let how_to_test =
        super::observe::how_to_test(&super::plain_base(request, context, state.http_port));
    let mut diagnosis = diagnose::diagnose(
        &Observations {
            ip: IpVersion::of(peer.ip()),
            attempts: &attempts,
            run: None,
            hello_ladder: &[],
            tls_check: None,
            syn: syn.as_ref(),
            how_to_test: &how_to_test,
            via: context.via(),
            judged: Some(&judged),
            client: None,
        },
        &profile,
    );
    // Headers a proxy added to this very request.
    let encrypted = matches!(context, ConnectionContext::Tls(_));
    let request_facts = RequestFacts::of(request.headers(), request.version());
    if let Some(f) = diagnose::proxy_headers(&request_facts, encrypted) {
        if !diagnosis.findings.iter().any(|seen| seen.id == f.id) {
            diagnosis.findings.push(f);
            diagnose::sort(&mut diagnosis.findings);
        }
    }
    if let ConnectionContext::Tls(own) = context {
        // This connection's own notes (SNI, hello size) complete its report;
        // they do not change the headline.
        let notes = match judged.get(own) {
            Some(notes) => notes.to_vec(),
            None => diagnose::attempt(own, &profile),
        };
        for f in notes {
            if !diagnosis.findings.iter().any(|seen| seen.id == f.id) {
                diagnosis.findings.push(f);
            }
        }
    }
    let recent = listed
        .iter()
        .map(|a| AttemptView::new(a, judged.take(a, &profile)).brief())
        .collect();
    let mut report = match context {
        ConnectionContext::Tls(attempt) => {
            ConnectionReport::for_tls(attempt, http, diagnosis, recent)
        }
        ConnectionContext::Plain { peer, via, .. } => {
            ConnectionReport::for_plain(*peer, http, syn, via.as_deref(), diagnosis, recent)
        }
    };
    report.shared_attempts = shared.view(state);
    Ok(report)
}

fn http_facts(request: &Request) -> HttpFacts {
    let headers: &HeaderMap = request.headers();
    let text = |name| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    HttpFacts {
        http_version: crate::attempt::version_name(request.version()).to_owned(),
        user_agent: text(header::USER_AGENT),
        // HTTP/2 carries the host in :authority, not a Host header.
        host: text(header::HOST).or_else(|| request.uri().authority().map(|a| a.to_string())),
    }
}

fn render(report: &ConnectionReport, format: Format) -> Result<Response, AppError> {
    let no_store = (header::CACHE_CONTROL, "no-store");
    Ok(match format {
        Format::Json => (
            [(header::CONTENT_TYPE, "application/json"), no_store],
            report.to_json(),
        )
            .into_response(),
        Format::Text => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                no_store,
            ],
            text::render(report),
        )
            .into_response(),
        Format::Html => {
            let page = askama::Template::render(&ReportPage { r: report })?;
            ([no_store], Html(page)).into_response()
        }
    })
}
