//! Two saved reports compared (`/compare/{a}/{b}`), with real clients:
//!
//! - two different clients on one healthy loopback path (check.sh, whose
//!   curl is built on OpenSSL 3.0 and offers only classical key shares, and
//!   headless Chromium, which offers X25519MLKEM768): the networks agree, the
//!   clients differ, and the explanation names their ClientHellos'
//!   differences;
//! - text and JSON for curl, the forms that lead there, and the answers to
//!   unknown, malformed and repeated ids, which show nothing of either
//!   report;
//! - the namespace lab: the same client (check.sh, and Chromium) on a healthy
//!   path and then, the fault switched on in the same lab, behind the seed
//!   incident's client→server black hole at MTU 1,400 whose edge drops
//!   forwarded ICMP (`tests/lab_icmp.rs`): the first explanation names the
//!   black hole and how the ClientHello (or the uploads) arrived, with both
//!   reports' numbers. Both reports are on the one server of the lab, so the
//!   comparison reads both where they were saved.
//!
//! Expected answers come from how each case is built: which client, which
//! router drops what, the lab's MTUs.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::browser;
use common::netns::{self, Lab, LabSpec, HTTP_PORT};
use common::*;
use serde_json::Value;

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The 32-hex report id after the first `/r/` in `text`.
fn report_id_in(text: &str) -> Option<String> {
    let at = text.find("/r/")? + 3;
    let id = text.get(at..at + 32)?;
    id.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| id.to_owned())
}

/// The JA4 of the run's own connections of `tie`, from a saved report.
fn ja4_of(doc: &Value, tie: &str) -> String {
    doc["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["tie"]["by"] == tie)
        .find_map(|a| a["attempt"]["tls"]["fingerprints"]["ja4"].as_str())
        .unwrap_or_else(|| panic!("no {tie} attempt with a JA4: {doc:#}"))
        .to_owned()
}

fn reason<'a>(c: &'a Value, id: &str) -> &'a str {
    c["explanation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .and_then(|r| r["text"].as_str())
        .unwrap_or_else(|| panic!("no {id} reason: {c:#}"))
}

// ---------------------------------------------------------------------------
// Two clients, one healthy path
// ---------------------------------------------------------------------------

/// Headless Chromium opens the plain-HTTP entry page and waits for its
/// verdict; the id of the report it saved.
async fn chromium_run(url: String) -> String {
    let page = tokio::task::spawn_blocking(move || {
        browser::run_page(
            None,
            &url,
            "document.querySelector('#probe') && document.querySelector('#probe').dataset.state",
            &["done", "error"],
            Duration::from_secs(60),
            &["--ignore-certificate-errors".to_owned()],
            None,
        )
    })
    .await
    .unwrap();
    assert!(
        page.reached && page.value_text() == "done",
        "the page reached no verdict: {}",
        page.html
    );
    report_id_in(&page.html).unwrap_or_else(|| panic!("no report link on the page:\n{}", page.html))
}

