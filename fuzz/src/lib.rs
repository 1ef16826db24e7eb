//! Helpers shared by the fuzz targets in `fuzz_targets/`: the server profile
//! diagnosis compares clients against, fixed times (so a report's JSON reads
//! back to the same value), and the checks every rendering must pass.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askama::Template;
use tlsdiag::diagnose::Diagnosis;
use tlsdiag::hello::wire::{CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme};
use tlsdiag::profile::ServerProfile;
use tlsdiag::report::html::ReportPage;
use tlsdiag::report::{text, ConnectionReport, HttpFacts};
use tlsdiag::tcp::syn::SynInfo;

/// What the default server accepts (`certs::server_config` with aws-lc-rs and
/// the generated ECDSA P-256 development certificate), written out by hand so
/// the targets need no certificate files and no config module.
pub fn profile() -> &'static ServerProfile {
    static PROFILE: OnceLock<ServerProfile> = OnceLock::new();
    PROFILE.get_or_init(|| ServerProfile {
        versions: vec![ProtocolVersion::TLS_1_3, ProtocolVersion::TLS_1_2],
        cipher_suites: [
            0x1302, 0x1301, 0x1303, 0xc02c, 0xc02b, 0xcca9, 0xc030, 0xc02f, 0xcca8,
        ]
        .into_iter()
        .map(CipherSuite)
        .collect(),
        groups: [0x11ec, 0x001d, 0x0017, 0x0018]
            .into_iter()
            .map(NamedGroup)
            .collect(),
        signature_schemes: vec![SignatureScheme(0x0403)],
        alpn_protocols: vec!["h2".into(), "http/1.1".into()],
        served_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        issuer_cn: Some("rcgen self signed cert".into()),
    })
}

/// A fixed instant with whole milliseconds, so RFC 3339 round trips exactly.
pub fn fixed_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_795_220_883_000)
}

pub fn peer(ipv6: bool) -> SocketAddr {
    if ipv6 {
        "[2001:db8::7]:51234".parse().expect("literal address")
    } else {
        "192.0.2.7:51234".parse().expect("literal address")
    }
}

pub fn local() -> SocketAddr {
    "127.0.0.1:8443".parse().expect("literal address")
}

/// The plain-text renderings promise that no peer-controlled value can drive
/// a terminal or read differently from what it is: no control character may
/// survive except the newlines the renderer itself writes, and no invisible or
/// direction-changing one (the set `util::printable` documents).
pub fn assert_terminal_safe(what: &str, text: &str) {
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| (c.is_control() && c != '\n') || invisible(c))
    {
        let start = text[..at]
            .char_indices()
            .rev()
            .nth(40)
            .map_or(0, |(i, _)| i);
        panic!(
            "{what}: character {:?} at byte {at} survives into text output, after {:?}",
            c,
            &text[start..at]
        );
    }
}

/// Format characters that change how the text around them displays, or show
/// nothing (bidi embeddings, overrides and isolates, zero-width characters,
/// the BOM, ...): the list in `util::printable`'s documentation, kept here on
/// its own so a character dropped from the crate's list is noticed.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{061C}'
        | '\u{115F}' | '\u{1160}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}'
    )
}

/// Characters that make a string more than one word to a shell.
const SHELL_META: &[char] = &[
    ';', '|', '&', '$', '`', '\'', '"', '\\', '<', '>', '(', ')', '{', '}', '*', '?', '!', '#',
    '~', '\n', '\r', ' ', '\t',
];

/// `value` with every shell metacharacter replaced: the same peer value as
/// far as diagnosis is concerned, but one a shell would read as one word.
pub fn defanged(value: &str) -> String {
    value
        .chars()
        .map(|c| if SHELL_META.contains(&c) { 'X' } else { c })
        .collect()
}

/// Peer text is never a command. `findings` were diagnosed from the peer's
/// values, `control` from the same values [`defanged`]: a fix step (where the
/// commands are) that only the real values produce depends on them, and must
/// not repeat one a shell would read as more than a word. (Comparing with the
/// control keeps constant steps, which contain `;` and `|` of their own, out
/// of it.) And `dig +short NAME` only ever names a well-formed hostname.
pub fn assert_no_peer_commands(
    findings: &[tlsdiag::diagnose::Finding],
    control: &[tlsdiag::diagnose::Finding],
    peer_values: &[&str],
) {
    let constant: std::collections::HashSet<&str> = control
        .iter()
        .flat_map(|f| f.fix.iter().map(|step| &**step))
        .collect();
    for finding in findings {
        for step in &finding.fix {
            if !constant.contains(&**step) {
                for value in peer_values {
                    if value.chars().count() >= 3 && value.contains(SHELL_META) {
                        assert!(
                            !step.contains(value),
                            "{}: fix step {step:?} repeats the peer's {value:?}",
                            finding.id
                        );
                    }
                }
            }
            if let Some((_, rest)) = step.split_once("dig +short ") {
                let name = rest.split_whitespace().next().unwrap_or("");
                assert!(
                    name == "<the-name>" || tlsdiag::util::hostname(name) == Some(name),
                    "{}: dig is given {name:?}",
                    finding.id
                );
            }
        }
    }
}

/// JSON values equal up to float rounding: serde_json's default float parser
/// is not always exact (the `float_roundtrip` feature is off), and the crate
/// does not promise more than that.
pub fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                return true;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(f64::MIN_POSITIVE)
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The first path where two JSON values differ, for a readable panic.
pub fn json_diff(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (x, y))| json_diff(x, y, &format!("{path}[{i}]"))),
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = json_diff(v, w, &format!("{path}.{k}")) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{path}.{k}: missing after the round trip")),
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k}: appeared after the round trip"))
        }
        _ if json_eq(a, b) => None,
        _ => Some(format!("{path}: {a} became {b}")),
    }
}

/// A report for a plain-HTTP connection from curl, at the fixed time: the
/// posting connection of a run, or the connection a SYN is shown on.
pub fn plain_report(ipv6: bool, syn: Option<SynInfo>, diagnosis: Diagnosis) -> ConnectionReport {
    let mut report = ConnectionReport::for_plain(
        peer(ipv6),
        HttpFacts {
            http_version: "HTTP/1.1".into(),
            user_agent: Some("curl/8.5.0".into()),
            host: Some("203.0.113.1:8080".into()),
        },
        syn,
        None,
        diagnosis,
        Vec::new(),
    );
    report.generated_at = fixed_time();
    report
}

/// Renders a connection report as text (which must be terminal-safe) and
/// HTML, and returns what its JSON reads back as.
pub fn render_and_read_back(report: &ConnectionReport) -> ConnectionReport {
    assert_terminal_safe("text report", &text::render(report));
    ReportPage { r: report }
        .render()
        .expect("the HTML report renders");
    serde_json::from_slice(&report.to_json()).expect("a report's JSON reads back")
}
