//! Probe endpoints (docs/probes.md): stepped downloads and uploads watched
//! through `TCP_INFO`, the client's results merged with the server's view, and
//! the `check.sh` harness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use super::negotiate::{negotiate, Format};
use super::{AppError, AppState, ConnectionContext, TcpFacts};
use crate::attempt::IcmpProbe;
use crate::diagnose::{self, IpVersion, Observations};
use crate::probe::{
    watch, ClientResults, Direction, PacketLimits, ProbeObservation, ProbeRun, Progress, LADDER,
    MAX_PROBE_BYTES, STALL_AFTER, STEP_TIMEOUT,
};
use crate::report::{AttemptView, RunAttempt, RunReport};
use crate::reports::store::NewReport;

/// Probe ids: unique per process, for the store.
static NEXT_PROBE: AtomicU64 = AtomicU64::new(1);

const CHECK_SH: &str = include_str!("../../static/check.sh");

#[derive(Debug, Serialize)]
struct ProbeConfig {
    /// Where to send the ladder's transfers ("" means this origin).
    probe_base: String,
    down: &'static [u64],
    up: &'static [u64],
    step_timeout_ms: u64,
    max_bytes: u64,
    server_time_ms: f64,
    /// With `?run=`: what our kernel had learned toward the caller, and
    /// whether it was forgotten for the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    path_memory: Option<PathMemoryView>,
}

