//! The body a client POSTs to `/api/v1/probe/results`, as the handler takes
//! it: JSON into `ClientResults`, `validate()`, and for a valid body the run
//! report built from it (merged with server observations, diagnosed) and
//! rendered as the answer and the saved document.
//!
//! Checks, beyond "no panic": a body `validate()` accepts keeps the documented
//! limits; the report's JSON reads back (`RunReport::from_json`) to the same
//! value; the text renderings have no control characters; the HTML renders;
//! the ladder table has one row per step size.
#![no_main]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use libfuzzer_sys::fuzz_target;

use tlsdiag::diagnose::{self, Diagnosis, IpVersion, Observations, Status};
use tlsdiag::probe::model::{ClientResults, ClientStep, MAX_STEPS};
use tlsdiag::probe::{Direction, PacketLimits, ProbeObservation, ProbeRun, MAX_PROBE_BYTES};
use tlsdiag::report::html::SavedPage;
use tlsdiag::report::{text, RunReport};
use tlsdiag_fuzz::{
    assert_no_peer_commands, assert_terminal_safe, defanged, fixed_time, json_diff, peer,
    plain_report, profile,
};

fuzz_target!(|data: &[u8]| {
    let Ok(results) = serde_json::from_slice::<ClientResults>(data) else {
        return;
    };
    if let Err(message) = results.validate() {
        assert!(!message.is_empty());
        assert!(
            !message.contains('\n'),
            "400 bodies are one line: {message:?}"
        );
        return;
    }
    check_valid(&results);
    report(&results, data.len() % 2 == 1);
});

