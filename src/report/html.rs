//! The HTML report page (askama; escaping on by default for `.html` templates,
//! so every client-controlled value — SNI, ALPN, User-Agent — is escaped).

use askama::Template;

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