/// What forgetting did for a run that starts (docs/probes.md#what-our-kernel-remembers).
#[derive(Debug, Serialize)]
struct PathMemoryView {
    /// The path MTU our kernel had learned toward the caller, if any.
    learned_mtu: Option<u32>,
    /// It was forgotten: the run's connections are announced the full MSS.
    forgot: bool,
    /// Why it could not be forgotten.
    cannot_forget: Option<String>,
    /// When it was not forgotten: the most data a packet of the caller's
    /// may carry on the run's connections (the MSS our SYN-ACKs announce).
    shrunk_mss: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ConfigQuery {
    run: Option<String>,
}

/// `GET /api/v1/probe/config[?run=]`: the ladder's settings. With a run id,
/// a run starts: the path MTU our kernel learned toward the caller (from an
/// earlier run's downloads, say) is forgotten first, so the run's own
/// connections are announced the full MSS and can meet a black hole again.
pub(super) async fn config(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ConfigQuery>,
    request: Request,
) -> Result<Response, AppError> {
    let (context, _) = context(&request)?;
    let probe_base = match context {
        ConnectionContext::Tls(_) => String::new(),
        ConnectionContext::Plain { .. } => super::https_base(&request, &context, state.https_port),
    };
    let run = query
        .run
        .as_deref()
        .filter(|r| crate::probe::valid_run_id(r));
    let path_memory = match run {
        Some(run) if context.via().is_none() => {
            let first = state.runs_heard.starts(run);
            let view = forget_for_run(&state, context.peer().ip()).await;
            // What a router toward the client told our kernel is evidence
            // about the client's path, whether or not it could be forgotten.
            if let Some(mtu) = view.learned_mtu {
                state.runs_heard.heard(
                    run,
                    diagnose::Heard {
                        mtu,
                        seen_at: SystemTime::now(),
                        before_run: first,
                        router: None,
                        told_at: None,
                    },
                );
            }
            Some(view)
        }
        _ => None,
    };
    let config = ProbeConfig {
        probe_base,
        down: LADDER,
        up: LADDER,
        step_timeout_ms: STEP_TIMEOUT.as_millis() as u64,
        max_bytes: MAX_PROBE_BYTES,
        server_time_ms: now_ms(),
        path_memory,
    };
    Ok(no_store(axum::Json(config)))
}

/// Forgets what our kernel learned toward `ip`, waiting out a flush another
/// client's run made a moment ago.
async fn forget_for_run(state: &AppState, ip: std::net::IpAddr) -> PathMemoryView {
    use crate::route::Forgot;
    let mut forgot = state.path_memory.forget(ip);
    if forgot == Forgot::Soon {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        forgot = state.path_memory.forget(ip);
    }
    match forgot {
        Forgot::Nothing | Forgot::Pinned { .. } => PathMemoryView {
            learned_mtu: None,
            forgot: false,
            cannot_forget: None,
            shrunk_mss: None,
        },
        Forgot::Forgot { mtu } => PathMemoryView {
            learned_mtu: Some(mtu),
            forgot: true,
            cannot_forget: None,
            shrunk_mss: None,
        },
        Forgot::Soon => kept(
            state,
            ip,
            "other clients' tests are forgetting right now".to_owned(),
        ),
        Forgot::Unavailable(why) => kept(state, ip, why),
    }
}

/// What was learned toward `ip` and stays, and why.
fn kept(state: &AppState, ip: std::net::IpAddr, why: String) -> PathMemoryView {
    let learned = state.path_memory.learned(ip).map(|l| l.mtu);
    let headers = if ip.to_canonical().is_ipv4() { 40 } else { 60 };
    PathMemoryView {
        learned_mtu: learned,
        forgot: false,
        cannot_forget: Some(why),
        shrunk_mss: learned.map(|mtu| mtu.saturating_sub(headers)),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RunQuery {
    run: Option<String>,
    size: Option<u64>,
    /// Milliseconds to wait before answering (at most [`MAX_HOLD`]): a ladder
    /// opens its connection at once and holds its first step, so the other
    /// direction's connection is open too before either sends a large packet
    /// (a large packet can teach an end a smaller path MTU, and connections
    /// opened after that carry only small packets).
    hold_ms: Option<u64>,
}

/// The longest a probe step may be held.
const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits as the step asked, within [`MAX_HOLD`].
async fn hold(query: &RunQuery) {
    if let Some(ms) = query.hold_ms {
        tokio::time::sleep(std::time::Duration::from_millis(ms).min(MAX_HOLD)).await;
    }
}

fn run_id(query: &RunQuery) -> Result<Option<String>, AppError> {
    match &query.run {
        Some(run) if !crate::probe::valid_run_id(run) => Err(AppError::BadRequest(
            "run must be 8 to 64 characters of A-Z, a-z, 0-9, _ and -".into(),
        )),
        other => Ok(other.clone()),
    }
}

fn packet_limits(context: &ConnectionContext, tcp: &TcpFacts) -> PacketLimits {
    let attempt = match context {
        ConnectionContext::Tls(attempt) => Some(attempt),
        ConnectionContext::Plain { .. } => None,
    };
    PacketLimits {
        over_tls: attempt.is_some(),
        mss_clamp: tcp.mss_clamp,
        client_mss: tcp.syn.as_ref().and_then(|s| s.mss).map(u32::from),
        our_mss_at_start: attempt
            .and_then(|a| a.tcp)
            .map(|t| t.advmss)
            .filter(|&m| m > 0)
            .or(tcp.our_mss_at_start),
    }
}

fn context(request: &Request) -> Result<(ConnectionContext, TcpFacts), AppError> {
    let context = request
        .extensions()
        .get::<ConnectionContext>()
        .cloned()
        .ok_or(AppError::NoConnection)?;
    let tcp = request
        .extensions()
        .get::<TcpFacts>()
        .cloned()
        .unwrap_or_default();
    Ok((context, tcp))
}

/// `GET /probe/down/{bytes}`: exactly that many incompressible bytes.
pub(super) async fn down(
    State(state): State<Arc<AppState>>,
    Path(bytes): Path<String>,
    Query(query): Query<RunQuery>,
    request: Request,
) -> Result<Response, AppError> {
    let bytes: u64 = bytes
        .parse()
        .map_err(|_| AppError::BadRequest("size must be a whole number of bytes".into()))?;
    if bytes > MAX_PROBE_BYTES {
        return Err(AppError::BadRequest(format!(
            "at most {MAX_PROBE_BYTES} bytes per probe"
        )));
    }
    let run = run_id(&query)?;
    let (context, tcp) = context(&request)?;
    let packets = packet_limits(&context, &tcp);
    let progress = Arc::new(Progress::default());
    hold(&query).await;
    let body = state.payload.body(bytes, Some(progress.clone()));
    if let Some(handle) = tcp.handle {
        let before = handle.info();
        let probes = state.probes.clone();
        let peer = context.peer();
        let started_at = SystemTime::now();
        tokio::spawn(async move {
            let result = watch::download(
                handle,
                before,
                progress,
                STALL_AFTER,
                STEP_TIMEOUT + STALL_AFTER,
            )
            .await;
            let observation = ProbeObservation {
                id: NEXT_PROBE.fetch_add(1, Ordering::Relaxed),
                peer,
                run,
                direction: Direction::Down,
                bytes,
                transferred: result.acked,
                completed: result.completed,
                stalled: result.stalled,
                duration_ms: result.duration_ms,
                started_at,
                before: result.before,
                after: result.after,
                samples: result.samples,
                packets,
                icmp_probe: None,
            };
            log(&observation);
            probes.record(Arc::new(observation));
        });
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
            // Compression would defeat the point: the bytes on the wire are the probe.
            (header::CONTENT_ENCODING, "identity"),
        ],
        Body::new(body),
    )
        .into_response())
}

#[derive(Debug, Serialize)]
struct UpAnswer {
    received: u64,
    expected: Option<u64>,
    ms: f64,
}

/// `POST /probe/up`: counts what arrives; a stall is recorded with the bytes
/// that did.
pub(super) async fn up(
    State(state): State<Arc<AppState>>,
    Query(query): Query<RunQuery>,
    request: Request,
) -> Result<Response, AppError> {
    let run = run_id(&query)?;
    let (context, tcp) = context(&request)?;
    let packets = packet_limits(&context, &tcp);
    if query.size.is_some_and(|s| s > MAX_PROBE_BYTES) {
        return Err(AppError::TooLarge(MAX_PROBE_BYTES));
    }
    let expected = query.size.or_else(|| {
        request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
    });
    let started = tokio::time::Instant::now();
    let started_at = SystemTime::now();
    let before = tcp.handle.as_ref().and_then(|h| h.info());
    let mut body = request.into_body();
    let mut received: u64 = 0;
    let mut stalled = false;
    let mut icmp: Option<UploadIcmp> = None;
    loop {
        match tokio::time::timeout(STALL_AFTER, body.frame()).await {
            Err(_) if icmp.is_none() => {
                // Stuck behind a black hole? Tell the client's computer what
                // its router did not, once, and give it time to react.
                let owed = expected.is_some_and(|e| received < e);
                match upload_icmp(&state, &context, &tcp, before.as_ref(), started, owed) {
                    Some(sent) if sent.not_sent.is_none() => icmp = Some(sent),
                    // Nothing was sent (or could be): no reason to wait more.
                    other => {
                        icmp = other;
                        stalled = true;
                        break;
                    }
                }
            }
            Err(_) => {
                stalled = true;
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => break,
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    received += data.len() as u64;
                    if received > MAX_PROBE_BYTES {
                        return Err(AppError::TooLarge(MAX_PROBE_BYTES));
                    }
                }
            }
        }
    }
    let ms = crate::capture::ms(started.elapsed());
    hold(&query).await;
    let after = tcp.handle.as_ref().and_then(|h| h.info());
    let completed = !stalled && expected.is_none_or(|e| e == received);
    let icmp_probe = icmp.map(|sent| sent.outcome(completed, ms, context.peer()));
    let observation = ProbeObservation {
        id: NEXT_PROBE.fetch_add(1, Ordering::Relaxed),
        peer: context.peer(),
        run,
        direction: Direction::Up,
        bytes: expected.unwrap_or(received),
        transferred: received,
        completed,
        stalled,
        duration_ms: ms,
        started_at,
        before,
        after,
        samples: Vec::new(),
        packets,
        icmp_probe,
    };
    log(&observation);
    state.probes.record(Arc::new(observation));
    // Only a complete upload is a 200: clients may judge by the status alone.
    let status = if stalled {
        StatusCode::REQUEST_TIMEOUT
    } else if !completed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    // Compact JSON on purpose: check.sh matches `"received":N` textually.
    let answer = serde_json::to_string(&UpAnswer {
        received,
        expected,
        ms,
    })
    .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        answer,
    )
        .into_response())
}

