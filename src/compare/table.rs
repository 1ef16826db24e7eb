//! The full side-by-side table: every compared fact of both reports, in
//! sections, each row marked when the two sides differ. Values are formatted
//! here, once, for all three renderers. Pure.

use serde::Serialize;

use super::explain::Pair;
use super::facts::{icmp_words, plural, stuck_words, whole_words, ClientFacts, Facts, Ladder};
use super::hello::{self, HelloDiff, ListDiff};
use crate::hello::ClientHello;
use crate::report::syn_summary;
use crate::util::thousands;

/// One section of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Stable id: `verdict`, `findings`, `client_hello`, `ladder_hello`,
    /// `syn`, `path`, `context`.
    pub id: &'static str,
    pub title: String,
    pub rows: Vec<Row>,
}

/// One fact of both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub label: String,
    pub a: String,
    pub b: String,
    /// The sides differ here (times, ids and counts that always differ are
    /// never marked).
    pub differs: bool,
    /// What exactly differs, when the two values do not say it (list
    /// differences: added, removed, reordered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Shown where a side has nothing for a row.
const NONE: &str = "—";

fn row(label: &str, a: impl Into<String>, b: impl Into<String>) -> Row {
    let (a, b) = (a.into(), b.into());
    Row {
        label: label.to_owned(),
        differs: a != b,
        a,
        b,
        note: None,
    }
}

/// A row never marked (a time, an id).
fn plain(label: &str, a: impl Into<String>, b: impl Into<String>) -> Row {
    Row {
        differs: false,
        ..row(label, a, b)
    }
}

fn or_none(v: Option<String>) -> String {
    v.unwrap_or_else(|| NONE.to_owned())
}

pub fn sections(p: &Pair<'_>) -> Vec<Section> {
    let mut out = vec![verdict(p), findings(p)];
    out.push(hello_section(
        "client_hello",
        "ClientHello of the client that ran the test".to_owned(),
        p,
        &p.a.client,
        &p.b.client,
    ));
    if p.a.ladder_client.seen() || p.b.ladder_client.seen() {
        out.push(hello_section(
            "ladder_hello",
            "ClientHello of check.sh's size ladder (openssl)".to_owned(),
            p,
            &p.a.ladder_client,
            &p.b.ladder_client,
        ));
    }
    out.push(syn(p));
    out.push(path(p));
    out.push(context(p));
    out
}

fn verdict(p: &Pair<'_>) -> Section {
    let (a, b) = (p.a.side, p.b.side);
    let status = |s: Option<crate::diagnose::Status>| or_none(s.map(|s| s.as_str().to_owned()));
    let worst = |s: Option<crate::diagnose::Severity>| {
        s.map_or_else(|| "none".to_owned(), |s| s.as_str().to_owned())
    };
    Section {
        id: "verdict",
        title: "Verdict".to_owned(),
        rows: vec![
            row("Status", status(a.status), status(b.status)),
            row(
                "Verdict",
                or_none(a.verdict.clone()),
                or_none(b.verdict.clone()),
            ),
            row("Worst finding", worst(a.worst), worst(b.worst)),
            row("Test", or_none(a.agent.clone()), or_none(b.agent.clone())),
            plain(
                "Case label",
                or_none(a.label.clone()),
                or_none(b.label.clone()),
            ),
            plain(
                "Saved",
                or_none(a.created_at.clone()),
                or_none(b.created_at.clone()),
            ),
            row(
                "tlsdiag version",
                or_none(a.server_version.clone()),
                or_none(b.server_version.clone()),
            ),
        ],
    }
}

