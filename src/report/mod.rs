//! The report: one view model ([`ConnectionReport`]) built from what the server
//! observed, feeding all three formats — JSON (serde), HTML (askama, `html.rs`)
//! and plain text (`text.rs`) — so they cannot drift apart.
//!
//! # JSON schema (connection report `schema_version` 2)
//!
//! Documented field by field in `docs/api.md`. In short:
//!
//! ```text
//! {
//!   "schema_version": 2,
//!   "generated_at": "2026-11-20T23:59:59.123Z",
//!   "server_version": "0.1.0",
//!   "summary": "TLS 1.3, X25519MLKEM768, ClientHello 1,913 bytes in 2 reads",
//!   "client": { "address": "203.0.113.7", "port": 51234 },
//!   "connection": { "scheme": "https", "encrypted": true, "http_version": "HTTP/2",
//!                   "user_agent": "...", "host": "..." },
//!   "tls": null | { "negotiated": {...}, "handshake_ms": 3.2, "arrival": {...},
//!                   "client_hello": {...}, "fingerprints": {...} },
//!   "findings": [ { "id", "severity", "title", "explanation", "evidence", "fix" } ],
//!   "recent_attempts": [ { "id", "started_at", "succeeded", "summary", "outcome": {"kind", ...},
//!                          "tls": {...}, "findings": [ { "id", "severity", "title" } ] } ]
//! }
//! ```
//!
//! `/api/v1/attempts` (`schema_version` 1) returns `{ schema_version,
//! generated_at, client, attempts }` with whole attempt objects: the
//! connection report's are briefs ([`AttemptView::brief`]).
//!
//! Bump [`SCHEMA_VERSION`] (the attempts list and one attempt) or
//! [`CONNECTION_SCHEMA_VERSION`] (the connection report) when a field changes
//! meaning or disappears; adding fields does not bump it.

pub mod chart;
mod display;
pub mod html;
pub mod run;
pub mod text;

pub use display::{syn_summary, CipherRow, ExtensionRow, Fact};
pub use run::{PacketsView, ProbeSection, RunAttempt, RunReport, RUN_SCHEMA_VERSION};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::attempt::{IcmpProbe, Negotiated, Outcome, RequestFacts, TlsAttempt};
use crate::diagnose::{Diagnosis, Finding, Severity, Status};
use crate::fingerprint::Fingerprints;
use crate::hello::wire::ProtocolVersion;
use crate::hello::ClientHello;
use crate::proxy::{Via, ViaKind};
use crate::tcp::{SynInfo, TcpInfo};
use crate::util::thousands;

pub const SCHEMA_VERSION: u32 = 1;

/// The connection report's own version. 2: its `recent_attempts` are briefs
/// (no `syn`, no `tls.tcp_at_capture`, findings without their texts).
pub const CONNECTION_SCHEMA_VERSION: u32 = 2;

/// The HTTP-level facts of the request being answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpFacts {
    pub http_version: String,
    pub user_agent: Option<String>,
    pub host: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientView {
    pub address: String,
    pub port: u16,
}

/// The load balancer a connection came through (`--proxy-protocol`): the
/// client address above is the one its PROXY header named, and the TCP facts
/// here are the balancer's connection's, not the client's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BalancerView {
    pub address: String,
    pub port: u16,
    pub proxy_version: u8,
    pub kind: ViaKind,
    /// Where the client connected, as the balancer reports it.
    pub destination: Option<String>,
    /// The sentence every view shows.
    pub note: String,
    /// The balancer's SYN (absent in a brief).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn: Option<SynInfo>,
    /// The balancer's connection's `TCP_INFO` when capture ended (absent in a brief).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_at_capture: Option<TcpInfo>,
}

impl BalancerView {
    pub fn of(via: &Via, tcp_at_capture: Option<TcpInfo>) -> Self {
        Self {
            address: via.balancer.ip().to_canonical().to_string(),
            port: via.balancer.port(),
            proxy_version: via.version,
            kind: via.kind,
            destination: via.destination.map(|d| d.to_string()),
            note: via.note(),
            syn: via.balancer_syn.clone(),
            tcp_at_capture,
        }
    }

