//! Each way a handshake fails, produced by a real client or a real byte stream,
//! and read back the way a customer would: through the plain-HTTP listener's
//! JSON API for the caller's own address.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::Command;

const LOCAL: [u8; 4] = [127, 0, 0, 1];

/// A real ~1.9 KB post-quantum ClientHello, as Chromium sent it.
const CHROMIUM_HELLO: &[u8] = include_bytes!("fixtures/hellos/chromium_pq.bin");

async fn server() -> TestServer {
    TestServer::start_with(|mut c| {
        c.hello_timeout = Duration::from_secs(1);
        c.handshake_timeout = Duration::from_secs(2);
        c
    })
    .await
}

/// Polls the caller's attempts until `n` are recorded (attempts are recorded
/// when they end, which for a stall is after the server's timeout).
async fn wait_for_attempts(server: &TestServer, from: IpAddr, n: usize) -> Vec<Value> {
    for _ in 0..400 {
        let report = server.attempts_from(from).await;
        let attempts = report["attempts"].as_array().cloned().unwrap_or_default();
        if attempts.len() >= n {
            return attempts;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{n} attempts from {from} never appeared");
}

async fn only_attempt(server: &TestServer) -> Value {
    let attempts = wait_for_attempts(server, LOCAL.into(), 1).await;
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    attempts[0].clone()
}

fn finding<'a>(attempt: &'a Value, id: &str) -> &'a Value {
    attempt["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {:#}", attempt["findings"]))
}

fn evidence<'a>(finding: &'a Value, label: &str) -> &'a str {
    finding["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["label"] == label)
        .unwrap_or_else(|| panic!("no evidence {label:?} in {finding:#}"))["value"]
        .as_str()
        .unwrap()
}

