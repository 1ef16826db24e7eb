//! Diagnosis: pure functions from observations to [`Finding`]s. No I/O, no
//! formatting beyond the plain-language text each finding carries.
//!
//! Each rule lives in a small function with a stable id (`tls.no-sni`). A
//! finding is only as good as its evidence: every rule states the numbers from
//! this connection that triggered it, and a clean connection yields nothing
//! above `info`. The catalogue is in `docs/findings.md`.

mod finding;
mod fixes;
mod hello_rules;
mod outcome_rules;
mod path_rules;

pub use finding::{Evidence, Finding, Severity};

use crate::attempt::TlsAttempt;
use crate::probe::ProbeRun;
use crate::profile::ServerProfile;
use crate::tcp::SynInfo;

/// Findings about one attempt on the TLS port, most severe first.
pub fn attempt(attempt: &TlsAttempt, server: &ServerProfile) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(outcome_rules::outcome(attempt, server));
    if let Some(hello) = &attempt.client_hello {
        out.extend(hello_rules::hello_size(
            hello,
            attempt.peer.ip().to_canonical().is_ipv6(),
        ));
        out.extend(hello_rules::no_sni(hello));
        out.extend(hello_rules::sni_not_served(hello, server));
        out.extend(hello_rules::legacy_ciphers_only(hello));
    }
    out.extend(hello_rules::slow_arrival(&attempt.arrival));
    sort(&mut out);
    out
}

/// Findings about a probe run; `syn` is the SYN of the connection that posted
/// the results (its MSS says what packet size the client believes in).
pub fn probe_run(run: &ProbeRun, syn: Option<&SynInfo>) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(path_rules::black_hole_up(run, syn));
    out.extend(path_rules::black_hole_down(run));
    out.extend(path_rules::unreliable(run));
    out.extend(path_rules::clock_skew(run));
    sort(&mut out);
    out
}

/// One line for a run: the headline a customer reads first.
pub fn probe_verdict(findings: &[Finding]) -> String {
    let up = findings
        .iter()
        .find(|f| f.id == "path.black-hole-up" || f.id == "path.fragments-dropped");
    let down = findings.iter().find(|f| f.id == "path.black-hole-down");
    match (up, down) {
        (Some(up), _) if up.id == "path.fragments-dropped" => format!(
            "{}. Fix: let IP fragments through, or clamp TCP MSS so none are needed; details below.",
            up.title
        ),
        (Some(up), _) => format!(
            "{}. ICMP \"fragmentation needed\" is not getting through (otherwise your computer would \
             resend smaller packets). Fix: allow ICMP type 3 code 4 and clamp TCP MSS; details below.",
            up.title
        ),
        (None, Some(down)) => format!(
            "{}. ICMP \"fragmentation needed\" from your side does not reach us. Fix: allow ICMP \
             type 3 code 4 inbound and clamp TCP MSS; details below.",
            down.title
        ),
        _ => match findings.iter().find(|f| f.severity == Severity::Error) {
            Some(f) => f.title.clone(),
            None => "No packet-size problem: every transfer completed in both directions.".to_owned(),
        },
    }
}

/// Most severe first; stable for equal severity so rules keep their order.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
}
