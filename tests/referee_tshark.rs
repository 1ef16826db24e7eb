//! Wireshark's dissector as an independent referee: each captured ClientHello is
//! wrapped into a pcap (text2pcap) and dissected by tshark; its JA3, cipher list,
//! extension list and SNI must equal ours.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::process::Command;

use common::require_tool;
use tlsdiag::fingerprint::Fingerprints;
use tlsdiag::hello::parse_client_hello;

const FIXTURES: &[&str] = &[
    "chromium_pq",
    "curl_openssl3",
    "gnutls_cli",
    "openssl_s_client_noservername",
    "openssl_s_client_tls12_sni",
    "openssl_s_client_tls13_default",
    "openssl_s_client_tls1_legacy",
];

/// tshark's fields for the first ClientHello in a pcap holding `bytes` as one
/// TCP segment to port 443.
fn tshark_fields(bytes: &[u8], fields: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let dump: String = bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:06x} {}\n", i * 16, hex.join(" "))
        })
        .collect();
    let txt = dir.path().join("hello.txt");
    let pcap = dir.path().join("hello.pcap");
    std::fs::write(&txt, dump).expect("write dump");
    let status = Command::new("text2pcap")
        .args(["-q", "-T", "50000,443"])
        .arg(&txt)
        .arg(&pcap)
        .status()
        .expect("text2pcap runs");
    assert!(status.success());
    let mut cmd = Command::new("tshark");
    cmd.args(["-r"])
        .arg(&pcap)
        .args(["-T", "fields", "-E", "separator=|", "-E", "aggregator=,"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    line.split('|').map(str::to_owned).collect()
}

#[test]
fn our_parse_and_ja3_match_tshark() {
    if !require_tool("tshark") || !require_tool("text2pcap") {
        return;
    }
    for name in FIXTURES {
        let path = format!(
            "{}/tests/fixtures/hellos/{name}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).expect("fixture");
        let hello = parse_client_hello(&bytes).expect("parses");
        let ours = Fingerprints::of(&hello);
        let theirs = tshark_fields(
            &bytes,
            &[
                "tls.handshake.ja3_full",
                "tls.handshake.ja3",
                "tls.handshake.ciphersuite",
                "tls.handshake.extension.type",
                "tls.handshake.extensions_server_name",
            ],
        );
        assert_eq!(theirs.len(), 5, "{name}: tshark gave {theirs:?}");
        assert_eq!(ours.ja3, theirs[0], "{name}: JA3 string");
        assert_eq!(ours.ja3_md5, theirs[1], "{name}: JA3 hash");
        let ciphers: Vec<String> = hello
            .cipher_suites
            .iter()
            .map(|c| format!("0x{:04x}", c.0))
            .collect();
        assert_eq!(ciphers.join(","), theirs[2], "{name}: cipher suites");
        let extensions: Vec<String> = hello
            .extensions
            .iter()
            .map(|e| e.kind.0.to_string())
            .collect();
        assert_eq!(extensions.join(","), theirs[3], "{name}: extension order");
        assert_eq!(hello.sni().unwrap_or(""), theirs[4], "{name}: SNI");
    }
}