    fn of_attempt(a: &TlsAttempt) -> Option<Self> {
        a.balancer
            .as_ref()
            .map(|b| Self::of(&b.via, b.tcp_at_capture))
    }

    /// Without the balancer's SYN and `TCP_INFO`.
    fn brief(self) -> Self {
        Self {
            syn: None,
            tcp_at_capture: None,
            ..self
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionView {
    pub scheme: String,
    pub encrypted: bool,
    #[serde(flatten)]
    pub http: HttpFacts,
}

/// One read of the ClientHello as shown in reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadView {
    pub at_ms: f64,
    pub bytes: usize,
    /// Milliseconds since the previous read (`null` for the first).
    pub gap_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArrivalView {
    pub bytes: usize,
    pub read_count: usize,
    pub tls_records: usize,
    pub reads: Vec<ReadView>,
    pub capture_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsView {
    /// `TCP_INFO` when the ClientHello capture ended.
    pub tcp_at_capture: Option<TcpInfo>,
    pub negotiated: Option<Negotiated>,
    pub handshake_ms: Option<f64>,
    pub arrival: ArrivalView,
    /// The bytes as they arrived, base64: the whole ClientHello when it
    /// parsed (anyone can re-check a fingerprint from it), else the first
    /// bytes of what the client sent.
    pub raw_base64: String,
    /// Our own ICMP test, when this ClientHello looked stuck behind a black hole.
    #[serde(default)]
    pub icmp_probe: Option<IcmpProbe>,
    /// Parsed from `raw_base64`; a saved report parses it again when read.
    #[serde(skip_deserializing)]
    pub client_hello: Option<HelloView>,
    pub fingerprints: Option<Fingerprints>,
}

/// Most items of any one list a view shows (cipher suites, extensions, the
/// groups inside one extension, ...). Real clients send a few dozen; the cap
/// only bites on a hostile hello, whose every byte is still in `raw_base64`.
pub const MAX_LISTED: usize = 256;

/// Most reads a view lists (the count is always complete).
pub const MAX_READS_SHOWN: usize = 64;

/// Longest fingerprint string shown (JA3 and JA4's raw forms grow with the
/// hello); the hashes are always complete.
pub const MAX_FINGERPRINT_CHARS: usize = 2048;

/// Recent attempts listed in a connection report (newest first); all of an
/// address's attempts are at `/api/v1/attempts`.
pub const MAX_RECENT_IN_REPORT: usize = 10;

/// The parsed hello plus the few derived facts every reader wants first.
#[derive(Debug, Clone, Serialize)]
pub struct HelloView {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub highest_version: ProtocolVersion,
    /// How many cipher suites and extensions the hello really had; the lists
    /// below stop at [`MAX_LISTED`] items.
    pub cipher_suite_count: usize,
    pub extension_count: usize,
    /// False when some list was cut at [`MAX_LISTED`].
    pub listed_in_full: bool,
    #[serde(flatten)]
    pub hello: ClientHello,
}

impl HelloView {
    pub fn of(h: &ClientHello) -> Self {
        let (hello, listed_in_full) = bounded_hello(h);
        Self {
            sni: h.sni().map(str::to_owned),
            alpn: h
                .alpn()
                .iter()
                .take(MAX_LISTED)
                .map(|p| p.name().into_owned())
                .collect(),
            highest_version: h.highest_version(),
            cipher_suite_count: h.cipher_suites.len(),
            extension_count: h.extensions.len(),
            listed_in_full,
            hello,
        }
    }
}

/// Most items listed inside extensions, all extensions together: a hello
/// repeating one extension 256 times cannot multiply the lists.
pub const MAX_LISTED_IN_EXTENSIONS: usize = 4 * MAX_LISTED;

/// A copy of `h` with every list cut at [`MAX_LISTED`] (and the lists inside
/// extensions at [`MAX_LISTED_IN_EXTENSIONS`] together), and whether nothing
/// was cut.
fn bounded_hello(h: &ClientHello) -> (ClientHello, bool) {
    use crate::hello::ExtensionData as D;
    /// Cuts lists, keeping count of what the extensions have used.
    struct Lister {
        budget: usize,
        full: bool,
    }
    impl Lister {
        fn top<T: Clone>(&mut self, list: &[T]) -> Vec<T> {
            self.keep(list, MAX_LISTED)
        }
        fn inner<T: Clone>(&mut self, list: &[T]) -> Vec<T> {
            let kept = self.keep(list, MAX_LISTED.min(self.budget));
            self.budget -= kept.len();
            kept
        }
        fn keep<T: Clone>(&mut self, list: &[T], max: usize) -> Vec<T> {
            self.full &= list.len() <= max;
            list[..list.len().min(max)].to_vec()
        }
    }
    let mut l = Lister {
        budget: MAX_LISTED_IN_EXTENSIONS,
        full: h.extensions.len() <= MAX_LISTED,
    };
    let extensions = h.extensions[..h.extensions.len().min(MAX_LISTED)]
        .iter()
        .map(|e| crate::hello::Extension {
            kind: e.kind,
            length: e.length,
            decoded: match &e.decoded {
                D::ServerName { names } => D::ServerName {
                    names: l.inner(names),
                },
                D::Alpn { protocols } => D::Alpn {
                    protocols: l.inner(protocols),
                },
                D::ApplicationSettings { protocols } => D::ApplicationSettings {
                    protocols: l.inner(protocols),
                },
                D::SupportedGroups { groups } => D::SupportedGroups {
                    groups: l.inner(groups),
                },
                D::EcPointFormats { formats } => D::EcPointFormats {
                    formats: l.inner(formats),
                },
                D::SignatureAlgorithms { schemes } => D::SignatureAlgorithms {
                    schemes: l.inner(schemes),
                },
                D::SupportedVersions { versions } => D::SupportedVersions {
                    versions: l.inner(versions),
                },
                D::KeyShare { shares } => D::KeyShare {
                    shares: l.inner(shares),
                },
                D::PskKeyExchangeModes { modes } => D::PskKeyExchangeModes {
                    modes: l.inner(modes),
                },
                D::CompressCertificate { algorithms } => D::CompressCertificate {
                    algorithms: l.inner(algorithms),
                },
                other => other.clone(),
            },
        })
        .collect();
    let hello = ClientHello {
        records: l.top(&h.records),
        wire_length: h.wire_length,
        handshake_length: h.handshake_length,
        legacy_version: h.legacy_version,
        random: h.random,
        session_id: h.session_id.clone(),
        cipher_suites: l.top(&h.cipher_suites),
        compression_methods: l.top(&h.compression_methods),
        extensions,
    };
    (hello, l.full)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionReport {
    pub schema_version: u32,
    #[serde(
        serialize_with = "crate::util::rfc3339",
        deserialize_with = "crate::util::parse_rfc3339"
    )]
    pub generated_at: SystemTime,
    pub server_version: String,
    /// The diagnosis of everything known about this address: `problem`,
    /// `inconclusive` or `clear`, and the headline every view shows.
    pub status: Status,
    pub headline: String,
    /// This connection in one line.
    pub summary: String,
    pub client: ClientView,
    pub connection: ConnectionView,
    /// The client's SYN for this connection, when the kernel kept it.
    pub syn: Option<SynInfo>,
    /// Behind a load balancer: which, and its connection's facts.
    #[serde(default)]
    pub load_balancer: Option<BalancerView>,
    pub tls: Option<TlsView>,
    pub findings: Vec<Finding>,
    /// This address's recent attempts on the HTTPS port, newest first.
    pub recent_attempts: Vec<AttemptView>,
    /// With several instances (`--database-url`): this instance, and whether
    /// the attempts other instances saw could be read. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_attempts: Option<SharedAttemptsView>,
}

/// Whose attempts a list holds, when instances share them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedAttemptsView {
    /// The instance that answered (`--instance-name`).
    pub instance: String,
    /// False: only this instance's own attempts are listed.
    pub available: bool,
    /// Why the other instances' attempts could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SharedAttemptsView {
    /// The sentence every view shows when the list is only this instance's.
    pub fn note(&self) -> Option<String> {
        (!self.available).then(|| {
            format!(
                "Shared attempts unavailable: attempts other instances saw could not be read ({}). \
                 Only the attempts instance {} saw are listed.",
                self.error.as_deref().unwrap_or("no answer"),
                self.instance
            )
        })
    }
}

/// One attempt on the HTTPS port, as listed in reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptView {
    pub id: u64,
    /// The instance whose listener saw it (`--instance-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Absent in a [brief](Self::brief), and when the kernel kept no SYN.
    /// Shared with the attempt's own: a brief drops it without a copy made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn: Option<Arc<SynInfo>>,
    #[serde(
        serialize_with = "crate::util::rfc3339",
        deserialize_with = "crate::util::parse_rfc3339"
    )]
    pub started_at: SystemTime,
    pub succeeded: bool,
    /// One line: what happened.
    pub summary: String,
    pub outcome: Outcome,
    pub tls: AttemptTls,
    /// What the connection's first request said of its client (absent until
    /// one arrived, and for attempts that never completed a handshake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_request: Option<RequestFacts>,
    /// The MSS our SYN-ACK announced, and the path MTU our kernel had
    /// cached toward the client when that is why it was smaller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub our_mss: Option<crate::attempt::OurMss>,
    /// The test run one of the connection's requests (or its ClientHello)
    /// named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    pub findings: Vec<Finding>,
    /// Behind a load balancer: which (its SYN and `TCP_INFO` absent in a brief).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<BalancerView>,
}

