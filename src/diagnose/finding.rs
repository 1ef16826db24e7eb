//! The shape of a finding, shared by every rule. Owned-or-static text, so a
//! finding written into a saved report reads back as the same value.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// How much a finding matters to the person reading the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A fact worth knowing; nothing is wrong.
    Info,
    /// Works here, but breaks elsewhere or will break.
    Warning,
    /// This is why the connection failed.
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One number or fact from this connection that supports a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub label: Cow<'static, str>,
    pub value: String,
}

/// A conclusion about the client's path or configuration, with its evidence and fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable identifier (`area.name`), documented in docs/findings.md.
    pub id: Cow<'static, str>,
    pub severity: Severity,
    // Most of a finding's words are fixed text: borrowed, not copied into
    // every finding of every report (a report diagnoses each recent attempt).
    pub title: Cow<'static, str>,
    /// What happened and why it matters, in plain language. Empty (and left
    /// out of JSON) only in a [brief](Self::brief).
    #[serde(default, skip_serializing_if = "str::is_empty")]
    pub explanation: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// What to change; commands where they exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fix: Vec<Cow<'static, str>>,
}

impl Finding {
    pub fn new(id: &'static str, severity: Severity, title: impl Into<Cow<'static, str>>) -> Self {
        Self {
            id: Cow::Borrowed(id),
            severity,
            title: title.into(),
            explanation: Cow::Borrowed(""),
            evidence: Vec::new(),
            fix: Vec::new(),
        }
    }

    /// Only what names the finding (id, severity, title): how an attempt's
    /// findings are listed in a report about another connection, whose own
    /// findings are the ones it explains.
    pub fn brief(self) -> Self {
        Self {
            explanation: Cow::Borrowed(""),
            evidence: Vec::new(),
            fix: Vec::new(),
            ..self
        }
    }

    pub fn explain(mut self, text: impl Into<Cow<'static, str>>) -> Self {
        self.explanation = text.into();
        self
    }

    pub fn evidence(mut self, label: &'static str, value: impl Into<String>) -> Self {
        self.evidence.push(Evidence {
            label: Cow::Borrowed(label),
            value: value.into(),
        });
        self
    }

    pub fn fix(mut self, step: impl Into<Cow<'static, str>>) -> Self {
        self.fix.push(step.into());
        self
    }
}
