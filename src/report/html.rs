//! The HTML report page (askama; escaping on by default for `.html` templates,
//! so every client-controlled value — SNI, ALPN, User-Agent — is escaped).

use askama::Template;

use super::chart::{self, Chart};
use super::run::{LadderRow, RunReport};
use super::ConnectionReport;
use crate::diagnose::Status;

#[derive(Debug, Template)]
#[template(path = "report.html")]
pub struct ReportPage<'a> {
    pub r: &'a ConnectionReport,
}

impl ReportPage<'_> {
    pub fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    pub fn headline_class(&self) -> &'static str {
        match self.r.status {
            Status::Problem => "bad",
            Status::Inconclusive => "warn",
            Status::Clear => "good",
        }
    }

    pub fn status(&self) -> &'static str {
        self.r.status.as_str()
    }
}

/// A saved run report: its headline and findings first, the ladders as a
/// table and the chart the live page draws, then the connection exactly as
/// the live report shows it (`partials/connection.html`).
#[derive(Debug, Template)]
#[template(path = "saved.html")]
pub struct SavedPage<'a> {
    pub doc: &'a RunReport,
    /// The connection partial's `r`.
    pub r: &'a super::ConnectionReport,
    pub link: &'a str,
    pub ladder: Vec<LadderRow>,
    pub chart: Chart,
}

impl<'a> SavedPage<'a> {
    pub fn new(doc: &'a RunReport, link: &'a str) -> Self {
        let ladder = doc.ladder_rows();
        let timeout_ms = crate::probe::STEP_TIMEOUT.as_millis() as f64;
        let chart = chart::ladder(&ladder, timeout_ms);
        Self {
            doc,
            r: &doc.connection,
            link,
            ladder,
            chart,
        }
    }

    pub fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    pub fn headline_class(&self) -> &'static str {
        match self.doc.status {
            Status::Problem => "bad",
            Status::Inconclusive => "warn",
            Status::Clear => "good",
        }
    }

    pub fn id(&self) -> &str {
        self.doc.id.as_deref().unwrap_or("")
    }

    pub fn created(&self) -> String {
        humantime::format_rfc3339_seconds(self.doc.created_at).to_string()
    }
}
