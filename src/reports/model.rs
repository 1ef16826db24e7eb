//! The saved report document.
//!
//! [`SavedReport`] is written once, as JSON, from the live views (the posting
//! connection's full report, the probe run, the findings). [`ReportDoc`] is the
//! read model the report page and its text form are rendered from: it takes only
//! what they show from the stored JSON, tolerating fields added later, so a
//! report saved by one version renders under the next.
//!
//! Bump [`REPORT_SCHEMA_VERSION`] when a field changes meaning or disappears.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::diagnose::{Finding, Severity};
use crate::probe::StepView;
use crate::report::{ClientView, ConnectionReport};

pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The probe run inside a saved report.
#[derive(Debug, Serialize)]
pub struct ProbeSection<'a> {
    pub run: &'a str,
    pub clock_offset_ms: Option<f64>,
    pub down: &'a [StepView],
    pub up: &'a [StepView],
    /// check.sh's ClientHello size ladder, as it reported it.
    pub hello: &'a [crate::probe::ClientStep],
    pub tls_check: Option<&'a crate::diagnose::TlsCheck>,
}

/// What is written when a harness run finishes.
#[derive(Debug, Serialize)]
pub struct SavedReport<'a> {
    pub schema_version: u32,
    pub id: &'a str,
    #[serde(serialize_with = "crate::util::rfc3339")]
    pub created_at: SystemTime,
    pub server_version: &'static str,
    /// Support's case label (`?case=`), validated.
    pub label: Option<&'a str>,
    /// `browser` or `check.sh`.
    pub agent: &'a str,
    /// `problem`, `inconclusive` or `clear`.
    pub status: crate::diagnose::Status,
    /// The headline of the run's diagnosis.
    pub verdict: &'a str,
    /// The most severe finding anywhere in the report.
    pub worst: Option<Severity>,
    pub client: &'a ClientView,
    /// The full report of the connection that posted the run: its ClientHello
    /// and TCP facts, and the address's recent HTTPS attempts.
    pub connection: &'a ConnectionReport,
    pub probe: ProbeSection<'a>,
    /// The run's diagnosis: every finding, most important first.
    pub findings: &'a [Finding],
}

/// A wire value as stored: `{"id", "name"}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Named {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
}

