//! HTTP application (axum): routes, format negotiation, errors. Knows nothing of
//! sockets: the server hands every request a [`ConnectionContext`] describing the
//! connection it arrived on.
//!
//! Routes (both listeners):
//! - `GET /` — the report for this connection: HTML, JSON or text by negotiation.
//! - `GET /api/v1/connection` — the same report as JSON.
//! - `GET /api/v1/attempts` — the caller's recent HTTPS attempts (its own address only).
//! - `GET /probe/down/{n}`, `POST /probe/up`, `GET /api/v1/probe/config`,
//!   `POST /api/v1/probe/results`, `GET /check.sh` — path probes (docs/probes.md).
//! - `GET /r/{id}`, `GET /api/v1/reports/{id}` — a saved report (HTML/text, JSON).
//! - `GET /compare/{a}/{b}`, `GET /api/v1/compare/{a}/{b}` — two saved reports
//!   compared (HTML/text/JSON, JSON); `GET /compare?a=&b=` — the forms' way there.
//! - `GET /admin` — the operator's list of reports (only with a token configured).
//! - `GET /static/*` — the page's CSS and JS (embedded in the binary).
//! - `GET /healthz` — liveness.

mod assets;
mod compare;
mod error;
mod negotiate;
mod observe;
mod packets;
mod probe;
pub mod rate;
mod report;
mod saved;

pub use error::AppError;
pub use negotiate::Format;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::cors::AllowOrigin;
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};

use crate::attempt::TlsAttempt;
use crate::inflight::InFlight;
use crate::probe::{Payload, ProbeObservation};
use crate::profile::ServerProfile;
use crate::proxy::Via;
use crate::recent::{RecentStore, StoreLimits};
use crate::reports::ReportStore;
use crate::tcp::{SynInfo, TcpHandle};
use arc_swap::ArcSwap;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub enum ConnectionContext {
    /// Over TLS: everything captured about this connection's handshake.
    Tls(Arc<TlsAttempt>),
    /// Over plain HTTP.
    Plain {
        peer: SocketAddr,
        local: SocketAddr,
        /// The load balancer it came through (`--proxy-protocol`).
        via: Option<Arc<Via>>,
    },
}

/// What the kernel told us about the connection a request arrived on: its SYN,
/// a handle for `TCP_INFO` snapshots (probes watch transfers with it), and the
/// MSS our listener clamped it to, if any.
#[derive(Debug, Clone, Default)]
pub struct TcpFacts {
    pub syn: Option<Arc<SynInfo>>,
    pub handle: Option<TcpHandle>,
    /// A clamped connection carries only small packets: nothing measured on it
    /// can vouch for full-size ones.
    pub mss_clamp: Option<u32>,
    /// Our MSS as the connection began (plain-HTTP listeners; an HTTPS
    /// connection's is in its attempt's capture snapshot).
    pub our_mss_at_start: Option<u32>,
}

impl ConnectionContext {
    /// The client: from the PROXY header behind a load balancer, else the
    /// TCP peer. Everything per address (attempts, limits, reports) is keyed
    /// by it.
    pub fn peer(&self) -> SocketAddr {
        match self {
            ConnectionContext::Tls(attempt) => attempt.peer,
            ConnectionContext::Plain { peer, .. } => *peer,
        }
    }

    /// The load balancer this connection came through, when it did: its
    /// address, the PROXY header's version and kind. Its TCP facts are not
    /// the client's.
    pub fn via(&self) -> Option<&Via> {
        match self {
            ConnectionContext::Tls(attempt) => attempt.balancer.as_ref().map(|b| &b.via),
            ConnectionContext::Plain { via, .. } => via.as_deref(),
        }
    }

    /// Our address on this connection.
    pub fn local(&self) -> SocketAddr {
        match self {
            ConnectionContext::Tls(attempt) => attempt.local,
            ConnectionContext::Plain { local, .. } => *local,
        }
    }
}