/// Most reads an attempt's summary lists.
pub const MAX_READS_IN_SUMMARY: usize = 16;

/// An attempt's TLS facts as listed: what was negotiated, how the hello
/// arrived (its first reads), the fingerprint hashes. Small and bounded
/// whatever the client sent; the whole record, hello included, is at
/// `/api/v1/attempts/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptTls {
    /// Absent in a [brief](AttemptView::brief).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_at_capture: Option<TcpInfo>,
    pub negotiated: Option<Negotiated>,
    pub handshake_ms: Option<f64>,
    pub arrival: ArrivalView,
    #[serde(default)]
    pub icmp_probe: Option<IcmpProbe>,
    #[serde(default)]
    pub sni: Option<String>,
    pub fingerprints: Option<FingerprintHashes>,
}

/// The fixed-size fingerprints (the raw strings are in the attempt's detail).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FingerprintHashes {
    pub ja3_md5: String,
    pub ja4: String,
    pub ja4_o: String,
}

impl AttemptTls {
    fn of(a: &TlsAttempt) -> Self {
        let mut arrival = arrival_view(a, MAX_READS_IN_SUMMARY);
        arrival.reads.shrink_to_fit();
        Self {
            tcp_at_capture: a.tcp,
            negotiated: a.negotiated.clone(),
            handshake_ms: a.handshake_ms.map(round3),
            arrival,
            icmp_probe: a.icmp_probe.clone(),
            sni: a
                .client_hello
                .as_ref()
                .and_then(|h| h.sni())
                .map(str::to_owned),
            fingerprints: a.fingerprints().map(|f| FingerprintHashes {
                ja3_md5: f.ja3_md5.clone(),
                ja4: f.ja4.clone(),
                ja4_o: f.ja4_o.clone(),
            }),
        }
    }
}

