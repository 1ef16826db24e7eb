//! One diagnosis for everything known about a client address during a test
//! run: its HTTPS attempts (finished and still hanging), both transfer ladders
//! with the server's view of each step, check.sh's ClientHello size ladder and
//! certificate check, the SYN, the clock. It returns ranked findings and the
//! one headline every view shows: the live page, the text for curl, the JSON,
//! check.sh's output and the saved report.
//!
//! The headline can say "no problem" only when both directions were tested
//! with full-size packets and no attempt failed; anything less is a problem
//! (with its cause) or "inconclusive" (with what was not tested and why).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::balancer_rules::BEHIND_BALANCER;
use super::fixes::IpVersion;
use super::{hello_ladder, path_rules, Finding, Severity};
use crate::attempt::TlsAttempt;
use crate::probe::{ClientStep, Direction, ProbeRun, TlsCheck};
use crate::profile::ServerProfile;
use crate::tcp::SynInfo;

/// Everything known about one address during one run.
#[derive(Debug, Clone, Copy)]
pub struct Observations<'a> {
    pub ip: IpVersion,
    /// HTTPS attempts from the address during the run, newest first, including
    /// ones still in progress (as provisional attempts).
    pub attempts: &'a [Arc<TlsAttempt>],
    /// Both transfer ladders, when a ladder ran.
    pub run: Option<&'a ProbeRun>,
    /// check.sh's ClientHello size ladder.
    pub hello_ladder: &'a [ClientStep],
    pub tls_check: Option<&'a TlsCheck>,
    /// The SYN of the connection asking (its MSS says what the client sends).
    pub syn: Option<&'a SynInfo>,
    /// What to run for a test with full-size packets (a command or URL).
    pub how_to_test: &'a str,
    /// The load balancer the asking connection came through
    /// (`--proxy-protocol`): then `syn` is `None` and no TCP fact is the
    /// client's.
    pub via: Option<&'a crate::proxy::Via>,
    /// The attempts' own findings, when the caller has worked them out
    /// already; any attempt not in it is judged here.
    pub judged: Option<&'a super::Judged>,
    /// What a run's client itself saw (its HTTPS requests failing) and how it
    /// reached us (a proxy). `attempts` are then the run's own alone
    /// (`attribution`).
    pub client: Option<&'a super::ClientSide>,
}

/// How the run came out, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Something is broken; the headline names it.
    Problem,
    /// Nothing failed, but not everything could be tested.
    Inconclusive,
    /// Both directions tested with full-size packets, no attempt failed.
    Clear,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Problem => "problem",
            Status::Inconclusive => "inconclusive",
            Status::Clear => "clear",
        }
    }
}

/// The conclusion: a headline, its status, and the findings behind it, most
/// important first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub status: Status,
    pub headline: String,
    pub findings: Vec<Finding>,
}

/// Findings that mean packets from the client toward us vanish.
pub const UP_BROKEN: &[&str] = &[
    "path.icmp-filtered-toward-you",
    "path.router-icmp-missing",
    "path.black-hole-up",
    "path.fragments-dropped",
    "path.hello-size-limit",
    "tls.hello-incomplete",
];
/// Findings that mean packets from us toward the client vanish.
pub const DOWN_BROKEN: &[&str] = &[
    "path.black-hole-down",
    "path.response-stalled",
    "path.flight-stalled",
];

pub fn diagnose(o: &Observations<'_>, server: &ServerProfile) -> Diagnosis {
    let findings = findings(o, server);
    let (mut status, mut headline) = headline(&findings, o.ip);
    // Our kernel's memory shrank this run's connections: what it could not
    // test is said, and the last conclusive verdict shown, rather than a
    // bare "inconclusive" or an all-clear that could not have failed.
    let shrunk = findings.iter().find(|f| f.id == "path.our-mss-shrunk");
    if let Some(f) = shrunk.filter(|_| status != Status::Problem) {
        let earlier = o
            .client
            .and_then(|c| c.earlier.as_ref())
            .map_or_else(String::new, |e| {
                format!(
                    " The last conclusive test from your address ({}) found: {}",
                    crate::util::clock(e.at),
                    e.verdict
                )
            });
        status = Status::Inconclusive;
        headline = format!("Inconclusive: {}.{earlier}", f.title);
    }
    // Behind a proxy every TCP fact was the proxy's: the headline says whose
    // path was tested.
    if let Some(proxy) = o.client.and_then(|c| c.proxy.as_ref()) {
        headline = match status {
            Status::Clear => format!(
                "Through your proxy ({}): the path from the proxy to us is clear ({}) Your \
                 computer's own path to the proxy was not tested packet by packet.",
                proxy.name,
                headline.trim_end_matches('.').to_owned() + "."
            ),
            _ => format!("Through your proxy ({}): {headline}", proxy.name),
        };
    }
    // Interception changes what every other conclusion is about (the
    // middlebox's connection, not the client's): it is never left below.
    if let Some(f) = findings.iter().find(|f| f.id == "tls.intercepted") {
        if !headline.contains(&*f.title) {
            headline = format!("{headline} Also: {}.", f.title);
        }
    }
    Diagnosis {
        status,
        headline,
        findings,
    }
}