/// Our ICMP toward a stalled upload: when we sent it, and what we knew then.
struct UploadIcmp {
    sent_at_ms: f64,
    held: u32,
    mtu: u32,
    /// Set when the signature was there but nothing could be sent (why).
    not_sent: Option<String>,
}

impl UploadIcmp {
    fn outcome(self, completed: bool, ended_ms: f64, peer: std::net::SocketAddr) -> IcmpProbe {
        let message = IpVersion::of(peer.ip()).too_big_message().to_owned();
        match (self.not_sent, completed) {
            (Some(why), _) => IcmpProbe::NotSent { why },
            (None, true) => IcmpProbe::Reached {
                message,
                mtu: self.mtu,
                sent_at_ms: self.sent_at_ms,
                complete_at_ms: ended_ms,
                held_segments: self.held,
            },
            (None, false) => IcmpProbe::NoChange {
                message,
                mtu: self.mtu,
                sent_at_ms: self.sent_at_ms,
                waited_ms: ended_ms - self.sent_at_ms,
                held_segments: self.held,
            },
        }
    }
}

/// When an upload has stalled with bytes still owed (the client announced
/// more than arrived, and nothing came for [`STALL_AFTER`]: it is resending
/// what never gets through), sends our own ICMP quoting those bytes. `None`
/// when nothing is owed.
fn upload_icmp(
    state: &AppState,
    context: &ConnectionContext,
    tcp: &TcpFacts,
    before: Option<&crate::tcp::TcpInfo>,
    started: tokio::time::Instant,
    owed: bool,
) -> Option<UploadIcmp> {
    let info = tcp.handle.as_ref()?.info()?;
    let held = info
        .rcv_ooopack
        .saturating_sub(before.map_or(0, |b| b.rcv_ooopack));
    if !owed && held == 0 {
        return None;
    }
    let sent_at_ms = crate::capture::ms(started.elapsed());
    let mtu = state.icmp.mtu();
    let peer = context.peer();
    match state.icmp.send(
        peer,
        context.local(),
        tcp.syn.as_deref(),
        info.bytes_received,
    ) {
        Ok(sequence) => {
            tracing::info!(
                target: "tlsdiag::icmp",
                %peer, sequence, mtu, held,
                "sent our own fragmentation-needed toward a stalled upload"
            );
            Some(UploadIcmp {
                sent_at_ms,
                held,
                mtu,
                not_sent: None,
            })
        }
        Err(err) => Some(UploadIcmp {
            sent_at_ms,
            held,
            mtu,
            not_sent: Some(err.to_string()),
        }),
    }
}

