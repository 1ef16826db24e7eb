//! Diagnosis: pure functions from observations to [`Finding`]s. No I/O, no
//! formatting beyond the plain-language text each finding carries.
//!
//! Each rule lives in a small function with a stable id (`tls.no-sni`). A
//! finding is only as good as its evidence: every rule states the numbers from
//! this connection that triggered it, and a clean connection yields nothing
//! above `info`. The catalogue is in `docs/findings.md`.

pub mod attribution;
mod balancer_rules;
mod client_traits;
mod delivery_rules;
mod finding;
mod fixes;
mod hello_ladder;
mod hello_rules;
mod icmp_rules;
mod interception_rules;
mod interceptors;
mod outcome_rules;
mod path_rules;
mod run_rules;
mod user_agent;
mod verdict;

pub use crate::probe::TlsCheck;
pub use balancer_rules::BEHIND_BALANCER;
pub use finding::{Evidence, Finding, Severity};
pub use fixes::IpVersion;
pub use interception_rules::proxy_headers;
pub use run_rules::{
    client_remembers, ClientSide, EarlierVerdict, Heard, ProxyUse, Remembered, CLIENT_MEMORY,
};
pub use user_agent::{claim, Claim, Family};
pub use verdict::{diagnose, Diagnosis, Observations, Status, DOWN_BROKEN, UP_BROKEN};

use std::collections::HashMap;
use std::sync::Arc;

use crate::attempt::TlsAttempt;
use crate::profile::ServerProfile;

/// Each attempt's own findings, worked out once for a report that judges an
/// attempt more than once (in its list of attempts and for its headline).
///
/// Keyed by the record's place in memory, not its id: ids are numbered per
/// instance, and a report may hold another instance's attempts. The records
/// are held (by the caller's lists) for as long as this lives, so no two of
/// them share a place.
#[derive(Debug, Default)]
pub struct Judged(HashMap<usize, Vec<Finding>>);

impl Judged {
    /// The findings of each of `attempts`, once each.
    pub fn of<'a>(
        attempts: impl IntoIterator<Item = &'a Arc<TlsAttempt>>,
        server: &ServerProfile,
    ) -> Self {
        let mut judged = HashMap::new();
        for a in attempts {
            judged.entry(key(a)).or_insert_with(|| attempt(a, server));
        }
        Self(judged)
    }

    pub fn get(&self, a: &Arc<TlsAttempt>) -> Option<&[Finding]> {
        self.0.get(&key(a)).map(Vec::as_slice)
    }

    /// `a`'s findings, taken out when worked out already.
    pub fn take(&mut self, a: &Arc<TlsAttempt>, server: &ServerProfile) -> Vec<Finding> {
        self.0.remove(&key(a)).unwrap_or_else(|| attempt(a, server))
    }
}

fn key(a: &Arc<TlsAttempt>) -> usize {
    Arc::as_ptr(a) as usize
}

/// Findings about one attempt on the TLS port, most severe first.
pub fn attempt(attempt: &TlsAttempt, server: &ServerProfile) -> Vec<Finding> {
    let mut out = Vec::new();
    // Causes before symptoms (the sort keeps this order within a severity):
    // dropped fragments and what our ICMP test proved explain a stuck hello.
    out.extend(outcome_rules::hello_fragments_dropped(attempt));
    out.extend(icmp_rules::icmp_test(attempt));
    // Our stalled flight explains a silent client better than the timeout does.
    match delivery_rules::flight_stalled(attempt) {
        Some(stall) => out.push(stall),
        None => out.extend(outcome_rules::outcome(attempt, server)),
    }
    out.extend(delivery_rules::response_stalled(attempt));
    if let Some(hello) = &attempt.client_hello {
        out.extend(hello_rules::hello_size(
            hello,
            attempt.peer.ip().to_canonical().is_ipv6(),
        ));
        out.extend(hello_rules::no_sni(hello));
        out.extend(hello_rules::sni_not_served(hello, server));
        out.extend(hello_rules::legacy_ciphers_only(hello));
    }
    out.extend(interception_rules::intercepted(attempt));
    if let Some(request) = attempt.first_request.get() {
        out.extend(interception_rules::proxy_headers(request, true));
    }
    match &attempt.balancer {
        // How the hello was cut into reads is the balancer's doing.
        Some(balancer) => out.push(balancer_rules::behind_balancer(&balancer.via)),
        None => out.extend(hello_rules::slow_arrival(&attempt.arrival)),
    }
    sort(&mut out);
    out
}

/// Most severe first; stable for equal severity so rules keep their order.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
}

/// A captured ClientHello from `tests/fixtures/hellos/` (`name` without
/// `.bin`), parsed: the rules' tests run on real clients' bytes.
#[cfg(test)]
fn fixture(name: &str) -> crate::hello::ClientHello {
    let path = format!(
        "{}/tests/fixtures/hellos/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    crate::hello::parse_client_hello(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}
