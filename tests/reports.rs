//! Shareable reports: saved when a harness run finishes, linkable, labelled,
//! durable across a restart and `kill -9`, expiring, and listed only for the
//! operator with the token.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A results body as a client would post it.
fn results_body(run: &str, label: Option<&str>) -> String {
    let label = label.map_or(String::new(), |l| format!(r#","label":"{l}""#));
    format!(
        r#"{{"run":"{run}","agent":"check.sh","client_time_ms":{}{label},
            "down":[{{"bytes":512,"ok":true,"ms":3.5,"error":null}},{{"bytes":1400,"ok":false,"ms":8000,"error":"timeout"}}],
            "up":[{{"bytes":512,"ok":true,"ms":4.0,"error":null}}]}}"#,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    )
}

async fn post_results(http: std::net::SocketAddr, body: &str) -> Value {
    json(&body_of(&post_raw(http, body).await))
}

/// The whole HTTP response to a results post.
async fn post_raw(http: std::net::SocketAddr, body: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
    let request = format!(
        "POST /api/v1/probe/results HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    response
}

fn report_id(answer: &Value) -> String {
    let url = answer["report_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no report_url: {answer:#}"));
    let id = url.rsplit('/').next().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{url}");
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn check_sh_with_a_case_label_produces_a_report_whose_json_matches_its_output() {
    if !require_tool("curl") || !require_tool("sh") {
        return;
    }
    let server = TestServer::start().await;
    let base = format!("http://127.0.0.1:{}", server.http.port());
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("curl -s '{base}/check.sh?case=ACME-1234' | sh"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    let link = stdout
        .lines()
        .find_map(|l| {
            l.split_once("Report link (send it to support): ")
                .map(|(_, url)| url.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no report link in:\n{stdout}"));
    assert!(link.starts_with(&format!("{base}/r/")), "{link}");
    let id = link.rsplit('/').next().unwrap();

    // What the script printed, step by step: "  down      512 B      3 ms  ok".
    let printed: Vec<(String, u64, bool)> = stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let dir = w.next()?;
            if dir != "down" && dir != "up" {
                return None;
            }
            let bytes = w.next()?.parse().ok()?;
            Some((dir.to_owned(), bytes, l.trim_end().ends_with(" ok")))
        })
        .collect();
    assert_eq!(printed.len(), 24, "{stdout}");

    let report = server.saved_report(id).await;
    assert_eq!(report["label"], "ACME-1234");
    assert_eq!(report["agent"], "check.sh");
    assert_eq!(report["schema_version"], 2);
    for (dir, bytes, ok) in printed {
        let step = report["probe"][&dir]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["bytes"] == bytes)
            .unwrap_or_else(|| panic!("{dir} {bytes} missing from the report"));
        assert_eq!(step["client"]["ok"], ok, "{dir} {bytes}");
    }
    // The text form ends with the link.
    let text = http_request_from(
        server.http,
        [127, 0, 0, 1].into(),
        &format!("/r/{id}"),
        &[("User-Agent", "curl/8")],
    )
    .await;
    assert!(text.trim_end().ends_with(&format!("/r/{id}")), "{text}");
    assert!(text.contains("ACME-1234"), "{text}");
}

/// A tlsdiag process of its own, so it can be killed with SIGKILL.
struct Process {
    child: Child,
    http: std::net::SocketAddr,
}

impl Process {
    fn start(data: &std::path::Path, certs: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
            .args(["--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data)
            .arg("--certs-dir")
            .arg(certs)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (found, listening) = std::sync::mpsc::channel();
        // Reads the log for the listening line, then keeps draining it so the
        // process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once("http=http://") {
                    let _ = found.send(rest.split('/').next().unwrap_or("").to_owned());
                }
            }
        });
        let http = listening
            .recv_timeout(Duration::from_secs(20))
            .expect("tlsdiag did not log its listening addresses within 20 s")
            .parse()
            .unwrap();
        Self { child, http }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_report_survives_kill_9_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (data, certs) = (dir.path().join("data"), dir.path().join("certs"));
    let first = Process::start(&data, &certs);
    let answer = post_results(first.http, &results_body("durable001", Some("ACME-9"))).await;
    let id = report_id(&answer);
    // SIGKILL the moment the answer is in: no shutdown, no flush.
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = Process::start(&data, &certs);
    let report = json(
        &http_get_from(
            second.http,
            [127, 0, 0, 1].into(),
            &format!("/api/v1/reports/{id}"),
        )
        .await,
    );
    assert_eq!(report["id"], id);
    assert_eq!(report["label"], "ACME-9");
    assert_eq!(report["probe"]["down"][1]["client"]["error"], "timeout");
    let page = http_request_from(
        second.http,
        [127, 0, 0, 1].into(),
        &format!("/r/{id}"),
        &[("Accept", "text/html")],
    )
    .await;
    assert!(
        page.contains("ACME-9") && page.contains("Copy link"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_old_reports() {
    let server = TestServer::start_with(|mut c| {
        c.reports.retention = Duration::from_secs(1);
        c.reports.purge_interval = Duration::from_millis(200);
        c
    })
    .await;
    let id = report_id(&post_results(server.http, &results_body("retained01", None)).await);
    let path = format!("/api/v1/reports/{id}");
    assert!(http_get_from(server.http, [127, 0, 0, 1].into(), &path)
        .await
        .contains(&id));
    for _ in 0..100 {
        let body = http_get_from(server.http, [127, 0, 0, 1].into(), &path).await;
        if body.starts_with("not found") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("report {id} outlived its 1 s retention");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_needs_the_token_and_filters_by_label() {
    const TOKEN: &str = "correct-horse-battery-staple";
    let server = TestServer::start_with(|mut c| {
        c.reports.admin_token = Some(TOKEN.into());
        c
    })
    .await;
    post_results(server.http, &results_body("adminrun01", Some("ACME-1"))).await;
    post_results(server.http, &results_body("adminrun02", Some("OTHER-2"))).await;
    let local = [127, 0, 0, 1].into();
    let none = http_request_from(server.http, local, "/admin", &[]).await;
    assert!(none.contains("needs the admin token"), "{none}");
    let wrong = http_request_from(
        server.http,
        local,
        "/admin",
        &[("Authorization", "Bearer not-the-token-at-all")],
    )
    .await;
    assert!(wrong.contains("needs the admin token"), "{wrong}");
    let basic = format!("Basic {}", base64_of(&format!("support:{TOKEN}")));
    let page = http_request_from(server.http, local, "/admin", &[("Authorization", &basic)]).await;
    assert!(
        page.contains("ACME-1") && page.contains("OTHER-2"),
        "{page}"
    );
    let filtered = http_request_from(
        server.http,
        local,
        "/admin?label=ACME-1",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert!(
        filtered.contains("ACME-1") && !filtered.contains("OTHER-2"),
        "{filtered}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_does_not_exist_without_a_token() {
    let server = TestServer::start().await;
    let body = http_request_from(
        server.http,
        [127, 0, 0, 1].into(),
        "/admin",
        &[("Authorization", "Bearer anything-at-all-here")],
    )
    .await;
    assert!(body.starts_with("not found"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_storage_the_diagnosis_still_answers_and_says_why_nothing_was_saved() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let data = file.path().to_path_buf();
    let server = TestServer::start_with(move |mut c| {
        c.reports.data_dir = data; // a file, not a directory
        c
    })
    .await;
    let answer = post_results(server.http, &results_body("nostore01", None)).await;
    assert!(answer["report_url"].is_null());
    assert_eq!(
        answer["report_error"],
        "the server's report storage is unavailable"
    );
    assert!(
        answer["verdict"].as_str().unwrap().contains("toward you"),
        "{answer:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_labels_and_ids_get_clear_4xx() {
    let server = TestServer::start().await;
    let local = [127, 0, 0, 1].into();
    let answer = http_request_from(server.http, local, "/check.sh?case=%3Cscript%3E", &[]).await;
    assert!(answer.starts_with("case must be"), "{answer}");
    let posted = String::from_utf8(
        post_raw(server.http, &results_body("hostile01", Some("<b>x</b>"))).await,
    )
    .unwrap();
    assert!(
        posted.starts_with("HTTP/1.1 400"),
        "markup in a label must be refused: {posted}"
    );
    assert!(posted.contains("label must be"), "{posted}");
    for path in [
        "/r/../../etc/passwd",
        "/r/ABC",
        "/r/00000000000000000000000000000000",
        "/api/v1/reports/zz",
    ] {
        let body = http_request_from(server.http, local, path, &[]).await;
        assert!(body.starts_with("not found"), "{path}: {body}");
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The report support opens is the answer the customer's run got: the same
/// headline and findings, value for value in JSON and byte for byte in the
/// text, and the saved page shows them first, with the ladder chart.
#[tokio::test(flavor = "multi_thread")]
async fn the_saved_report_is_the_live_answer_of_the_same_run() {
    let server = TestServer::start().await;
    let local = [127, 0, 0, 1].into();
    let answer = post_results(server.http, &results_body("sameword01", Some("CASE-9"))).await;
    let id = report_id(&answer);
    let saved = server.saved_report(&id).await;
    assert_eq!(saved["verdict"], answer["verdict"]);
    assert_eq!(saved["status"], answer["status"]);
    assert_eq!(saved["findings"], answer["findings"]);
    assert_eq!(saved["probe"], answer["probe"]);
    assert_eq!(saved["id"], id.as_str());

    // Text: check.sh's answer and the saved report print the same verdict.
    let live = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = results_body("sameword02", Some("CASE-9"));
        let mut tcp = tokio::net::TcpStream::connect(server.http).await.unwrap();
        let request = format!(
            "POST /api/v1/probe/results HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            server.http,
            body.len()
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.unwrap();
        body_of(&response)
    };
    let live_id = live
        .split_whitespace()
        .find(|w| w.contains("/r/"))
        .and_then(|l| l.rsplit('/').next())
        .unwrap()
        .to_owned();
    let saved_text = http_request_from(
        server.http,
        local,
        &format!("/r/{live_id}"),
        &[("Accept", "text/plain")],
    )
    .await;
    let verdict_of = |text: &str| -> String {
        // From the headline to the end of the findings.
        let start = text
            .find("MTU black hole")
            .unwrap_or_else(|| panic!("no headline in:\n{text}"));
        let end = text[start..]
            .find("\nPath test\n")
            .or_else(|| text[start..].find("\nReport link"))
            .unwrap();
        text[start..start + end].trim_end().to_owned()
    };
    assert_eq!(
        verdict_of(&saved_text),
        verdict_of(&live),
        "{saved_text}\n---\n{live}"
    );

    // The page: headline, then the findings with their evidence, then the chart.
    let page = http_request_from(
        server.http,
        local,
        &format!("/r/{id}"),
        &[("Accept", "text/html")],
    )
    .await;
    let headline = page.find("class=\"headline-text\"").unwrap();
    let findings = page.find("id=\"findings\"").unwrap();
    let chart = page.find("<svg").unwrap();
    assert!(headline < findings && findings < chart, "{page}");
    assert!(
        page.contains("class=\"probe-failed\""),
        "the failed step is drawn: {page}"
    );
    assert!(page.contains("CASE-9"), "{page}");
}
