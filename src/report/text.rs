//! The plain-text report for curl, wget and friends: fits an 80-column terminal,
//! and every client-controlled value passes through [`printable`] so it cannot
//! drive the terminal.

use std::fmt::Write;

use super::{ConnectionReport, Fact, RunReport};
use crate::diagnose::{Finding, Severity};
use crate::util::{printable, wrap, wrap_hanging};

const WIDTH: usize = 80;

pub fn render(r: &ConnectionReport) -> String {
    let mut out = String::new();
    let title = "tlsdiag: what your client sent";
    let _ = writeln!(out, "{title}\n{}", "=".repeat(title.len()));
    verdict_text(&mut out, &r.headline, &r.findings);
    out.push('\n');
    out.push_str(&wrap(
        &format!("This connection: {}", printable(&r.summary)),
        WIDTH,
        "",
    ));
    if let Some(lb) = &r.load_balancer {
        out.push_str(&wrap(&printable(&lb.note), WIDTH, ""));
    }
    if !r.connection.encrypted && r.recent_attempts.is_empty() {
        out.push_str(&wrap(
            "This request came over plain HTTP: it is not encrypted, so there is no TLS \
             handshake to show. No HTTPS attempts from your address in the last hour.",
            WIDTH,
            "",
        ));
    }
    connection_text(&mut out, r);
    out.push_str("\nJSON: add -H 'Accept: application/json'\n");
    out
}

/// The headline, then the findings behind it: the same text wherever a
/// diagnosis is shown (the live report, check.sh's answer, a saved report).
fn verdict_text(out: &mut String, headline: &str, findings: &[Finding]) {
    out.push_str(&wrap(&printable(headline), WIDTH, ""));
    if !findings.is_empty() {
        section(out, "Findings");
        findings_text(out, findings.iter().map(FindingText::from));
    }
}

/// The connection a report is about: recent attempts, facts, how the
/// ClientHello arrived, the hello and its fingerprints. Shared by the live
/// and saved reports.
fn connection_text(out: &mut String, r: &ConnectionReport) {
    if let Some(note) = r.shared_attempts.as_ref().and_then(|s| s.note()) {
        out.push('\n');
        out.push_str(&wrap(&printable(&note), WIDTH, ""));
    }
    if !r.recent_attempts.is_empty() {
        section(
            out,
            "Recent HTTPS attempts from this address (newest first)",
        );
        for a in &r.recent_attempts {
            let status = if a.succeeded { "ok    " } else { "FAILED" };
            let seen_by = a
                .instance
                .as_deref()
                .map_or(String::new(), |i| format!("({}) ", printable(i)));
            let line = format!(
                "#{} {} {seen_by}{status} {}",
                a.id,
                a.time(),
                printable(&a.summary)
            );
            out.push_str(&wrap_hanging(
                &line,
                WIDTH,
                "  ",
                "                        ",
            ));
            let ids: Vec<&str> = a
                .findings
                .iter()
                .filter(|f| f.severity > Severity::Info)
                .map(|f| &*f.id)
                .collect();
            if !ids.is_empty() {
                out.push_str(&wrap(&format!("-> {}", ids.join(", ")), WIDTH, "      "));
            }
        }
    }

    section(out, "Connection");
    facts(out, &r.connection_facts());

    if let Some(tls) = &r.tls {
        section(out, "How the ClientHello arrived");
        out.push_str(&wrap(&tls.arrival_sentence(), WIDTH, "  "));
        if r.load_balancer.is_some() {
            out.push_str(&wrap(
                "Through a load balancer: these reads are its segments and timing, not your \
                 packets.",
                WIDTH,
                "  ",
            ));
        }
        for (i, read) in tls.arrival.reads.iter().enumerate().take(20) {
            let gap = read
                .gap_ms
                .map(|g| format!("  (+{g:.1} ms)"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  read {:>3}  at {:>9.1} ms  {:>6} bytes{gap}",
                i + 1,
                read.at_ms,
                read.bytes
            );
        }
        if tls.arrival.read_count > 20 {
            let _ = writeln!(
                out,
                "  ... {} more reads (see JSON)",
                tls.arrival.read_count - 20
            );
        }

        if let Some(hello) = &tls.client_hello {
            section(out, "ClientHello");
            facts(out, &hello.facts());
            let ciphers = hello.cipher_rows();
            let _ = writeln!(out, "\n  Cipher suites ({})", ciphers.len());
            for c in ciphers {
                let note = if c.note.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", c.note)
                };
                let _ = writeln!(out, "    {}  {}{note}", c.hex, c.name);
            }
            let extensions = hello.extension_rows();
            let _ = writeln!(
                out,
                "\n  Extensions ({}, in the order sent)",
                extensions.len()
            );
            for e in extensions {
                let _ = writeln!(out, "    {}  {} ({} bytes)", e.hex, e.name, e.length);
                if !e.detail.is_empty() {
                    out.push_str(&wrap(&printable(&e.detail), WIDTH, "            "));
                }
            }
        }
        if let Some(fp) = &tls.fingerprints {
            section(out, "Fingerprints");
            facts(
                out,
                &[
                    Fact {
                        label: "JA4",
                        value: fp.ja4.clone(),
                    },
                    Fact {
                        label: "JA4_r",
                        value: fp.ja4_r.clone(),
                    },
                    Fact {
                        label: "JA3 (MD5)",
                        value: fp.ja3_md5.clone(),
                    },
                    Fact {
                        label: "JA3",
                        value: fp.ja3.clone(),
                    },
                ],
            );
        }
    }
}

