//! The report of one test run: the answer to `POST /api/v1/probe/results`
//! and, the same value, the document saved under `/r/{id}`. It is owned and
//! reads back from its JSON as it was written ([`RunReport::from_json`]), so
//! the page and text support open later are rendered from exactly what the
//! customer's run produced, by the same renderers.
//!
//! # JSON (`schema_version` 2)
//!
//! ```text
//! { "schema_version": 2, "id": "<32 hex>" | null, "created_at": "...",
//!   "server_version": "...", "label": "ACME-1234" | null, "agent": "browser" | "check.sh",
//!   "status": "problem" | "inconclusive" | "clear", "verdict": "<the headline>",
//!   "worst": "error" | "warning" | "info" | null,
//!   "findings": [ ...the diagnosis, most important first... ],
//!   "probe": { "run", "clock_offset_ms", "down": [step], "up": [step],
//!              "hello": [client step], "tls_check": {...} | null },
//!   "client": { "address", "port" },
//!   "attempts": [ { "tie": { "by": "request" | "hello_ladder" | "evidence", "reasons"? },
//!                   "attempt": {...an attempt brief...},
//!                   "hello_base64": "..." (one attempt per distinct JA4_r) } ],
//!   "other_clients": [ ...attempt briefs: the address's other clients... ],
//!   "proxy": { "name", "evidence": [...], "request"? } (when one was seen),
//!   "connection": { ...the posting connection's report, see `report`... },
//!   "report_url": "..." (answer only), "report_error": "..." (answer only) }
//! ```
//!
//! Bump [`RUN_SCHEMA_VERSION`] when a field changes meaning or disappears.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{AttemptView, ClientView, ConnectionReport};
use crate::diagnose::attribution::Tie;
use crate::diagnose::{Diagnosis, Finding, ProxyUse, Severity, Status, TlsCheck};
use crate::probe::{ClientResults, ClientStep, HttpsTry, ProbeRun, StepView};

pub const RUN_SCHEMA_VERSION: u32 = 2;

/// Both ladders and what check.sh added, as the run saw them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeSection {
    pub run: String,
    pub clock_offset_ms: Option<f64>,
    pub down: Vec<StepView>,
    pub up: Vec<StepView>,
    /// check.sh's ClientHello size ladder, as it reported it.
    #[serde(default)]
    pub hello: Vec<ClientStep>,
    #[serde(default)]
    pub tls_check: Option<TlsCheck>,
    /// The page's own HTTPS tries before its ladders, as it timed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub https: Vec<HttpsTry>,
}

/// One of the run's own HTTPS connections, and why it is the run's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunAttempt {
    pub tie: Tie,
    pub attempt: AttemptView,
    /// The whole ClientHello as it arrived, base64: on the newest of the
    /// run's attempts with each distinct JA4_r (at most
    /// [`MAX_HELLOS_KEPT`] in a report), so the lists a fingerprint only
    /// hashes (cipher suites, groups, key shares, extensions) can be compared
    /// later. A ladder's padded hellos differ only in their ALPN padding and
    /// share one. Absent on the other attempts, and in reports saved before
    /// it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_base64: Option<String>,
}

/// Most whole ClientHellos one run report keeps ([`RunAttempt::hello_base64`]):
/// a run has one or two clients (check.sh: curl and openssl), each sending
/// one shape of hello; the cap holds whatever else connects.
pub const MAX_HELLOS_KEPT: usize = 4;

/// The whole ClientHellos of `attempts` (newest first) worth keeping: the
/// first of each distinct JA4_r, at most [`MAX_HELLOS_KEPT`]; `None` for the
/// rest, in the same order.
pub fn kept_hellos(attempts: &[&crate::attempt::TlsAttempt]) -> Vec<Option<String>> {
    use base64::Engine;
    let mut seen: Vec<&str> = Vec::new();
    attempts
        .iter()
        .map(|a| {
            let ja4_r = a.fingerprints()?.ja4_r.as_str();
            if seen.len() >= MAX_HELLOS_KEPT || seen.contains(&ja4_r) {
                return None;
            }
            seen.push(ja4_r);
            Some(base64::engine::general_purpose::STANDARD.encode(&a.raw))
        })
        .collect()
}

/// One run's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    /// The saved report's id (`None` when nothing was saved).
    pub id: Option<String>,
    #[serde(
        serialize_with = "crate::util::rfc3339",
        deserialize_with = "crate::util::parse_rfc3339"
    )]
    pub created_at: SystemTime,
    pub server_version: String,
    /// Support's case label (`?case=`), validated.
    pub label: Option<String>,
    /// `browser` or `check.sh`.
    pub agent: String,
    pub status: Status,
    /// The headline: the same words on the page, in check.sh and here.
    pub verdict: String,
    /// The most severe finding.
    pub worst: Option<Severity>,
    /// The diagnosis, most important first.
    pub findings: Vec<Finding>,
    pub probe: ProbeSection,
    pub client: ClientView,
    /// The run's own HTTPS connections, newest first: those that carried
    /// its requests or named it, and those evidence ties to it
    /// (`diagnose::attribution`). The verdict rests on these alone.
    #[serde(default)]
    pub attempts: Vec<RunAttempt>,
    /// Other clients' attempts from the same address during the run: shown
    /// as context, never this run's cause.
    #[serde(default)]
    pub other_clients: Vec<AttemptView>,
    /// The forwarding proxy the run's requests came through: then the TCP
    /// facts are the proxy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyUse>,
    /// The posting connection's report: its ClientHello (raw bytes
    /// included) and TCP facts. Its `recent_attempts` are left empty: the
    /// address's attempts are split into `attempts` and `other_clients`.
    pub connection: ConnectionReport,
    /// The server's packets of the run's connections, kept with the saved
    /// report (absent in reports saved before they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_packets: Option<PacketsView>,
    /// Where the saved report can be read (in the answer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
    /// Why nothing was saved (in the answer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
}

