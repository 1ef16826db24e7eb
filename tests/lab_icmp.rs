//! Our own ICMP "fragmentation needed" / "packet too big", in the namespace
//! lab: a client→server black hole at MTU 1,400 whose router sends no ICMP
//! (r1 drops what it would send). tlsdiag, which may use raw sockets here,
//! sends the message itself once the ClientHello's first packet is plainly
//! missing.
//!
//! - Nothing else filters ICMP: the client resends smaller packets and the
//!   handshake completes because of tlsdiag; the report says ICMP from us
//!   reached the client and the router's own message is what is missing.
//! - The client's edge (r1) also drops every such message it forwards (the
//!   seed incident's firewall): the handshake stays stuck, and the report says
//!   the firewall drops them.
//!
//! Each case runs with openssl (a ~1,900-byte ClientHello, padded with ALPN
//! entries) and with headless Chromium (its post-quantum ClientHello), over
//! IPv4 and IPv6, every run in a lab of its own, all at once.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::browser;
use common::netns::{self, Lab, LabSpec, HTTP_PORT};
use serde_json::Value;

/// The ClientHello openssl sends here: more than a 1,400-byte packet holds.
const HELLO_BYTES: usize = 1900;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Edge {
    /// Only the router's own ICMP is missing.
    PassesIcmp,
    /// The client's edge drops forwarded ICMP too.
    DropsIcmp,
}

