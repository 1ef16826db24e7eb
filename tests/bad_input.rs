//! Hostile or broken bytes on the TLS port: never a panic, the connection is
//! closed cleanly, and the server keeps serving everyone else.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` (then half-closes if `finish`), and returns whatever the
/// server answered before closing. Panics if the server keeps the connection open.
async fn send(addr: std::net::SocketAddr, bytes: &[u8], finish: bool) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    if finish {
        tcp.shutdown().await.expect("shutdown");
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "server left the connection open after {} bytes",
        bytes.len()
    );
    answer
}

async fn still_serving(server: &TestServer) {
    let body = https_get(
        server.https,
        server.client_config(&["http/1.1"]),
        "localhost",
        "/api/v1/connection",
        &[],
    )
    .await;
    assert_eq!(
        json(&body)["tls"]["negotiated"]["version"]["name"],
        "TLS 1.3"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_on_the_tls_port_gets_a_400_that_says_so() {
    let server = TestServer::start().await;
    let answer = send(
        server.https,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        false,
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("speaks HTTPS"), "{text}");
    still_serving(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_records_are_closed_without_harm() {
    let server = TestServer::start().await;
    let hello = include_bytes!("fixtures/hellos/chromium_pq.bin");
    let mut lying_length = hello.to_vec();
    // cipher_suites length claims more bytes than the hello holds
    lying_length[5 + 4 + 2 + 32 + 1 + 32] = 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "record over 16,384 bytes",
            vec![0x16, 0x03, 0x01, 0xff, 0xff],
        ),
        (
            "handshake over the capture limit",
            vec![0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff],
        ),
        (
            "not a ClientHello",
            vec![0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00],
        ),
        ("zero-length record", vec![0x16, 0x03, 0x03, 0x00, 0x00]),
        ("garbage", (0..=255u8).rev().collect()),
        ("SSH banner", b"SSH-2.0-OpenSSH_9.2p1\r\n".to_vec()),
        ("lying cipher_suites length", lying_length),
    ];
    for (what, bytes) in &cases {
        let answer = send(server.https, bytes, false).await;
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "{what}: expected a close or a TLS alert, got {answer:?}"
        );
    }
    // Truncated hellos that then close: the attempt ends, nothing lingers.
    for cut in [1, 5, 100, 1460] {
        send(server.https, &hello[..cut], true).await;
    }
    still_serving(&server).await;
}