impl AttemptView {
    pub fn new(attempt: &TlsAttempt, findings: Vec<Finding>) -> Self {
        let tls = AttemptTls::of(attempt);
        let summary = if attempt.succeeded() {
            summary_line(tls.negotiated.as_ref(), &tls.arrival)
        } else {
            attempt.outcome.describe()
        };
        Self {
            id: attempt.id,
            instance: attempt.seen_by.as_deref().map(str::to_owned),
            syn: attempt.syn.clone(),
            started_at: attempt.started_at,
            succeeded: attempt.succeeded(),
            summary,
            outcome: attempt.outcome.clone(),
            tls,
            first_request: attempt.first_request.get().cloned(),
            our_mss: attempt.our_mss,
            run: attempt.run_id().map(str::to_owned),
            findings,
            load_balancer: BalancerView::of_attempt(attempt),
        }
    }

    /// The attempt as a report about a connection lists it: what happened,
    /// how the hello arrived, its fingerprints and the findings by name. Its
    /// SYN, `TCP_INFO` and the findings' explanations are at
    /// `/api/v1/attempts/{id}`; without them twenty listed attempts stay a
    /// few kilobytes, however many findings each has.
    pub fn brief(self) -> Self {
        Self {
            syn: None,
            tls: AttemptTls {
                tcp_at_capture: None,
                ..self.tls
            },
            findings: self.findings.into_iter().map(Finding::brief).collect(),
            load_balancer: self.load_balancer.map(BalancerView::brief),
            ..self
        }
    }

