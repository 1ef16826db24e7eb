//! The verdicts, in the conditions customers really have: four network
//! namespaces (client — r1 — r2 — server, see `common::netns`) with a narrow
//! r1–r2 link, a client that may reach only the server's HTTPS and plain-HTTP
//! ports, ICMP dropped where the case says, IPv6, a large certificate chain.
//!
//! Every case is run twice, each in a lab of its own so the two verdicts are
//! independent: once by `check.sh` (curl and openssl) and once by headless
//! Chromium opening the plain-HTTP entry URL support sends. The expected
//! answer comes from how the lab was built: which router swallows which ICMP
//! decides which direction is broken. Both must reach their verdict within
//! 30 s, and the report saved for the run must carry the same headline and
//! findings as the live answer.
//!
//! tlsdiag answers a ClientHello or an upload stuck behind a black hole with
//! its own ICMP "too big" (`tests/lab_icmp.rs`); these labs' client edges let
//! it through, so the stuck data is rescued and the verdict names the router
//! whose message is missing.
//!
//! All labs run at once (their namespaces are apart); Chromium runs are
//! limited to a few at a time so the 2-core machine keeps real time honest.
//! Screenshots of every browser verdict are left under `target/lab/`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::browser::{self, between, unescape};
use common::netns::{self, Lab, LabSpec, HTTPS_PORT, HTTP_PORT};
use serde_json::Value;

/// The bar: a verdict within 30 s of opening the URL.
const VERDICT_WITHIN: Duration = Duration::from_secs(30);
/// Chromium instances at once.
const BROWSERS_AT_ONCE: usize = 3;

/// Which directions a verdict says are broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    /// Client → server ("from you to us").
    Up,
    /// Server → client ("toward you").
    Down,
    Both,
    /// Nothing above info: the controls.
    Nothing,
}

/// Finding ids that say a direction is broken (the diagnosis' own groups).
const UP: &[&str] = &[
    "path.icmp-filtered-toward-you",
    "path.router-icmp-missing",
    "path.black-hole-up",
    "path.fragments-dropped",
    "path.hello-size-limit",
    "tls.hello-incomplete",
];
const DOWN: &[&str] = &[
    "path.black-hole-down",
    "path.response-stalled",
    "path.flight-stalled",
];

struct Case {
    name: &'static str,
    spec: LabSpec,
    big_chain: bool,
    /// What check.sh must conclude.
    check_sh: Broken,
    /// What the browser must conclude. Where the ClientHello itself cannot
    /// arrive, nothing of ours is ever sent, so the other direction can only
    /// be untested: the browser sees one direction of "both".
    browser: Broken,
    /// Finding ids that must be present (check.sh, browser).
    must_have: (&'static [&'static str], &'static [&'static str]),
    /// Words the headline must contain (both agents).
    headline_has: &'static [&'static str],
    /// tlsdiag's optional full-size plain-HTTP probe port is on (and the
    /// client may reach it); only check.sh uses it, so only check.sh runs.
    probe_port: bool,
}

fn egress(spec: LabSpec) -> LabSpec {
    LabSpec {
        egress_only: Some(vec![HTTPS_PORT, HTTP_PORT]),
        ..spec
    }
}

