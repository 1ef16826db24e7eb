//! A run's verdict rests on the run's own connections, in the namespace lab
//! (`common::netns`): the seed incident's client→server black hole at MTU
//! 1,400, whose client edge (r1) also drops every ICMP "fragmentation needed"
//! it forwards toward the client, IPv4. Headless Chromium's post-quantum
//! ClientHello (about 1,800 bytes) can never arrive there, and nothing, not
//! even tlsdiag's own ICMP, makes the client resend it smaller.
//!
//! - A neighbour at the same address keeps completing small handshakes (curl,
//!   whose ClientHello fits one packet) all through the browser's run: they
//!   are listed apart as other clients' and must not turn the verdict into
//!   "No problem found" nor take the blame; the verdict still names the
//!   client→server black hole.
//! - The browser's first HTTPS try fails fast (an address added to the
//!   client's interface mid-request: Chromium aborts it with
//!   ERR_NETWORK_CHANGED) and the page retries on a new connection, stuck
//!   again: the verdict is never "nothing failed".
//!
//! Each test builds a lab of its own (tags `ra`, `rb`), so the two run at
//! once. Screenshots are left under `target/lab/`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::browser::{self, between, unescape};
use common::netns::{self, Lab, LabSpec, HTTPS_PORT, HTTP_PORT};
use serde_json::Value;

/// The bar: a verdict within 30 s of opening the URL.
const VERDICT_WITHIN: Duration = Duration::from_secs(30);

/// Finding ids that say the client→server direction is broken (the
/// diagnosis' own group, as in `tests/lab.rs`).
const UP: &[&str] = &[
    "path.icmp-filtered-toward-you",
    "path.router-icmp-missing",
    "path.black-hole-up",
    "path.fragments-dropped",
    "path.hello-size-limit",
    "tls.hello-incomplete",
];
/// Finding ids that say the server→client direction is broken.
const DOWN: &[&str] = &[
    "path.black-hole-down",
    "path.response-stalled",
    "path.flight-stalled",
];

/// The seed's client→server black hole, with the client's edge dropping the
/// forwarded "fragmentation needed" too, so a large ClientHello stays stuck.
fn stuck_hello_lab() -> LabSpec {
    LabSpec {
        drop_forwarded_icmp_toward_client: true,
        ..LabSpec::client_to_server_black_hole()
    }
}