/// A saved report for curl: the same verdict text check.sh printed, the
/// ladders, then the connection as the live report shows it; ends with its link.
pub fn render_saved(doc: &RunReport, link: &str) -> String {
    let mut out = String::new();
    let title = "tlsdiag report";
    let _ = writeln!(out, "{title}\n{}", "=".repeat(title.len()));
    let mut meta = format!(
        "Saved {} from {} by the {} test",
        humantime::format_rfc3339_seconds(doc.created_at),
        doc.client.address,
        doc.agent
    );
    if let Some(label) = &doc.label {
        meta.push_str(&format!(", case {label}"));
    }
    out.push_str(&wrap(&printable(&meta), WIDTH, ""));
    out.push('\n');
    verdict_text(&mut out, &doc.verdict, &doc.findings);
    section(&mut out, "Path test");
    let rows = doc.ladder_rows();
    if rows.is_empty() {
        out.push_str("  No transfers ran.\n");
    } else {
        let _ = writeln!(
            out,
            "  {:>9}  {:<28} client -> server",
            "bytes", "server -> client"
        );
        for row in rows {
            let _ = writeln!(
                out,
                "  {:>9}  {:<28} {}",
                row.bytes,
                printable(&row.down.text),
                printable(&row.up.text)
            );
        }
    }
    if !doc.probe.hello.is_empty() {
        let _ = writeln!(out, "\n  ClientHello sizes tried (check.sh)");
        for h in &doc.probe.hello {
            let result = match (h.ok, &h.error) {
                (true, _) => "completed".to_owned(),
                (false, Some(e)) => format!("failed ({})", printable(e)),
                (false, None) => "failed".to_owned(),
            };
            let _ = writeln!(out, "  {:>9}  {result}", h.bytes);
        }
    }
    run_attempts_text(&mut out, doc);
    packets_text(&mut out, doc);
    section(&mut out, "The connection that ran the test");
    if let Some(proxy) = &doc.proxy {
        out.push_str(&wrap(
            &printable(&format!(
                "Through your proxy ({}): the SYN, packet sizes and TCP facts below are the \
                 proxy's connection to us, not your computer's.",
                proxy.name
            )),
            WIDTH,
            "  ",
        ));
    }
    out.push_str(&wrap(&printable(&doc.connection.summary), WIDTH, "  "));
    connection_text(&mut out, &doc.connection);
    // The link stays the last line, as the text of a saved report always ended.
    out.push('\n');
    compare_text(&mut out, link);
    let _ = writeln!(out, "\nReport link: {link}");
    out
}

/// How to compare a report with another run's: its link turned into the
/// comparison's (`…/r/ID` → `…/compare/ID/OTHER_ID`).
fn compare_text(out: &mut String, link: &str) {
    let Some((base, id)) = link.rsplit_once("/r/") else {
        return;
    };
    out.push_str(&wrap(
        "To compare it with another run's report (from a network where it works, or another \
         client), open this with the other report's id (the end of its link) for OTHER_ID:",
        WIDTH,
        "",
    ));
    let _ = writeln!(out, "  {base}/compare/{id}/OTHER_ID");
}

/// The answer to a run for check.sh: the verdict text (the same as the saved
/// report's), then where the report is.
pub fn render_run(report: &RunReport) -> String {
    let mut out = String::new();
    section(&mut out, "Verdict");
    verdict_text(&mut out, &report.verdict, &report.findings);
    run_attempts_text(&mut out, report);
    match (&report.report_url, &report.report_error) {
        (Some(url), _) => {
            let _ = writeln!(out, "\nReport link (send it to support): {url}");
            // After the report link, which scripts and people take as the
            // answer's first link; before how to compare, its last line.
            packets_text(&mut out, report);
            out.push('\n');
            compare_text(&mut out, url);
        }
        (None, Some(why)) => {
            let _ = writeln!(
                out,
                "\nNo report was saved: {why}. The verdict above is complete."
            );
            packets_text(&mut out, report);
        }
        _ => packets_text(&mut out, report),
    }
    out
}

