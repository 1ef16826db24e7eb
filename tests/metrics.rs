//! The Prometheus endpoint, as an operator's Prometheus sees it: the real
//! `tlsdiag` binary started with `--metrics-addr` and `--asn-db`, real clients
//! (rustls, `openssl s_client`, raw byte streams) from chosen loopback
//! addresses, and `/metrics` scraped and parsed. Expected values come from
//! what each test did, never from the server's code: how many attempts of
//! each kind, from which address, and the ClientHello sizes the clients
//! themselves produced.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::pki_types::ServerName;

/// RFC 5398 documentation ASNs for loopback. 127.0.10.0/24 is left out on
/// purpose: addresses there must fall back to their /24.
const TABLE: &str = "\
127.0.0.0\t127.0.9.255\t64500\tZZ\tTEST-NET-LOOPBACK
127.0.11.0\t127.255.255.255\t64501\tZZ\tTEST-NET-LOOPBACK-2
::1\t::1\t64502\tZZ\tTEST \"V6\" \\ LOOPBACK
";

// ---------------------------------------------------------------------------
// The server process

/// The binary with its metrics listener on, and the directory its AS table
/// lives in.
struct Tlsdiag {
    process: process::Tlsdiag,
    metrics: SocketAddr,
    _table: tempfile::TempDir,
}

impl Tlsdiag {
    fn start(table: tempfile::TempDir, args: &[&str]) -> Self {
        let mut all = vec![
            // Dual-stack: IPv4 clients arrive as ::ffff:127.x, ::1 as itself.
            "--https-addr",
            "[::]:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--hello-timeout",
            "2s",
            "--handshake-timeout",
            "2s",
        ];
        all.extend_from_slice(args);
        let process = process::Tlsdiag::start(&all);
        let metrics = process
            .metrics
            .unwrap_or_else(|| panic!("no metrics address logged:\n{}", process.log()));
        Self {
            process,
            metrics,
            _table: table,
        }
    }

    fn http(&self) -> SocketAddr {
        self.process.http
    }

    fn cert(&self) -> &Path {
        &self.process.cert
    }

    fn https_v4(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.process.https.port()))
    }

    fn https_v6(&self) -> SocketAddr {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, self.process.https.port()))
    }

    fn log_contains(&self, needle: &str) -> bool {
        self.process.log().contains(needle)
    }

    async fn scrape(&self) -> Scrape {
        let raw = http_get_raw(self.metrics, "/metrics").await;
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        Scrape::parse(body)
    }

    /// Scrapes until `ready` holds (what the test caused is counted
    /// asynchronously), then returns that scrape.
    async fn scrape_until(&self, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let scrape = self.scrape().await;
            if ready(&scrape) {
                return scrape;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last scrape:\n{}",
                    scrape.text
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn table_dir(table: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ip2asn-combined.tsv");
    std::fs::write(&path, table).unwrap();
    (dir, path)
}

/// Replaces the file as an operator should: write aside, then rename.
fn replace(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// ---------------------------------------------------------------------------
// A tiny exposition-format parser

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| parse_line(line).unwrap_or_else(|| panic!("bad line: {line:?}")))
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// Samples of `name` carrying all of `labels`.
    fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> Vec<&'a Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample of `name` with `labels`; 0 when absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.matching(name, labels).as_slice() {
            [] => 0.0,
            [one] => one.value,
            many => panic!("{name} {labels:?} matches {} samples", many.len()),
        }
    }

    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).iter().map(|s| s.value).sum()
    }
}

/// `name{k="v",...} value`, label values unescaped (`\\`, `\"`, `\n`).
fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (name, value) = line.split_once(' ')?;
            return Some(Sample {
                name: name.to_owned(),
                labels: BTreeMap::new(),
                value: value.trim().parse().ok()?,
            });
        }
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.char_indices().peekable();
    loop {
        let mut key = String::new();
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            if c != ',' {
                key.push(c);
            }
        }
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()?.1 {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        match chars.peek()?.1 {
            ',' => {
                chars.next();
                if chars.peek()?.1 == '}' {
                    chars.next();
                    break;
                }
            }
            '}' => {
                chars.next();
                break;
            }
            _ => return None,
        }
    }
    let end = chars.peek().map_or(rest.len(), |&(i, _)| i);
    Some(Sample {
        name: name.to_owned(),
        labels,
        value: rest[end..].trim().parse().ok()?,
    })
}