#[test]
fn a_neighbour_completing_small_handshakes_does_not_hide_the_black_hole() {
    if !netns::available() || !browser::available() {
        return;
    }
    let began = Instant::now();
    let mut lab = Lab::build("ra", &stuck_hello_lab());
    lab.start_server();
    let host = lab.server_host();

    // The neighbour's handshake fits one 1,400-byte packet (curl with
    // OpenSSL 3.0: no post-quantum key share) and so completes in this lab.
    let url = format!("https://{host}:{HTTPS_PORT}/healthz");
    let once = lab.client(&format!("curl -sk --max-time 2 {url}"), 5);
    assert!(
        once.ok() && once.stdout.trim() == "ok",
        "curl's small handshake does not complete in the lab: {once:?}"
    );

    // A handshake every 0.5 s, from before the page opens until the lab is
    // dropped; each completed request appends a line. (Killing the loop may
    // leave one curl behind, which ends within its 2 s.)
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("neighbour.log");
    let script = format!(
        "while :; do curl -sk --max-time 2 -o /dev/null -w '%{{http_code}}\\n' {url} >> '{}'; sleep 0.5; done",
        log.display()
    );
    lab.spawn(&lab.client, "sh", &["-c", &script]);
    let completed = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.trim() == "200")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while completed() < 2 {
        assert!(
            Instant::now() < deadline,
            "the neighbour's handshakes do not complete"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = completed();

    let run = run_browser(&lab, "runs-neighbour");
    let during = completed() - before;
    let report = &run.report;
    let context = || run.context(&lab);
    eprintln!(
        "neighbour ({during} handshakes completed while the page ran): {}",
        run.summary()
    );
    assert!(
        during >= 5,
        "the neighbour completed only {during} handshakes during the run: {}",
        context()
    );

    // The verdict: the client→server black hole, not the neighbour's success.
    assert_eq!(run.attr("data-status"), "problem", "{}", context());
    assert_eq!(run.attr("data-https"), "failed", "{}", context());
    let headline = run.headline();
    assert!(
        !headline.contains("No problem") && !headline.starts_with("Inconclusive"),
        "{}",
        context()
    );
    let ids = run.finding_ids();
    assert!(
        ids.iter().any(|id| [
            "path.icmp-filtered-toward-you",
            "tls.hello-incomplete",
            "path.black-hole-up",
            "run.https-failed",
        ]
        .contains(id)),
        "no finding names the stuck ClientHello or the failed request: {}",
        context()
    );
    // The headline leads with a finding that says client→server is broken,
    // and nothing claims the other direction (nothing large was ever sent
    // toward the client).
    let leading = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| UP.contains(&f["id"].as_str().unwrap_or_default()))
        .find(|f| headline.starts_with(f["title"].as_str().unwrap_or("\u{0}")));
    assert!(
        leading.is_some(),
        "the headline names no client→server black hole: {}",
        context()
    );
    assert!(
        !ids.iter().any(|id| DOWN.contains(id)),
        "a server→client fault in a client→server lab: {}",
        context()
    );

    // The neighbour is listed apart, and none of it is the run's.
    let others = report["other_clients"].as_array().unwrap();
    let curl_others: Vec<&Value> = others.iter().filter(|a| is_curl(a)).collect();
    assert!(
        curl_others.len() >= 5,
        "other_clients lacks the neighbour's completed handshakes: {}",
        context()
    );
    assert!(
        curl_others.iter().all(|a| a["succeeded"] == true),
        "{}",
        context()
    );
    assert_eq!(
        run.attr("data-others"),
        others.len().to_string(),
        "{}",
        context()
    );
    let curl_ja4: Vec<&str> = curl_others
        .iter()
        .filter_map(|a| a["tls"]["fingerprints"]["ja4"].as_str())
        .collect();
    // Only the browser's ClientHello gets stuck here: every stuck one is
    // the run's, tied by evidence (it never carried a request).
    assert!(
        !others
            .iter()
            .any(|a| a["outcome"]["kind"] == "hello_incomplete"),
        "a stuck ClientHello left among other clients': {}",
        context()
    );
    let own = report["attempts"].as_array().unwrap();
    assert!(!own.is_empty(), "the run owns no attempt: {}", context());
    assert!(
        own.iter().any(|t| t["tie"]["by"] == "evidence"
            && t["attempt"]["outcome"]["kind"] == "hello_incomplete"),
        "no stuck ClientHello tied to the run: {}",
        context()
    );
    for tied in own {
        let a = &tied["attempt"];
        let ja4 = a["tls"]["fingerprints"]["ja4"].as_str();
        assert!(
            !is_curl(a) && !ja4.is_some_and(|j| curl_ja4.contains(&j)),
            "a curl attempt counted as the run's own: {tied:#}\n{}",
            context()
        );
    }
    assert!(
        began.elapsed() < Duration::from_secs(90),
        "took {:?}",
        began.elapsed()
    );
}