fn fixes(finding: &Value) -> String {
    finding["fix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn s_client(server: &TestServer, args: &[&str]) {
    let status = Command::new("openssl")
        .args(["s_client", "-connect", &server.https.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("openssl runs");
    let _ = status; // failing is the point
}

#[tokio::test(flavor = "multi_thread")]
async fn tls11_client_is_a_version_mismatch_naming_tls11() {
    if !require_tool("openssl") {
        return;
    }
    let server = server().await;
    s_client(
        &server,
        &[
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-servername",
            "localhost",
        ],
    )
    .await;
    let attempt = only_attempt(&server).await;
    assert_eq!(attempt["outcome"]["kind"], "version_too_old");
    assert_eq!(attempt["outcome"]["offered"]["name"], "TLS 1.1");
    let f = finding(&attempt, "tls.version-too-old");
    assert_eq!(f["severity"], "error");
    assert_eq!(evidence(f, "highest version offered"), "TLS 1.1");
    assert_eq!(evidence(f, "legacy_version"), "TLS 1.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_only_cipher_is_no_shared_cipher_listing_the_offer() {
    if !require_tool("openssl") {
        return;
    }
    let server = server().await;
    s_client(
        &server,
        &[
            "-tls1_2",
            "-cipher",
            "AES128-SHA",
            "-servername",
            "localhost",
        ],
    )
    .await;
    let attempt = only_attempt(&server).await;
    assert_eq!(attempt["outcome"]["kind"], "no_shared_cipher");
    let f = finding(&attempt, "tls.no-shared-cipher");
    // -cipher AES128-SHA is TLS_RSA_WITH_AES_128_CBC_SHA (0x002f); OpenSSL adds the SCSV.
    assert_eq!(
        evidence(f, "client offered"),
        "TLS_RSA_WITH_AES_128_CBC_SHA, TLS_EMPTY_RENEGOTIATION_INFO_SCSV"
    );
    assert!(evidence(f, "this server accepts").contains("TLS_AES_128_GCM_SHA256"));
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_http_to_the_tls_port_is_not_tls() {
    if !require_tool("curl") {
        return;
    }
    let server = server().await;
    let url = format!("http://127.0.0.1:{}/", server.https.port());
    let _ = Command::new("curl")
        .args(["-s", "--max-time", "5", &url])
        .output()
        .await
        .expect("curl runs");
    let attempt = only_attempt(&server).await;
    assert_eq!(attempt["outcome"]["kind"], "not_tls");
    assert_eq!(attempt["outcome"]["what"], "plain_http");
    assert!(attempt["outcome"]["preview"]
        .as_str()
        .unwrap()
        .starts_with("GET / HTTP/1.1\\r\\n"));
    finding(&attempt, "tls.not-tls");
}

/// The seed incident: the first 1,460 bytes of a post-quantum ClientHello
/// arrive, the rest never does.
#[tokio::test(flavor = "multi_thread")]
async fn hello_cut_at_1460_bytes_is_incomplete_with_the_black_hole_finding() {
    let server = server().await;
    let mut tcp = TcpStream::connect(server.https).await.unwrap();
    tcp.write_all(&CHROMIUM_HELLO[..1460]).await.unwrap();
    let attempt = only_attempt(&server).await;
    drop(tcp);
    assert_eq!(attempt["outcome"]["kind"], "hello_incomplete");
    assert_eq!(attempt["outcome"]["received"], 1460);
    assert_eq!(attempt["outcome"]["expected"], CHROMIUM_HELLO.len());
    assert_eq!(attempt["outcome"]["ended"], "timeout");
    assert_eq!(attempt["tls"]["arrival"]["reads"][0]["bytes"], 1460);
    let f = finding(&attempt, "tls.hello-incomplete");
    assert_eq!(
        f["title"],
        format!("Your ClientHello stopped after 1,460 of {} bytes", "1,917")
    );
    let fix = fixes(f);
    assert!(fix.contains("--icmp-type fragmentation-needed"), "{fix}");
    // An IPv4 client is told about IPv4's message, not ICMPv6's.
    assert!(!fix.contains("--icmpv6-type packet-too-big"), "{fix}");
    assert!(fix.contains("TCPMSS --clamp-mss-to-pmtu"), "{fix}");

    // The plain-HTTP page, as the customer's curl shows it.
    let text = http_request_from(
        server.http,
        LOCAL.into(),
        "/",
        &[("User-Agent", "curl/8.0")],
    )
    .await;
    let headline = text.lines().nth(2).unwrap_or_default();
    assert!(
        headline.starts_with("Your ClientHello stopped after 1,460 of 1,917 bytes."),
        "{text}"
    );
    assert!(
        text.contains("FAILED ClientHello incomplete: 1,460 of 1,917 bytes"),
        "{text}"
    );
    assert!(text.contains("clamp-mss-to-pmtu"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_connection_is_no_data() {
    let server = server().await;
    let tcp = TcpStream::connect(server.https).await.unwrap();
    let attempt = only_attempt(&server).await;
    drop(tcp);
    assert_eq!(attempt["outcome"]["kind"], "no_data");
    assert_eq!(attempt["outcome"]["ended"], "timeout");
    assert_eq!(
        evidence(finding(&attempt, "tcp.no-data"), "bytes received"),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_mid_hello_is_reported_as_such() {
    let server = server().await;
    let tcp = TcpStream::connect(server.https).await.unwrap();
    let mut tcp = tcp;
    tcp.write_all(&CHROMIUM_HELLO[..700]).await.unwrap();
    tcp.flush().await.unwrap();
    // Let the server read the 700 bytes, then abort with RST (SO_LINGER 0).
    wait_until_read(&server).await;
    #[allow(deprecated)] // linger 0 sends RST at once; nothing blocks
    tcp.set_linger(Some(Duration::ZERO)).unwrap();
    drop(tcp);
    let attempt = only_attempt(&server).await;
    assert_eq!(attempt["outcome"]["kind"], "hello_incomplete");
    assert_eq!(attempt["outcome"]["received"], 700);
    assert_eq!(attempt["outcome"]["ended"], "reset");
}

/// A reset discards data the server has not read yet, so the 700 bytes must be
/// read before the RST is sent: give the server's task a moment (part of
/// staging the network event, not a wait for a result).
async fn wait_until_read(_server: &TestServer) {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_without_sni_and_with_a_foreign_sni() {
    if !require_tool("openssl") {
        return;
    }
    let server = server().await;
    s_client(&server, &["-noservername"]).await;
    s_client(&server, &["-servername", "not-served.example"]).await;
    let attempts = wait_for_attempts(&server, LOCAL.into(), 2).await;
    // newest first
    let (foreign, none) = (&attempts[0], &attempts[1]);
    assert_eq!(none["outcome"]["kind"], "completed");
    finding(none, "tls.no-sni");
    assert_eq!(foreign["outcome"]["kind"], "completed");
    let f = finding(foreign, "tls.sni-not-served");
    assert_eq!(evidence(f, "requested name (SNI)"), "not-served.example");
    assert!(evidence(f, "names served").contains("localhost"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_does_not_trust_us_sends_unknown_ca() {
    let server = server().await;
    // A client with an empty trust store: nothing can vouch for our certificate.
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    );
    let tcp = TcpStream::connect(server.https).await.unwrap();
    let result = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await;
    assert!(result.is_err(), "the client must reject our certificate");
    let attempt = only_attempt(&server).await;
    assert_eq!(attempt["outcome"]["kind"], "client_alert");
    // RFC 8446 §6.2: unknown_ca when no trusted root issued the chain.
    assert_eq!(attempt["outcome"]["alert"]["name"], "unknown_ca");
    let f = finding(&attempt, "tls.client-rejected-certificate");
    assert!(fixes(f).contains("-showcerts"));
}

#[tokio::test(flavor = "multi_thread")]
async fn attempts_are_shown_only_to_their_own_address() {
    let server = server().await;
    let other: IpAddr = [127, 0, 0, 2].into();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((other, 0).into()).unwrap();
    let mut tcp = socket.connect(server.https).await.unwrap();
    tcp.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
    let theirs = wait_for_attempts(&server, other, 1).await;
    assert_eq!(theirs[0]["outcome"]["what"], "ssh");

    let mine = server.attempts_from(LOCAL.into()).await;
    assert_eq!(mine["attempts"].as_array().unwrap().len(), 0, "{mine:#}");
    assert_eq!(mine["client"]["address"], "127.0.0.1");
    let page = http_request_from(server.http, LOCAL.into(), "/", &[("Accept", "text/html")]).await;
    assert!(
        !page.contains("SSH"),
        "127.0.0.1's page shows 127.0.0.2's attempt"
    );
    let json = json(
        &http_request_from(
            server.http,
            LOCAL.into(),
            "/",
            &[("Accept", "application/json")],
        )
        .await,
    );
    assert_eq!(json["recent_attempts"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_shared_group_and_no_shared_signature_scheme_list_both_sides() {
    if !require_tool("openssl") {
        return;
    }
    let server = server().await;
    // rustls offers no finite-field groups; our certificate key is ECDSA P-256.
    s_client(
        &server,
        &[
            "-tls1_3",
            "-groups",
            "ffdhe2048",
            "-servername",
            "localhost",
        ],
    )
    .await;
    s_client(
        &server,
        &[
            "-tls1_3",
            "-sigalgs",
            "RSA-PSS+SHA256",
            "-servername",
            "localhost",
        ],
    )
    .await;
    let attempts = wait_for_attempts(&server, LOCAL.into(), 2).await;
    let (sig, group) = (&attempts[0], &attempts[1]);
    assert_eq!(group["outcome"]["kind"], "no_shared_group");
    let f = finding(group, "tls.no-shared-group");
    assert_eq!(evidence(f, "client offered"), "ffdhe2048");
    assert!(evidence(f, "this server accepts").contains("X25519MLKEM768"));
    assert_eq!(sig["outcome"]["kind"], "no_shared_signature_scheme");
    let f = finding(sig, "tls.no-shared-signature-scheme");
    assert_eq!(evidence(f, "client accepts"), "rsa_pss_rsae_sha256");
    assert_eq!(
        evidence(f, "this server can sign with"),
        "ecdsa_secp256r1_sha256"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_offering_only_foo_is_no_common_alpn_naming_both_lists() {
    if !require_tool("openssl") {
        return;
    }
    let server = server().await;
    s_client(&server, &["-alpn", "foo", "-servername", "localhost"]).await;
    let attempt = only_attempt(&server).await;
    assert_eq!(
        attempt["outcome"]["kind"], "no_application_protocol",
        "{attempt:#}"
    );
    assert_eq!(attempt["outcome"]["offered"], serde_json::json!(["foo"]));
    // What the server's rustls config offers (certs::server_config).
    assert_eq!(
        attempt["outcome"]["supported"],
        serde_json::json!(["h2", "http/1.1"])
    );
    let f = finding(&attempt, "tls.no-common-alpn");
    assert_eq!(f["severity"], "error");
    assert_eq!(evidence(f, "client offered"), "foo");
    assert_eq!(evidence(f, "this server speaks"), "h2, http/1.1");
    assert!(!f["title"].as_str().unwrap().contains("QUIC"), "{f:#}");
}

/// HTTP/3's ALPN id alone, over TCP: what a client configured for QUIC sends
/// when its hello goes out on a TCP connection instead.
#[tokio::test(flavor = "multi_thread")]
async fn a_rustls_client_offering_only_h3_over_tcp_is_told_it_sent_a_quic_hello() {
    let server = server().await;
    let tcp = TcpStream::connect(server.https).await.unwrap();
    let result = tokio_rustls::TlsConnector::from(server.client_config(&["h3"]))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await;
    let err = result.expect_err("no protocol in common");
    // RFC 7301 §3.2: the server answers with no_application_protocol (120).
    assert!(
        err.to_string().contains("NoApplicationProtocol"),
        "the client saw {err}"
    );
    let attempt = only_attempt(&server).await;
    assert_eq!(
        attempt["outcome"]["kind"], "no_application_protocol",
        "{attempt:#}"
    );
    assert_eq!(attempt["outcome"]["offered"], serde_json::json!(["h3"]));
    let f = finding(&attempt, "tls.no-common-alpn");
    assert_eq!(evidence(f, "client offered"), "h3");
    let words = format!("{} {}", f["title"], f["explanation"]);
    assert!(words.contains("QUIC ClientHello"), "{words}");
    assert!(words.contains("over TCP"), "{words}");
    assert!(fixes(f).contains("h2, http/1.1"), "{f:#}");
}

/// A ClientHello that stops arriving is visible while it hangs, long before
/// the server's hello timeout ends it: the customer's page and check.sh get
/// their verdict within seconds, not after a minute.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_hello_shows_up_after_three_seconds_before_its_timeout() {
    let server = TestServer::start_with(|mut c| {
        c.hello_timeout = Duration::from_secs(60);
        c
    })
    .await;
    let mut tcp = TcpStream::connect(server.https).await.unwrap();
    tcp.write_all(&CHROMIUM_HELLO[..1460]).await.unwrap();
    let started = std::time::Instant::now();
    let attempt = loop {
        let attempts = server.attempts_from(LOCAL.into()).await;
        if let Some(a) = attempts["attempts"].get(0) {
            break a.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the hanging hello never showed up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(6),
        "shown after {waited:?}"
    );
    assert_eq!(
        attempt["outcome"]["kind"], "hello_incomplete",
        "{attempt:#}"
    );
    assert_eq!(attempt["outcome"]["ended"], "waiting");
    assert_eq!(attempt["outcome"]["received"], 1460);
    assert_eq!(attempt["outcome"]["expected"], CHROMIUM_HELLO.len());
    let f = finding(&attempt, "tls.hello-incomplete");
    assert!(
        f["explanation"].as_str().unwrap().contains("still waiting"),
        "{f:#}"
    );
    // The plain-HTTP report leads with it.
    let text = http_request_from(server.http, LOCAL.into(), "/", &[("User-Agent", "curl/8")]).await;
    assert!(
        text.contains("Your ClientHello stopped after 1,460 of 1,917 bytes."),
        "{text}"
    );
    drop(tcp);
}