/// Every finding of either side, by id: which side has it, how severe.
fn findings(p: &Pair<'_>) -> Section {
    let mut ids: Vec<(&str, &str)> = Vec::new();
    for f in p.a.side.findings.iter().chain(&p.b.side.findings) {
        if !ids.iter().any(|(id, _)| *id == f.id) {
            ids.push((&f.id, &f.title));
        }
    }
    let severity = |side: &super::side::Side, id: &str| {
        side.findings
            .iter()
            .find(|f| f.id == id)
            .map_or_else(|| NONE.to_owned(), |f| f.severity.as_str().to_owned())
    };
    let mut rows: Vec<Row> = ids
        .into_iter()
        .map(|(id, title)| Row {
            note: Some(title.to_owned()),
            ..row(id, severity(p.a.side, id), severity(p.b.side, id))
        })
        .collect();
    if rows.is_empty() {
        rows.push(row("Findings", "none", "none"));
    }
    Section {
        id: "findings",
        title: "Findings (which side has each)".to_owned(),
        rows,
    }
}

fn hello_section(
    id: &'static str,
    title: String,
    p: &Pair<'_>,
    a: &ClientFacts<'_>,
    b: &ClientFacts<'_>,
) -> Section {
    let (fa, fb) = (&p.a, &p.b);
    let joined = |list: &[String]| {
        if list.is_empty() {
            NONE.to_owned()
        } else {
            list.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let mut ja4 = row("JA4", joined(&a.ja4), joined(&b.ja4));
    if id == "ladder_hello" {
        // The ladder's ALPN is `tlsdiag-<run>`: JA4's ALPN characters name
        // the run, so they always differ and say nothing.
        let masked = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|j| {
                    let mut j = j.clone();
                    if j.is_char_boundary(8) && j.is_char_boundary(10) && j.len() > 10 {
                        j.replace_range(8..10, "..");
                    }
                    j
                })
                .collect()
        };
        ja4.differs = masked(&a.ja4) != masked(&b.ja4);
        ja4.note = Some(
            "Its ALPN characters (the 9th and 10th) come from the run's id (ALPN \
             tlsdiag-<run>) and are not compared."
                .to_owned(),
        );
    }
    let mut rows = vec![
        ja4,
        row(
            "JA4_r",
            or_none(a.hello.map(|h| h.fingerprints.ja4_r.clone())),
            or_none(b.hello.map(|h| h.fingerprints.ja4_r.clone())),
        ),
        row("JA3 (MD5)", joined(&a.ja3_md5), joined(&b.ja3_md5)),
        row("Size", size(fa, a), size(fb, b)),
        row("How it arrived", arrival(a), arrival(b)),
        row("Negotiated", negotiated(a), negotiated(b)),
    ];
    match (a.hello, b.hello) {
        (Some(ha), Some(hb)) => rows.extend(lists(&ha.hello, &hb.hello)),
        (ha, hb) => {
            let kept = |h: Option<&super::side::KeptHello>| {
                h.map_or_else(
                    || "not kept in this report".to_owned(),
                    |h| lists_of(&h.hello),
                )
            };
            rows.push(Row {
                note: Some(
                    "Only a whole ClientHello kept on both sides shows the lists behind the \
                     fingerprints."
                        .to_owned(),
                ),
                ..row("Cipher suites, groups, key shares", kept(ha), kept(hb))
            });
        }
    }
    Section { id, title, rows }
}

fn size(f: &Facts<'_>, c: &ClientFacts<'_>) -> String {
    let bytes = c
        .hello
        .map(|h| h.hello.wire_length)
        .or_else(|| c.largest_whole().map(|a| a.tls.arrival.bytes));
    match bytes {
        Some(bytes) => {
            let packets = f.packets(bytes);
            if packets.is_empty() {
                format!("{} bytes", thousands(bytes))
            } else {
                format!("{} bytes ({packets})", thousands(bytes))
            }
        }
        None if !c.stuck.is_empty() => "unknown: none arrived whole".to_owned(),
        None => NONE.to_owned(),
    }
}

fn arrival(c: &ClientFacts<'_>) -> String {
    let mut parts = Vec::new();
    if let Some(a) = c.largest_whole() {
        parts.push(format!(
            "{} whole (the largest: {})",
            c.whole.len(),
            whole_words(a)
        ));
    }
    if let Some(s) = c.stuck.first() {
        parts.push(format!(
            "{} never whole ({})",
            c.stuck.len(),
            stuck_words(&s.outcome)
        ));
    }
    if parts.is_empty() {
        NONE.to_owned()
    } else {
        parts.join("; ")
    }
}