#[test]
fn a_browser_whose_https_fails_fast_while_its_hello_is_stuck_is_never_told_nothing_failed() {
    if !netns::available() || !browser::available() || !common::require_tool("ss") {
        return;
    }
    let began = Instant::now();
    let mut lab = Lab::build("rb", &stuck_hello_lab());
    lab.start_server();

    // The first try must fail fast. Chromium aborts every request in flight
    // with net::ERR_NETWORK_CHANGED when an address of the machine changes
    // (the reason `common::netns` settles every link before a test), so an
    // address is added to the client's interface while the page's HTTPS
    // request waits on its stuck ClientHello: once the client namespace has
    // an established connection to the HTTPS port (only Chromium's can be),
    // and a second later. The page's retry then opens a new connection,
    // whose ClientHello is stuck too, until the page's 6 s timeout.
    let run = std::thread::scope(|s| {
        let page = s.spawn(|| run_browser(&lab, "runs-network-changed"));
        let deadline = Instant::now() + VERDICT_WITHIN;
        loop {
            let out = lab.client(
                &format!("ss -Htn state established '( dport = :{HTTPS_PORT} )'"),
                5,
            );
            assert!(out.ok(), "ss in the client namespace: {out:?}");
            if !out.stdout.trim().is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline && !page.is_finished(),
                "Chromium never opened its HTTPS connection"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(1));
        // Outside every lab network (198.18.1.0/30 is the client's link).
        let added = lab.client("ip addr add 198.18.9.1/32 dev to-r1", 5);
        assert!(added.ok(), "adding an address: {added:?}");
        page.join().unwrap()
    });
    let report = &run.report;
    let context = || run.context(&lab);
    eprintln!("network-changed: {}", run.summary());

    // The page did fail fast and retry, as the page reported.
    let https = report["probe"]["https"]
        .as_array()
        .unwrap_or_else(|| panic!("no probe.https: {}", context()));
    assert_eq!(https.len(), 2, "not two tries: {}", context());
    assert_eq!(https[0]["ok"], false, "{}", context());
    assert_eq!(https[0]["error"], "failed", "{}", context());
    let first_ms = https[0]["ms"].as_f64().unwrap();
    assert!(
        first_ms < 3000.0,
        "the first try did not fail fast ({first_ms} ms): {}",
        context()
    );
    assert_eq!(run.attr("data-https"), "failed", "{}", context());

    // The verdict.
    let headline = run.headline();
    assert_ne!(run.attr("data-status"), "clear", "{}", context());
    assert_ne!(report["status"], "clear", "{}", context());
    assert!(
        !headline.to_lowercase().contains("nothing failed"),
        "{}",
        context()
    );
    let ids = run.finding_ids();
    assert!(
        ids.iter()
            .any(|id| UP.contains(id) || *id == "run.https-failed"),
        "no finding names the stuck ClientHello or the failed request: {}",
        context()
    );
    assert!(
        began.elapsed() < Duration::from_secs(90),
        "took {:?}",
        began.elapsed()
    );
}

/// What the page showed at the end of a run, and the report it saved.
struct Run {
    /// The attributes of the page's `#probe` element.
    attrs: HashMap<String, String>,
    /// The saved report's JSON.
    report: Value,
    /// From navigation until `data-state` was `done`.
    took: Duration,
}

impl Run {
    fn attr(&self, name: &str) -> &str {
        self.attrs.get(name).map(String::as_str).unwrap_or_default()
    }

    fn headline(&self) -> &str {
        self.attr("data-verdict")
    }

    fn finding_ids(&self) -> Vec<&str> {
        self.report["findings"]
            .as_array()
            .unwrap_or_else(|| panic!("no findings list: {:#}", self.report))
            .iter()
            .filter_map(|f| f["id"].as_str())
            .collect()
    }