impl Named {
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("0x{:04x}", self.id))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocEvidence {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocFinding {
    pub id: String,
    pub severity: String,
    pub title: String,
    #[serde(default)]
    pub explanation: String,
    #[serde(default)]
    pub evidence: Vec<DocEvidence>,
    #[serde(default)]
    pub fix: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocClientStep {
    pub ok: bool,
    #[serde(default)]
    pub ms: Option<f64>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocServerStep {
    #[serde(default)]
    pub completed: bool,
    #[serde(default)]
    pub stalled: bool,
    #[serde(default)]
    pub transferred: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocStep {
    pub bytes: u64,
    #[serde(default)]
    pub client: Option<DocClientStep>,
    #[serde(default)]
    pub server: Option<DocServerStep>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocProbe {
    #[serde(default)]
    pub run: String,
    #[serde(default)]
    pub clock_offset_ms: Option<f64>,
    #[serde(default)]
    pub down: Vec<DocStep>,
    #[serde(default)]
    pub up: Vec<DocStep>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocNegotiated {
    pub version: Named,
    pub cipher_suite: Named,
    #[serde(default)]
    pub key_exchange_group: Option<Named>,
    #[serde(default)]
    pub alpn: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocExtension {
    #[serde(rename = "type")]
    pub kind: Named,
    #[serde(default)]
    pub length: usize,
    #[serde(default)]
    pub decoded: serde_json::Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocHello {
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default)]
    pub alpn: Vec<String>,
    #[serde(default)]
    pub highest_version: Named,
    #[serde(default)]
    pub wire_length: usize,
    #[serde(default)]
    pub cipher_suites: Vec<Named>,
    #[serde(default)]
    pub extensions: Vec<DocExtension>,
}

impl DocHello {
    /// "X25519MLKEM768 (1,216 bytes), x25519 (32 bytes)".
    pub fn key_shares(&self) -> String {
        let shares = self
            .extensions
            .iter()
            .find(|e| e.kind.id == 51)
            .and_then(|e| e.decoded.get("shares")?.as_array().cloned())
            .unwrap_or_default();
        shares
            .iter()
            .map(|s| {
                let group = s["group"]["name"].as_str().unwrap_or("?");
                let len = s["key_exchange_length"].as_u64().unwrap_or(0);
                format!("{group} ({} bytes)", crate::util::thousands(len as usize))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocFingerprints {
    #[serde(default)]
    pub ja3_md5: String,
    #[serde(default)]
    pub ja4: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocArrival {
    #[serde(default)]
    pub bytes: usize,
    #[serde(default)]
    pub read_count: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocTls {
    #[serde(default)]
    pub negotiated: Option<DocNegotiated>,
    #[serde(default)]
    pub client_hello: Option<DocHello>,
    #[serde(default)]
    pub fingerprints: Option<DocFingerprints>,
    #[serde(default)]
    pub arrival: DocArrival,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocHttp {
    #[serde(default)]
    pub scheme: String,
    #[serde(default)]
    pub http_version: String,
    #[serde(default)]
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocAttempt {
    pub id: u64,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub succeeded: bool,
    #[serde(default)]
    pub summary: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocConnection {
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub connection: DocHttp,
    #[serde(default)]
    pub tls: Option<DocTls>,
    #[serde(default)]
    pub findings: Vec<DocFinding>,
    #[serde(default)]
    pub recent_attempts: Vec<DocAttempt>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DocClient {
    pub address: String,
    #[serde(default)]
    pub port: u16,
}

/// The read model of a saved report.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReportDoc {
    pub schema_version: u32,
    pub id: String,
    pub created_at: String,
    #[serde(default)]
    pub server_version: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub verdict: String,
    #[serde(default)]
    pub worst: Option<String>,
    pub client: DocClient,
    #[serde(default)]
    pub connection: Option<DocConnection>,
    #[serde(default)]
    pub probe: DocProbe,
    #[serde(default)]
    pub findings: Vec<DocFinding>,
}

impl ReportDoc {
    /// Every finding in the report, each id once: the probe's first, then the
    /// connection's.
    pub fn all_findings(&self) -> Vec<&DocFinding> {
        let mut out: Vec<&DocFinding> = Vec::new();
        let connection = self.connection.iter().flat_map(|c| c.findings.iter());
        for f in self.findings.iter().chain(connection) {
            if !out.iter().any(|seen| seen.id == f.id) {
                out.push(f);
            }
        }
        out
    }

    /// Rows of the probe table: (bytes, down, up) as "ok" / "failed (why)" / "-".
    pub fn probe_rows(&self) -> Vec<(u64, String, String)> {
        let mut sizes: Vec<u64> = self
            .probe
            .down
            .iter()
            .chain(&self.probe.up)
            .map(|s| s.bytes)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let cell = |steps: &[DocStep], bytes: u64| match steps.iter().find(|s| s.bytes == bytes) {
            None => "-".to_owned(),
            Some(step) => {
                let stalled = step.server.as_ref().is_some_and(|s| s.stalled);
                match &step.client {
                    Some(c) if c.ok && !stalled => match c.ms {
                        Some(ms) => format!("ok, {ms:.0} ms"),
                        None => "ok".to_owned(),
                    },
                    Some(c) => format!(
                        "failed ({})",
                        c.error
                            .as_deref()
                            .unwrap_or(if stalled { "stalled" } else { "error" })
                    ),
                    None if stalled => "stalled".to_owned(),
                    None => "-".to_owned(),
                }
            }
        };
        sizes
            .into_iter()
            .map(|b| (b, cell(&self.probe.down, b), cell(&self.probe.up, b)))
            .collect()
    }
}
