//! The probe endpoints on loopback: exact sizes, no compression or caching,
//! uploads counted, results validated, and check.sh run by a real `sh`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// A raw HTTP/1.1 exchange on the plain listener: (head, body bytes).
async fn exchange(server: &TestServer, request: &[u8]) -> (String, Vec<u8>) {
    let mut tcp = TcpStream::connect(server.http).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    (
        String::from_utf8_lossy(&response[..split]).into_owned(),
        response[split + 4..].to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_are_exact_incompressible_and_uncached() {
    let server = TestServer::start().await;
    for size in [0usize, 1, 1460, 65536, 1048576, 3 * 1048576 + 7] {
        let request = format!(
            "GET /probe/down/{size}?run=testrun0001 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\nConnection: close\r\n\r\n"
        );
        let (head, body) = exchange(&server, request.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body.len(), size, "{head}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains(&format!("content-length: {size}")), "{head}");
        assert!(head.contains("cache-control: no-store"), "{head}");
        assert!(!head.contains("gzip") && !head.contains("br\r"), "{head}");
        if size >= 65536 {
            // Incompressible: no byte value dominates.
            let mut counts = [0usize; 256];
            body.iter().for_each(|b| counts[usize::from(*b)] += 1);
            assert!(*counts.iter().max().unwrap() < size / 100, "skewed payload");
        }
    }
    let (head, _) = exchange(
        &server,
        b"GET /probe/down/99999999999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (head, _) = exchange(
        &server,
        b"GET /probe/down/12?run=%3Cscript%3E HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_report_what_arrived() {
    let server = TestServer::start().await;
    let body = vec![0x5a; 100_000];
    let mut request = format!(
        "POST /probe/up?run=testrun0001&size=100000 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend(&body);
    let (head, answer) = exchange(&server, &request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("{\"received\":100000,"), "{answer}");
}

async fn post_results(server: &TestServer, body: &str, accept: &str) -> (String, String) {
    let request = format!(
        "POST /api/v1/probe/results HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: {accept}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (head, body) = exchange(server, request.as_bytes()).await;
    (head, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn results_with_a_size_threshold_name_the_black_hole_and_its_direction() {
    let server = TestServer::start().await;
    let step = |bytes: u64, ok: bool| {
        format!(
            r#"{{"bytes":{bytes},"ok":{ok},"ms":12.5,"error":{}}}"#,
            if ok { "null" } else { "\"timeout\"" }
        )
    };
    let up: Vec<String> = [
        (512, true),
        (1200, true),
        (1400, false),
        (2000, false),
        (65536, false),
    ]
    .iter()
    .map(|(b, ok)| step(*b, *ok))
    .collect();
    let down: Vec<String> = [512, 1400, 65536].iter().map(|b| step(*b, true)).collect();
    let body = format!(
        r#"{{"run":"testrun0002","agent":"check.sh","client_time_ms":0,"down":[{}],"up":[{}]}}"#,
        down.join(","),
        up.join(",")
    );
    let (head, answer) = post_results(&server, &body, "application/json").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{answer}");
    let answer = json(&answer);
    let ids: Vec<&str> = answer["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], "path.black-hole-up", "{ids:?}");
    // client_time_ms 0 is ~56 years behind the server: a skewed clock.
    assert!(ids.contains(&"client.clock-skew"), "{ids:?}");
    assert!(!ids.contains(&"path.black-hole-down"), "{ids:?}");
    assert!(answer["verdict"]
        .as_str()
        .unwrap()
        .contains("from you toward the server"));

    let (_, text) = post_results(&server, &body, "text/plain").await;
    assert!(text.contains("Verdict"), "{text}");
    assert!(text.contains("clamp-mss-to-pmtu"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_results_get_a_clear_4xx() {
    let server = TestServer::start().await;
    let cases = [
        ("not json", "400"),
        (r#"{"run":"x","agent":"browser"}"#, "400"),
        (r#"{"run":"okrun0001","agent":"<b>evil</b>"}"#, "400"),
        (
            r#"{"run":"okrun0001","agent":"browser","down":"lots"}"#,
            "400",
        ),
        (
            r#"{"run":"okrun0001","agent":"browser","down":[{"bytes":-1,"ok":true}]}"#,
            "400",
        ),
    ];
    for (body, status) in cases {
        let (head, answer) = post_results(&server, body, "application/json").await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{body}: {head}"
        );
        assert!(!answer.is_empty(), "{body}: an error says what is wrong");
    }
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (head, _) = post_results(&server, &nested, "application/json").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let huge = format!(
        r#"{{"run":"okrun0001","agent":"browser","pad":"{}"}}"#,
        "a".repeat(200_000)
    );
    let (head, answer) = post_results(&server, &huge, "application/json").await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}\n{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_sh_runs_under_sh_and_finds_a_clean_path() {
    if !require_tool("curl") || !require_tool("sh") || !require_tool("openssl") {
        return;
    }
    let server = TestServer::start().await;
    let url = format!("http://127.0.0.1:{}/check.sh", server.http.port());
    let script = Command::new("curl")
        .args(["-s", &url])
        .output()
        .await
        .unwrap();
    let script = String::from_utf8(script.stdout).unwrap();
    assert!(script.starts_with("#!/bin/sh"), "{script}");
    assert!(script.contains(&format!("http://127.0.0.1:{}", server.http.port())));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("curl -s {url} | sh"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The tests ran over the HTTPS port, the results went over plain HTTP.
    assert!(
        stdout.contains(&format!(
            "server  https://127.0.0.1:{} (tests), http://127.0.0.1:{} (results)",
            server.https.port(),
            server.http.port()
        )),
        "{stdout}"
    );
    // Every ClientHello size of the ladder, built to the byte, completed.
    for size in ["512", "1200", "1400", "1500", "2000", "4000"] {
        assert!(
            stdout.contains(&format!("hello {size:>8} B  ok")),
            "{size}: {stdout}"
        );
    }
    assert!(
        stdout.contains("No problem found: HTTPS worked and full-size packets crossed"),
        "{stdout}"
    );
    // The Host header cannot smuggle shell into the script.
    let (_, body) = exchange(
        &server,
        b"GET /check.sh HTTP/1.1\r\nHost: x$(touch /tmp/pwned)\r\nConnection: close\r\n\r\n",
    )
    .await;
    let body = String::from_utf8_lossy(&body);
    assert!(!body.contains("$(touch"), "unsafe Host reached the script");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_watches_a_download_to_its_last_acknowledged_byte() {
    let server = TestServer::start().await;
    let request =
        "GET /probe/down/1048576?run=watched001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (_, body) = exchange(&server, request.as_bytes()).await;
    assert_eq!(body.len(), 1_048_576);
    let results = r#"{"run":"watched001","agent":"browser","down":[{"bytes":1048576,"ok":true,"ms":9.0,"error":null}]}"#;
    // The watcher records its observation when the last byte is acknowledged.
    for _ in 0..100 {
        let (_, answer) = post_results(&server, results, "application/json").await;
        let answer = json(&answer);
        let seen = &answer["probe"]["down"][0]["server"];
        if !seen.is_null() {
            assert_eq!(seen["completed"], true, "{seen:#}");
            assert_eq!(seen["stalled"], false, "{seen:#}");
            assert_eq!(seen["transferred"], 1_048_576, "{seen:#}");
            assert!(seen["after"]["snd_mss"].as_u64().unwrap() > 0, "{seen:#}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server never recorded the download");
}

/// The entry URL is plain HTTP, so nothing may ever pin the host to HTTPS
/// (HSTS covers every port of a host); and only pages of this host may read
/// a visitor's report across the two origins.
#[tokio::test(flavor = "multi_thread")]
async fn no_hsts_and_cors_only_for_this_host() {
    let server = TestServer::start().await;
    let config = server.client_config(&["http/1.1"]);
    let own_page = format!("http://localhost:{}", server.http.port());
    for (origin, allowed) in [(own_page.as_str(), true), ("http://evil.example", false)] {
        let raw = https_get_raw(
            server.https,
            config.clone(),
            "localhost",
            "/api/v1/connection",
            &[("Origin", origin)],
        )
        .await;
        let head = String::from_utf8_lossy(&raw).to_lowercase();
        let head = head.split("\r\n\r\n").next().unwrap().to_owned();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("strict-transport-security"), "{head}");
        assert_eq!(
            head.contains(&format!("access-control-allow-origin: {origin}")),
            allowed,
            "{origin}: {head}"
        );
    }
    let (head, _) = exchange(
        &server,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        !head.to_lowercase().contains("strict-transport-security"),
        "{head}"
    );
}