/// `curl -s [args] URL`: status line and body.
async fn curl(args: &[&str], url: &str) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_on_one_healthy_path_differ_in_their_client_hellos_not_their_network() {
    if !require_tool("curl") || !require_tool("openssl") || !browser::available() {
        return;
    }
    let server = TestServer::start().await;
    let base = format!("http://127.0.0.1:{}", server.http.port());
    let run = server.check_sh(Some("CMP-CLIENTS")).await;
    assert!(run.ok, "check.sh failed:\n{}", run.stdout);
    let printed = run.stdout;
    let check_id = report_id_in(
        printed
            .split("Report link (send it to support): ")
            .nth(1)
            .unwrap_or_else(|| panic!("no report link:\n{printed}")),
    )
    .unwrap();
    // check.sh ends with how to compare its report with another run's.
    let last = printed
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap();
    assert_eq!(
        last.trim(),
        format!("{base}/compare/{check_id}/OTHER_ID"),
        "{printed}"
    );
    let browser_id = chromium_run(format!("{base}/?case=CMP-CLIENTS")).await;

    let check_doc = server.saved_report(&check_id).await;
    let browser_doc = server.saved_report(&browser_id).await;
    assert_eq!(check_doc["status"], "clear", "{check_doc:#}");
    assert_eq!(browser_doc["status"], "clear", "{browser_doc:#}");

    let (code, body) = curl(
        &[],
        &format!("{base}/api/v1/compare/{check_id}/{browser_id}"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let c = json(&body);
    assert_eq!(c["schema_version"], 1);
    assert_eq!(c["client"], "different", "{c:#}");
    assert_eq!(c["network"], "same", "{c:#}");
    assert_eq!(
        c["headline"],
        "Neither run found a problem: same network, the clients differ."
    );
    // The clients' difference comes first, with both JA4s as the reports
    // hold them and the key share only Chromium offers (curl's OpenSSL 3.0
    // has no ML-KEM).
    assert_eq!(c["explanation"][0]["id"], "client.different", "{c:#}");
    let clients = reason(&c, "client.different");
    for words in [
        ja4_of(&check_doc, "request"),
        ja4_of(&browser_doc, "request"),
        "B (browser) offers the post-quantum key share X25519MLKEM768 (1,216 bytes)".to_owned(),
        "A (check.sh) offers x25519 (32 bytes)".to_owned(),
        "User-Agent curl/".to_owned(),
    ] {
        assert!(clients.contains(&words), "{words:?} not in {clients}");
    }
    let network = reason(&c, "network.same");
    assert!(
        network.starts_with("The networks agree: both from 127.0.0.0/24 with the same SYN")
            && network.contains("both paths passed every size"),
        "{network}"
    );
    // The full table marks the key shares and lists both.
    let key_shares = c["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["rows"].as_array().unwrap())
        .find(|r| r["label"] == "Key shares")
        .unwrap_or_else(|| panic!("no key share row: {c:#}"));
    assert_eq!(key_shares["differs"], true);
    assert!(key_shares["b"].as_str().unwrap().contains("X25519MLKEM768"));

    // The saved report offers the comparison: a form (no script) whose
    // answer leads to /compare/{a}/{b} from a pasted link.
    let (_, page) = curl(
        &["-H", "Accept: text/html"],
        &format!("{base}/r/{check_id}"),
    )
    .await;
    assert!(
        page.contains(r#"<form method="get" action="/compare">"#)
            && page.contains(&format!(r#"name="a" value="{check_id}""#)),
        "{page}"
    );
    let pasted = format!("{base}/r/{browser_id}");
    let (code, _) = curl(
        &[
            "-o",
            "/dev/null",
            "-G",
            "--data-urlencode",
            &format!("a={check_id}"),
            "--data-urlencode",
            &format!("b={pasted}"),
        ],
        &format!("{base}/compare"),
    )
    .await;
    assert_eq!(code, 303);
}

// ---------------------------------------------------------------------------
// Text, JSON, errors, the forms
// ---------------------------------------------------------------------------

/// Results as check.sh posts them, with a download that failed at 1,400
/// bytes or not.
fn results(run: &str, label: &str, broken: bool) -> String {
    let down = if broken {
        r#"[{"bytes":512,"ok":true,"ms":3.5,"error":null},{"bytes":1400,"ok":false,"ms":8000,"error":"timeout"}]"#
    } else {
        r#"[{"bytes":512,"ok":true,"ms":3.5,"error":null},{"bytes":1400,"ok":true,"ms":4,"error":null}]"#
    };
    format!(
        r#"{{"run":"{run}","agent":"check.sh","label":"{label}","down":{down},"up":[{{"bytes":512,"ok":true,"ms":4.0,"error":null}}]}}"#
    )
}

async fn post(base: &str, body: &str) -> String {
    let (code, answer) = curl(
        &[
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json",
            "--data-binary",
            body,
        ],
        &format!("{base}/api/v1/probe/results"),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    json(&answer)["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_answers_text_and_json_and_refuses_unknown_malformed_and_repeated_ids() {
    if !require_tool("curl") {
        return;
    }
    const TOKEN: &str = "compare-admin-token-0123";
    let server = TestServer::start_with(|mut c| {
        c.reports.admin_token = Some(TOKEN.into());
        c
    })
    .await;
    let base = format!("http://127.0.0.1:{}", server.http.port());
    let broken = post(&base, &results("cmprun0001", "CMP-SECRET-1", true)).await;
    let fine = post(&base, &results("cmprun0002", "CMP-SECRET-2", false)).await;

    // curl gets text: the headline, the ranked explanation, the table.
    let (code, text) = curl(&[], &format!("{base}/compare/{broken}/{fine}")).await;
    assert_eq!(code, 200, "{text}");
    assert!(
        text.starts_with("tlsdiag: two reports compared\n"),
        "{text}"
    );
    assert!(text.contains("A fails and B works"), "{text}");
    assert!(
        text.contains("  1. The failing ")
            && text.contains("black hole from the server toward the client"),
        "{text}"
    );
    assert!(text.contains("* Status"), "{text}");
    // JSON by Accept, and from the API route: the same document.
    let (_, by_accept) = curl(
        &["-H", "Accept: application/json"],
        &format!("{base}/compare/{broken}/{fine}"),
    )
    .await;
    let (_, by_api) = curl(&[], &format!("{base}/api/v1/compare/{broken}/{fine}")).await;
    assert_eq!(json(&by_accept), json(&by_api));
    let c = json(&by_api);
    assert_eq!(c["a"]["standing"], "failing");
    assert_eq!(c["b"]["standing"], "working");
    assert_eq!(c["explanation"][0]["id"], "path.server-to-client", "{c:#}");
    let first = c["explanation"][0]["text"].as_str().unwrap();
    assert!(
        first.contains("downloads up to 512 bytes arrived and from 1,400 bytes none did (timeout)")
            && first.contains("all 2 downloads arrived, up to 1,400 bytes"),
        "{first}"
    );

    // Errors: clear, and nothing of the report whose id was right.
    let unknown = "0123456789abcdef0123456789abcdef";
    let cases = [
        (format!("/compare/{broken}/{unknown}"), 404),
        (format!("/api/v1/compare/{unknown}/{fine}"), 404),
        (format!("/compare/{broken}/not-an-id"), 400),
        (
            format!("/api/v1/compare/{}/{fine}", broken.to_uppercase()),
            400,
        ),
        (format!("/compare/{broken}/{broken}"), 400),
        (format!("/api/v1/compare/{fine}/{fine}"), 400),
        (format!("/compare?a={broken}&b=nothing-here"), 400),
    ];
    for (path, want) in cases {
        for accept in ["text/plain", "application/json", "text/html"] {
            let (code, body) = curl(
                &["-H", &format!("Accept: {accept}")],
                &format!("{base}{path}"),
            )
            .await;
            assert_eq!(code, want, "{path}: {body}");
            for secret in ["CMP-SECRET", "black hole", "toward you", "verdict"] {
                assert!(!body.contains(secret), "{path} shows {secret:?}: {body}");
            }
        }
    }
    let (_, body) = curl(&[], &format!("{base}/compare/{broken}/{unknown}")).await;
    assert!(
        body.starts_with("not found: one of the two reports"),
        "{body}"
    );
    let (_, body) = curl(&[], &format!("{base}/compare/{broken}/{broken}")).await;
    assert!(body.contains("the same report twice"), "{body}");

    // The form: a pasted link (any case, with a query) leads to the pair.
    let (code, headers) = curl(
        &["-D", "-", "-o", "/dev/null"],
        &format!(
            "{base}/compare?a={broken}&b=https%3A%2F%2Fx.example%2Fr%2F{}%3Fformat%3Dtext",
            fine.to_uppercase()
        ),
    )
    .await;
    assert_eq!(code, 303, "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains(&format!("location: /compare/{broken}/{fine}")),
        "{headers}"
    );

    // /admin lists a case's reports with a pair picker that leads there.
    let (code, admin) = curl(
        &["-H", &format!("Authorization: Bearer {TOKEN}")],
        &format!("{base}/admin?label=CMP-SECRET-1"),
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        admin.contains(r#"<form method="get" action="/compare""#)
            && admin.contains(&format!(r#"name="a" value="{broken}""#))
            && admin.contains(&format!(r#"name="b" value="{broken}""#))
            && !admin.contains(&fine),
        "{admin}"
    );
    // The compare page itself needs no script and says which side is which.
    let (_, html) = curl(
        &["-H", "Accept: text/html"],
        &format!("{base}/compare/{broken}/{fine}"),
    )
    .await;
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains(r#"<tr class="differs">"#), "{html}");
    assert!(
        html.contains("(the failing run)")
            || html.contains("(the failing network)")
            || html.contains("(the failing client)"),
        "{html}"
    );
}

// ---------------------------------------------------------------------------
// The namespace lab: one client, a healthy path, then the seed's black hole
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Agent {
    CheckSh,
    Chromium,
}

/// The lab's path once the fault is on: the seed incident's client→server
/// black hole at MTU 1,400, its edge dropping forwarded ICMP too, so even
/// tlsdiag's own "fragmentation needed" cannot rescue a stuck ClientHello.
fn seed_black_hole() -> LabSpec {
    LabSpec {
        drop_forwarded_icmp_toward_client: true,
        ..LabSpec::client_to_server_black_hole()
    }
}

#[test]
fn the_same_client_on_a_healthy_path_and_behind_the_seed_black_hole() {
    if !netns::available() || !browser::available() || !require_tool("openssl") {
        return;
    }
    let runs: Vec<_> = [(Agent::CheckSh, "ks"), (Agent::Chromium, "kc")]
        .into_iter()
        .map(|(agent, tag)| {
            std::thread::spawn(move || {
                let outcome = std::panic::catch_unwind(|| lab_case(agent, tag));
                (agent, outcome)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for run in runs {
        let (agent, outcome) = run.join().unwrap();
        match outcome {
            Ok(summary) => eprintln!("{agent:?}: {summary}"),
            Err(panic) => failures.push(format!("{agent:?}: {}", netns::panic_text(&*panic))),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// One client's two runs, compared. Returns the comparison's first lines.
fn lab_case(agent: Agent, tag: &str) -> String {
    let started = Instant::now();
    let mut lab = Lab::build(tag, &LabSpec::control());
    lab.start_server();
    let base = format!("http://{}:{HTTP_PORT}", lab.server_host());
    let working = run_in_lab(&lab, &base, agent);
    lab.add_icmp_faults(&seed_black_hole());
    let client = lab.client.clone();
    assert_eq!(
        lab.path_mtu(&client, lab.server_ip()),
        None,
        "the client still remembers the healthy path's MTU"
    );
    let failing = run_in_lab(&lab, &base, agent);

    // Both documents, as support fetches them.
    let (w, f) = (saved(&lab, &base, &working), saved(&lab, &base, &failing));
    let context = || {
        format!(
            "working: {w:#}\nfailing: {f:#}\n--- server log ---\n{}",
            lab.server_log()
        )
    };
    assert_eq!(w["status"], "clear", "{}", context());
    assert_eq!(f["status"], "problem", "{}", context());

    let c = fetch_json(&lab, &format!("{base}/api/v1/compare/{failing}/{working}"));
    let text = lab
        .client(
            &format!("curl -s -g --max-time 10 '{base}/compare/{failing}/{working}'"),
            15,
        )
        .stdout;
    let context = || format!("{text}\n{}", context());
    assert_eq!(c["a"]["standing"], "failing", "{}", context());
    assert_eq!(c["b"]["standing"], "working", "{}", context());
    assert_eq!(c["client"], "same", "{}", context());
    assert_eq!(c["network"], "different", "{}", context());
    assert!(
        text.contains("A fails and B works: same client, the network differs."),
        "{}",
        context()
    );
    let first = &c["explanation"][0];
    assert_eq!(first["id"], "path.client-to-server", "{}", context());
    let first = first["text"].as_str().unwrap();
    assert!(
        first.starts_with(
            "The failing network has a black hole from the client toward the server: "
        ),
        "{}",
        context()
    );
    match agent {
        Agent::Chromium => {
            // Its ClientHello (over 1,400 bytes: the post-quantum key share)
            // needs two full-size packets; the first vanishes at r1 and only
            // the second reaches us. The working network's arrived whole.
            let stuck: Vec<&Value> = f["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| &a["attempt"])
                .filter(|a| a["outcome"]["kind"] == "hello_incomplete")
                .collect();
            assert!(!stuck.is_empty(), "{}", context());
            let held = stuck[0]["outcome"]["out_of_order_segments"]
                .as_u64()
                .unwrap();
            let whole = w["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| &a["attempt"]["tls"]["arrival"])
                .max_by_key(|a| a["bytes"].as_u64())
                .unwrap();
            let (bytes, reads) = (
                whole["bytes"].as_u64().unwrap(),
                whole["read_count"].as_u64().unwrap(),
            );
            assert!(bytes > 1400, "{}", context());
            for words in [
                "ClientHellos never arrived whole".to_owned(),
                format!(
                    "a later segment came and the first never did: 0 bytes in order, {held} segment{} held out of order",
                    if held == 1 { "" } else { "s" }
                ),
                format!(
                    "on the working network the ClientHello arrived whole ({} bytes in {reads} read{}",
                    thousands(bytes),
                    if reads == 1 { "" } else { "s" }
                ),
                // More than one full segment at the client's 1,500-byte
                // MTU, and less than two: two packets.
                "2 packets at MSS ".to_owned(),
                "changed nothing".to_owned(),
                "something near the client filters it".to_owned(),
            ] {
                assert!(first.contains(&words), "{words:?} not in the first reason: {}", context());
            }
        }
        Agent::CheckSh => {
            // Uploads need full-size packets: from 1,400 bytes (with the
            // request's headers, more than a 1,400-byte packet holds) none
            // arrives; the healthy path carries every size.
            // Its downloads, which cross the narrow link fine (r2's ICMP
            // reaches the server), taught the server the path's 1,400 bytes;
            // the server forgets it before the ClientHello ladder, which runs
            // last (docs/probes.md#what-our-kernel-remembers), so its SYN-ACKs
            // announce the full MSS again and the large ClientHellos meet
            // the black hole too.
            let server = lab.server.clone();
            assert_eq!(
                lab.path_mtu(&server, lab.client_ip()),
                None,
                "the server still remembers a path MTU toward the client: {}",
                context()
            );
            let hello_failed = f["probe"]["hello"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["ok"] == false)
                .filter_map(|h| h["bytes"].as_u64())
                .min()
                .unwrap_or_else(|| panic!("no ClientHello failed: {}", context()));
            assert!(hello_failed <= 1400, "{}", context());
            let (ok, failed) = ladder_edge(&f["probe"]["up"]);
            assert!(failed <= 1400 && ok < failed, "{}", context());
            let largest_ok = ladder_edge(&w["probe"]["up"]).0;
            assert_eq!(largest_ok, 1_048_576, "{}", context());
            for words in [
                format!(
                    "uploads up to {} bytes arrived and from {} bytes none did (timeout)",
                    thousands(ok),
                    thousands(failed)
                ),
                "on the working network all 12 uploads arrived, up to 1,048,576 bytes".to_owned(),
                format!(
                    "ClientHellos failed from {} bytes (timeout); on the working network: all 6 sizes completed, up to 4,000 bytes",
                    thousands(hello_failed)
                ),
            ] {
                assert!(
                    first.contains(&words),
                    "{words:?} not in the first reason: {}",
                    context()
                );
            }
        }
    }
    // Then: the same client, so the network is what differs.
    let same = reason(&c, "client.same");
    assert!(
        same.ends_with("the network, not the client, differs."),
        "{}",
        context()
    );
    let head: Vec<&str> = text.lines().take(24).collect();
    format!(
        "{:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        head.join("\n")
    )
}

/// Runs the agent in the lab's client namespace; the id of the report saved.
fn run_in_lab(lab: &Lab, base: &str, agent: Agent) -> String {
    match agent {
        Agent::CheckSh => {
            let out = lab.client(
                &format!("curl -s -g --max-time 10 '{base}/check.sh?case=lab-compare' | sh"),
                90,
            );
            assert!(out.ok(), "check.sh failed: {out:?}");
            report_id_in(&out.stdout).unwrap_or_else(|| panic!("no report link:\n{}", out.stdout))
        }
        Agent::Chromium => {
            let page = browser::run_page(
                Some(&lab.client),
                &format!("{base}/?case=lab-compare"),
                "document.querySelector('#probe') && document.querySelector('#probe').dataset.state",
                &["done", "error"],
                Duration::from_secs(45),
                &["--ignore-certificate-errors".to_owned()],
                None,
            );
            assert!(
                page.reached && page.value_text() == "done",
                "the page reached no verdict: {}",
                page.html
            );
            report_id_in(&page.html)
                .unwrap_or_else(|| panic!("no report link on the page:\n{}", page.html))
        }
    }
}

/// A saved report's JSON, fetched from the client namespace over plain HTTP.
fn saved(lab: &Lab, base: &str, id: &str) -> Value {
    fetch_json(lab, &format!("{base}/api/v1/reports/{id}"))
}

fn fetch_json(lab: &Lab, url: &str) -> Value {
    let out = lab.client(&format!("curl -s -g --max-time 10 '{url}'"), 15);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{url}: {e}: {out:?}"))
}

/// The largest size that passed and the smallest that failed (0 when none
/// did) of a ladder in a saved report.
fn ladder_edge(steps: &Value) -> (u64, u64) {
    let mut ok = 0;
    let mut failed = 0;
    for step in steps.as_array().unwrap() {
        let bytes = step["bytes"].as_u64().unwrap();
        if step["client"]["ok"] == true {
            ok = ok.max(bytes);
        } else if failed == 0 || bytes < failed {
            failed = bytes;
        }
    }
    (ok, failed)
}