/// Saves the run's report; returns its id, or a sentence for the user.
async fn save(
    state: &AppState,
    report: &RunReport,
    packets: Option<Vec<u8>>,
) -> Result<String, SaveRefused> {
    let store = state.reports.clone().map_err(SaveRefused::Store)?;
    let id = crate::reports::new_id().map_err(|err| {
        tracing::error!(error = %err, "no randomness for a report id");
        SaveRefused::Store("the server could not create a report id")
    })?;
    let mut document = report.clone();
    document.id = Some(id.clone());
    if let (Some(view), Some(_)) = (&mut document.server_packets, &packets) {
        view.path = Some(format!("/r/{id}/packets.pcapng"));
    }
    let body = serde_json::to_string(&document).map_err(|err| {
        tracing::error!(error = %err, "serializing a report");
        SaveRefused::Store("the server could not write the report")
    })?;
    if body.len() > super::MAX_REPORT_BYTES {
        tracing::warn!(
            bytes = body.len(),
            "a report over the size cap was not saved"
        );
        return Err(SaveRefused::Store(
            "the report is larger than the server keeps",
        ));
    }
    let max_total = state.report_max_bytes;
    let new = NewReport {
        id: id.clone(),
        created_at: document.created_at,
        label: document.label.clone(),
        client_address: document.client.address.clone(),
        worst: document.worst.map(|w| w.as_str().to_owned()),
        summary: document.verdict.clone(),
        body,
        packets,
    };
    match tokio::task::spawn_blocking(move || store.save(&new, max_total)).await {
        Ok(Ok(())) => {
            tracing::info!(target: "tlsdiag::report", %id, label = report.label.as_deref().unwrap_or(""), "report saved");
            Ok(id)
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, "saving a report failed");
            Err(SaveRefused::Store(err.public_message()))
        }
        Err(err) => {
            tracing::error!(error = %err, "report save task failed");
            Err(SaveRefused::Store("the server could not write the report"))
        }
    }
}