/// Reports one address may save by default (`--report-burst`,
/// `--report-every`): a burst of 60, then one every 5 s (720 an hour), for
/// an office behind one NAT address when support sends the URL to everyone.
/// At the 512 KiB cap a report can reach, a full burst is 30 MiB; real
/// reports are a tenth of that. Past it a run still gets its verdict.
pub const REPORT_RATE: rate::Rate = rate::Rate {
    burst: 60,
    every: std::time::Duration::from_secs(5),
    max_addresses: 65_536,
};

/// Largest saved report. A real one is a few tens of KiB; the bound holds
/// whatever a client sends (every list in a report is capped).
pub const MAX_REPORT_BYTES: usize = 512 * 1024;

/// Each client address's last conclusive verdict (in memory, this
/// instance's), for a run that could not test what it needed to: its
/// report shows the earlier verdict instead of a bare "inconclusive".
#[derive(Debug, Default)]
pub struct LastVerdicts(std::sync::Mutex<HashMap<IpAddr, crate::diagnose::EarlierVerdict>>);

/// Addresses whose last verdict is remembered; past it the oldest goes.
const LAST_VERDICTS: usize = 16_384;

impl LastVerdicts {
    pub fn keep(&self, ip: IpAddr, verdict: crate::diagnose::EarlierVerdict) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= LAST_VERDICTS && !map.contains_key(&ip.to_canonical()) {
            let oldest = map.iter().min_by_key(|(_, v)| v.at).map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        map.insert(ip.to_canonical(), verdict);
    }

    pub fn get(&self, ip: IpAddr) -> Option<crate::diagnose::EarlierVerdict> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip.to_canonical()).cloned()
    }
}

/// What each run's start forgot of the path MTU our kernel had learned
/// toward its client (evidence that a router's ICMP toward the client reached
/// us), kept until the run's results arrive. Bounded: the oldest runs go.
#[derive(Debug, Default)]
pub struct RunsHeard(std::sync::Mutex<RunsHeardInner>);

#[derive(Debug, Default)]
struct RunsHeardInner {
    by_run: HashMap<String, Vec<crate::diagnose::Heard>>,
    order: std::collections::VecDeque<String>,
}

/// Runs remembered at once, and sightings per run (check.sh forgets twice).
const RUNS_HEARD: usize = 4_096;
const HEARD_PER_RUN: usize = 4;

impl RunsHeard {
    /// Notes that `run` announced itself; true the first time (what is
    /// forgotten then was learned before the run).
    pub fn starts(&self, run: &str) -> bool {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if inner.by_run.contains_key(run) {
            return false;
        }
        if inner.order.len() >= RUNS_HEARD {
            if let Some(old) = inner.order.pop_front() {
                inner.by_run.remove(&old);
            }
        }
        inner.by_run.insert(run.to_owned(), Vec::new());
        inner.order.push_back(run.to_owned());
        true
    }

    pub fn heard(&self, run: &str, heard: crate::diagnose::Heard) {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = inner.by_run.get_mut(run) {
            if list.len() < HEARD_PER_RUN {
                list.push(heard);
            }
        }
    }

    /// What the run's starts saw (the run's results are in: it is done).
    pub fn take(&self, run: &str) -> Vec<crate::diagnose::Heard> {
        let mut inner = self.0.lock().unwrap_or_else(|p| p.into_inner());
        inner.by_run.remove(run).unwrap_or_default()
    }
}