    /// Local time of day is unknowable here; reports show UTC.
    pub fn time(&self) -> String {
        crate::util::clock(self.started_at)
    }
}

/// `/api/v1/attempts/{id}`: one attempt in full.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptDetail {
    pub schema_version: u32,
    #[serde(flatten)]
    pub attempt: AttemptView,
    /// Everything about the hello: the parsed lists, every logged read, the
    /// raw bytes and the fingerprint strings.
    pub detail: TlsView,
}

impl AttemptDetail {
    pub fn new(attempt: &TlsAttempt, findings: Vec<Finding>) -> Self {
        let mut detail = TlsView::from_attempt(attempt);
        detail.arrival = arrival_view(attempt, crate::capture::MAX_LOGGED_READS);
        Self {
            schema_version: SCHEMA_VERSION,
            attempt: AttemptView::new(attempt, findings),
            detail,
        }
    }
}

/// `/api/v1/attempts`: the caller's recent attempts and nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptsReport {
    pub schema_version: u32,
    #[serde(
        serialize_with = "crate::util::rfc3339",
        deserialize_with = "crate::util::parse_rfc3339"
    )]
    pub generated_at: SystemTime,
    pub client: ClientView,
    pub attempts: Vec<AttemptView>,
    /// As in [`ConnectionReport::shared_attempts`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_attempts: Option<SharedAttemptsView>,
}

impl AttemptsReport {
    pub fn new(peer: SocketAddr, attempts: Vec<AttemptView>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            generated_at: SystemTime::now(),
            client: client(peer),
            attempts,
            shared_attempts: None,
        }
    }
}

impl ConnectionReport {
    /// The report for a request that arrived over TLS.
    pub fn for_tls(
        attempt: &TlsAttempt,
        http: HttpFacts,
        diagnosis: Diagnosis,
        recent_attempts: Vec<AttemptView>,
    ) -> Self {
        let tls = TlsView::from_attempt(attempt);
        Self {
            schema_version: CONNECTION_SCHEMA_VERSION,
            generated_at: SystemTime::now(),
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            status: diagnosis.status,
            headline: diagnosis.headline,
            summary: tls.summary(),
            client: client(attempt.peer),
            connection: ConnectionView {
                scheme: "https".to_owned(),
                encrypted: true,
                http,
            },
            syn: attempt.syn.as_deref().cloned(),
            load_balancer: BalancerView::of_attempt(attempt),
            tls: Some(tls),
            findings: diagnosis.findings,
            recent_attempts,
            shared_attempts: None,
        }
    }

    /// The report for a request on the plain-HTTP port: this connection has
    /// no TLS of its own, so the diagnosis of the address's HTTPS attempts is
    /// the whole story.
    pub fn for_plain(
        peer: SocketAddr,
        http: HttpFacts,
        syn: Option<SynInfo>,
        via: Option<&Via>,
        diagnosis: Diagnosis,
        recent_attempts: Vec<AttemptView>,
    ) -> Self {
        let summary = format!(
            "Plain {}: this connection is not encrypted",
            http.http_version
        );
        Self {
            schema_version: CONNECTION_SCHEMA_VERSION,
            generated_at: SystemTime::now(),
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            status: diagnosis.status,
            headline: diagnosis.headline,
            summary,
            client: client(peer),
            connection: ConnectionView {
                scheme: "http".to_owned(),
                encrypted: false,
                http,
            },
            syn,
            load_balancer: via.map(|v| BalancerView::of(v, None)),
            tls: None,
            findings: diagnosis.findings,
            recent_attempts,
            shared_attempts: None,
        }
    }

    pub fn failed_attempts(&self) -> usize {
        self.recent_attempts.iter().filter(|a| !a.succeeded).count()
    }

    /// The most severe finding's severity, for the page's headline colour.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    pub fn to_json(&self) -> Vec<u8> {
        json_bytes(self).unwrap_or_else(|err| {
            // Only non-string map keys can fail here, and the view has none.
            format!("{{\"error\": \"serializing report: {err}\"}}").into_bytes()
        })
    }
}