/// What `validate()` promises the rest of the server.
fn check_valid(r: &ClientResults) {
    assert!((8..=64).contains(&r.run.len()), "run {:?}", r.run);
    assert!(r
        .run
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    assert!(matches!(r.agent.as_str(), "browser" | "check.sh"));
    if let Some(label) = &r.label {
        assert!((1..=64).contains(&label.len()));
        assert!(label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')));
    }
    for steps in [&r.down, &r.up, &r.hello] {
        assert!(steps.len() <= MAX_STEPS);
    }
    for step in r.down.iter().chain(&r.up).chain(&r.hello) {
        assert!(step.bytes <= MAX_PROBE_BYTES);
        assert!(step.ms.is_none_or(|ms| ms.is_finite() && ms >= 0.0));
        assert!(step.error.as_ref().is_none_or(|e| e.len() <= 200));
    }
    if let Some(check) = &r.tls_check {
        assert!(check.issuer.as_ref().is_none_or(|t| t.len() <= 200));
        assert!(check.error.as_ref().is_none_or(|t| t.len() <= 200));
    }
}

/// The server's view of the run's transfers: most steps observed, some not,
/// failures stalled, so the merge and the path rules have both sides to
/// compare (a deterministic function of the client's steps).
fn observations(r: &ClientResults) -> Vec<Arc<ProbeObservation>> {
    let mut out = Vec::new();
    let mut id = 0;
    for (direction, steps) in [(Direction::Down, &r.down), (Direction::Up, &r.up)] {
        for (i, step) in steps.iter().enumerate() {
            if i % 4 == 3 {
                continue; // a step the server never saw
            }
            id += 1;
            out.push(Arc::new(observation(id, r, direction, step, i)));
        }
    }
    out
}

fn observation(
    id: u64,
    r: &ClientResults,
    direction: Direction,
    step: &ClientStep,
    i: usize,
) -> ProbeObservation {
    let stalled = !step.ok && i % 2 == 0;
    ProbeObservation {
        id,
        peer: peer(false),
        run: Some(r.run.clone()),
        direction,
        bytes: step.bytes,
        transferred: if step.ok { step.bytes } else { step.bytes / 2 },
        completed: step.ok,
        stalled,
        duration_ms: step.ms.unwrap_or(5000.0),
        started_at: fixed_time() - Duration::from_secs(10),
        before: None,
        after: None,
        samples: Vec::new(),
        packets: PacketLimits {
            over_tls: i % 3 != 0,
            mss_clamp: (i % 5 == 4).then_some(1220),
            client_mss: Some(if i % 2 == 0 { 1460 } else { 1400 }),
            our_mss_at_start: Some(1448),
        },
        icmp_probe: None,
    }
}

/// The same results with every peer text [`defanged`].
fn defanged_results(r: &ClientResults) -> ClientResults {
    let mut out = r.clone();
    for step in out.down.iter_mut().chain(&mut out.up).chain(&mut out.hello) {
        step.error = step.error.as_deref().map(defanged);
    }
    if let Some(check) = &mut out.tls_check {
        check.issuer = check.issuer.as_deref().map(defanged);
        check.error = check.error.as_deref().map(defanged);
    }
    out
}

fn report(results: &ClientResults, ipv6: bool) {
    let observations = observations(results);
    let run = ProbeRun::merge(results, &observations, 1_795_220_883_000.0);
    assert_eq!(run.down.len(), results.down.len());
    assert_eq!(run.up.len(), results.up.len());
    let diagnosis = diagnose::diagnose(
        &Observations {
            ip: IpVersion::of(peer(ipv6).ip()),
            attempts: &[],
            run: Some(&run),
            hello_ladder: &results.hello,
            tls_check: results.tls_check.as_ref(),
            syn: None,
            how_to_test: "curl -sS http://203.0.113.1:8080/check.sh | sh",
            via: None,
            judged: None,
            client: None,
        },
        profile(),
    );
    let mut peer_values: Vec<&str> = Vec::new();
    for step in results.down.iter().chain(&results.up).chain(&results.hello) {
        peer_values.extend(step.error.as_deref());
    }
    if let Some(check) = &results.tls_check {
        peer_values.extend(check.issuer.as_deref());
        peer_values.extend(check.error.as_deref());
    }
    if !peer_values.is_empty() {
        let control = defanged_results(results);
        let control_run = ProbeRun::merge(&control, &observations, 1_795_220_883_000.0);
        let control = diagnose::diagnose(
            &Observations {
                ip: IpVersion::of(peer(ipv6).ip()),
                attempts: &[],
                run: Some(&control_run),
                hello_ladder: &control.hello,
                tls_check: control.tls_check.as_ref(),
                syn: None,
                how_to_test: "curl -sS http://203.0.113.1:8080/check.sh | sh",
                via: None,
                judged: None,
                client: None,
            },
            profile(),
        );
        assert_no_peer_commands(&diagnosis.findings, &control.findings, &peer_values);
    }
    // The posting connection: plain HTTP, nothing else known about it.
    let connection = plain_report(
        ipv6,
        None,
        Diagnosis {
            status: Status::Inconclusive,
            headline: "No HTTPS attempt from this address yet".into(),
            findings: Vec::new(),
        },
    );
    let mut answer = RunReport::new(results, run, diagnosis, connection);
    answer.created_at = fixed_time();
    answer.id = Some("0123456789abcdef0123456789abcdef".into());

    let rows = answer.ladder_rows();
    let sizes: BTreeSet<u64> = results
        .down
        .iter()
        .chain(&results.up)
        .map(|s| s.bytes)
        .collect();
    assert_eq!(rows.len(), sizes.len(), "one ladder row per step size");
    assert!(rows.windows(2).all(|w| w[0].bytes < w[1].bytes));

    // The answer (text for curl), then the saved document read back.
    assert_terminal_safe("run answer", &text::render_run(&answer));
    let saved = serde_json::to_string(&answer).expect("a run report serializes");
    let doc = RunReport::from_json(&saved).expect("a saved report reads back");
    let want = serde_json::to_value(&answer).expect("serializes");
    let got = serde_json::to_value(&doc).expect("serializes");
    if let Some(diff) = json_diff(&want, &got, "run report") {
        panic!("saved report does not read back the same: {diff}");
    }
    let link = "https://203.0.113.1:8443/r/0123456789abcdef0123456789abcdef";
    assert_terminal_safe("saved report", &text::render_saved(&doc, link));
    SavedPage::new(&doc, link)
        .render()
        .expect("the saved page renders");
}