/// Every finding the evidence supports, each id once, most important first.
fn findings(o: &Observations<'_>, server: &ServerProfile) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    let add = |f: Finding, findings: &mut Vec<Finding>| {
        if !findings.iter().any(|seen| seen.id == f.id) {
            findings.push(f);
        }
    };
    // Path findings from the ladders first: they carry the sizes.
    if let Some(run) = o.run {
        for f in [
            path_rules::black_hole_up(run, o.syn, o.ip),
            path_rules::black_hole_down(run, o.ip),
        ]
        .into_iter()
        .flatten()
        {
            add(f, &mut findings);
        }
        for f in path_rules::unreliable(run) {
            add(f, &mut findings);
        }
        if let Some(f) = super::icmp_rules::upload_tests(run, o.ip, o.syn) {
            add(f, &mut findings);
        }
    }
    if let Some(f) = hello_ladder::size_limit(o.hello_ladder, o.attempts, o.ip) {
        add(f, &mut findings);
    }
    // Each failed attempt's own findings (newest first, each id once).
    for attempt in o.attempts {
        let worked_out;
        let own = match o.judged.and_then(|j| j.get(attempt)) {
            Some(own) => own,
            None => {
                worked_out = super::attempt(attempt, server);
                &worked_out
            }
        };
        for f in own.iter().filter(|f| f.severity > Severity::Info) {
            add(f.clone(), &mut findings);
        }
    }
    if let Some(client) = o.client {
        // The cause our own message uncovered stands while the client's
        // computer remembers it: this run's packets were too small to meet it.
        if let Some(remembered) = &client.remembers {
            add(super::run_rules::remembers(remembered), &mut findings);
            for f in &remembered.cause {
                add(f.clone(), &mut findings);
            }
        }
        if let Some(f) = super::run_rules::our_mss_shrunk(o.attempts, client) {
            add(f, &mut findings);
        }
        if let Some(f) =
            super::run_rules::icmp_toward_you_reached_us(&client.heard, o.ip == IpVersion::V4)
        {
            add(f, &mut findings);
        }
        let own_failed = o.attempts.iter().any(|a| !a.succeeded());
        if let Some(f) = super::run_rules::https_failed(client, own_failed) {
            add(f, &mut findings);
        }
        if let Some(proxy) = &client.proxy {
            add(super::run_rules::through_proxy(proxy), &mut findings);
            if let Some(f) = proxy
                .request
                .as_ref()
                .and_then(|r| super::interception_rules::proxy_headers(r, false))
            {
                add(f, &mut findings);
            }
        }
    }
    if let Some(check) = o.tls_check {
        if let Some(f) = super::hello_rules::certificate_not_verified(check, server) {
            if f.id == "tls.certificate-not-verified" {
                // check.sh's own verifying request ended in that alert: the
                // same fact, already explained by this finding.
                findings.retain(|seen| seen.id != "tls.client-rejected-certificate");
            }
            add(f, &mut findings);
        }
    }
    let up_broken = findings.iter().any(|f| UP_BROKEN.contains(&&*f.id));
    let down_broken = findings.iter().any(|f| DOWN_BROKEN.contains(&&*f.id));
    // Behind a balancer no transfer can prove full-size packets (their sizes
    // were the balancer's): one note says so instead of "untested" advice
    // that could never be followed.
    let via = o.via.or_else(|| {
        o.attempts
            .iter()
            .find_map(|a| a.balancer.as_ref().map(|b| &b.via))
    });
    if let Some(via) = via {
        add(super::balancer_rules::behind_balancer(via), &mut findings);
    }
    // Untested directions matter only where nothing already shows them broken.
    let empty = ProbeRun::default();
    let run = o.run.unwrap_or(&empty);
    if !down_broken && via.is_none() {
        if let Some(f) = path_rules::untested(run, Direction::Down, o.how_to_test) {
            add(f, &mut findings);
        }
    }
    if !up_broken && via.is_none() {
        if let Some(f) = path_rules::untested(run, Direction::Up, o.how_to_test) {
            add(f, &mut findings);
        }
    }
    if let Some(f) = o.run.and_then(path_rules::clock_skew) {
        add(f, &mut findings);
    }
    super::sort(&mut findings);
    findings
}

