//! Several instances sharing one PostgreSQL (`--database-url`), for real: a
//! PostgreSQL server started by the test, two tlsdiag processes on it. A
//! customer's HTTPS attempt reaching instance A is in the report instance B
//! gives their plain-HTTP request, with A's name on it and A's bytes in it;
//! a report saved through A opens through B; with the database killed, A
//! still reports what it saw itself and says the shared attempts are missing.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::postgres::Postgres;
use common::process::Tlsdiag;
use common::*;
use serde_json::Value;

const LOCALHOST: [u8; 4] = [127, 0, 0, 1];

/// GET over plain HTTP from 127.0.0.1, as JSON.
async fn get_json(http: std::net::SocketAddr, path: &str) -> Value {
    json(
        &http_request_from(
            http,
            LOCALHOST.into(),
            path,
            &[("Accept", "application/json")],
        )
        .await,
    )
}

/// Polls `http`'s attempts list (as 127.0.0.1 sees it) until an attempt
/// `instance` saw shows up; its JSON.
async fn wait_for_attempt_from(http: std::net::SocketAddr, instance: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = get_json(http, "/api/v1/attempts").await;
        if let Some(a) = list["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["instance"] == instance)
        {
            return a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no attempt seen by {instance} within 15 s: {list:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn results_body(run: &str, label: &str) -> String {
    format!(
        r#"{{"run":"{run}","agent":"check.sh","label":"{label}",
            "down":[{{"bytes":512,"ok":true,"ms":3.5,"error":null}}],
            "up":[{{"bytes":512,"ok":true,"ms":4.0,"error":null}}]}}"#
    )
}

async fn post_results(http: std::net::SocketAddr, body: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(http).await.unwrap();
    let request = format!(
        "POST /api/v1/probe/results HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    json(&body_of(&response))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_attempts_and_reports_and_survive_the_database_going_away() {
    let Some(mut db) = Postgres::start() else {
        return;
    };
    let a = Tlsdiag::start(&["--database-url", &db.url, "--instance-name", "edge-a"]);
    let b = Tlsdiag::start(&["--database-url", &db.url, "--instance-name", "edge-b"]);

    // The customer's HTTPS reaches A: a post-quantum ClientHello (well over
    // 1,000 bytes) split in two writes at 1,000 bytes.
    let (hello, body) = get_with_delivery(
        a.https,
        client_config_trusting(&a.cert, &["http/1.1"]),
        "localhost",
        Delivery::SplitAt(1000),
        "/?format=json",
    )
    .await;
    assert!(hello.len() > 1200, "{}", hello.len());
    assert!(body.contains("schema_version"), "{body}");

    // Their plain-HTTP request reaches B: A's attempt is there, named.
    let seen = wait_for_attempt_from(b.http, "edge-a").await;
    assert_eq!(seen["succeeded"], true, "{seen:#}");
    assert_eq!(seen["tls"]["sni"], "localhost", "{seen:#}");
    assert_eq!(seen["tls"]["arrival"]["bytes"], hello.len(), "{seen:#}");
    assert_eq!(seen["tls"]["arrival"]["read_count"], 2, "{seen:#}");
    // Stored as raw bytes and parsed again: the very bytes the client sent.
    let id = seen["id"].as_u64().unwrap();
    let detail = get_json(b.http, &format!("/api/v1/attempts/{id}")).await;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(detail["detail"]["raw_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        raw, hello,
        "B holds the ClientHello A received, byte for byte"
    );
    assert_eq!(
        detail["detail"]["client_hello"]["sni"], "localhost",
        "parsed again from the stored bytes"
    );

    // B's connection report, in all three formats, lists it with A's name.
    let report = get_json(b.http, "/?format=json").await;
    let listed = report["recent_attempts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("attempt {id} not in B's report: {report:#}"));
    assert_eq!(listed["instance"], "edge-a");
    assert_eq!(report["shared_attempts"]["instance"], "edge-b");
    assert_eq!(report["shared_attempts"]["available"], true);
    let text = http_request_from(b.http, LOCALHOST.into(), "/", &[("User-Agent", "curl/8")]).await;
    assert!(
        text.contains(&format!("#{id} ")) && text.contains("(edge-a)"),
        "{text}"
    );
    let page = http_request_from(b.http, LOCALHOST.into(), "/", &[("Accept", "text/html")]).await;
    assert!(page.contains("<td>edge-a</td>"), "{page}");

    // Another address sees none of it.
    let other = json(&http_get_from(b.http, [127, 0, 0, 2].into(), "/api/v1/attempts").await);
    assert!(
        other["attempts"].as_array().unwrap().is_empty(),
        "{other:#}"
    );

    // A report saved through A opens through B.
    let saved = post_results(a.http, &results_body("sharedrun01", "ACME-77")).await;
    let url = saved["report_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no report saved: {saved:#}\nA's log:\n{}", a.log()));
    let report_id = url.rsplit('/').next().unwrap();
    assert_eq!(report_id.len(), 32, "{url}");
    let through_b = get_json(b.http, &format!("/api/v1/reports/{report_id}")).await;
    assert_eq!(through_b["id"], report_id);
    assert_eq!(through_b["label"], "ACME-77");

    // The database goes away. A still reports what it saw itself, promptly,
    // and says the other instances' attempts are missing.
    db.kill();
    let asked = Instant::now();
    let report = get_json(a.http, "/?format=json").await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the report took {:?}",
        asked.elapsed()
    );
    assert_eq!(report["shared_attempts"]["available"], false, "{report:#}");
    assert!(report["shared_attempts"]["error"].is_string(), "{report:#}");
    assert!(
        report["recent_attempts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id && r["instance"] == "edge-a"),
        "A's own attempt is still listed: {report:#}"
    );
    let text = http_request_from(a.http, LOCALHOST.into(), "/", &[("User-Agent", "curl/8")]).await;
    assert!(text.contains("Shared attempts unavailable"), "{text}");
    let page = http_request_from(a.http, LOCALHOST.into(), "/", &[("Accept", "text/html")]).await;
    assert!(page.contains("Shared attempts unavailable"), "{page}");
    // New attempts still work; saving a report says why it could not be kept.
    let (_, body) = get_with_delivery(
        a.https,
        client_config_trusting(&a.cert, &["http/1.1"]),
        "localhost",
        Delivery::Whole,
        "/?format=json",
    )
    .await;
    assert!(body.contains("\"available\":false"), "{body}");
    let unsaved = post_results(a.http, &results_body("sharedrun02", "ACME-78")).await;
    assert!(unsaved["report_url"].is_null(), "{unsaved:#}");
    assert!(unsaved["report_error"].is_string(), "{unsaved:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_in_postgres_expire_with_the_retention() {
    let Some(db) = Postgres::start() else {
        return;
    };
    let a = Tlsdiag::start(&[
        "--database-url",
        &db.url,
        "--report-retention",
        "2s",
        "--report-purge-interval",
        "200ms",
    ]);
    let saved = post_results(a.http, &results_body("expiring01", "ACME-90")).await;
    let url = saved["report_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{saved:#}"));
    let id = url.rsplit('/').next().unwrap().to_owned();
    let fresh = get_json(a.http, &format!("/api/v1/reports/{id}")).await;
    assert_eq!(fresh["label"], "ACME-90");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = http_request_from(
            a.http,
            LOCALHOST.into(),
            &format!("/api/v1/reports/{id}"),
            &[],
        )
        .await;
        if !page.contains("ACME-90") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "report {id} still there after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