#[test]
fn our_icmp_rescues_a_stuck_hello_or_proves_the_client_side_filters_it() {
    if !netns::available() || !browser::available() || !common::require_tool("openssl") {
        return;
    }
    let mut runs = Vec::new();
    let slots = Arc::new(std::sync::Mutex::new(()));
    let mut tag = b'a';
    for v6 in [false, true] {
        for edge in [Edge::PassesIcmp, Edge::DropsIcmp] {
            for agent in ["openssl", "chromium"] {
                let name = format!("{}-{:?}-{agent}", if v6 { "v6" } else { "v4" }, edge);
                let tag = format!("i{}", tag as char);
                let slots = slots.clone();
                runs.push(std::thread::spawn(move || {
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run(&tag, v6, edge, agent, &slots)
                    }));
                    (name, outcome)
                }));
            }
            tag += 1;
        }
    }
    let mut failures = Vec::new();
    for run in runs {
        let (name, outcome) = run.join().unwrap();
        match outcome {
            Ok(summary) => eprintln!("{name:>28} ok: {summary}"),
            Err(panic) => failures.push(format!("{name}: {}", netns::panic_text(&*panic))),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

fn run(tag: &str, v6: bool, edge: Edge, agent: &str, chromium: &std::sync::Mutex<()>) -> String {
    let tag = format!("{tag}{}", if agent == "openssl" { 'o' } else { 'c' });
    let spec = LabSpec {
        drop_forwarded_icmp_toward_client: edge == Edge::DropsIcmp,
        ..if v6 {
            LabSpec::client_to_server_black_hole().v6()
        } else {
            LabSpec::client_to_server_black_hole()
        }
    };
    let mut lab = Lab::build(&tag, &spec);
    lab.start_server();
    let host = lab.server_host();
    let rescued = if agent == "openssl" {
        openssl_handshake(&lab, v6)
    } else {
        // One Chromium at a time keeps the 2-core machine's real time honest.
        let _one = chromium.lock().unwrap_or_else(|e| e.into_inner());
        chromium_https(&lab, &host)
    };
    let attempt = stuck_attempt(&lab, &host);
    let context = || format!("{attempt:#}\n--- server log ---\n{}", lab.server_log());
    let probe = &attempt["tls"]["icmp_probe"];
    let message = if v6 {
        "ICMPv6 \"packet too big\""
    } else {
        "ICMP \"fragmentation needed\""
    };
    match edge {
        Edge::PassesIcmp => {
            assert!(
                rescued,
                "the handshake did not complete after our ICMP: {}",
                context()
            );
            assert_eq!(probe["result"], "reached", "{}", context());
            assert_eq!(attempt["outcome"]["kind"], "completed", "{}", context());
            let f = finding(&attempt, "path.router-icmp-missing", &context);
            assert!(
                f["title"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("your network never sends {message}")),
                "{f:#}"
            );
        }
        Edge::DropsIcmp => {
            assert!(
                !rescued,
                "the handshake completed through a filter: {}",
                context()
            );
            assert_eq!(probe["result"], "no_change", "{}", context());
            let f = finding(&attempt, "path.icmp-filtered-toward-you", &context);
            assert_eq!(
                f["title"],
                format!("Your firewall drops {message} toward you"),
                "{f:#}"
            );
            // r1 really dropped what we sent.
            let chain = "FORWARD";
            assert!(
                lab.dropped(&lab.r1, chain) >= 1,
                "r1 forwarded our ICMP: {}",
                context()
            );
        }
    }
    assert_eq!(probe["message"], message, "{}", context());
    assert_eq!(probe["mtu"], 1280, "{}", context());
    format!(
        "{} after {:.1} s",
        probe["result"],
        probe["sent_at_ms"].as_f64().unwrap_or_default() / 1000.0
    )
}

/// openssl s_client with a ClientHello of about [`HELLO_BYTES`]; whether the
/// handshake completed within 6 s.
fn openssl_handshake(lab: &Lab, v6: bool) -> bool {
    let (hello, completed) = lab.openssl_padded_hello(v6);
    assert!(
        (HELLO_BYTES - 200..HELLO_BYTES + 200).contains(&hello),
        "a {hello}-byte ClientHello"
    );
    completed
}

/// Headless Chromium opens the plain-HTTP page, whose first act is an HTTPS
/// request; whether that request worked (the page says so in `data-https`).
fn chromium_https(lab: &Lab, host: &str) -> bool {
    let page = browser::run_page(
        Some(&lab.client),
        &format!("http://{host}:{HTTP_PORT}/"),
        "document.querySelector('#probe') && document.querySelector('#probe').dataset.https",
        &["ok", "failed"],
        Duration::from_secs(20),
        &["--ignore-certificate-errors".to_owned()],
        None,
    );
    assert!(page.reached, "the page never tried HTTPS: {}", page.html);
    page.value_text() == "ok"
}

/// The attempt whose ClientHello got stuck: the one with an ICMP test, read
/// from the client namespace over plain HTTP once it has ended.
fn stuck_attempt(lab: &Lab, host: &str) -> Value {
    for _ in 0..40 {
        let out = lab.client(
            &format!("curl -s -g --max-time 5 http://{host}:{HTTP_PORT}/api/v1/attempts"),
            10,
        );
        if let Ok(report) = serde_json::from_str::<Value>(&out.stdout) {
            let ended = report["attempts"].as_array().and_then(|all| {
                all.iter()
                    .find(|a| {
                        !a["tls"]["icmp_probe"].is_null() && a["outcome"]["ended"] != "waiting"
                    })
                    .cloned()
            });
            if let Some(attempt) = ended {
                return attempt;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "no attempt with an ICMP test\n--- server log ---\n{}",
        lab.server_log()
    );
}

fn finding<'a>(attempt: &'a Value, id: &str, context: &dyn Fn() -> String) -> &'a Value {
    attempt["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id}: {}", context()))
}

/// Without CAP_NET_RAW nothing is sent, everything else works, and the report
/// says the test could not run and why.
#[test]
fn without_cap_net_raw_the_report_says_the_icmp_test_could_not_run() {
    if !netns::available() || !common::require_tool("openssl") || !common::require_tool("setpriv") {
        return;
    }
    let mut lab = Lab::build("ix", &LabSpec::client_to_server_black_hole());
    lab.start_server_under(&["setpriv", "--bounding-set", "-net_raw", "--"], &[]);
    assert!(
        lab.server_log().contains("the ICMP test will not run"),
        "no startup warning:\n{}",
        lab.server_log()
    );
    let rescued = openssl_handshake(&lab, false);
    assert!(!rescued, "the handshake crossed the black hole by itself");
    let host = lab.server_host();
    let attempt = stuck_attempt(&lab, &host);
    let probe = &attempt["tls"]["icmp_probe"];
    assert_eq!(probe["result"], "not_sent", "{attempt:#}");
    assert!(
        probe["why"].as_str().unwrap().contains("CAP_NET_RAW"),
        "{probe:#}"
    );
    let f = finding(&attempt, "path.icmp-test-unavailable", &|| {
        format!("{attempt:#}")
    });
    assert_eq!(f["severity"], "info");
    // The diagnosis of the stuck hello stands without it.
    finding(&attempt, "tls.hello-incomplete", &|| format!("{attempt:#}"));
}