/// State shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// What we accept and serve; swapped with the certificate
    /// ([`crate::certs::Served`]). Read it through [`AppState::profile`].
    pub profile: Arc<ArcSwap<ServerProfile>>,
    /// HTTP-01 key authorizations while an ACME order is validated.
    pub acme_tokens: Arc<crate::certs::acme::Http01Tokens>,
    pub attempts: Arc<RecentStore<TlsAttempt>>,
    /// HTTPS connections whose attempt has not ended yet.
    pub inflight: Arc<InFlight>,
    /// Our own ICMP toward stuck clients (raw sockets, limits).
    pub icmp: Arc<crate::icmp::Prober>,
    /// What our kernel learned about the path toward each client, forgotten
    /// when the client's run starts.
    pub path_memory: Arc<crate::route::PathMemory>,
    /// Each address's last conclusive verdict, shown when a later run could
    /// not test what it needed to.
    pub last_verdicts: Arc<LastVerdicts>,
    /// What each run's start forgot, until its results arrive.
    pub runs_heard: Arc<RunsHeard>,
    /// The routers' "fragmentation needed" / "packet too big" messages that
    /// reached us, per client they named (read from our raw ICMP sockets).
    pub icmp_heard: Arc<crate::icmp::heard::HeardTable>,
    /// Each recent HTTPS connection's packets, or why there are none.
    pub packets: crate::packets::Packets,
    /// The server's side of recent probe transfers.
    pub probes: Arc<RecentStore<ProbeObservation>>,
    /// The incompressible bytes probes are cut from, generated once.
    pub payload: Payload,
    /// Saved reports, or why they cannot be saved (the diagnosis works either way).
    pub reports: Result<Arc<dyn ReportStore>, &'static str>,
    /// SHA-256 of the admin token: compared in constant time, and equal length
    /// whatever the guess.
    pub admin_token: Option<[u8; 32]>,
    /// Port of the HTTPS listener: where the path test runs (full-size
    /// packets), also for pages and scripts served over plain HTTP.
    pub https_port: u16,
    /// Port of the plain-HTTP listener: where check.sh and the entry page are
    /// fetched (it gets through when HTTPS does not).
    pub http_port: u16,
    /// Port of the optional full-size plain-HTTP probe listener.
    pub probe_port: Option<u16>,
    /// How often one address may save a report.
    pub report_rate: Arc<rate::RateLimiter>,
    /// All saved reports together, enforced as each is saved.
    pub report_max_bytes: u64,
    /// This instance's name (`--instance-name`): tags the attempts it sees.
    pub instance: Arc<str>,
    /// Attempts other instances saw, with `--database-url`.
    pub shared_attempts: Option<Arc<crate::pg::attempts::SharedAttempts>>,
    /// Prometheus counters (served by the server's metrics listener, if any).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    pub fn new(profile: Arc<ServerProfile>, limits: StoreLimits) -> Self {
        Self {
            profile: Arc::new(ArcSwap::new(profile)),
            acme_tokens: Arc::default(),
            attempts: Arc::new(RecentStore::new(limits)),
            inflight: Arc::new(InFlight::default()),
            icmp: Arc::new(crate::icmp::Prober::disabled(
                "this server was built without raw sockets",
            )),
            path_memory: Arc::new(crate::route::PathMemory::disabled(
                "this server does not read its route table",
            )),
            last_verdicts: Arc::default(),
            runs_heard: Arc::default(),
            icmp_heard: Arc::default(),
            packets: crate::packets::Packets::off(crate::packets::Off::Unavailable(
                "this server was started without a packet socket".into(),
            )),
            probes: Arc::new(RecentStore::new(StoreLimits {
                per_address: 200,
                ..limits
            })),
            payload: Payload::generate(),
            reports: Err("report storage is not configured"),
            admin_token: None,
            https_port: 0,
            http_port: 0,
            probe_port: None,
            report_rate: Arc::new(rate::RateLimiter::new(REPORT_RATE)),
            report_max_bytes: 1 << 30,
            instance: Arc::from("tlsdiag"),
            shared_attempts: None,
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }
    }

    pub fn with_instance(mut self, name: &str) -> Self {
        self.instance = Arc::from(name);
        self
    }

    pub fn with_shared_attempts(
        mut self,
        shared: Option<Arc<crate::pg::attempts::SharedAttempts>>,
    ) -> Self {
        self.shared_attempts = shared;
        self
    }

    /// What we accept and serve now (the certificate's names follow a reload).
    pub fn profile(&self) -> Arc<ServerProfile> {
        self.profile.load_full()
    }

    /// How long attempts are kept: the window of "recent" lists.
    pub fn attempts_ttl(&self) -> std::time::Duration {
        self.attempts.limits().ttl
    }

    pub fn with_https_port(mut self, port: u16) -> Self {
        self.https_port = port;
        self
    }

    pub fn with_icmp(mut self, icmp: Arc<crate::icmp::Prober>) -> Self {
        self.icmp = icmp;
        self
    }

    pub fn with_icmp_heard(mut self, heard: Arc<crate::icmp::heard::HeardTable>) -> Self {
        self.icmp_heard = heard;
        self
    }

    pub fn with_packets(mut self, packets: crate::packets::Packets) -> Self {
        self.packets = packets;
        self
    }

    pub fn with_path_memory(mut self, memory: Arc<crate::route::PathMemory>) -> Self {
        self.path_memory = memory;
        self
    }

    pub fn with_probe_port(mut self, port: Option<u16>) -> Self {
        self.probe_port = port;
        self
    }

    pub fn with_http_port(mut self, port: u16) -> Self {
        self.http_port = port;
        self
    }

    pub fn with_reports(mut self, reports: Result<Arc<dyn ReportStore>, &'static str>) -> Self {
        self.reports = reports;
        self
    }

    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn with_report_max_bytes(mut self, max: u64) -> Self {
        self.report_max_bytes = max;
        self
    }

    pub fn with_report_rate(mut self, rate: rate::Rate) -> Self {
        self.report_rate = Arc::new(rate::RateLimiter::new(rate));
        self
    }

    pub fn with_admin_token(mut self, token: Option<&str>) -> Self {
        use sha2::{Digest, Sha256};
        self.admin_token = token.map(|t| Sha256::digest(t.as_bytes()).into());
        self
    }
}