#[test]
fn the_test_parser_reads_escapes() {
    let s = parse_line(r#"m{a="x\"y\\z\n",b="2"} 7"#).unwrap();
    assert_eq!(s.labels["a"], "x\"y\\z\n");
    assert_eq!(s.labels["b"], "2");
    assert_eq!(s.value, 7.0);
    assert_eq!(parse_line("m 1.5").unwrap().value, 1.5);
}

// ---------------------------------------------------------------------------
// Clients

/// A TCP connection from a chosen source address.
async fn connect_from(from: IpAddr, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = if from.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

async fn http_get_raw(to: SocketAddr, path: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(to).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await.unwrap();
    response
}

/// Plain HTTP to the TLS port: not TLS.
async fn not_tls_from(from: IpAddr, to: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = connect_from(from, to).await;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
}

/// A full rustls handshake from `from`, then a GET; returns the ClientHello's
/// size as rustls put it on the wire, and whether the handshake completed.
async fn rustls_from(
    from: IpAddr,
    to: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> (usize, bool) {
    let tcp = connect_from(from, to).await.into_std().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut sock = tcp;
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(config, name).unwrap();
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello).unwrap();
        }
        sock.write_all(&hello).unwrap();
        let mut stream = rustls::Stream::new(&mut conn, &mut sock);
        let ok = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .is_ok();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let ok = ok && String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200");
        (hello.len(), ok)
    })
    .await
    .unwrap()
}

/// The first `cut` bytes of a real rustls ClientHello, then a clean close:
/// returns the whole hello's size (what its record header announces).
async fn hello_cut_from(
    from: IpAddr,
    to: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    cut: usize,
) -> usize {
    use tokio::io::AsyncWriteExt;
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    let mut tcp = connect_from(from, to).await;
    tcp.write_all(&hello[..cut]).await.unwrap();
    tcp.shutdown().await.unwrap();
    drop(tcp);
    hello.len()
}

/// A client that trusts nothing: it rejects our certificate with unknown_ca.
fn distrustful_config() -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    )
}

/// `openssl s_client` offering only TLS_RSA_WITH_AES_128_CBC_SHA, which we
/// do not accept.
async fn openssl_unsupported_cipher(to: SocketAddr) {
    let status = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &to.to_string()])
        .args([
            "-tls1_2",
            "-cipher",
            "AES128-SHA",
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("openssl runs");
    assert!(!status.success(), "the handshake must fail");
}

async fn post_results(http: SocketAddr) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!(
        r#"{{"run":"metrics0001","agent":"check.sh","client_time_ms":{},
            "down":[{{"bytes":512,"ok":true,"ms":3.5,"error":null}},{{"bytes":1400,"ok":false,"ms":8000,"error":"timeout"}}],
            "up":[{{"bytes":512,"ok":true,"ms":4.0,"error":null}}]}}"#,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
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

