//! The verdict belongs to the client that ran the test, not to its address.
//! Real clients on loopback, all from 127.0.0.1 as they would be behind one
//! NAT address: failing neighbours (openssl offering only TLS 1.1, a
//! ClientHello cut at 1,460 bytes and held open, curl refusing our
//! certificate) before and during a healthy check.sh run and a healthy
//! Chromium run. Each run must read `clear`, with the neighbours listed as
//! other clients. And a dozen check.sh runs in a row from one address: every
//! one gets its verdict; those past the report limit say they were not saved
//! and when the next can be.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::browser::{between, spki_hash};
use common::*;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const CHROMIUM_HELLO: &[u8] = include_bytes!("fixtures/hellos/chromium_pq.bin");

/// The neighbours' failures, as their tools make them, from 127.0.0.1:
/// openssl offering TLS 1.1 at most (Debian's default level forbids it, so
/// it is lowered), and curl that does not trust our certificate (unknown_ca).
async fn neighbours_fail(https: std::net::SocketAddr) {
    let https = format!("127.0.0.1:{}", https.port());
    let _ = Command::new("openssl")
        .args(["s_client", "-connect", &https, "-tls1_1", "-cipher"])
        .arg("DEFAULT@SECLEVEL=0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    let _ = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "5"])
        .arg(format!("https://{https}/healthz"))
        .env_remove("CURL_CA_BUNDLE")
        .status()
        .await;
}

/// A ClientHello cut at 1,460 bytes, held open until the returned flag is set.
async fn held_half_hello(server: &TestServer) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
    tcp.write_all(&CHROMIUM_HELLO[..1460]).await.unwrap();
    let flag = stop.clone();
    tokio::spawn(async move {
        while !flag.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(tcp);
    });
    stop
}