/// `POST /api/v1/probe/results`: the run's verdict, from the run's own
/// evidence (`diagnose::attribution`), saved when the address may save one.
pub(super) async fn results(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, AppError> {
    let (context, tcp) = context(&request)?;
    // A cross-site form or `fetch` without a preflight can only send
    // text/plain and friends: requiring JSON keeps other pages from filing
    // reports in a visitor's name.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(AppError::MediaType("application/json"));
    }
    let received_at = SystemTime::now();
    let request_facts = crate::attempt::RequestFacts::of(&headers, request.version());
    // The posting connection's own report (its ClientHello, SYN), taken
    // before the body is read.
    let shared = super::observe::shared(&state, context.peer().ip()).await;
    let connection = super::report::build(&state, &request, &shared)?;
    let base = super::base_url(&request, &context);
    let how_to_test =
        super::observe::how_to_test(&super::plain_base(&request, &context, state.http_port));
    let bytes = axum::body::to_bytes(request.into_body(), RESULTS_LIMIT)
        .await
        .map_err(|_| AppError::TooLarge(RESULTS_LIMIT as u64))?;
    let results: ClientResults = serde_json::from_slice(&bytes).map_err(|e| {
        AppError::BadRequest(format!("results are not valid JSON for this API: {e}"))
    })?;
    results.validate().map_err(AppError::BadRequest)?;
    let peer = context.peer();
    let (run, observations) = merge_when_watched(&state, &results, peer.ip()).await;
    let started_at = run_start(&results, &observations, received_at);
    let mut client = client_side(&results, started_at, &request_facts);
    if !client.failed.is_empty() {
        // A connection of the run that is stuck right now shows its fate
        // within seconds: wait for it rather than judge without it.
        settle_in_flight(&state, peer.ip(), started_at).await;
    }
    let since = SystemTime::now()
        .duration_since(started_at)
        .unwrap_or_default()
        + CLOCK_SLACK;
    let attempts = super::observe::attempts(&state, peer.ip(), since, &shared);
    let split = diagnose::attribution::attribute(
        &attempts,
        &diagnose::attribution::RunClient {
            run: &results.run,
            failed: &client.failed,
            user_agent: request_facts.user_agent.as_deref(),
            syn: tcp.syn.as_deref(),
        },
    );
    let profile = state.profile();
    let own = split.own_attempts();
    remembered(
        &state,
        (peer.ip(), &results.run, started_at),
        (&own, tcp.syn.as_deref()),
        &shared,
        &mut client,
    );
    let mut judged = diagnose::Judged::of(own.iter().chain(&split.others), &profile);
    if client.proxy.is_none() && context.via().is_none() {
        client.proxy = results.proxy.as_deref().map(diagnose::ProxyUse::configured);
    }
    let diagnosis = diagnose::diagnose(
        &Observations {
            ip: IpVersion::of(peer.ip()),
            attempts: &own,
            run: Some(&run),
            hello_ladder: &results.hello,
            tls_check: results.tls_check.as_ref(),
            syn: tcp.syn.as_deref(),
            how_to_test: &how_to_test,
            via: context.via(),
            judged: Some(&judged),
            client: Some(&client),
        },
        &profile,
    );
    let hellos =
        crate::report::run::kept_hellos(&split.own.iter().map(|(a, _)| &**a).collect::<Vec<_>>());
    let own_views = split
        .own
        .iter()
        .zip(hellos)
        .map(|((a, tie), hello_base64)| RunAttempt {
            tie: tie.clone(),
            attempt: AttemptView::new(a, judged.take(a, &profile)).brief(),
            hello_base64,
        })
        .collect();
    let other_views = split
        .others
        .iter()
        .take(MAX_OTHER_CLIENTS)
        .map(|a| AttemptView::new(a, judged.take(a, &profile)).brief())
        .collect();
    let mut answer = RunReport::new(&results, run, diagnosis, connection).with_attempts(
        own_views,
        other_views,
        client.proxy.clone(),
    );
    let own_packets: Vec<(&crate::attempt::TlsAttempt, String)> = split
        .own
        .iter()
        .map(|(a, tie)| (&**a, tie.describe()))
        .collect();
    let (packets, packets_view) = super::packets::of_run(&state, &results.run, &own_packets).await;
    let kept_packets = packets.is_some();
    answer.server_packets = Some(packets_view);
    state.metrics.path_test(answer.status, &results.agent);
    // A problem found even on a shrunk connection is conclusive; a verdict
    // carried over from the client's memory of our message is not new.
    let conclusive = answer.status != diagnose::Status::Inconclusive
        && !answer
            .findings
            .iter()
            .any(|f| f.id == "path.client-remembers-our-icmp");
    // Storage is what the limit protects; the verdict is given either way.
    let saved = match state
        .report_rate
        .take(peer.ip(), tokio::time::Instant::now())
    {
        Ok(()) => save(&state, &answer, packets).await,
        Err(wait) => Err(SaveRefused::Limited(wait)),
    };
    state.metrics.report(saved.is_ok());
    match saved {
        Ok(id) => {
            if let (Some(view), true) = (&mut answer.server_packets, kept_packets) {
                view.path = Some(format!("{base}/r/{id}/packets.pcapng"));
            }
            answer.report_url = Some(format!("{base}/r/{id}"));
            answer.id = Some(id);
        }
        Err(refused) => {
            if let (Some(view), true) = (&mut answer.server_packets, kept_packets) {
                view.note = Some(
                    "not kept: the report was not saved (each attempt's packets stay downloadable for 15 minutes from /api/v1/attempts/{id}/packets.pcapng)".to_owned(),
                );
            }
            answer.report_error = Some(refused.to_string());
        }
    }
    if conclusive {
        state.last_verdicts.keep(
            peer.ip(),
            diagnose::EarlierVerdict {
                at: answer.created_at,
                status: answer.status,
                verdict: answer.verdict.clone(),
                report_url: answer.report_url.clone(),
            },
        );
    }
    tracing::info!(
        target: "tlsdiag::probe",
        peer = %context.peer(), run = %answer.probe.run, agent = %results.agent,
        own = answer.attempts.len(), others = answer.other_clients.len(),
        findings = ?answer.findings.iter().map(|f| &*f.id).collect::<Vec<_>>(),
        "probe run"
    );
    Ok(match negotiate(&headers, None) {
        Format::Text => no_store(crate::report::text::render_run(&answer)),
        _ => no_store(axum::Json(answer)),
    })
}