/// Where the server's packets of the run are, or why there are none.
fn packets_text(out: &mut String, doc: &RunReport) {
    let Some(packets) = &doc.server_packets else {
        return;
    };
    match &packets.path {
        Some(path) => {
            let _ = writeln!(
                out,
                "\nThe server's packets of this run ({} packets of {} connection(s), pcapng: open in Wireshark):\n  {}",
                packets.packets,
                packets.connections,
                printable(path)
            );
            if let Some(note) = &packets.note {
                let _ = writeln!(out, "  ({})", printable(note));
            }
        }
        None => {
            let note = packets.note.as_deref().unwrap_or("none were kept");
            out.push('\n');
            out.push_str(&wrap(
                &printable(&format!("No packets of this run: {note}.")),
                WIDTH,
                "",
            ));
        }
    }
}

/// The run's own HTTPS connections (why each is the run's), then the other
/// clients at its address, said to be theirs.
fn run_attempts_text(out: &mut String, doc: &RunReport) {
    if !doc.attempts.is_empty() {
        section(out, "This run's HTTPS connections");
        for own in &doc.attempts {
            let a = &own.attempt;
            out.push_str(&wrap_hanging(
                &printable(&format!("{}  {}", a.time(), a.summary)),
                WIDTH,
                "  ",
                "    ",
            ));
            out.push_str(&wrap(
                &printable(&format!("ours because {}", own.tie.describe())),
                WIDTH,
                "    ",
            ));
        }
    }
    if !doc.other_clients.is_empty() {
        let who = if doc.agent == "browser" {
            "this browser"
        } else {
            "this shell"
        };
        section(out, "Other clients at your address");
        out.push_str(&wrap(
            &format!(
                "Connections from your address during the test that were not {who}'s (another \
                 machine behind the same NAT, or another program). They do not change this \
                 run's verdict."
            ),
            WIDTH,
            "  ",
        ));
        for a in &doc.other_clients {
            let ids: Vec<&str> = a
                .findings
                .iter()
                .filter(|f| f.severity > Severity::Info)
                .map(|f| &*f.id)
                .collect();
            let line = if ids.is_empty() {
                format!("{}  {}", a.time(), a.summary)
            } else {
                format!("{}  {} [{}]", a.time(), a.summary, ids.join(", "))
            };
            out.push_str(&wrap_hanging(&printable(&line), WIDTH, "  ", "    "));
        }
    }
}

/// What the text renderer prints of a finding, live or saved.
struct FindingText<'a> {
    severity: &'a str,
    title: &'a str,
    explanation: &'a str,
    evidence: Vec<(&'a str, &'a str)>,
    fix: &'a [std::borrow::Cow<'static, str>],
}

impl<'a> From<&'a Finding> for FindingText<'a> {
    fn from(f: &'a Finding) -> Self {
        Self {
            severity: f.severity.as_str(),
            title: &f.title,
            explanation: &f.explanation,
            evidence: f
                .evidence
                .iter()
                .map(|e| (&*e.label, e.value.as_str()))
                .collect(),
            fix: &f.fix,
        }
    }
}

fn findings_text<'a>(out: &mut String, findings: impl IntoIterator<Item = FindingText<'a>>) {
    for f in findings {
        let _ = writeln!(out, "  [{}] {}", printable(f.severity), printable(f.title));
        out.push_str(&wrap(&printable(f.explanation), WIDTH, "    "));
        for (label, value) in &f.evidence {
            let line = format!("{}: {}", printable(label), printable(value));
            out.push_str(&wrap_hanging(&line, WIDTH, "    - ", "      "));
        }
        for step in f.fix {
            out.push_str(&wrap_hanging(
                &printable(step),
                WIDTH,
                "    Fix: ",
                "         ",
            ));
        }
        out.push('\n');
    }
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}\n{}", "-".repeat(title.len()));
}

/// `label  value` lines; long values wrap under themselves, and unbroken ones
/// (fingerprints) are split hard at the width so they can be pasted back whole.
fn facts(out: &mut String, facts: &[Fact]) {
    const LABEL: usize = 20;
    for f in facts {
        let value = printable(&f.value);
        let indent = " ".repeat(LABEL + 2);
        let wrapped = wrap(&value, WIDTH, &indent);
        let mut lines = wrapped.lines();
        let first = lines.next().map(|l| l.trim_start()).unwrap_or("");
        let _ = writeln!(
            out,
            "  {:<LABEL$}{}",
            f.label,
            hard_wrap(first, WIDTH - LABEL - 2, &indent)
        );
        for line in lines {
            let _ = writeln!(
                out,
                "{indent}{}",
                hard_wrap(line.trim_start(), WIDTH - LABEL - 2, &indent)
            );
        }
    }
}

/// Splits a single over-long word (a hash list without spaces) at the width.
fn hard_wrap(text: &str, width: usize, indent: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_owned();
    }
    chars
        .chunks(width)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}