/// Neighbours failing again and again until the flag is set; how many rounds.
fn keep_failing(server: &TestServer, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u32> {
    let https = server.https;
    tokio::spawn(async move {
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) {
            neighbours_fail(https).await;
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        rounds
    })
}

fn finding_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

/// What every healthy run with failing neighbours must show: `clear`, no
/// finding of the neighbours', and the neighbours listed apart.
fn assert_clear_with_neighbours_apart(report: &Value) {
    assert_eq!(report["status"], "clear", "{report:#}");
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    for neighbours in [
        "tls.version-too-old",
        "tls.client-rejected-certificate",
        "tls.hello-incomplete",
    ] {
        assert!(!ids.contains(&neighbours), "{neighbours} in {ids:?}");
    }
    let others = finding_ids(&report["other_clients"]);
    for expected in ["tls.version-too-old", "tls.client-rejected-certificate"] {
        assert!(
            others.iter().any(|id| id == expected),
            "{expected} not among the other clients' findings {others:?}"
        );
    }
    // Every one of the run's own connections says why it is the run's, and
    // none came by evidence: nothing of the run failed.
    for own in report["attempts"].as_array().unwrap() {
        let by = own["tie"]["by"].as_str().unwrap();
        assert!(by == "request" || by == "hello_ladder", "{own:#}");
        assert_eq!(own["attempt"]["succeeded"], true, "{own:#}");
    }
    assert!(!report["attempts"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_neighbours_never_decide_a_healthy_check_sh_run() {
    if !require_tool("curl") || !require_tool("sh") || !require_tool("openssl") {
        return;
    }
    let server = TestServer::start().await;
    // Before the run, and held through it.
    neighbours_fail(server.https).await;
    let half = held_half_hello(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let during = keep_failing(&server, stop.clone());
    let run = server.check_sh(None).await;
    let (text, ok) = (format!("{}{}", run.stdout, run.stderr), run.ok);
    stop.store(true, Ordering::Relaxed);
    half.store(true, Ordering::Relaxed);
    let rounds = during.await.unwrap();
    assert!(rounds >= 2, "the neighbours failed only {rounds} times");
    println!("{text}");
    assert!(ok, "{text}");
    assert!(text.contains("https  certificate verified"), "{text}");
    assert!(
        text.contains("No problem found: HTTPS worked and full-size packets crossed"),
        "{text}"
    );
    assert!(text.contains("Other clients at your address"), "{text}");
    assert!(text.contains("were not this shell's"), "{text}");
    let id = run
        .report_id()
        .unwrap_or_else(|| panic!("no report link:\n{text}"));
    let report = server.saved_report(&id).await;
    assert_clear_with_neighbours_apart(&report);
    // The ClientHello size ladder's connections named the run themselves.
    assert!(
        report["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["tie"]["by"] == "hello_ladder"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_neighbours_never_decide_a_healthy_browser_run() {
    if !browser::available() || !require_tool("curl") || !require_tool("openssl") {
        return;
    }
    let server = TestServer::start().await;
    neighbours_fail(server.https).await;
    let half = held_half_hello(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let during = keep_failing(&server, stop.clone());
    let url = format!("http://127.0.0.1:{}/?case=NAT-1", server.http.port());
    let spki = format!(
        "--ignore-certificate-errors-spki-list={}",
        spki_hash(&server.cert)
    );
    let page = tokio::task::spawn_blocking(move || {
        browser::run_page(
            None,
            &url,
            "document.querySelector('#probe') && document.querySelector('#probe').dataset.state",
            &["done", "error"],
            Duration::from_secs(90),
            &[spki],
            None,
        )
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    half.store(true, Ordering::Relaxed);
    during.await.unwrap();
    assert!(
        page.reached && page.value_text() == "done",
        "the page reached no verdict ({}):\n{}",
        page.value_text(),
        page.html
    );
    assert!(
        page.html.contains(r#"data-status="clear""#),
        "{}",
        page.html
    );
    assert!(
        page.html.contains("(not this browser) did not count"),
        "{}",
        page.html
    );
    let link = between(&page.html, "class=\"probe-url\" href=\"", "\"")
        .unwrap_or_else(|| panic!("no report link on the page:\n{}", page.html));
    let id = link.rsplit('/').next().unwrap().to_owned();
    let report = server.saved_report(&id).await;
    assert_clear_with_neighbours_apart(&report);
    // The page's own HTTPS check is one of the run's connections.
    assert!(
        report["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["tie"]["by"] == "request"
                && a["attempt"]["tls"]["negotiated"]["key_exchange_group"]["name"]
                    == "X25519MLKEM768"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dozen_check_sh_runs_from_one_address_all_get_their_verdict() {
    if !require_tool("curl") || !require_tool("sh") || !require_tool("openssl") {
        return;
    }
    let server = TestServer::start_with(|mut c| {
        c.reports.burst = 10;
        c.reports.every = Duration::from_secs(60);
        c
    })
    .await;
    let mut saved = 0;
    for run in 1..=12 {
        let out = server.check_sh(None).await;
        let (text, ok) = (format!("{}{}", out.stdout, out.stderr), out.ok);
        assert!(ok, "run {run} failed:\n{text}");
        assert!(
            text.contains("No problem found: HTTPS worked and full-size packets crossed"),
            "run {run} has no verdict:\n{text}"
        );
        if run <= 10 {
            assert!(
                out.report_id().is_some(),
                "run {run} was not saved:\n{text}"
            );
            saved += 1;
        } else {
            let line = text
                .lines()
                .find(|l| l.starts_with("No report was saved: "))
                .unwrap_or_else(|| panic!("run {run} says nothing of saving:\n{text}"));
            assert!(
                line.starts_with(
                    "No report was saved: too many reports from your address; the next can be \
                     saved in "
                ) || line.starts_with("No report was saved: too many reports from your"),
                "{line}"
            );
            let secs: u64 = text
                .split("the next can be saved in ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no wait in:\n{text}"));
            assert!((1..=60).contains(&secs), "{secs}");
        }
    }
    assert_eq!(saved, 10);
}