    /// The verdict, its evidence and whose attempts are whose, for a test's
    /// output.
    fn summary(&self) -> String {
        let ties: Vec<String> = self.report["attempts"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|t| {
                        format!(
                            "#{} by {} ({}): {}",
                            t["attempt"]["id"],
                            t["tie"]["by"].as_str().unwrap_or("?"),
                            t["tie"]["reasons"]
                                .as_array()
                                .map(|r| r
                                    .iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join("; "))
                                .unwrap_or_default(),
                            t["attempt"]["summary"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let others = self.report["other_clients"].as_array().map_or(0, Vec::len);
        let curl = self.report["other_clients"]
            .as_array()
            .map_or(0, |all| all.iter().filter(|a| is_curl(a)).count());
        format!(
            "verdict in {:.1} s\n  headline: {}\n  status: {} (page: {}), https on the page: {}\n  \
             findings: {:?}\n  probe.https: {}\n  attempts:\n    {}\n  other_clients: {others} \
             ({curl} of them curl's; page says {})",
            self.took.as_secs_f64(),
            self.headline(),
            self.report["status"],
            self.attr("data-status"),
            self.attr("data-https"),
            self.finding_ids(),
            self.report["probe"]["https"],
            ties.join("\n    "),
            self.attr("data-others"),
        )
    }

    fn context(&self, lab: &Lab) -> String {
        format!(
            "{}\n--- saved report ---\n{:#}\n--- server log ---\n{}",
            self.summary(),
            self.report,
            lab.server_log()
        )
    }
}

/// Whether a listed attempt is curl's: its request named curl.
fn is_curl(attempt: &Value) -> bool {
    attempt["first_request"]["user_agent"]
        .as_str()
        .is_some_and(|ua| ua.starts_with("curl/"))
}

/// Chromium in the client namespace opens the plain-HTTP entry URL and waits
/// (in real time) for the run to finish; the saved report must carry the
/// headline the page shows.
fn run_browser(lab: &Lab, name: &str) -> Run {
    let base = format!("http://{}:{HTTP_PORT}", lab.server_host());
    let shot = netns::screenshot_path(name);
    let page = browser::run_page(
        Some(&lab.client),
        &format!("{base}/?case=lab-{name}"),
        "document.querySelector('#probe') && document.querySelector('#probe').dataset.state",
        &["done", "error"],
        VERDICT_WITHIN + Duration::from_secs(15),
        &["--ignore-certificate-errors".to_owned()],
        Some(&shot),
    );
    let attrs = probe_attributes(&page.html);
    assert!(
        page.reached && page.value_text() == "done",
        "the page reached no verdict ({}): {:?}\n{attrs:?}\n{}\n--- server log ---\n{}",
        page.value_text(),
        page.navigation_error,
        page.html,
        lab.server_log()
    );
    assert!(
        page.elapsed <= VERDICT_WITHIN,
        "verdict after {:?}",
        page.elapsed
    );
    let link = between(&page.html, "class=\"probe-url\" href=\"", "\"")
        .unwrap_or_else(|| panic!("no report link on the page:\n{}", page.html));
    let id = unescape(link).rsplit('/').next().unwrap().trim().to_owned();
    assert_eq!(id.len(), 32, "{link}");
    let out = lab.client(
        &format!("curl -s -g --max-time 10 '{base}/api/v1/reports/{id}'"),
        15,
    );
    let report: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("report {id}: {e}: {out:?}"));
    assert_eq!(
        attrs.get("data-verdict").map(String::as_str),
        report["verdict"].as_str(),
        "page and saved report disagree"
    );
    Run {
        attrs,
        report,
        took: page.elapsed,
    }
}

/// The attributes of the `<section id="probe" ...>` opening tag, unescaped.
fn probe_attributes(html: &str) -> HashMap<String, String> {
    let mut attrs = HashMap::new();
    let Some(start) = html.find("<section id=\"probe\"") else {
        return attrs;
    };
    // The tag ends at the first '>' outside a quoted value (a serialized
    // value has its '"' escaped).
    let mut quoted = false;
    let mut end = html.len();
    for (i, c) in html[start..].char_indices() {
        match c {
            '"' => quoted = !quoted,
            '>' if !quoted => {
                end = start + i;
                break;
            }
            _ => {}
        }
    }
    let mut rest = &html[start + "<section".len()..end];
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim().to_owned();
        let after = &rest[eq + 2..];
        let Some(close) = after.find('"') else { break };
        attrs.insert(name, unescape(&after[..close]));
        rest = &after[close + 1..];
    }
    attrs
}
