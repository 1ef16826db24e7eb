//! Real command-line clients (curl, openssl s_client) against the real server.
//! Expected values come from each client's own configuration: the flags we pass
//! and what the tool itself reports (`curl --version`).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::process::Stdio;

use common::*;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `openssl s_client` with `args`, sends a GET for `path` through it, and
/// returns the HTTP response body.
async fn s_client(server: &TestServer, args: &[&str], path: &str) -> String {
    let connect = server.https.to_string();
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &connect])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: openssl-s_client\r\nConnection: close\r\n\r\n");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("openssl finishes")
        .expect("openssl output");
    drop(stdin);
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_owned(),
        None => panic!(
            "no HTTP response from s_client {args:?}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn hello(report: &Value) -> &Value {
    &report["tls"]["client_hello"]
}

fn extension<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    hello(report)["extensions"]
        .as_array()
        .expect("extensions")
        .iter()
        .find(|e| e["type"]["name"] == name)
}

fn finding_ids(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_tls12_with_explicit_ciphers_groups_alpn_and_sni() {
    if !require_tool("openssl") {
        return;
    }
    let server = TestServer::start().await;
    let body = s_client(
        &server,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
            "-groups",
            "P-256:X25519",
            "-alpn",
            "http/1.1",
            "-servername",
            "localhost",
        ],
        "/api/v1/connection",
    )
    .await;
    let report = json(&body);
    let h = hello(&report);
    // OpenSSL appends the renegotiation SCSV (0x00ff) to whatever -cipher lists.
    assert_eq!(ids(&h["cipher_suites"]), vec![0xc02b, 0xcca9, 0x00ff]);
    assert_eq!(
        ids(&extension(&report, "supported_groups").unwrap()["decoded"]["groups"]),
        vec![0x0017, 0x001d]
    );
    assert_eq!(h["alpn"], serde_json::json!(["http/1.1"]));
    assert_eq!(h["sni"], "localhost");
    assert_eq!(h["highest_version"]["name"], "TLS 1.2");
    let negotiated = &report["tls"]["negotiated"];
    assert_eq!(negotiated["version"]["name"], "TLS 1.2");
    assert_eq!(
        negotiated["cipher_suite"]["name"],
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    );
    assert_eq!(negotiated["key_exchange_group"]["name"], "secp256r1");
    assert_eq!(negotiated["alpn"], "http/1.1");
    assert_eq!(report["connection"]["user_agent"], "openssl-s_client");
    assert!(!finding_ids(&report).contains(&"tls.no-sni".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_tls13_with_explicit_ciphersuite_and_no_sni() {
    if !require_tool("openssl") {
        return;
    }
    let server = TestServer::start().await;
    let body = s_client(
        &server,
        &[
            "-tls1_3",
            "-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256",
            "-groups",
            "X25519",
            "-alpn",
            "http/1.1",
            "-noservername",
        ],
        "/api/v1/connection",
    )
    .await;
    let report = json(&body);
    let h = hello(&report);
    let tls13: Vec<u64> = ids(&h["cipher_suites"])
        .into_iter()
        .filter(|id| id >> 8 == 0x13)
        .collect();
    assert_eq!(tls13, vec![0x1303]);
    assert!(h["sni"].is_null());
    assert!(extension(&report, "server_name").is_none());
    let shares = &extension(&report, "key_share").unwrap()["decoded"]["shares"];
    assert_eq!(shares[0]["group"]["name"], "x25519");
    assert_eq!(shares[0]["key_exchange_length"], 32);
    assert_eq!(
        report["tls"]["negotiated"]["cipher_suite"]["name"],
        "TLS_CHACHA20_POLY1305_SHA256"
    );
    assert_eq!(report["tls"]["negotiated"]["version"]["name"], "TLS 1.3");
    assert!(
        finding_ids(&report).contains(&"tls.no-sni".to_owned()),
        "{:?}",
        finding_ids(&report)
    );
    // JA4's SNI flag is "i" without a server name.
    assert_eq!(
        &report["tls"]["fingerprints"]["ja4"].as_str().unwrap()[..4],
        "t13i"
    );
}

async fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn curl_version() -> String {
    let (out, _) = curl(&["--version"]).await;
    out.split_whitespace()
        .nth(1)
        .expect("curl version")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_gets_json_describing_its_own_hello() {
    if !require_tool("curl") {
        return;
    }
    let server = TestServer::start().await;
    let url = format!("https://localhost:{}/", server.https.port());
    let cert = server.cert.to_string_lossy().into_owned();
    let (body, _) = curl(&["--cacert", &cert, "-H", "Accept: application/json", &url]).await;
    let report = json(&body);
    assert_eq!(
        report["connection"]["user_agent"],
        format!("curl/{}", curl_version().await)
    );
    assert_eq!(report["schema_version"], 2);
    let h = hello(&report);
    assert_eq!(h["sni"], "localhost");
    // curl built with nghttp2 offers h2 first, then http/1.1, and uses h2.
    assert_eq!(h["alpn"], serde_json::json!(["h2", "http/1.1"]));
    assert_eq!(report["connection"]["http_version"], "HTTP/2");
    assert_eq!(report["tls"]["negotiated"]["alpn"], "h2");
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_gets_a_text_report_that_fits_80_columns() {
    if !require_tool("curl") {
        return;
    }
    let server = TestServer::start().await;
    let url = format!("https://localhost:{}/", server.https.port());
    let cert = server.cert.to_string_lossy().into_owned();
    let (text, _) = curl(&[
        "--cacert",
        &cert,
        "--tls-max",
        "1.2",
        "--ciphers",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        &url,
    ])
    .await;
    assert!(text.starts_with("tlsdiag: what your client sent"), "{text}");
    assert!(text.contains("TLS 1.2"), "{text}");
    assert!(
        text.contains("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        "{text}"
    );
    assert!(
        text.contains(&format!("curl/{}", curl_version().await)),
        "{text}"
    );
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "line longer than 80 columns: {line:?}"
        );
    }
    assert!(!text.contains('<'), "text output must not be HTML");
}