/// What the kernels on both ends remember of earlier runs, into `client`:
/// a path MTU our kernel learned toward the caller (when it shrank the run's
/// connections, why it stayed and the last conclusive verdict), what routers
/// toward the caller told us (and who), and whether the caller's computer
/// remembers our own ICMP.
fn remembered(
    state: &AppState,
    (ip, run, started_at): (std::net::IpAddr, &str, SystemTime),
    (own, syn): (
        &[Arc<crate::attempt::TlsAttempt>],
        Option<&crate::tcp::SynInfo>,
    ),
    shared: &super::observe::Shared,
    client: &mut diagnose::ClientSide,
) {
    // What the kernels on both ends remember of earlier runs.
    if own.iter().any(|a| a.our_mss.is_some_and(|m| m.shrunk())) {
        client.cannot_forget = state.path_memory.cannot_forget(ip).map(str::to_owned);
        client.earlier = state.last_verdicts.get(ip);
    }
    // The rescue the client's kernel may remember can be up to ten minutes
    // before this run: look that far back.
    let remembered_window = SystemTime::now()
        .duration_since(started_at)
        .unwrap_or_default()
        + diagnose::CLIENT_MEMORY;
    // What routers toward the client told our kernel: at the run's starts,
    // and what it holds now (learned since the last start forgot, unless
    // forgetting is impossible and it was there all along).
    client.heard = state.runs_heard.take(run);
    if let Some(now) = state.path_memory.learned(ip) {
        let all_along = state.path_memory.cannot_forget(ip).is_some()
            && client
                .heard
                .iter()
                .any(|h| h.before_run && h.mtu == now.mtu);
        if !all_along {
            client.heard.push(diagnose::Heard {
                mtu: now.mtu,
                seen_at: SystemTime::now(),
                before_run: false,
                router: None,
                told_at: None,
            });
        }
    }
    // Name the router only where the kernel learned the very MTU its
    // message said: anyone can send us such a message.
    for h in &mut client.heard {
        if let Some(told) = state.icmp_heard.told(ip, h.mtu) {
            h.router = Some(told.told.router);
            h.told_at = Some(told.at);
        }
    }
    client.remembers = diagnose::client_remembers(
        syn.or_else(|| own.iter().find_map(|a| a.syn.as_deref()))
            .and_then(|s| s.mss),
        ip.to_canonical().is_ipv4(),
        state.icmp.mtu(),
        &super::observe::attempts(state, ip, remembered_window, shared),
        started_at,
        &state.profile(),
    );
}

