//! The packets of a connection, as pcapng for Wireshark: live for the address
//! that made the connection (`/api/v1/attempts/{id}/packets.pcapng`), and a
//! run's, kept with its saved report (`/r/{id}/packets.pcapng`, as private as
//! the report: its unguessable id is the only way in).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{AppError, AppState, ConnectionContext};
use crate::attempt::TlsAttempt;
use crate::packets::{Off, Part};
use crate::report::PacketsView;

/// Most bytes of one attempt's file.
const ATTEMPT_FILE_BYTES: usize = 1 << 20;
/// Most bytes of the packets a saved report keeps, all its attempts together.
pub(super) const REPORT_PACKET_BYTES: usize = 1 << 20;

fn pcapng(body: Vec<u8>, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/x-pcapng".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn unavailable(off: &Off) -> Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        format!("no packets: {off}\n"),
    )
        .into_response()
}

/// What the first packet of an attempt says about it in the file: which
/// attempt, how it ended, what tlsdiag concluded from it.
fn comment(state: &AppState, attempt: &TlsAttempt, how: Option<&str>) -> String {
    let mut text = format!(
        "tlsdiag attempt {}: {} -> {}: {}",
        attempt.id,
        attempt.peer,
        attempt.local,
        attempt.outcome.describe()
    );
    let findings = crate::diagnose::attempt(attempt, &state.profile());
    if !findings.is_empty() {
        let ids: Vec<&str> = findings.iter().map(|f| &*f.id).collect();
        text.push_str(&format!("; findings: {}", ids.join(", ")));
    }
    if let Some(how) = how {
        text.push_str(&format!(" (this run's: {how})"));
    }
    text
}

/// The packets of one of `attempts`, or why there are none.
enum Found {
    Part(Part),
    None(&'static str),
}

fn part(state: &AppState, attempt: &TlsAttempt, how: Option<&str>) -> Result<Found, Off> {
    if attempt
        .seen_by
        .as_deref()
        .is_some_and(|by| by != &*state.instance)
    {
        return Ok(Found::None(
            "another instance saw this connection: its packets are kept there",
        ));
    }
    if attempt.balancer.is_some() {
        return Ok(Found::None(
            "this connection came through a load balancer: its TCP packets were the balancer's",
        ));
    }
    Ok(
        match state
            .packets
            .connection(attempt.peer, attempt.local, attempt.started_at)?
        {
            Some(connection) => Found::Part(Part {
                comment: comment(state, attempt, how),
                connection,
            }),
            None => Found::None(
                "none are kept any more (packets stay 15 minutes, fewer when newer connections need the room)",
            ),
        },
    )
}

/// `GET /api/v1/attempts/{id}/packets.pcapng`: one of the caller's own
/// attempts (in flight or recorded), as the server's packet socket saw it.
pub(super) async fn attempt_pcapng(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
    request: Request,
) -> Result<Response, AppError> {
    let context = request
        .extensions()
        .get::<ConnectionContext>()
        .ok_or(AppError::NoConnection)?;
    let peer = context.peer();
    if let Some(off) = state.packets.unavailable() {
        return Ok(unavailable(off));
    }
    // Only this address's attempts are looked at: another's id is not found;
    // another instance's have their packets there.
    let attempt = super::observe::own_attempt(&state, peer.ip(), id, &super::observe::Shared::Off)
        .ok_or(AppError::NotFoundBecause(
            "no attempt with that id from your address",
        ))?;
    state.packets.caught_up().await;
    match part(&state, &attempt, None) {
        Err(off) => Ok(unavailable(&off)),
        Ok(Found::None(why)) => Err(AppError::NotFoundBecause(why)),
        Ok(Found::Part(part)) => {
            let heading = format!(
                "tlsdiag: the server's packets of attempt {id} from {}, captured on the server",
                attempt.peer
            );
            let file = crate::packets::file(&[part], &heading, ATTEMPT_FILE_BYTES);
            Ok(pcapng(file, &format!("tlsdiag-attempt-{id}.pcapng")))
        }
    }
}

/// The packets of a run's own attempts (newest first, each with why it is
/// the run's), as a file to keep with its report, and what the report says
/// about them.
pub(super) async fn of_run(
    state: &AppState,
    run: &str,
    own: &[(&TlsAttempt, String)],
) -> (Option<Vec<u8>>, PacketsView) {
    if let Some(off) = state.packets.unavailable() {
        return (None, PacketsView::none(off.to_string()));
    }
    state.packets.caught_up().await;
    let mut parts = Vec::new();
    let mut missing = 0;
    // Oldest first: the file reads in time order.
    for (attempt, how) in own.iter().rev() {
        match part(state, attempt, Some(how)) {
            Ok(Found::Part(part)) => parts.push(part),
            Ok(Found::None(_)) => missing += 1,
            Err(off) => return (None, PacketsView::none(off.to_string())),
        }
    }
    if parts.is_empty() {
        let why = if own.is_empty() {
            "none of this run's connections reached the server".to_owned()
        } else {
            "none were kept for this run's connections".to_owned()
        };
        return (None, PacketsView::none(why));
    }
    let heading = format!(
        "tlsdiag: the server's packets of run {run}, {} connection(s), captured on the server",
        parts.len()
    );
    let file = crate::packets::file(&parts, &heading, REPORT_PACKET_BYTES);
    let packets = parts.iter().map(|p| p.connection.packets.len()).sum();
    let mut view = PacketsView {
        path: None,
        connections: parts.len(),
        packets,
        bytes: file.len(),
        note: None,
    };
    if missing > 0 {
        view.note = Some(format!(
            "{missing} of the run's connections had no packets kept"
        ));
    }
    (Some(file), view)
}

/// `GET /r/{id}/packets.pcapng`: the packets saved with a report.
pub(super) async fn saved_pcapng(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if !crate::reports::valid_id(&id) {
        return Err(AppError::NotFound);
    }
    let store = state
        .reports
        .clone()
        .map_err(|why| AppError::Unavailable(why.to_owned()))?;
    let key = id.clone();
    match tokio::task::spawn_blocking(move || store.packets(&key)).await {
        Ok(Ok(Some(file))) => Ok(pcapng(file, &format!("tlsdiag-report-{id}.pcapng"))),
        Ok(Ok(None)) => Err(AppError::NotFoundBecause(
            "no report with that id, or it kept no packets",
        )),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "reading a report's packets failed");
            Err(AppError::Unavailable(err.public_message().to_owned()))
        }
        Err(err) => Err(AppError::Internal(err.to_string())),
    }
}