/// The run's packets as the server captured them: a pcapng file to open in
/// Wireshark, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketsView {
    /// Where the file is (`/r/{id}/packets.pcapng`; a full URL in the
    /// answer to the run); absent when nothing was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub connections: usize,
    pub packets: usize,
    pub bytes: usize,
    /// Why there are no packets, or which are missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PacketsView {
    /// No packets, for `why`.
    pub fn none(why: String) -> Self {
        Self {
            path: None,
            connections: 0,
            packets: 0,
            bytes: 0,
            note: Some(why),
        }
    }
}

/// Why a stored document cannot be shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("the report was saved by a tlsdiag with report schema {0}; this one reads {RUN_SCHEMA_VERSION}")]
    Schema(u32),
    #[error("the stored report does not parse: {0}")]
    Json(#[from] serde_json::Error),
}

impl RunReport {
    pub fn new(
        results: &ClientResults,
        run: ProbeRun,
        diagnosis: Diagnosis,
        connection: ConnectionReport,
    ) -> Self {
        let worst = diagnosis.findings.iter().map(|f| f.severity).max();
        Self {
            schema_version: RUN_SCHEMA_VERSION,
            id: None,
            created_at: SystemTime::now(),
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            label: results.label.clone(),
            agent: results.agent.clone(),
            status: diagnosis.status,
            verdict: diagnosis.headline,
            worst,
            findings: diagnosis.findings,
            probe: ProbeSection {
                run: run.run,
                clock_offset_ms: run.clock_offset_ms,
                down: run.down,
                up: run.up,
                hello: results.hello.clone(),
                tls_check: results.tls_check.clone(),
                https: results.https.clone(),
            },
            client: connection.client.clone(),
            attempts: Vec::new(),
            other_clients: Vec::new(),
            proxy: None,
            connection,
            server_packets: None,
            report_url: None,
            report_error: None,
        }
    }

    /// The address's attempts, split: the run's own (the verdict's
    /// evidence) and other clients'. The posting connection's list of the
    /// address's attempts goes, so none is shown twice.
    pub fn with_attempts(
        mut self,
        own: Vec<RunAttempt>,
        others: Vec<AttemptView>,
        proxy: Option<ProxyUse>,
    ) -> Self {
        self.attempts = own;
        self.other_clients = others;
        self.proxy = proxy;
        self.connection.recent_attempts.clear();
        self
    }

    /// A stored document, read back (its ClientHellos parsed again from
    /// their raw bytes).
    pub fn from_json(json: &str) -> Result<Self, ReadError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let version: Version = serde_json::from_str(json)?;
        if version.schema_version != RUN_SCHEMA_VERSION {
            return Err(ReadError::Schema(version.schema_version));
        }
        let mut report: RunReport = serde_json::from_str(json)?;
        report.connection.rehydrate();
        Ok(report)
    }

    /// Rows of the ladder table: bytes, then the down and up cells.
    pub fn ladder_rows(&self) -> Vec<LadderRow> {
        let mut sizes: Vec<u64> = self
            .probe
            .down
            .iter()
            .chain(&self.probe.up)
            .map(|s| s.bytes)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let cell = |steps: &[StepView], bytes: u64| {
            steps
                .iter()
                .find(|s| s.bytes == bytes)
                .map(LadderCell::of)
                .unwrap_or(LadderCell {
                    text: "-".into(),
                    ok: None,
                    ms: None,
                })
        };
        sizes
            .into_iter()
            .map(|bytes| LadderRow {
                bytes,
                down: cell(&self.probe.down, bytes),
                up: cell(&self.probe.up, bytes),
            })
            .collect()
    }
}

/// One size of the ladder table.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderRow {
    pub bytes: u64,
    pub down: LadderCell,
    pub up: LadderCell,
}

/// One direction of one size: "ok, 12 ms" or "failed (timeout)".
#[derive(Debug, Clone, PartialEq)]
pub struct LadderCell {
    pub text: String,
    /// `None` when the step did not run.
    pub ok: Option<bool>,
    pub ms: Option<f64>,
}

impl LadderCell {
    fn of(step: &StepView) -> Self {
        let ms = step.client.as_ref().and_then(|c| c.ms);
        if step.passed() {
            Self {
                text: ms.map_or_else(|| "ok".into(), |ms| format!("ok, {ms:.0} ms")),
                ok: Some(true),
                ms,
            }
        } else if step.failed() {
            let why = step
                .client
                .as_ref()
                .and_then(|c| c.error.clone())
                .unwrap_or_else(|| "stalled".into());
            Self {
                text: format!("failed ({why})"),
                ok: Some(false),
                ms,
            }
        } else {
            Self {
                text: "-".into(),
                ok: None,
                ms: None,
            }
        }
    }

    /// Class for the page: ok / failed / empty.
    pub fn class(&self) -> &'static str {
        match self.ok {
            Some(true) => "ok",
            Some(false) => "failed",
            None => "",
        }
    }
}
