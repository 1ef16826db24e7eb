//! The comparison for curl: the headline, the ranked explanation, what either
//! report lacks, then the table, within 80 columns. Every value from a report
//! (a peer's User-Agent, SNI, a proxy's name) passes through [`printable`].

use std::fmt::Write;

use super::{Comparison, Row, SideSummary};
use crate::util::{printable, wrap, wrap_hanging};

const WIDTH: usize = 80;
/// Columns of the row label; values get the rest, split in two.
const LABEL: usize = 24;
const VALUE: usize = (WIDTH - LABEL - 4) / 2;

/// `base` is this server's URL as the client named it, for the links.
pub fn render(c: &Comparison, base: &str) -> String {
    let mut out = String::new();
    let title = "tlsdiag: two reports compared";
    let _ = writeln!(out, "{title}\n{}", "=".repeat(title.len()));
    out.push_str(&wrap(&printable(&c.headline), WIDTH, ""));
    out.push('\n');
    for (letter, side) in [("A", &c.a), ("B", &c.b)] {
        out.push_str(&wrap_hanging(
            &printable(&side_line(letter, side, base)),
            WIDTH,
            "",
            "   ",
        ));
    }

    section(&mut out, "What differs, most telling first");
    if c.explanation.is_empty() {
        out.push_str("  Nothing that explains a difference: see the table.\n");
    }
    for (i, reason) in c.explanation.iter().enumerate() {
        out.push_str(&wrap_hanging(
            &printable(&reason.text),
            WIDTH,
            &format!("{:>3}. ", i + 1),
            "     ",
        ));
    }

    let missing: Vec<(&str, &String)> = [("A", &c.a), ("B", &c.b)]
        .into_iter()
        .flat_map(|(letter, s)| s.missing.iter().map(move |m| (letter, m)))
        .collect();
    if !missing.is_empty() {
        section(&mut out, "Not in the reports");
        for (letter, what) in missing {
            out.push_str(&wrap_hanging(
                &printable(&format!("{letter}: {what}")),
                WIDTH,
                "  ",
                "     ",
            ));
        }
    }

    section(&mut out, "Side by side (* marks a difference)");
    let _ = writeln!(out, "  {:<w$}{:<v$}  B", "", "A", w = LABEL, v = VALUE);
    for s in &c.sections {
        let _ = writeln!(out, "\n  {}", printable(&s.title));
        for r in &s.rows {
            row(&mut out, r);
        }
    }
    let _ = writeln!(
        out,
        "\nJSON: add -H 'Accept: application/json', or {base}/api/v1/compare/{}/{}",
        c.a.id, c.b.id
    );
    out
}

fn side_line(letter: &str, s: &SideSummary, base: &str) -> String {
    let who = if s.name == letter {
        letter.to_owned()
    } else {
        format!("{letter} ({})", s.name)
    };
    let mut line = format!(
        "{who}: {base}/r/{} ({}",
        s.id,
        s.agent.as_deref().unwrap_or("unknown test")
    );
    if let Some(status) = s.status {
        line.push_str(&format!(", {}", status.as_str()));
    }
    if let Some(label) = &s.label {
        line.push_str(&format!(", case {label}"));
    }
    if let Some(at) = &s.created_at {
        line.push_str(&format!(", saved {at}"));
    }
    line.push(')');
    line
}

fn row(out: &mut String, r: &Row) {
    let mark = if r.differs { "*" } else { " " };
    let (label, a, b) = (printable(&r.label), printable(&r.a), printable(&r.b));
    let fits = |s: &str| s.chars().count() <= VALUE;
    if label.chars().count() <= LABEL - 2 && fits(&a) && fits(&b) {
        let _ = writeln!(out, "{mark} {label:<w$}{a:<v$}  {b}", w = LABEL, v = VALUE);
    } else {
        let _ = writeln!(out, "{mark} {label}");
        let indent = " ".repeat(6);
        out.push_str(&wrap_hanging(&a, WIDTH, "    A: ", &indent));
        out.push_str(&wrap_hanging(&b, WIDTH, "    B: ", &indent));
    }
    if let Some(note) = &r.note {
        out.push_str(&wrap(&printable(note), WIDTH, "      "));
    }
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}\n{}", "-".repeat(title.chars().count()));
}