fn negotiated(c: &ClientFacts<'_>) -> String {
    c.whole
        .iter()
        .find_map(|a| a.tls.negotiated.as_ref())
        .map_or_else(
            || NONE.to_owned(),
            |n| {
                let mut parts = vec![n.version.to_string(), n.cipher_suite.to_string()];
                if let Some(g) = n.key_exchange_group {
                    parts.push(g.to_string());
                }
                if let Some(alpn) = &n.alpn {
                    parts.push(alpn.clone());
                }
                parts.join(", ")
            },
        )
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A row for a list compared item by item: the counts side by side, the
/// difference in the note.
fn list_row<T: std::fmt::Display + PartialEq + Copy>(label: &str, a: &[T], b: &[T]) -> Row {
    let diff = ListDiff::of(a, b);
    Row {
        label: label.to_owned(),
        a: format!("{}: {}", a.len(), list(a)),
        b: format!("{}: {}", b.len(), list(b)),
        differs: !diff.same(),
        note: (!diff.same()).then(|| diff.words("A", "B")),
    }
}

fn lists(a: &ClientHello, b: &ClientHello) -> Vec<Row> {
    let diff = HelloDiff::of(a, b);
    let alpn = |h: &ClientHello| {
        let names: Vec<String> = h.alpn().iter().map(|p| p.name().into_owned()).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    vec![
        row(
            "Highest version",
            a.highest_version().to_string(),
            b.highest_version().to_string(),
        ),
        list_row("Cipher suites", &hello::ciphers(a), &hello::ciphers(b)),
        list_row("Supported groups", &hello::groups(a), &hello::groups(b)),
        Row {
            note: (!diff.key_shares.same()).then(|| diff.key_shares.words("A", "B")),
            ..row(
                "Key shares",
                hello::key_share_words(a),
                hello::key_share_words(b),
            )
        },
        list_row("Signature schemes", &hello::schemes(a), &hello::schemes(b)),
        list_row("Extensions", &hello::extensions(a), &hello::extensions(b)),
        row("ALPN", alpn(a), alpn(b)),
        row(
            "SNI",
            a.sni().unwrap_or("none").to_owned(),
            b.sni().unwrap_or("none").to_owned(),
        ),
    ]
}

/// One side's lists in a line, when the other side kept none.
fn lists_of(h: &ClientHello) -> String {
    format!(
        "{} cipher suites; groups {}; key shares {}",
        hello::ciphers(h).len(),
        list(&hello::groups(h)),
        hello::key_share_words(h)
    )
}

fn syn(p: &Pair<'_>) -> Section {
    let (a, b) = (p.a.side.syn.as_ref(), p.b.side.syn.as_ref());
    let field = |s: Option<&crate::tcp::SynInfo>, f: &dyn Fn(&crate::tcp::SynInfo) -> String| {
        s.map_or_else(|| "no SYN kept".to_owned(), f)
    };
    let mss = |s: &crate::tcp::SynInfo| match (s.mss, s.implied_mtu) {
        (Some(mss), Some(mtu)) => format!(
            "{} (packets up to {} bytes)",
            thousands(usize::from(mss)),
            thousands(mtu as usize)
        ),
        _ => "none".to_owned(),
    };
    let ttl = |s: &crate::tcp::SynInfo| {
        format!(
            "{} ({} hop{} from {})",
            s.ttl,
            s.hops,
            plural(usize::from(s.hops)),
            s.initial_ttl
        )
    };
    let window = |s: &crate::tcp::SynInfo| {
        let mut w = thousands(usize::from(s.window));
        if let Some(scale) = s.window_scale {
            w.push_str(&format!(" ×2^{scale}"));
        }
        w
    };
    let options = |s: &crate::tcp::SynInfo| {
        s.options
            .iter()
            .map(|o| o.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let df = |s: &crate::tcp::SynInfo| match s.dont_fragment {
        Some(true) => "set".to_owned(),
        Some(false) => "not set".to_owned(),
        None => "n/a (IPv6)".to_owned(),
    };
    let title = match (&p.a.side.proxy, &p.b.side.proxy) {
        (None, None) => "SYN and TCP (the connection that posted the results)".to_owned(),
        _ => "SYN and TCP (the connection that posted the results; behind a proxy, the proxy's)"
            .to_owned(),
    };
    Section {
        id: "syn",
        title,
        rows: vec![
            row("MSS", field(a, &mss), field(b, &mss)),
            row("TTL", field(a, &ttl), field(b, &ttl)),
            row("Window", field(a, &window), field(b, &window)),
            row("Options", field(a, &options), field(b, &options)),
            row("Don't fragment", field(a, &df), field(b, &df)),
            plain(
                "In one line",
                field(a, &syn_summary),
                field(b, &syn_summary),
            ),
        ],
    }
}

fn path(p: &Pair<'_>) -> Section {
    let (a, b) = (&p.a, &p.b);
    let icmp = |f: &Facts<'_>| {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for probe in &f.icmp {
            let words = icmp_words(probe);
            match seen.iter_mut().find(|(w, _)| *w == words) {
                Some((_, n)) => *n += 1,
                None => seen.push((words, 1)),
            }
        }
        if seen.is_empty() {
            return "not needed (nothing stuck)".to_owned();
        }
        seen.into_iter()
            .map(|(words, n)| {
                if n > 1 {
                    format!("{n}×: {words}")
                } else {
                    words
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let stuck = |f: &Facts<'_>| {
        let stuck = f.side.stuck();
        match stuck.first() {
            None => "none".to_owned(),
            Some(s) => format!("{}: {}", stuck.len(), stuck_words(&s.outcome)),
        }
    };
    Section {
        id: "path",
        title: "Path".to_owned(),
        rows: vec![
            row(
                "Server → client (downloads)",
                a.down.summary("passed"),
                b.down.summary("passed"),
            ),
            row(
                "Client → server (uploads)",
                a.up.summary("passed"),
                b.up.summary("passed"),
            ),
            row(
                "ClientHello sizes (check.sh)",
                a.hellos.summary("completed"),
                b.hellos.summary("completed"),
            ),
            row("ClientHellos never whole", stuck(a), stuck(b)),
            row("ICMP test", icmp(a), icmp(b)),
            row(
                "TCP_INFO of the first failed step",
                failed_step(&a.down, &a.up),
                failed_step(&b.down, &b.up),
            ),
            row("Largest segments (TCP_INFO)", segments(a), segments(b)),
        ],
    }
}

/// What `TCP_INFO` showed of the first failed transfer.
fn failed_step(down: &Ladder<'_>, up: &Ladder<'_>) -> String {
    let mut parts = Vec::new();
    for (name, ladder) in [("download", down), ("upload", up)] {
        let (Some((bytes, _)), Some(step)) = (&ladder.first_failure, ladder.failed_step) else {
            continue;
        };
        let mut text = format!(
            "{name} of {} bytes: {} of them {}",
            thousands(*bytes as usize),
            thousands(step.transferred as usize),
            if step.stalled {
                "moved, then stalled"
            } else {
                "moved"
            }
        );
        let retrans = step.retransmissions();
        if retrans > 0 {
            text.push_str(&format!(
                ", {retrans} retransmission{}",
                plural(retrans as usize)
            ));
        }
        let held = step.out_of_order();
        if held > 0 {
            text.push_str(&format!(
                ", {held} segment{} out of order",
                plural(held as usize)
            ));
        }
        if let Some(pmtu) = step
            .after
            .or(step.before)
            .map(|t| t.pmtu)
            .filter(|&m| m > 0)
        {
            text.push_str(&format!(", path MTU {}", thousands(pmtu as usize)));
        }
        parts.push(text);
    }
    if parts.is_empty() {
        NONE.to_owned()
    } else {
        parts.join("; ")
    }
}

/// The largest segments each way the ladders' `TCP_INFO` saw, and the path
/// MTU we learned toward the client.
fn segments(f: &Facts<'_>) -> String {
    use crate::probe::Direction;
    let steps = || {
        f.side
            .down
            .iter()
            .chain(&f.side.up)
            .filter_map(|s| s.server.as_ref())
    };
    let largest = |d: Direction| {
        steps()
            .filter(|o| o.direction == d)
            .filter_map(|o| o.segment_bytes())
            .max()
    };
    let pmtu = steps()
        .filter_map(|o| o.after.map(|t| t.pmtu))
        .filter(|&m| m > 0)
        .min();
    let mut parts = Vec::new();
    if let Some(up) = largest(Direction::Up) {
        parts.push(format!("from the client {} bytes", thousands(up as usize)));
    }
    if let Some(down) = largest(Direction::Down) {
        parts.push(format!("toward it {} bytes", thousands(down as usize)));
    }
    if let Some(m) = pmtu {
        parts.push(format!("path MTU toward it {}", thousands(m as usize)));
    }
    if parts.is_empty() {
        "no transfers watched".to_owned()
    } else {
        parts.join(", ")
    }
}

fn context(p: &Pair<'_>) -> Section {
    let (a, b) = (p.a.side, p.b.side);
    let interception = |f: &Facts<'_>| {
        let mut ids: Vec<&str> = f.interception().map(|x| &*x.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            "none seen".to_owned()
        } else {
            ids.join(", ")
        }
    };
    let certificate = |s: &super::side::Side| match &s.tls_check {
        Some(c) if c.verified => "verified by curl".to_owned(),
        Some(c) => match (&c.issuer, &c.error) {
            (Some(issuer), _) => format!("not verified; issuer {issuer}"),
            (None, Some(error)) => format!("HTTPS failed ({error})"),
            (None, None) => "not verified".to_owned(),
        },
        None if s.browser() => "the browser accepted it (it does not say which)".to_owned(),
        None => NONE.to_owned(),
    };
    let clock = |s: &super::side::Side| {
        s.clock_offset_ms
            .map_or_else(|| NONE.to_owned(), |ms| format!("{:+.1} s", ms / 1000.0))
    };
    let proxy = |s: &super::side::Side| {
        s.proxy
            .as_ref()
            .map_or_else(|| "none seen".to_owned(), |p| p.name.clone())
    };
    let balancer = |s: &super::side::Side| {
        s.load_balancer.as_ref().map_or_else(
            || "none".to_owned(),
            |l| format!("{} port {}", l.address, l.port),
        )
    };
    let instances = |s: &super::side::Side| {
        if s.instances.is_empty() {
            NONE.to_owned()
        } else {
            s.instances.join(", ")
        }
    };
    let mut clock_row = row("Clock offset", clock(a), clock(b));
    clock_row.differs = match (a.clock_offset_ms, b.clock_offset_ms) {
        (Some(x), Some(y)) => (x - y).abs() >= 60_000.0,
        (x, y) => x.is_some() != y.is_some(),
    };
    Section {
        id: "context",
        title: "Client and network".to_owned(),
        rows: vec![
            row(
                "Source network",
                or_none(p.a.network.clone()),
                or_none(p.b.network.clone()),
            ),
            row(
                "Client address",
                or_none(a.client_address.clone()),
                or_none(b.client_address.clone()),
            ),
            row(
                "User-Agent",
                or_none(a.user_agent.clone()),
                or_none(b.user_agent.clone()),
            ),
            row("Proxy", proxy(a), proxy(b)),
            row("Load balancer", balancer(a), balancer(b)),
            row("Interception", interception(&p.a), interception(&p.b)),
            row("Certificate seen", certificate(a), certificate(b)),
            clock_row,
            row("Server instance", instances(a), instances(b)),
            plain(
                "Other clients at the address",
                a.other_clients.to_string(),
                b.other_clients.to_string(),
            ),
            row(
                "Results posted over",
                or_none(a.posted_over.clone()),
                or_none(b.posted_over.clone()),
            ),
        ],
    }
}