/// Most other clients' attempts a run report lists.
const MAX_OTHER_CLIENTS: usize = 20;

/// Why a run's report was not saved, in words for the user.
#[derive(Debug, thiserror::Error)]
enum SaveRefused {
    #[error("too many reports from your address; the next can be saved in {} s", .0.as_secs().max(1))]
    Limited(std::time::Duration),
    #[error("{0}")]
    Store(&'static str),
}

/// When the run began, on our clock: the client's own count of the time
/// since (a duration, so no clock offset), or else shortly before its first
/// transfer reached us, or else the last few minutes.
fn run_start(
    results: &ClientResults,
    observations: &[Arc<ProbeObservation>],
    received_at: SystemTime,
) -> SystemTime {
    if let Some(ms) = results.run_ms {
        return received_at
            .checked_sub(std::time::Duration::from_secs_f64(ms / 1000.0))
            .unwrap_or(received_at);
    }
    observations
        .iter()
        .filter(|o| o.run.as_deref() == Some(&results.run))
        .map(|o| o.started_at)
        .min()
        .and_then(|first| first.checked_sub(RUN_LEAD))
        .or_else(|| received_at.checked_sub(RUN_WINDOW))
        .unwrap_or(received_at)
}

/// What the client itself saw: its HTTPS tries that failed, placed on our
/// clock from the run's start, and the proxy its requests named.
fn client_side(
    results: &ClientResults,
    started_at: SystemTime,
    request: &crate::attempt::RequestFacts,
) -> diagnose::ClientSide {
    use diagnose::attribution::FailedTry;
    let at = |ms: f64| started_at + std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0);
    let mut failed: Vec<FailedTry> = results
        .https
        .iter()
        .filter(|t| !t.ok)
        .map(|t| FailedTry {
            from: at(t.started_ms),
            to: at(t.started_ms + t.ms),
            error: t.error.clone().unwrap_or_else(|| "failed".to_owned()),
        })
        .collect();
    let mut request_failed = results
        .https
        .iter()
        .find(|t| !t.ok)
        .map(|t| t.error.clone().unwrap_or_else(|| "failed".to_owned()));
    // check.sh's certificate check is its first request, made as the run
    // began (the page reports its tries above instead).
    let check = results.tls_check.as_ref().filter(|c| !c.verified);
    if let Some(check) = check.filter(|_| results.https.is_empty()) {
        let ms = check.ms.unwrap_or(CHECK_SH_TLS_TIMEOUT_MS);
        let error = check
            .error
            .clone()
            .unwrap_or_else(|| "certificate not verified".to_owned());
        failed.push(FailedTry {
            from: at(0.0),
            to: at(ms),
            error: error.clone(),
        });
        if check.error.is_some() && request_failed.is_none() {
            request_failed = Some(error);
        }
    }
    let recovered = results.https.iter().skip_while(|t| t.ok).any(|t| t.ok);
    diagnose::ClientSide {
        who: if results.agent == "browser" {
            "your browser"
        } else {
            "check.sh"
        },
        failed,
        request_failed,
        recovered,
        proxy: diagnose::ProxyUse::from_request(request),
        cannot_forget: None,
        earlier: None,
        remembers: None,
        heard: Vec::new(),
    }
}