/// The probe port of the `probe_port` case.
const PROBE_PORT: u16 = netns::BLOCKED_PORT;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "c2s-1400",
            spec: egress(LabSpec::client_to_server_black_hole()),
            big_chain: false,
            check_sh: Broken::Up,
            browser: Broken::Up,
            // (Both the stalled upload of check.sh's ladder and Chromium's
            // stuck ClientHello get our own ICMP, which this client's edge
            // lets through: they are rescued, and the verdict names the
            // router's missing message.)
            must_have: (&["path.router-icmp-missing"], &["path.router-icmp-missing"]),
            headline_has: &["fragmentation needed"],
            probe_port: false,
        },
        Case {
            name: "s2c-1280",
            spec: egress(LabSpec {
                mtu: 1280,
                ..LabSpec::server_to_client_black_hole()
            }),
            big_chain: false,
            check_sh: Broken::Down,
            // Chromium's post-quantum ServerHello alone needs a full packet.
            browser: Broken::Down,
            must_have: (&["path.black-hole-down", "path.response-stalled"], &[]),
            headline_has: &["toward you"],
            probe_port: false,
        },
        Case {
            name: "s2c-chain",
            spec: egress(LabSpec::server_to_client_black_hole()),
            big_chain: true,
            check_sh: Broken::Down,
            browser: Broken::Down,
            must_have: (&["path.flight-stalled"], &["path.flight-stalled"]),
            headline_has: &["toward you", "handshake reply"],
            probe_port: false,
        },
        Case {
            name: "both-1280",
            spec: egress(LabSpec {
                mtu: 1280,
                ..LabSpec::black_hole()
            }),
            big_chain: false,
            check_sh: Broken::Both,
            // Our ICMP rescues Chromium's ClientHello; then our reply stalls.
            browser: Broken::Both,
            must_have: (
                &["path.router-icmp-missing", "path.black-hole-down"],
                &["path.router-icmp-missing", "path.flight-stalled"],
            ),
            headline_has: &[],
            probe_port: false,
        },
        Case {
            name: "ctl-1400",
            spec: egress(LabSpec::control()),
            big_chain: false,
            check_sh: Broken::Nothing,
            browser: Broken::Nothing,
            must_have: (&[], &[]),
            headline_has: &["No problem found"],
            probe_port: false,
        },
        Case {
            name: "ctl-1280",
            spec: egress(LabSpec {
                mtu: 1280,
                ..LabSpec::control()
            }),
            big_chain: false,
            check_sh: Broken::Nothing,
            browser: Broken::Nothing,
            must_have: (&[], &[]),
            headline_has: &["No problem found"],
            probe_port: false,
        },
        Case {
            name: "frags",
            spec: egress(LabSpec {
                client_sets_df: false,
                drop_fragments: true,
                ..LabSpec::control()
            }),
            big_chain: false,
            check_sh: Broken::Up,
            browser: Broken::Up,
            must_have: (&["path.fragments-dropped"], &["path.fragments-dropped"]),
            headline_has: &["fragments"],
            probe_port: false,
        },
        Case {
            name: "v6-c2s",
            spec: egress(LabSpec::client_to_server_black_hole().v6()),
            big_chain: false,
            check_sh: Broken::Up,
            browser: Broken::Up,
            must_have: (&["path.router-icmp-missing"], &["path.router-icmp-missing"]),
            headline_has: &["ICMPv6 \"packet too big\""],
            probe_port: false,
        },
        Case {
            // HTTPS cannot complete (the chain), but the client may reach the
            // optional plain-HTTP probe port: check.sh tests the path there.
            name: "chain-probe",
            spec: LabSpec {
                egress_only: Some(vec![HTTPS_PORT, HTTP_PORT, PROBE_PORT]),
                ..LabSpec::server_to_client_black_hole()
            },
            big_chain: true,
            check_sh: Broken::Down,
            browser: Broken::Down,
            must_have: (&["path.flight-stalled", "path.black-hole-down"], &[]),
            headline_has: &["toward you"],
            probe_port: true,
        },
    ]
}

/// What one agent concluded, read back from the saved report.
#[derive(Debug)]
struct Verdict {
    headline: String,
    status: String,
    findings: Vec<(String, String)>,
    took: Duration,
}

impl Verdict {
    fn broken(&self) -> Broken {
        let has = |ids: &[&str]| {
            self.findings
                .iter()
                .any(|(id, _)| ids.contains(&id.as_str()))
        };
        match (has(UP), has(DOWN)) {
            (true, true) => Broken::Both,
            (true, false) => Broken::Up,
            (false, true) => Broken::Down,
            (false, false) => Broken::Nothing,
        }
    }