/// The URL this server is reachable at for the client that sent `request`:
/// its scheme and the Host it used (when that is a plain host[:port]), else our
/// local address. Used in links and in check.sh, so nothing odd gets through.
pub(crate) fn base_url(request: &axum::extract::Request, context: &ConnectionContext) -> String {
    let (scheme, local) = match context {
        ConnectionContext::Tls(a) => ("https", a.local),
        ConnectionContext::Plain { local, .. } => ("http", *local),
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .filter(|h| safe_host(h))
        .unwrap_or_else(|| local.to_string());
    format!("{scheme}://{host}")
}

/// A Host that is safe to paste into a link or a shell script: a name or IP
/// and an optional port, nothing a shell or HTML would interpret.
pub(crate) fn safe_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Content-Security-Policy for every response: our own assets only, no inline
/// script or style, never framed. A page served over plain HTTP may also talk
/// to the HTTPS port of the same host: that is where its tests run.
fn csp(https_port: u16) -> HeaderValue {
    let policy = format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
         connect-src 'self' https://*:{https_port}; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// The HTTPS origin of this server as the client that sent `request` knows
/// it: the path test runs there (full-size packets, the real TLS path), also
/// for pages and scripts that came over plain HTTP, whose packets are clamped.
pub(crate) fn https_base(
    request: &axum::extract::Request,
    context: &ConnectionContext,
    https_port: u16,
) -> String {
    match context {
        ConnectionContext::Tls(_) => base_url(request, context),
        ConnectionContext::Plain { .. } => other_base(request, context, "https", https_port),
    }
}

/// The plain-HTTP origin of this server as the client knows it: where
/// check.sh and the entry page live.
pub(crate) fn plain_base(
    request: &axum::extract::Request,
    context: &ConnectionContext,
    http_port: u16,
) -> String {
    match context {
        ConnectionContext::Plain { .. } => base_url(request, context),
        ConnectionContext::Tls(_) => other_base(request, context, "http", http_port),
    }
}

/// This server's host as the client named it, with another scheme and port.
pub(crate) fn other_base(
    request: &axum::extract::Request,
    context: &ConnectionContext,
    scheme: &str,
    port: u16,
) -> String {
    let base = base_url(request, context);
    let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h);
    // Strip a port: "[v6]:p" -> "[v6]", "name:p" -> "name".
    let name = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    match (scheme, port) {
        ("https", 443) | ("http", 80) => format!("{scheme}://{name}"),
        _ => format!("{scheme}://{name}:{port}"),
    }
}

/// Whether a CORS `Origin` names the host this request was sent to.
fn same_host(origin: &HeaderValue, request: &axum::http::request::Parts) -> bool {
    let host_of = |authority: &str| -> Option<String> {
        let authority = authority.rsplit_once("://").map_or(authority, |(_, a)| a);
        let host = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => &authority[..i],
            _ => authority,
        };
        (!host.is_empty()).then(|| host.to_ascii_lowercase())
    };
    let target = request
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri.authority().map(|a| a.to_string()));
    match (
        origin.to_str().ok().and_then(host_of),
        target.as_deref().and_then(host_of),
    ) {
        (Some(origin), Some(target)) => origin == target,
        _ => false,
    }
}

