//! A real rustls client against the real server: the JSON report shows exactly
//! what the client was configured to send, however the ClientHello was cut up
//! on the way.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use common::*;
use serde_json::Value;

/// X25519MLKEM768's client key share: an ML-KEM-768 encapsulation key (1,184
/// bytes, FIPS 203) followed by an X25519 public key (32 bytes).
const X25519MLKEM768_SHARE: u64 = 1184 + 32;

/// rustls' default post-quantum ClientHello is ~1,480 bytes; a second ALPN
/// value (which the server ignores: it picks http/1.1) takes it past 1,500,
/// like a browser's.
const ALPN: &[&str] = &[
    "http/1.1",
    "x-tlsdiag-test-a-second-protocol-to-pass-1500-bytes",
];

fn hello(report: &Value) -> &Value {
    &report["tls"]["client_hello"]
}

#[tokio::test(flavor = "multi_thread")]
async fn report_shows_what_the_rustls_client_was_configured_to_send() {
    let server = TestServer::start().await;
    let config = server.client_config(ALPN);
    let provider = config.crypto_provider().clone();
    let body = https_get(server.https, config, "localhost", "/api/v1/connection", &[]).await;
    let report = json(&body);
    let h = hello(&report);

    assert_eq!(h["sni"], "localhost");
    assert_eq!(h["alpn"], serde_json::json!(ALPN));
    assert!(
        h["wire_length"].as_u64().unwrap() > 1500,
        "{}",
        h["wire_length"]
    );
    let offered: Vec<u64> = ids(&h["cipher_suites"])
        .into_iter()
        .filter(|id| *id != 0x00ff) // rustls adds the renegotiation SCSV for TLS 1.2
        .collect();
    let configured: Vec<u64> = provider
        .cipher_suites
        .iter()
        .map(|s| u64::from(u16::from(s.suite())))
        .collect();
    assert_eq!(offered, configured);
    let groups: Vec<u64> = provider
        .kx_groups
        .iter()
        .map(|g| u64::from(u16::from(g.name())))
        .collect();
    assert_eq!(
        ids(&h["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"]["id"] == 10)
            .unwrap()["decoded"]["groups"]),
        groups
    );
    assert_eq!(groups[0], 0x11ec, "aws-lc-rs offers X25519MLKEM768 first");

    let shares = h["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"]["name"] == "key_share")
        .expect("key_share")["decoded"]["shares"]
        .clone();
    assert_eq!(shares[0]["group"]["name"], "X25519MLKEM768");
    assert_eq!(shares[0]["key_exchange_length"], X25519MLKEM768_SHARE);

    let negotiated = &report["tls"]["negotiated"];
    assert_eq!(negotiated["version"]["name"], "TLS 1.3");
    assert_eq!(negotiated["key_exchange_group"]["name"], "X25519MLKEM768");
    assert_eq!(negotiated["alpn"], "http/1.1");
    assert_eq!(report["connection"]["scheme"], "https");
    assert!(report["summary"]
        .as_str()
        .unwrap()
        .starts_with("TLS 1.3, X25519MLKEM768, ClientHello "));
}

/// The same client's hello delivered four ways. The server must parse each the
/// same and record how it arrived.
#[tokio::test(flavor = "multi_thread")]
async fn a_split_hello_parses_identically_and_the_report_shows_how_it_arrived() {
    let server = TestServer::start().await;
    let mut delivered = 0;
    for delivery in [
        Delivery::Whole,
        Delivery::SplitAt(1460),
        Delivery::BytePerWrite,
        Delivery::TwoRecords(700),
    ] {
        let (sent, body) = get_with_delivery(
            server.https,
            server.client_config(ALPN),
            "localhost",
            delivery,
            "/api/v1/connection",
        )
        .await;
        let report = json(&body);
        let arrival = &report["tls"]["arrival"];
        let reads: Vec<u64> = arrival["reads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["bytes"].as_u64().unwrap())
            .collect();
        let total = sent.len() as u64;
        assert!(
            total > 1500,
            "the post-quantum ClientHello is {total} bytes"
        );
        let h = hello(&report);
        // The random is 32 bytes at offset 11 of what the client wrote.
        assert_eq!(h["random"], hex(&sent[11..43]), "{delivery:?}");
        match delivery {
            Delivery::Whole => {
                assert_eq!(reads, vec![total]);
                assert_eq!(arrival["tls_records"], 1);
            }
            Delivery::SplitAt(n) => {
                assert_eq!(reads, vec![n as u64, total - n as u64]);
                let gap = arrival["reads"][1]["gap_ms"].as_f64().unwrap();
                assert!(gap >= 50.0, "gap between the pieces: {gap} ms");
                assert!(
                    report["summary"].as_str().unwrap().contains(" in 2 reads"),
                    "{}",
                    report["summary"]
                );
            }
            Delivery::BytePerWrite => {
                let read_count = arrival["read_count"].as_u64().unwrap();
                assert!(
                    read_count > total / 4,
                    "{read_count} reads for {total} one-byte writes"
                );
                // The report lists the first 64; the attempt's detail has them all.
                assert_eq!(reads.len() as u64, read_count.min(64));
                let (_, body) = get_with_delivery(
                    server.https,
                    server.client_config(ALPN),
                    "localhost",
                    Delivery::Whole,
                    "/api/v1/attempts",
                )
                .await;
                let attempts = json(&body);
                let id = attempts["attempts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["tls"]["arrival"]["read_count"] == read_count)
                    .map(|a| a["id"].as_u64().unwrap())
                    .expect("the byte-at-a-time attempt is listed");
                let path = format!("/api/v1/attempts/{id}");
                let (_, body) = get_with_delivery(
                    server.https,
                    server.client_config(ALPN),
                    "localhost",
                    Delivery::Whole,
                    &path,
                )
                .await;
                let detail = json(&body);
                let all: Vec<u64> = detail["detail"]["arrival"]["reads"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["bytes"].as_u64().unwrap())
                    .collect();
                assert_eq!(all.len() as u64, read_count);
                assert_eq!(all.iter().sum::<u64>(), total);
            }
            Delivery::TwoRecords(_) => {
                assert_eq!(arrival["tls_records"], 2);
                assert_eq!(arrival["bytes"].as_u64().unwrap(), total + 5);
                assert_eq!(h["records"].as_array().unwrap().len(), 2);
            }
        }
        // rustls shuffles extension order per connection, so each delivery is
        // compared with the bytes that same client wrote, parsed whole.
        let whole = serde_json::to_value(
            tlsdiag::hello::parse_client_hello(&sent).expect("client's hello parses"),
        )
        .expect("serializes");
        for (key, want) in whole.as_object().unwrap() {
            if matches!(delivery, Delivery::TwoRecords(_))
                && (key == "records" || key == "wire_length")
            {
                continue;
            }
            assert_eq!(&h[key], want, "{delivery:?}: field {key}");
        }
        delivered += 1;
    }
    assert_eq!(delivered, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_listener_reports_an_unencrypted_connection() {
    let server = TestServer::start().await;
    let body = http_request_from(
        server.http,
        [127, 0, 0, 1].into(),
        "/",
        &[("Accept", "application/json")],
    )
    .await;
    let report = json(&body);
    assert_eq!(report["connection"]["scheme"], "http");
    assert_eq!(report["connection"]["encrypted"], false);
    assert!(report["tls"].is_null());
    let text = http_request_from(
        server.http,
        [127, 0, 0, 1].into(),
        "/",
        &[("User-Agent", "curl/8.5.0")],
    )
    .await;
    assert!(text.contains("not encrypted"), "{text}");
}