    fn ids(&self) -> Vec<&str> {
        self.findings.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// Findings above info.
    fn alarms(&self) -> Vec<&str> {
        self.findings
            .iter()
            .filter(|(_, severity)| severity != "info")
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

#[test]
fn every_lab_case_gets_the_right_verdict_from_check_sh_and_the_browser() {
    if !netns::available() || !browser::available() || !common::require_tool("openssl") {
        return;
    }
    let slots = Arc::new(Slots::new(BROWSERS_AT_ONCE));
    // One large chain for every lab that needs it (same server address in
    // all of them): its RSA keys are the slowest thing to make.
    let chain_dir = tempfile::tempdir().unwrap();
    let chain = Arc::new(netns::big_chain(chain_dir.path(), netns::SERVER_IP));
    let mut runs = Vec::new();
    // LAB_CASES=name,name runs only those (while working on one).
    let only = std::env::var("LAB_CASES")
        .ok()
        .filter(|o| !o.trim().is_empty());
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|n| n == name))
    };
    for (i, case) in cases().into_iter().enumerate() {
        if !wanted(case.name) {
            continue;
        }
        let case = Arc::new(case);
        let agents: &[&str] = if case.probe_port {
            &["check.sh"]
        } else {
            &["check.sh", "browser"]
        };
        for (j, &agent) in agents.iter().enumerate() {
            let (case, slots, chain) = (case.clone(), slots.clone(), chain.clone());
            // One lowercase letter pair per lab keeps their namespaces apart.
            let tag = format!("{}{}", (b'a' + i as u8) as char, (b'a' + j as u8) as char);
            runs.push(std::thread::spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_case(&case, agent, &tag, &slots, &chain)
                }));
                (case.name, agent, outcome)
            }));
        }
    }
    assert!(!runs.is_empty(), "LAB_CASES={only:?} names no case");
    let mut failures = Vec::new();
    for run in runs {
        let (name, agent, outcome) = run.join().unwrap();
        match outcome {
            Ok(summary) => eprintln!("{name:>10} {agent:<8} ok: {summary}"),
            Err(panic) => {
                let why = netns::panic_text(&*panic);
                failures.push(format!("{name} / {agent}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Builds the case's lab, runs the agent in it, checks its verdict. Returns
/// a one-line summary.
fn run_case(
    case: &Case,
    agent: &str,
    tag: &str,
    slots: &Slots,
    chain: &(PathBuf, PathBuf, PathBuf),
) -> String {
    let mut lab = Lab::build(tag, &case.spec);
    let mut args = Vec::new();
    if case.big_chain {
        assert!(
            !case.spec.ipv6,
            "the large chain is made for the IPv4 server"
        );
        args.extend(["--tls-cert".to_owned(), chain.0.display().to_string()]);
        args.extend(["--tls-key".to_owned(), chain.1.display().to_string()]);
    }
    if case.probe_port {
        args.extend([
            "--probe-addr".to_owned(),
            format!("{}:{PROBE_PORT}", lab.server_host()),
        ]);
    }
    lab.start_server_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let base = format!("http://{}:{HTTP_PORT}", lab.server_host());
    let verdict = match agent {
        "check.sh" => run_check_sh(&lab, &base, case),
        _ => {
            let _slot = slots.take();
            run_browser(&lab, &base, case)
        }
    };
    let expected = if agent == "check.sh" {
        case.check_sh
    } else {
        case.browser
    };
    let context = || format!("{verdict:#?}\n--- server log ---\n{}", lab.server_log());
    assert_eq!(verdict.broken(), expected, "wrong direction: {}", context());
    assert!(
        verdict.took <= VERDICT_WITHIN,
        "verdict after {:?}: {}",
        verdict.took,
        context()
    );
    let must = if agent == "check.sh" {
        case.must_have.0
    } else {
        case.must_have.1
    };
    for id in must {
        assert!(verdict.ids().contains(id), "no {id}: {}", context());
    }
    for words in case.headline_has {
        assert!(
            verdict.headline.contains(words),
            "headline lacks {words:?}: {}",
            context()
        );
    }
    match expected {
        Broken::Nothing => {
            assert_eq!(verdict.status, "clear", "{}", context());
            assert!(verdict.alarms().is_empty(), "alarms: {}", context());
        }
        _ => {
            assert_eq!(verdict.status, "problem", "{}", context());
            // A broken path is never called fine, not even in passing.
            assert!(!verdict.headline.contains("No problem"), "{}", context());
        }
    }
    format!(
        "{:?} in {:.1} s: {} {:?}",
        verdict.broken(),
        verdict.took.as_secs_f64(),
        verdict.headline,
        verdict.ids()
    )
}

/// `curl -s BASE/check.sh | sh` in the client namespace; the verdict it
/// printed must be the one its saved report holds.
fn run_check_sh(lab: &Lab, base: &str, case: &Case) -> Verdict {
    let started = Instant::now();
    let out = lab.client(
        &format!(
            "curl -s -g --max-time 10 '{base}/check.sh?case=lab-{}' | sh",
            case.name
        ),
        90,
    );
    let took = started.elapsed();
    assert!(out.ok(), "check.sh failed: {out:?}");
    let link = out
        .stdout
        .split_whitespace()
        .find(|w| w.contains("/r/"))
        .unwrap_or_else(|| panic!("check.sh printed no report link:\n{}", out.stdout));
    let saved = saved_report(lab, base, link);
    if std::env::var_os("LAB_DUMP").is_some() {
        eprintln!("{}\n{saved:#}", out.stdout);
    }
    let verdict = verdict_of(&saved, took);
    // The words check.sh printed are the saved headline (wrapped at 80 columns).
    let printed = squash(
        out.stdout
            .split("Verdict\n-------\n")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap_or_default(),
    );
    assert_eq!(
        printed,
        squash(&verdict.headline),
        "check.sh said:\n{}",
        out.stdout
    );
    verdict
}

/// Chromium in the client namespace opens the plain-HTTP entry URL and waits
/// (in real time) for the page's verdict; the page's headline and findings
/// must be those of the report it saved.
fn run_browser(lab: &Lab, base: &str, case: &Case) -> Verdict {
    let shot = netns::screenshot_path(case.name);
    let page = browser::run_page(
        Some(&lab.client),
        &format!("{base}/?case=lab-{}", case.name),
        "document.querySelector('#probe') && document.querySelector('#probe').dataset.state",
        &["done", "error"],
        VERDICT_WITHIN + Duration::from_secs(15),
        &["--ignore-certificate-errors".to_owned()],
        Some(&shot),
    );
    assert!(
        page.reached && page.value_text() == "done",
        "the page reached no verdict ({}): {:?}\n{}",
        page.value_text(),
        page.navigation_error,
        page.html
    );
    let headline = unescape(
        between(&page.html, "<h1 class=\"headline-text\">", "</h1>")
            .unwrap_or_else(|| panic!("no headline on the page:\n{}", page.html)),
    );
    let link = between(&page.html, "class=\"probe-url\" href=\"", "\"")
        .unwrap_or_else(|| panic!("no report link on the page:\n{}", page.html));
    let saved = saved_report(lab, base, &unescape(link));
    let verdict = verdict_of(&saved, page.elapsed);
    assert_eq!(headline, verdict.headline, "page and saved report disagree");
    // Every finding of the saved report is on the page, in the same order.
    let shown: Vec<String> = page
        .html
        .split("<p class=\"fid\">")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .map(str::to_owned)
        .collect();
    let saved_ids: Vec<String> = verdict.ids().iter().map(|s| s.to_string()).collect();
    assert!(
        shown.starts_with(&saved_ids),
        "page findings {shown:?}, saved {saved_ids:?}"
    );
    verdict
}

/// A saved report's JSON, fetched from the client namespace over plain HTTP
/// (the way support's link works even when HTTPS does not).
fn saved_report(lab: &Lab, base: &str, link: &str) -> Value {
    let id = link.rsplit('/').next().unwrap().trim();
    assert_eq!(id.len(), 32, "{link}");
    let out = lab.client(
        &format!("curl -s -g --max-time 10 '{base}/api/v1/reports/{id}'"),
        15,
    );
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("report {id}: {e}: {out:?}"))
}

fn verdict_of(saved: &Value, took: Duration) -> Verdict {
    Verdict {
        headline: saved["verdict"].as_str().unwrap_or_default().to_owned(),
        status: saved["status"].as_str().unwrap_or_default().to_owned(),
        findings: saved["findings"]
            .as_array()
            .unwrap_or_else(|| panic!("no findings list: {saved:#}"))
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().to_owned(),
                    f["severity"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        took,
    }
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A counting semaphore for threads.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}