/// The one line every view leads with, and the status it stands for.
fn headline(findings: &[Finding], ip: IpVersion) -> (Status, String) {
    // The first finding of a kind, in rank order; what names the cause more
    // precisely than the black hole it makes leads: dropped fragments, then
    // what our own ICMP test proved.
    const CAUSES: [&str; 3] = [
        "path.fragments-dropped",
        "path.icmp-filtered-toward-you",
        "path.router-icmp-missing",
    ];
    let top = |ids: &[&str]| {
        CAUSES
            .iter()
            .find_map(|cause| {
                findings
                    .iter()
                    .find(|f| f.id == *cause && ids.contains(cause))
            })
            .or_else(|| findings.iter().find(|f| ids.contains(&&*f.id)))
    };
    let error = findings.iter().find(|f| f.severity == Severity::Error);
    let untested: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.id.starts_with("path.untested-"))
        .collect();
    let icmp = ip.too_big_message();
    // The client's own failed request is never "nothing failed".
    let nothing_failed = findings
        .iter()
        .find(|f| f.id == "run.https-failed")
        .map_or_else(|| "nothing failed".to_owned(), |f| f.title.to_string());
    match (top(UP_BROKEN), top(DOWN_BROKEN)) {
        (Some(up), Some(down)) => (
            Status::Problem,
            format!(
                "MTU black hole in both directions. {}. {}. {icmp} is not getting through either \
                 way. Fix: allow it and clamp TCP MSS; details below.",
                up.title, down.title
            ),
        ),
        (Some(up), None) if up.id == "path.icmp-filtered-toward-you" => (
            Status::Problem,
            format!(
                "{}: that is why your computer never resends smaller packets and its large ones \
                 vanish. Fix: allow it through, and clamp TCP MSS; details below.",
                up.title
            ),
        ),
        (Some(up), None) if up.id == "path.router-icmp-missing" => (
            Status::Problem,
            format!(
                "{}. Fix: make that router send it (or stop filtering it there), or clamp TCP MSS; \
                 details below.",
                up.title
            ),
        ),
        (Some(up), None) if up.id == "path.fragments-dropped" => (
            Status::Problem,
            format!(
                "{}. Fix: let IP fragments through, or clamp TCP MSS so none are needed; details below.",
                up.title
            ),
        ),
        (Some(up), None) => (
            Status::Problem,
            format!(
                "{}. {icmp} is not reaching your computer (otherwise it would resend smaller \
                 packets). Fix: allow it and clamp TCP MSS; details below.",
                up.title
            ),
        ),
        (None, Some(down)) => (
            Status::Problem,
            format!(
                "{}. {icmp} from your network does not reach us. Fix: allow it and clamp TCP MSS; \
                 details below.",
                down.title
            ),
        ),
        (None, None) => match (error, untested.as_slice()) {
            (Some(f), _) => (Status::Problem, format!("{}.", f.title)),
            // Never an all-clear resting on the balancer's TCP facts.
            (None, _) if findings.iter().any(|f| f.id == BEHIND_BALANCER) => (
                Status::Inconclusive,
                format!(
                    "Inconclusive: {nothing_failed}, but this server is behind a load balancer, \
                     so its TCP view (SYN, packet sizes, TCP_INFO) is the balancer's connection, \
                     not yours: it cannot show whether full-size packets cross your path."
                ),
            ),
            // Transfers that failed at no particular size: nothing to name,
            // but not a path that worked either.
            (None, []) if findings.iter().any(|f| f.id.starts_with("path.loss-")) => {
                let loss = findings.iter().find(|f| f.id.starts_with("path.loss-"));
                (
                    Status::Inconclusive,
                    format!(
                        "Inconclusive: {}; that is not a packet-size limit, see below.",
                        loss.map_or("some transfers failed", |f| &*f.title)
                    ),
                )
            }
            (None, []) => match findings.iter().find(|f| f.severity == Severity::Warning) {
                // Nothing broke, but something the customer should know of
                // (a foreign certificate, a skewed clock) must not hide
                // behind an all-clear.
                Some(warning) => (
                    Status::Clear,
                    format!(
                        "HTTPS worked and full-size packets crossed the path in both directions, \
                         but: {}.",
                        warning.title
                    ),
                ),
                None => (
                    Status::Clear,
                    "No problem found: HTTPS worked and full-size packets crossed the path in \
                     both directions."
                        .to_owned(),
                ),
            },
            (None, [one]) => (
                Status::Inconclusive,
                format!(
                    "Inconclusive: {nothing_failed}, but full-size packets {} were not tested.",
                    if one.id.ends_with("-down") {
                        "toward you"
                    } else {
                        "from you to us"
                    }
                ),
            ),
            (None, _) => (
                Status::Inconclusive,
                format!(
                    "Inconclusive: {nothing_failed}, but full-size packets were not tested in \
                     either direction."
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    //! Evidence in, headline out: the table the product's honesty rests on.
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use super::*;
    use crate::attempt::{Arrival, Outcome, SentData, StallEnd};
    use crate::probe::{PacketLimits, ProbeObservation, StepView};
    use crate::tcp::TcpInfo;

    const HOW: &str = "run check.sh";

    /// A step the client reports and the server watched. `clamp` is the
    /// listener's MSS clamp of the connection it ran on.
    fn step(direction: Direction, bytes: u64, ok: bool, clamp: Option<u32>) -> StepView {
        StepView {
            bytes,
            client: Some(ClientStep {
                bytes,
                ok,
                ms: Some(10.0),
                error: (!ok).then(|| "timeout".to_owned()),
            }),
            server: Some(ProbeObservation {
                id: bytes,
                peer: SocketAddr::from(([198, 18, 1, 1], 40000)),
                run: Some("testrun01".into()),
                direction,
                bytes,
                transferred: if ok { bytes } else { 1228 },
                completed: ok,
                stalled: !ok,
                duration_ms: 10.0,
                started_at: SystemTime::now(),
                before: None,
                after: None,
                samples: vec![],
                packets: PacketLimits {
                    over_tls: clamp.is_none(),
                    mss_clamp: clamp,
                    client_mss: Some(1460),
                    our_mss_at_start: Some(1448),
                },
                icmp_probe: None,
            }),
        }
    }

    fn ladder(direction: Direction, results: &[(u64, bool)], clamp: Option<u32>) -> Vec<StepView> {
        results
            .iter()
            .map(|&(bytes, ok)| step(direction, bytes, ok, clamp))
            .collect()
    }

    const CLEAN: [(u64, bool); 4] = [(512, true), (1400, true), (4000, true), (65536, true)];
    const HOLE: [(u64, bool); 4] = [(512, true), (1200, true), (2000, false), (4000, false)];

    fn run(down: Vec<StepView>, up: Vec<StepView>) -> ProbeRun {
        ProbeRun {
            run: "testrun01".into(),
            agent: "check.sh".into(),
            clock_offset_ms: Some(0.0),
            down,
            up,
        }
    }

    fn attempt(outcome: Outcome) -> Arc<TlsAttempt> {
        let mut a = TlsAttempt::fixture(1, SocketAddr::from(([198, 18, 1, 1], 40001)));
        a.arrival = Arrival {
            bytes: 1460,
            read_count: 1,
            reads: vec![],
            capture_ms: 3000.0,
        };
        a.outcome = outcome;
        Arc::new(a)
    }

    fn hello_stalled() -> Arc<TlsAttempt> {
        attempt(Outcome::HelloIncomplete {
            received: 1460,
            expected: Some(1981),
            ended: StallEnd::Timeout,
            out_of_order_segments: 0,
        })
    }

    fn diagnose_with(
        ip: IpVersion,
        attempts: &[Arc<TlsAttempt>],
        run: Option<&ProbeRun>,
    ) -> Diagnosis {
        diagnose(
            &Observations {
                ip,
                attempts,
                run,
                hello_ladder: &[],
                tls_check: None,
                syn: None,
                via: None,
                how_to_test: HOW,
                judged: None,
                client: None,
            },
            &ServerProfile::default(),
        )
    }

    fn ids(d: &Diagnosis) -> Vec<&str> {
        d.findings.iter().map(|f| &*f.id).collect()
    }

    #[test]
    fn both_directions_tested_full_size_and_clean_is_clear() {
        let r = run(
            ladder(Direction::Down, &CLEAN, None),
            ladder(Direction::Up, &CLEAN, None),
        );
        let d = diagnose_with(IpVersion::V4, &[], Some(&r));
        assert_eq!(d.status, Status::Clear, "{d:#?}");
        assert!(d.headline.starts_with("No problem found"));
    }

    #[test]
    fn behind_a_load_balancer_a_clean_run_is_inconclusive_never_clear() {
        let r = run(
            ladder(Direction::Down, &CLEAN, None),
            ladder(Direction::Up, &CLEAN, None),
        );
        let mut a = attempt(Outcome::Completed);
        Arc::get_mut(&mut a).expect("sole owner").balancer =
            Some(Box::new(crate::attempt::Balancer {
                via: crate::proxy::Via {
                    balancer: "10.0.0.5:40000".parse().expect("address"),
                    version: 2,
                    kind: crate::proxy::ViaKind::Proxied,
                    destination: None,
                    balancer_syn: None,
                },
                tcp_at_capture: None,
            }));
        let a_behind = a.clone();
        let d = diagnose_with(IpVersion::V4, &[a], Some(&r));
        assert_eq!(d.status, Status::Inconclusive, "{d:#?}");
        assert!(d.headline.contains("load balancer"), "{}", d.headline);
        assert!(ids(&d).contains(&BEHIND_BALANCER));
        assert!(!ids(&d).iter().any(|id| id.starts_with("path.untested-")));
        // A problem the client itself saw (its own transfers failing at a
        // size) still is one.
        let hole = run(
            ladder(Direction::Down, &HOLE, None),
            ladder(Direction::Up, &CLEAN, None),
        );
        let d = diagnose_with(IpVersion::V4, &[a_behind], Some(&hole));
        assert_eq!(d.status, Status::Problem, "{d:#?}");
    }

    #[test]
    fn an_error_attempt_beside_a_clean_clamped_ladder_is_never_all_clear() {
        let r = run(
            ladder(Direction::Down, &CLEAN, Some(1220)),
            ladder(Direction::Up, &CLEAN, Some(1220)),
        );
        let d = diagnose_with(IpVersion::V4, &[hello_stalled()], Some(&r));
        assert_eq!(d.status, Status::Problem);
        assert!(
            d.headline
                .contains("ClientHello stopped after 1,460 of 1,981"),
            "{}",
            d.headline
        );
        assert!(
            d.headline.contains("fragmentation needed"),
            "{}",
            d.headline
        );
        assert!(!d.headline.contains("No problem"), "{}", d.headline);
        // Only the untested direction the attempt does not speak for remains.
        assert_eq!(ids(&d), ["tls.hello-incomplete", "path.untested-down"]);
    }

    #[test]
    fn a_clean_ladder_over_a_clamped_connection_is_inconclusive() {
        let r = run(
            ladder(Direction::Down, &CLEAN, Some(1220)),
            ladder(Direction::Up, &CLEAN, Some(1220)),
        );
        let d = diagnose_with(IpVersion::V4, &[], Some(&r));
        assert_eq!(d.status, Status::Inconclusive);
        assert!(d.headline.contains("either direction"), "{}", d.headline);
        let why = &d.findings[0].explanation;
        assert!(why.contains("plain HTTP") && why.contains("1,220"), "{why}");
        assert_eq!(d.findings[0].fix, [HOW]);
    }

    #[test]
    fn nothing_tested_in_one_direction_is_inconclusive_for_that_direction() {
        let r = run(ladder(Direction::Down, &CLEAN, None), vec![]);
        let d = diagnose_with(IpVersion::V4, &[], Some(&r));
        assert_eq!(d.status, Status::Inconclusive);
        assert!(d.headline.contains("from you to us"), "{}", d.headline);
        assert_eq!(ids(&d), ["path.untested-up"]);
    }

    #[test]
    fn steps_the_server_never_saw_prove_nothing() {
        let mut r = run(
            ladder(Direction::Down, &CLEAN, None),
            ladder(Direction::Up, &CLEAN, None),
        );
        for s in r.down.iter_mut().chain(r.up.iter_mut()) {
            s.server = None;
        }
        let d = diagnose_with(IpVersion::V4, &[], Some(&r));
        assert_eq!(d.status, Status::Inconclusive);
    }

    #[test]
    fn small_steps_alone_prove_nothing() {
        let small = [(512, true), (1200, true)];
        let r = run(
            ladder(Direction::Down, &small, None),
            ladder(Direction::Up, &small, None),
        );
        assert_eq!(
            diagnose_with(IpVersion::V4, &[], Some(&r)).status,
            Status::Inconclusive
        );
    }

    #[test]
    fn a_failing_download_size_is_a_black_hole_toward_the_client() {
        let r = run(
            ladder(Direction::Down, &HOLE, None),
            ladder(Direction::Up, &CLEAN, None),
        );
        let d = diagnose_with(IpVersion::V4, &[], Some(&r));
        assert_eq!(d.status, Status::Problem);
        assert!(d.headline.contains("toward you"), "{}", d.headline);
        assert!(d.headline.contains("does not reach us"), "{}", d.headline);
        assert_eq!(ids(&d), ["path.black-hole-down"]);
    }

    #[test]
    fn both_directions_broken_names_both() {
        let r = run(
            ladder(Direction::Down, &HOLE, None),
            ladder(Direction::Up, &HOLE, None),
        );
        let d = diagnose_with(IpVersion::V4, &[], Some(&r));
        assert!(d.headline.contains("both directions"), "{}", d.headline);
    }

    #[test]
    fn ipv6_names_packet_too_big() {
        let r = run(
            ladder(Direction::Down, &CLEAN, None),
            ladder(Direction::Up, &HOLE, None),
        );
        let d = diagnose_with(IpVersion::V6, &[], Some(&r));
        assert!(
            d.headline.contains("ICMPv6 \"packet too big\""),
            "{}",
            d.headline
        );
        assert!(!d.headline.contains("fragmentation"), "{}", d.headline);
        let fixes = d.findings[0].fix.join("\n");
        assert!(
            fixes.contains("ip6tables") && !fixes.contains("iptables -I"),
            "{fixes}"
        );
    }

    #[test]
    fn a_response_that_stalled_after_the_handshake_is_a_black_hole_toward_the_client() {
        let done = attempt(Outcome::Completed);
        let total = TcpInfo {
            bytes_sent: 1300 + 5120 + 4 * 1448,
            bytes_retrans: 4 * 1448,
            bytes_acked: 1300 + 1228,
            total_retrans: 4,
            last_ack_recv_ms: 4000,
            snd_mss: 1448,
            pmtu: 1500,
            ..TcpInfo::default()
        };
        let mut a = (*done).clone();
        a.handshake_flight = Some(SentData::from_tcp(&TcpInfo {
            bytes_sent: 1300,
            bytes_acked: 1300,
            ..TcpInfo::default()
        }));
        a.after_handshake.update(SentData::from_tcp(&total));
        let d = diagnose_with(IpVersion::V4, &[Arc::new(a)], None);
        assert_eq!(d.status, Status::Problem);
        assert!(
            d.headline
                .contains("our 5,120-byte response was never acknowledged past 1,228 bytes"),
            "{}",
            d.headline
        );
    }

    #[test]
    fn failures_at_no_particular_size_are_not_an_all_clear() {
        let r = run(
            ladder(
                Direction::Down,
                &[(512, false), (4000, true), (65536, true)],
                None,
            ),
            ladder(Direction::Up, &CLEAN, None),
        );
        let d = diagnose_with(IpVersion::V4, &[], Some(&r));
        assert_eq!(d.status, Status::Inconclusive, "{d:#?}");
        assert!(
            d.headline.contains("not a packet-size limit"),
            "{}",
            d.headline
        );
    }

    #[test]
    fn our_icmp_that_changed_nothing_names_the_clients_firewall() {
        let mut a = (*hello_stalled()).clone();
        a.icmp_probe = Some(crate::attempt::IcmpProbe::NoChange {
            message: "ICMP \"fragmentation needed\"".into(),
            mtu: 1280,
            sent_at_ms: 1000.0,
            waited_ms: 2000.0,
            held_segments: 1,
        });
        let d = diagnose_with(IpVersion::V4, &[Arc::new(a)], None);
        assert_eq!(d.status, Status::Problem);
        assert!(
            d.headline
                .starts_with("Your firewall drops ICMP \"fragmentation needed\" toward you"),
            "{}",
            d.headline
        );
        assert_eq!(d.findings[0].id, "path.icmp-filtered-toward-you");
    }

    #[test]
    fn no_evidence_at_all_is_inconclusive_not_clear() {
        let d = diagnose_with(IpVersion::V4, &[attempt(Outcome::Completed)], None);
        assert_eq!(d.status, Status::Inconclusive);
        assert!(d.headline.contains("either direction"), "{}", d.headline);
    }
}