/// What a report's JSON is written into at first: its usual size (about
/// 22 KB with a full list of attempts), so a report is written without the
/// buffer growing and being copied on the way.
const JSON_CAPACITY: usize = 32 * 1024;

/// `value` as JSON, in a buffer sized for a report.
pub fn json_bytes<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(JSON_CAPACITY);
    serde_json::to_writer(&mut body, value)?;
    Ok(body)
}

fn client(peer: SocketAddr) -> ClientView {
    ClientView {
        address: peer.ip().to_canonical().to_string(),
        port: peer.port(),
    }
}

impl TlsView {
    pub fn from_attempt(a: &TlsAttempt) -> Self {
        Self {
            tcp_at_capture: a.tcp,
            negotiated: a.negotiated.clone(),
            handshake_ms: a.handshake_ms.map(round3),
            arrival: arrival_view(a, MAX_READS_SHOWN),
            raw_base64: base64_encode(&a.raw),
            icmp_probe: a.icmp_probe.clone(),
            client_hello: a.client_hello.as_ref().map(HelloView::of),
            fingerprints: a.fingerprints().map(bounded_fingerprints),
        }
    }

    /// "TLS 1.3, X25519MLKEM768, ClientHello 1,913 bytes in 2 reads".
    pub fn summary(&self) -> String {
        summary_line(self.negotiated.as_ref(), &self.arrival)
    }
}

/// How the hello arrived, with the first `max_reads` reads listed.
fn arrival_view(a: &TlsAttempt, max_reads: usize) -> ArrivalView {
    let mut previous: Option<f64> = None;
    let reads = a
        .arrival
        .reads
        .iter()
        .take(max_reads)
        .map(|r| {
            let gap_ms = previous.map(|p| round3(r.at_ms - p));
            previous = Some(r.at_ms);
            ReadView {
                at_ms: round3(r.at_ms),
                bytes: r.bytes,
                gap_ms,
            }
        })
        .collect();
    ArrivalView {
        bytes: a.arrival.bytes,
        read_count: a.arrival.read_count,
        tls_records: a.client_hello.as_ref().map_or(0, |h| h.records.len()),
        reads,
        capture_ms: round3(a.arrival.capture_ms),
    }
}

/// "TLS 1.3, X25519MLKEM768, ClientHello 1,913 bytes in 2 reads".
fn summary_line(negotiated: Option<&Negotiated>, arrival: &ArrivalView) -> String {
    let mut parts = Vec::new();
    if let Some(n) = negotiated {
        parts.push(n.version.to_string());
        if let Some(group) = n.key_exchange_group {
            parts.push(group.to_string());
        }
    }
    let reads = arrival.read_count;
    let mut line = format!(
        "ClientHello {} bytes in {reads} read{}",
        thousands(arrival.bytes),
        if reads == 1 { "" } else { "s" }
    );
    if arrival.tls_records > 1 {
        line.push_str(&format!(" ({} TLS records)", arrival.tls_records));
    }
    parts.push(line);
    parts.join(", ")
}

impl TlsView {
    /// Parses the kept bytes again (after reading a saved report).
    pub fn rehydrate(&mut self) {
        if self.client_hello.is_some() {
            return;
        }
        use base64::Engine;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&self.raw_base64) else {
            return;
        };
        if let Ok(hello) = crate::hello::parse_client_hello(&raw) {
            self.client_hello = Some(HelloView::of(&hello));
        }
    }
}

impl ConnectionReport {
    /// Restores what a saved report keeps only as raw bytes.
    pub fn rehydrate(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.rehydrate();
        }
    }
}

/// The fingerprints with their long raw strings cut at [`MAX_FINGERPRINT_CHARS`].
fn bounded_fingerprints(f: &Fingerprints) -> Fingerprints {
    let cut = |s: &str| match s.char_indices().nth(MAX_FINGERPRINT_CHARS) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}… ({} more bytes)", &s[..at], s.len() - at),
    };
    Fingerprints {
        ja3: cut(&f.ja3),
        ja3_md5: f.ja3_md5.clone(),
        ja4: f.ja4.clone(),
        ja4_r: cut(&f.ja4_r),
        ja4_o: f.ja4_o.clone(),
        ja4_ro: cut(&f.ja4_ro),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