/// check.sh's certificate check gives up after 8 s (`--max-time 8`).
const CHECK_SH_TLS_TIMEOUT_MS: f64 = 8_000.0;

/// Waits, at most [`SETTLE_LIMIT`], until every HTTPS connection from `ip`
/// that began during the run has either ended or shows that it is stuck.
async fn settle_in_flight(state: &AppState, ip: std::net::IpAddr, since: SystemTime) {
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    while tokio::time::Instant::now() < deadline {
        let young = state
            .inflight
            .snapshots(ip)
            .iter()
            .any(|s| s.started_at >= since && s.as_stalled_attempt().is_none());
        if !young {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// How long a run's results wait for its connections still in flight: past
/// the 3 s after which a stuck one shows as stalled.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_millis(3_500);

/// Merges the client's steps with the server's observations. A download's
/// observation is recorded when its watcher sees the last byte acknowledged,
/// which can be a moment after the client has it all and posts: wait briefly
/// for those, so a step that passed is not left without the server's view
/// (and so proves nothing).
async fn merge_when_watched(
    state: &AppState,
    results: &ClientResults,
    ip: std::net::IpAddr,
) -> (ProbeRun, Vec<Arc<ProbeObservation>>) {
    let deadline = tokio::time::Instant::now() + WATCHER_GRACE;
    loop {
        let observations = state.probes.recent(ip);
        let run = ProbeRun::merge(results, &observations, now_ms());
        let unwatched = run
            .down
            .iter()
            .any(|s| s.server.is_none() && s.client.as_ref().is_some_and(|c| c.ok));
        if !unwatched || tokio::time::Instant::now() >= deadline {
            return (run, observations);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// How long results wait for download watchers to finish recording.
const WATCHER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A results body is a few KiB; this bounds what a client can make us parse.
const RESULTS_LIMIT: usize = 64 * 1024;

/// How long before the run's start its window opens: a connection is
/// accepted a moment before the client's clock says it began, and without
/// the client's own count the first transfer comes well after the start.
const RUN_LEAD: std::time::Duration = std::time::Duration::from_secs(60);
/// How much earlier than the run's start its window opens: the client's
/// count and our clock differ by the post's travel time.
const CLOCK_SLACK: std::time::Duration = std::time::Duration::from_secs(5);
/// The window when no transfer of the run reached us.
const RUN_WINDOW: std::time::Duration = std::time::Duration::from_secs(180);

#[derive(Debug, Deserialize)]
pub(super) struct CheckQuery {
    case: Option<String>,
}

/// `GET /check.sh[?case=LABEL]`: the curl harness, pointed at the server it
/// came from and carrying support's case label.
pub(super) async fn check_sh(
    State(state): State<Arc<AppState>>,
    Query(query): Query<CheckQuery>,
    request: Request,
) -> Result<Response, AppError> {
    let (context, _) = context(&request)?;
    let label = match query.case {
        Some(label) if !crate::reports::valid_label(&label) => {
            return Err(AppError::BadRequest(
                "case must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'".into(),
            ))
        }
        other => other.unwrap_or_default(),
    };
    let script = CHECK_SH
        .replace(
            "__TLSDIAG_HTTPS_BASE__",
            &super::https_base(&request, &context, state.https_port),
        )
        .replace(
            "__TLSDIAG_PROBE_BASE__",
            &state
                .probe_port
                .map(|port| super::other_base(&request, &context, "http", port))
                .unwrap_or_default(),
        )
        .replace("__TLSDIAG_BASE__", &super::base_url(&request, &context))
        .replace("__TLSDIAG_LABEL__", &label);
    Ok(no_store((
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        script,
    )))
}

fn no_store(inner: impl IntoResponse) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], inner).into_response()
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn log(o: &ProbeObservation) {
    tracing::info!(
        target: "tlsdiag::probe",
        peer = %o.peer, run = o.run.as_deref().unwrap_or(""), direction = ?o.direction,
        bytes = o.bytes, transferred = o.transferred, completed = o.completed, stalled = o.stalled,
        retransmissions = o.retransmissions(), ms = o.duration_ms,
        "probe transfer"
    );
}