const ATTEMPTS: &str = "tlsdiag_tls_attempts_total";
const BY_NETWORK: &str = "tlsdiag_tls_attempts_by_network_total";
const OUTCOMES: [&str; 15] = [
    "completed",
    "hello_incomplete",
    "no_data",
    "not_tls",
    "malformed",
    "version",
    "cipher",
    "group",
    "signature",
    "alpn",
    "alert",
    "closed",
    "reset",
    "timeout",
    "other",
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread")]
async fn outcomes_are_counted_by_class_and_by_source_network() {
    if !require_tool("openssl") {
        return;
    }
    let (dir, table) = table_dir(TABLE);
    let server = Tlsdiag::start(dir, &["--asn-db", table.to_str().unwrap()]);
    let trusting = client_config_trusting(server.cert(), &["http/1.1"]);
    let v4 = ip("127.0.0.1");

    // From 127.0.0.1 (AS64500): two completed handshakes, plain HTTP, an
    // unsupported cipher, a hello cut off by a close, an alert.
    let mut sizes = Vec::new();
    for _ in 0..2 {
        let (size, ok) = rustls_from(v4, server.https_v4(), trusting.clone()).await;
        assert!(ok, "a trusting rustls client completes");
        sizes.push(size);
    }
    not_tls_from(v4, server.https_v4()).await;
    openssl_unsupported_cipher(server.https_v4()).await;
    sizes.push(hello_cut_from(v4, server.https_v4(), trusting.clone(), 600).await);
    let (size, ok) = rustls_from(v4, server.https_v4(), distrustful_config()).await;
    assert!(!ok, "a client trusting nothing rejects us");
    sizes.push(size);
    // From ::1 (AS64502, whose name needs escaping): one completed handshake.
    let (size, ok) = rustls_from(ip("::1"), server.https_v6(), trusting.clone()).await;
    assert!(ok);
    sizes.push(size);
    // From 127.0.10.5, which the table lacks: plain HTTP.
    not_tls_from(ip("127.0.10.5"), server.https_v4()).await;
    // A path test posted over plain HTTP, saved as a report.
    let answer = post_results(server.http()).await;
    let status = answer["status"].as_str().unwrap().to_owned();
    assert!(answer["report_url"].is_string(), "{answer:#}");

    let s = server
        .scrape_until("8 attempts counted overall and by network", |s| {
            s.sum(ATTEMPTS, &[]) == 8.0 && s.sum(BY_NETWORK, &[]) == 8.0
        })
        .await;
    let expected_total = [
        ("completed", 3.0),
        ("not_tls", 2.0),
        ("cipher", 1.0),
        ("hello_incomplete", 1.0),
        ("alert", 1.0),
    ];
    for outcome in OUTCOMES {
        let want = expected_total
            .iter()
            .find(|(o, _)| *o == outcome)
            .map_or(0.0, |(_, n)| *n);
        assert_eq!(
            s.get(ATTEMPTS, &[("outcome", outcome)]),
            want,
            "attempts with outcome {outcome}"
        );
    }
    assert_eq!(
        s.get(
            "tlsdiag_tls_client_alerts_total",
            &[("alert", "unknown_ca")]
        ),
        1.0
    );
    assert_eq!(s.sum("tlsdiag_tls_client_alerts_total", &[]), 1.0);

    // By network: the AS and its name from the table, the /24 fallback.
    let net = |network: &str, outcome: &str| {
        s.get(BY_NETWORK, &[("network", network), ("outcome", outcome)])
    };
    assert_eq!(net("AS64500", "completed"), 2.0);
    assert_eq!(net("AS64500", "not_tls"), 1.0);
    assert_eq!(net("AS64500", "cipher"), 1.0);
    assert_eq!(net("AS64500", "hello_incomplete"), 1.0);
    assert_eq!(net("AS64500", "alert"), 1.0);
    assert_eq!(s.sum(BY_NETWORK, &[("network", "AS64500")]), 6.0);
    assert_eq!(net("AS64502", "completed"), 1.0);
    assert_eq!(s.sum(BY_NETWORK, &[("network", "AS64502")]), 1.0);
    assert_eq!(net("127.0.10.0/24", "not_tls"), 1.0);
    assert_eq!(s.sum(BY_NETWORK, &[("network", "127.0.10.0/24")]), 1.0);
    assert_eq!(s.sum(BY_NETWORK, &[("network", "other")]), 0.0);
    let as64500 = s.matching(
        BY_NETWORK,
        &[("network", "AS64500"), ("outcome", "completed")],
    );
    assert_eq!(as64500[0].labels["asn"], "AS64500");
    assert_eq!(as64500[0].labels["as_name"], "TEST-NET-LOOPBACK");
    let as64502 = s.matching(
        BY_NETWORK,
        &[("network", "AS64502"), ("outcome", "completed")],
    );
    assert_eq!(as64502[0].labels["as_name"], "TEST \"V6\" \\ LOOPBACK");
    let fallback = s.matching(
        BY_NETWORK,
        &[("network", "127.0.10.0/24"), ("outcome", "not_tls")],
    );
    assert!(!fallback[0].labels.contains_key("asn"), "{:?}", fallback[0]);
    assert!(
        s.text.contains(r#"as_name="TEST \"V6\" \\ LOOPBACK""#),
        "escaped in the text itself"
    );

    // ClientHello sizes: the five rustls hellos (the cut one by what its header
    // announced) and openssl's, whose size is what the sum leaves.
    let sum = s.get("tlsdiag_client_hello_bytes_sum", &[]);
    let openssl = sum - sizes.iter().sum::<usize>() as f64;
    assert!(
        openssl > 0.0 && openssl <= 1024.0,
        "an openssl TLS 1.2 hello with one suite is small: {openssl}"
    );
    assert_eq!(s.get("tlsdiag_client_hello_bytes_count", &[]), 6.0);
    let all: Vec<f64> = sizes.iter().map(|&n| n as f64).chain([openssl]).collect();
    for bucket in s.matching("tlsdiag_client_hello_bytes_bucket", &[]) {
        let le = &bucket.labels["le"];
        let bound: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        let want = all.iter().filter(|&&n| n <= bound).count() as f64;
        assert_eq!(bucket.value, want, "hello bytes le={le} (sizes {all:?})");
    }
    for le in [
        "512", "1024", "1200", "1280", "1400", "1460", "1500", "1600", "2048", "4096", "8192",
    ] {
        assert_eq!(
            s.matching("tlsdiag_client_hello_bytes_bucket", &[("le", le)])
                .len(),
            1,
            "bucket {le}"
        );
    }
    // Handshake time: the three completed handshakes.
    assert_eq!(s.get("tlsdiag_tls_handshake_seconds_count", &[]), 3.0);

    // The path test and its report.
    assert_eq!(
        s.get(
            "tlsdiag_path_tests_total",
            &[("status", &status), ("agent", "check.sh")]
        ),
        1.0
    );
    assert_eq!(s.sum("tlsdiag_path_tests_total", &[]), 1.0);
    assert_eq!(s.get("tlsdiag_reports_saved_total", &[]), 1.0);

    // Connections: eight to HTTPS, one to plain HTTP (the post).
    let s = server
        .scrape_until("every connection closed", |s| {
            s.get("tlsdiag_connections_open", &[("listener", "https")]) == 0.0
        })
        .await;
    let conn = |name: &str, listener: &str| s.get(name, &[("listener", listener)]);
    assert_eq!(conn("tlsdiag_connections_accepted_total", "https"), 8.0);
    assert_eq!(conn("tlsdiag_connections_accepted_total", "http"), 1.0);
    assert_eq!(conn("tlsdiag_connections_shed_total", "https"), 0.0);
    assert_eq!(conn("tlsdiag_connections_refused_total", "https"), 0.0);
    assert_eq!(s.get("tlsdiag_asn_db_ranges", &[]), 3.0);
    assert_eq!(s.get("tlsdiag_network_events_dropped_total", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_one_network_place_the_second_network_is_other_and_shedding_is_counted() {
    let (dir, table) = table_dir(TABLE);
    let server = Tlsdiag::start(
        dir,
        &[
            "--asn-db",
            table.to_str().unwrap(),
            "--metrics-top-networks",
            "1",
            "--max-connections-per-address",
            "1",
        ],
    );
    let first = ip("127.0.0.3"); // AS64500
                                 // An idle connection, then a second from the same address: the first is
                                 // shed to make room (and, never having sent a byte, is no attempt).
    let idle = connect_from(first, server.https_v4()).await;
    server
        .scrape_until("the idle connection held", |s| {
            s.get("tlsdiag_connections_open", &[("listener", "https")]) == 1.0
        })
        .await;
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut second = connect_from(first, server.https_v4()).await;
        server
            .scrape_until("the idle connection shed", |s| {
                s.get("tlsdiag_connections_shed_total", &[("listener", "https")]) == 1.0
            })
            .await;
        second
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = second.read_to_end(&mut answer).await;
        assert!(answer.starts_with(b"HTTP/1.1 400"), "the second was served");
    }
    drop(idle);
    server
        .scrape_until("AS64500 holding the one place", |s| {
            s.get(
                BY_NETWORK,
                &[("network", "AS64500"), ("outcome", "not_tls")],
            ) == 1.0
        })
        .await;
    // A second network: no place left.
    not_tls_from(ip("127.1.0.1"), server.https_v4()).await; // AS64501
    not_tls_from(ip("127.0.10.9"), server.https_v4()).await; // 127.0.10.0/24
    let s = server
        .scrape_until("two attempts under other", |s| {
            s.get(BY_NETWORK, &[("network", "other"), ("outcome", "not_tls")]) == 2.0
        })
        .await;
    let networks: std::collections::BTreeSet<&str> = s
        .matching(BY_NETWORK, &[])
        .iter()
        .map(|m| m.labels["network"].as_str())
        .collect();
    assert_eq!(networks, ["AS64500", "other"].into_iter().collect());
    for outcome in OUTCOMES {
        assert_eq!(
            s.matching(BY_NETWORK, &[("outcome", outcome)]).len(),
            2,
            "N+1 series for {outcome}"
        );
    }
    assert!(!s.text.contains("AS64501"));
    assert_eq!(s.get(ATTEMPTS, &[("outcome", "not_tls")]), 3.0);
    assert_eq!(s.sum(ATTEMPTS, &[]), 3.0);
    assert_eq!(
        s.get(
            "tlsdiag_connections_accepted_total",
            &[("listener", "https")]
        ),
        4.0
    );
    assert_eq!(
        s.get(
            "tlsdiag_connections_refused_total",
            &[("listener", "https")]
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_table_is_reloaded_and_a_bad_one_keeps_the_old() {
    let (dir, table) = table_dir("127.0.0.0\t127.255.255.255\t64500\tZZ\tFIRST\n");
    let server = Tlsdiag::start(
        dir,
        &[
            "--asn-db",
            table.to_str().unwrap(),
            "--asn-db-reload-interval",
            "100ms",
        ],
    );
    let from = ip("127.0.0.1");
    let as_name = |s: &Scrape, network: &str| {
        s.matching(BY_NETWORK, &[("network", network), ("outcome", "not_tls")])
            .first()
            .map(|m| m.labels.get("as_name").cloned().unwrap_or_default())
    };
    not_tls_from(from, server.https_v4()).await;
    let s = server
        .scrape_until("the first table's AS", |s| {
            s.get(
                BY_NETWORK,
                &[("network", "AS64500"), ("outcome", "not_tls")],
            ) == 1.0
        })
        .await;
    assert_eq!(as_name(&s, "AS64500").as_deref(), Some("FIRST"));

    replace(
        &table,
        b"127.0.0.0\t127.255.255.255\t64511\tZZ\tSECOND\n::1\t::1\t64510\tZZ\tV6\n",
    );
    server
        .scrape_until("the new table loaded", |s| {
            s.get("tlsdiag_asn_db_reloads_total", &[]) == 1.0
        })
        .await;
    not_tls_from(from, server.https_v4()).await;
    let s = server
        .scrape_until("the second table's AS", |s| {
            s.get(
                BY_NETWORK,
                &[("network", "AS64511"), ("outcome", "not_tls")],
            ) == 1.0
        })
        .await;
    assert_eq!(as_name(&s, "AS64511").as_deref(), Some("SECOND"));
    assert_eq!(s.get("tlsdiag_asn_db_ranges", &[]), 2.0);

    // A broken file: refused, the log says why, the second table stays.
    replace(&table, b"127.0.0.0\tnot-an-address\t64512\tZZ\tTHIRD\n");
    server
        .scrape_until("the bad table refused", |s| {
            s.get("tlsdiag_asn_db_reload_failures_total", &[]) == 1.0
        })
        .await;
    assert!(
        server.log_contains("AS table not reloaded")
            && server.log_contains("line 1: range_end is not an IP address"),
        "{}",
        server.process.log()
    );
    not_tls_from(from, server.https_v4()).await;
    let s = server
        .scrape_until("counted under the table kept", |s| {
            s.get(
                BY_NETWORK,
                &[("network", "AS64511"), ("outcome", "not_tls")],
            ) == 2.0
        })
        .await;
    assert_eq!(s.get("tlsdiag_asn_db_reloads_total", &[]), 1.0);
    assert_eq!(s.get("tlsdiag_asn_db_ranges", &[]), 2.0);
    assert!(!s.text.contains("AS64512"));
}

#[test]
fn a_bad_table_at_start_stops_the_server_saying_why() {
    let (dir, table) = table_dir("1.0.0.0\t1.0.0.255\n");
    let out = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .args(["--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--metrics-addr", "127.0.0.1:0", "--asn-db"])
        .arg(&table)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--certs-dir")
        .arg(dir.path().join("certs"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("loading the AS table") && stderr.contains("line 1: missing AS_number"),
        "{stderr}"
    );
}

#[test]
fn without_metrics_addr_there_is_no_asn_db() {
    let out = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
        .args(["--asn-db", "/nonexistent.tsv"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--metrics-addr"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example alerting rules in docs/ are valid for Prometheus, and their
/// unit tests (docs/alerts_test.yml: a network whose completion rate drops
/// fires, a steady one and a tiny one do not) pass.
#[test]
fn the_example_alert_rules_pass_promtool() {
    if !require_tool("promtool") {
        return;
    }
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&docs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn connections_without_a_proxy_header_are_counted() {
    let server = Tlsdiag::start(tempfile::tempdir().unwrap(), &["--proxy-protocol"]);
    // A bare ClientHello and a plain GET, each where a PROXY header must come
    // first: both closed, one on each listener.
    let mut hello = connect_from(ip("127.0.0.1"), server.https_v4()).await;
    tokio::io::AsyncWriteExt::write_all(&mut hello, &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0])
        .await
        .unwrap();
    let mut get = connect_from(ip("127.0.0.1"), server.http()).await;
    tokio::io::AsyncWriteExt::write_all(&mut get, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let name = "tlsdiag_connections_proxy_rejected_total";
    let s = server
        .scrape_until("both connections refused", |s| {
            s.get(name, &[("listener", "https")]) == 1.0
                && s.get(name, &[("listener", "http")]) == 1.0
        })
        .await;
    assert_eq!(s.sum("tlsdiag_tls_attempts_total", &[]), 0.0, "{}", s.text);
}