/// The application as served: the routes inside the headers every answer
/// carries. The header layers wrap the router once; through `Router::layer`
/// each of them would box every route again, and every request would pay
/// one boxed clone per layer.
pub type App = SetResponseHeader<
    SetResponseHeader<SetResponseHeader<Router, HeaderValue>, HeaderValue>,
    HeaderValue,
>;

pub fn router(state: AppState) -> App {
    // The plain-HTTP page tries HTTPS and runs its transfers on the HTTPS
    // port: another origin, but the same host. Only pages of this host (any
    // port or scheme) may read the answers, so no other site can read a
    // visitor's report.
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(same_host))
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE]);
    let cross_origin = Router::new()
        .route("/probe/down/{bytes}", get(probe::down))
        .route("/probe/up", post(probe::up))
        .route("/api/v1/connection", get(report::connection_json))
        .layer(cors);
    let csp = csp(state.https_port);
    let routes = Router::new()
        .route("/", get(report::connection))
        .route("/api/v1/attempts", get(report::attempts_json))
        .route("/api/v1/attempts/{id}", get(report::attempt_json))
        .route(
            "/api/v1/attempts/{id}/packets.pcapng",
            get(packets::attempt_pcapng),
        )
        .route("/api/v1/probe/config", get(probe::config))
        .route("/api/v1/probe/results", post(probe::results))
        .route("/check.sh", get(probe::check_sh))
        .route("/r/{id}", get(saved::page))
        .route("/r/{id}/packets.pcapng", get(packets::saved_pcapng))
        .route("/api/v1/reports/{id}", get(saved::json))
        .route("/compare", get(compare::form))
        .route("/compare/{a}/{b}", get(compare::page))
        .route("/api/v1/compare/{a}/{b}", get(compare::api))
        .route("/admin", get(saved::admin))
        .route("/static/{file}", get(assets::serve))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/.well-known/acme-challenge/{token}", get(acme_challenge))
        .merge(cross_origin)
        .fallback(|| async { AppError::NotFound })
        // Probe uploads enforce their own (larger) limit while streaming.
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::new(state));
    ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .service(routes)
}

/// HTTP-01 validation (RFC 8555 §8.3): the key authorization for a token of
/// an order under way, as plain text; 404 for any other token.
async fn acme_challenge(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
) -> Result<([(header::HeaderName, HeaderValue); 1], String), AppError> {
    let answer = state.acme_tokens.get(&token).ok_or(AppError::NotFound)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        answer,
    ))
}
