//! `--proxy-protocol`: the real binary behind a (test-played, then real
//! HAProxy) load balancer. Headers are written by hand from HAProxy's
//! specification (proxy-protocol.txt, sections 2.1 and 2.2), then a real
//! rustls handshake and request run over the same TCP stream. What a user
//! would notice is asserted: which address the attempt is filed under, the
//! balancer note in every format, no finding resting on the balancer's TCP
//! facts, refused connections without a header, and, with the flag off, a
//! header that is not trusted.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{body_of, client_config_trusting, json, require_tool};
use rustls::pki_types::ServerName;
use serde_json::Value;

/// Findings that could only come from the SYN, `TCP_INFO`, how the hello was
/// cut into reads, or our ICMP test: behind a balancer none may appear.
const TCP_BASED: &[&str] = &[
    "path.fragments-dropped",
    "path.router-icmp-missing",
    "path.icmp-filtered-toward-you",
    "path.icmp-test-unavailable",
    "path.flight-stalled",
    "path.response-stalled",
    "hello.slow-arrival",
];
const NOTE: &str = "net.behind-load-balancer";

/// A tlsdiag process of our own, its log collected.
struct Tlsdiag {
    child: Child,
    https: SocketAddr,
    http: SocketAddr,
    cert: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Tlsdiag {
    fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tlsdiag"))
            .args(["--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--hello-timeout", "2s"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--certs-dir")
            .arg(dir.path().join("certs"))
            .args(args)
            .env("RUST_LOG", "info,tlsdiag=debug")
            .env_remove("TLSDIAG_PROXY_PROTOCOL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, listening) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("tlsdiag listening") {
                    let _ = found.send(line.clone());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let line = listening
            .recv_timeout(Duration::from_secs(30))
            .expect("tlsdiag did not log its listening addresses within 30 s");
        let field = |key: &str| -> String {
            let rest = line
                .split_once(key)
                .unwrap_or_else(|| panic!("{key} in {line}"))
                .1;
            rest.split_whitespace().next().unwrap().to_owned()
        };
        let addr = |url: String| -> SocketAddr {
            url.split("://")
                .nth(1)
                .unwrap()
                .trim_end_matches('/')
                .parse()
                .unwrap()
        };
        Self {
            https: addr(field("https=")),
            http: addr(field("http=")),
            cert: PathBuf::from(field("cert=")),
            child,
            log,
            _dir: dir,
        }
    }

    fn log_lines_with(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Tlsdiag {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- Headers, from the specification -------------------------------------

fn v1(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    let family = if src.contains(':') { "TCP6" } else { "TCP4" };
    format!("PROXY {family} {src} {dst} {sport} {dport}\r\n").into_bytes()
}

/// Section 2.2: the 12-byte signature.
const SIG: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// v2 PROXY command (0x21) over TCP: family 0x11 (TCP over IPv4, 12 address
/// bytes) or 0x21 (TCP over IPv6, 36); addresses then ports, network order.
fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut h = SIG.to_vec();
    h.push(0x21);
    let mut addresses = Vec::new();
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.push(0x11);
            addresses.extend(s.octets());
            addresses.extend(d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            h.push(0x21);
            addresses.extend(s.octets());
            addresses.extend(d.octets());
        }
        _ => panic!("mixed families"),
    }
    addresses.extend(src.port().to_be_bytes());
    addresses.extend(dst.port().to_be_bytes());
    h.extend((addresses.len() as u16).to_be_bytes());
    h.extend(addresses);
    h
}

/// v2 LOCAL (0x20), family UNSPEC (0x00), no address bytes: a health check.
fn v2_local() -> Vec<u8> {
    let mut h = SIG.to_vec();
    h.extend([0x20, 0x00, 0x00, 0x00]);
    h
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---- Clients ------------------------------------------------------------

fn connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock
}

/// Writes `prefix` and the ClientHello in one write (the header and the
/// hello share a segment: the server must take exactly the header), finishes
/// a real rustls handshake over the same stream and GETs `path`. Returns the
/// ClientHello as rustls produced it and the response body.
fn tls_get_via(
    sock: TcpStream,
    prefix: &[u8],
    cert: &std::path::Path,
    path: &str,
) -> (Vec<u8>, String) {
    let mut sock = sock;
    let config = client_config_trusting(cert, &["http/1.1"]);
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    let mut first = prefix.to_vec();
    first.extend_from_slice(&hello);
    sock.write_all(&first).unwrap();
    let mut stream = rustls::Stream::new(&mut conn, &mut sock);
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: proxy-test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("TLS request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    (hello, body_of(&response))
}

fn tls_get(server: &Tlsdiag, prefix: &[u8], path: &str) -> (Vec<u8>, String) {
    tls_get_via(connect(server.https), prefix, &server.cert, path)
}

/// Plain HTTP after `prefix`; the whole response.
fn http_raw_via(mut sock: TcpStream, prefix: &[u8], path: &str) -> String {
    let mut request = prefix.to_vec();
    request.extend(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").bytes(),
    );
    sock.write_all(&request).unwrap();
    let mut response = Vec::new();
    let _ = sock.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

fn http_get(server: &Tlsdiag, prefix: &[u8], path: &str) -> String {
    body_of(http_raw_via(connect(server.http), prefix, path).as_bytes())
}

/// The attempts the plain-HTTP listener shows to the client a v1 header names.
fn attempts_of(server: &Tlsdiag, client: &str) -> Vec<Value> {
    let dst = if client.contains(':') {
        "2001:db8::1"
    } else {
        "203.0.113.1"
    };
    let body = http_get(server, &v1(client, dst, 40000, 80), "/api/v1/attempts");
    let report = json(&body);
    assert_eq!(report["client"]["address"], client, "{report}");
    report["attempts"].as_array().cloned().unwrap_or_default()
}

fn finding_ids(findings: &Value) -> Vec<String> {
    findings
        .as_array()
        .unwrap_or_else(|| panic!("findings: {findings}"))
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

/// What every TLS connection report behind a balancer must say.
fn assert_behind_balancer(report: &Value, client: &str, version: u64) {
    assert_eq!(report["client"]["address"], client, "{report}");
    let lb = &report["load_balancer"];
    assert_eq!(lb["address"], "127.0.0.1", "{report}");
    assert_eq!(lb["proxy_version"], version);
    assert_eq!(lb["kind"], "proxied");
    assert!(
        lb["note"].as_str().unwrap().contains("not the client's"),
        "{lb}"
    );
    // The balancer's SYN is kept for showing, never as the client's.
    assert!(report["syn"].is_null(), "client SYN shown: {report}");
    let ids = finding_ids(&report["findings"]);
    assert!(ids.iter().any(|id| id == NOTE), "{ids:?}");
    for id in TCP_BASED {
        assert!(!ids.iter().any(|f| f == id), "{id} fired behind a balancer");
    }
    assert_ne!(report["status"], "clear", "{report}");
    assert!(
        report["headline"]
            .as_str()
            .unwrap()
            .contains("load balancer"),
        "{}",
        report["headline"]
    );
}

/// A TLS report behind a balancer, plus what the capture kept: exactly the
/// client's TLS bytes, none of the header.
fn assert_tls_report(report: &Value, hello: &[u8], client: &str, version: u64) {
    assert_behind_balancer(report, client, version);
    assert!(report["tls"]["tcp_at_capture"].is_null(), "{report}");
    assert_eq!(report["tls"]["arrival"]["bytes"], hello.len() as u64);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(report["tls"]["raw_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, hello, "captured bytes are not exactly the ClientHello");
}

#[test]
fn v1_header_then_tls_is_filed_under_the_header_address() {
    let server = Tlsdiag::start(&["--proxy-protocol"]);
    let header = v1("198.51.100.7", "203.0.113.1", 51000, 443);
    let (hello, body) = tls_get(&server, &header, "/api/v1/connection");
    let report = json(&body);
    assert_tls_report(&report, &hello, "198.51.100.7", 1);
    assert_eq!(report["client"]["port"], 51000);
    assert_eq!(report["load_balancer"]["destination"], "203.0.113.1:443");

    // The attempt is the header address's, with the balancer recorded; no
    // other address sees it.
    let attempts = attempts_of(&server, "198.51.100.7");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0]["succeeded"], true);
    assert_eq!(attempts[0]["load_balancer"]["address"], "127.0.0.1");
    assert!(attempts_of(&server, "198.51.100.8").is_empty());
    assert!(attempts_of(&server, "127.0.0.1").is_empty());

    // Text and HTML say it too.
    let (_, text) = tls_get(&server, &header, "/?format=text");
    assert!(text.contains("load balancer"), "{text}");
    assert!(text.contains("not the client's"), "{text}");
    let (_, html) = tls_get(&server, &header, "/?format=html");
    assert!(html.contains("id=\"load-balancer\""), "{html}");
    assert!(html.contains("not the client&#39;s") || html.contains("not the client's"));
}

#[test]
fn v2_ipv4_and_ipv6_headers_name_the_client() {
    let server = Tlsdiag::start(&["--proxy-protocol"]);
    let header = v2(sa("198.51.100.7:51000"), sa("203.0.113.1:443"));
    let (hello, body) = tls_get(&server, &header, "/api/v1/connection");
    assert_tls_report(&json(&body), &hello, "198.51.100.7", 2);

    let header6 = v2(sa("[2001:db8::7]:51001"), sa("[2001:db8::1]:443"));
    let (hello6, body6) = tls_get(&server, &header6, "/api/v1/connection");
    let report6 = json(&body6);
    assert_tls_report(&report6, &hello6, "2001:db8::7", 2);
    assert_eq!(report6["client"]["port"], 51001);

    assert_eq!(attempts_of(&server, "198.51.100.7").len(), 1);
    assert_eq!(attempts_of(&server, "2001:db8::7").len(), 1);
}

#[test]
fn the_plain_http_listener_takes_both_versions() {
    let server = Tlsdiag::start(&["--proxy-protocol"]);
    for (header, version) in [
        (v1("198.51.100.7", "203.0.113.1", 51000, 80), 1),
        (v2(sa("198.51.100.7:51000"), sa("203.0.113.1:80")), 2),
    ] {
        let report = json(&http_get(&server, &header, "/api/v1/connection"));
        assert_eq!(report["connection"]["scheme"], "http");
        assert_behind_balancer(&report, "198.51.100.7", version);
        let text = http_get(&server, &header, "/?format=text");
        assert!(text.contains("load balancer"), "{text}");
    }
    // An HTTPS attempt from that client shows on its plain-HTTP report.
    let (_, _) = tls_get(
        &server,
        &v1("198.51.100.7", "203.0.113.1", 51002, 443),
        "/healthz",
    );
    let report = json(&http_get(
        &server,
        &v1("198.51.100.7", "203.0.113.1", 51003, 80),
        "/api/v1/connection",
    ));
    assert_eq!(
        report["recent_attempts"].as_array().unwrap().len(),
        1,
        "{report}"
    );
}

#[test]
fn a_local_health_check_keeps_the_balancer_address_and_is_marked() {
    let server = Tlsdiag::start(&["--proxy-protocol"]);
    let report = json(&http_get(&server, &v2_local(), "/api/v1/connection"));
    assert_eq!(report["client"]["address"], "127.0.0.1");
    assert_eq!(report["load_balancer"]["kind"], "health_check", "{report}");
    let health = http_raw_via(connect(server.http), &v2_local(), "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // A LOCAL connection to the HTTPS port that closes at once is the
    // balancer probing the port, not an attempt.
    let mut probe = connect(server.https);
    probe.write_all(&v2_local()).unwrap();
    drop(probe);
    std::thread::sleep(Duration::from_millis(300));
    assert!(attempts_of(&server, "127.0.0.1").is_empty());
}

/// Writes `bytes` and waits for the server to close; returns what it sent
/// back and how long closing took.
fn closed_after(addr: SocketAddr, bytes: &[u8]) -> (usize, Duration) {
    let mut sock = connect(addr);
    let start = Instant::now();
    let _ = sock.write_all(bytes);
    let mut got = Vec::new();
    let _ = sock.read_to_end(&mut got); // EOF or a reset: closed either way
    (got.len(), start.elapsed())
}

#[test]
fn without_a_valid_header_connections_are_closed_within_bounds() {
    let mut server = Tlsdiag::start(&["--proxy-protocol"]);
    let tls_hello = include_bytes!("fixtures/hellos/chromium_pq.bin");
    let mut too_long_v1 = b"PROXY UNKNOWN ".to_vec();
    too_long_v1.resize(300, b'x');
    let mut huge_v2 = SIG.to_vec();
    huge_v2.extend([0x21, 0x11, 0xff, 0xff]);
    let mut bad_sig = SIG.to_vec();
    bad_sig[7] = b'X';
    bad_sig.extend([0x21, 0x11, 0, 12]);
    let cases: [(&str, SocketAddr, &[u8]); 7] = [
        ("a bare ClientHello", server.https, tls_hello),
        (
            "plain HTTP",
            server.http,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        ("garbage", server.https, b"HELLO THERE\r\n"),
        ("a v1 line over 107 bytes", server.https, &too_long_v1),
        ("a v2 length over the bound", server.http, &huge_v2),
        ("a v2 signature that does not match", server.https, &bad_sig),
        (
            "an invalid v1 address",
            server.http,
            b"PROXY TCP4 999.1.1.1 203.0.113.1 1 2\r\n",
        ),
    ];
    for (what, addr, bytes) in cases {
        let (answered, took) = closed_after(addr, bytes);
        assert_eq!(answered, 0, "{what}: the server answered");
        assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
    }
    // A header that never finishes is cut at the deadline (--hello-timeout 2s
    // here, below the 5 s fixed bound), and silence too.
    for (what, bytes) in [
        ("a header that stalls", &b"PROXY TCP4 198.51.100.7 "[..]),
        ("silence", &b""[..]),
    ] {
        let (answered, took) = closed_after(server.https, bytes);
        assert_eq!(answered, 0, "{what}");
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
            "{what}: closed after {took:?}"
        );
    }
    // Every one was refused with a reason in the log, none became an attempt,
    // and the server still serves.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        server.log_lines_with("no valid PROXY header") >= 9,
        "{:#?}",
        server.log.lock().unwrap()
    );
    assert!(server.alive());
    for client in ["127.0.0.1", "198.51.100.7"] {
        assert!(
            attempts_of(&server, client).is_empty(),
            "attempt filed under {client}"
        );
    }
    let (_, body) = tls_get(
        &server,
        &v1("198.51.100.9", "203.0.113.1", 5, 443),
        "/healthz",
    );
    assert!(!body.is_empty());
}

#[test]
fn with_the_flag_off_a_header_is_not_trusted() {
    let server = Tlsdiag::start(&[]);
    let tls_hello = include_bytes!("fixtures/hellos/chromium_pq.bin");
    for header in [
        v1("198.51.100.7", "203.0.113.1", 51000, 443),
        v2(sa("198.51.100.7:51000"), sa("203.0.113.1:443")),
    ] {
        let mut bytes = header;
        bytes.extend_from_slice(tls_hello);
        let (answered, _) = closed_after(server.https, &bytes);
        assert_eq!(answered, 0);
    }
    // Filed as not-TLS under the real TCP peer, naming what it looks like.
    let mut attempts = Vec::new();
    for _ in 0..100 {
        let body =
            common::body_of(http_raw_via(connect(server.http), b"", "/api/v1/attempts").as_bytes());
        let report = json(&body);
        assert_eq!(report["client"]["address"], "127.0.0.1");
        attempts = report["attempts"].as_array().cloned().unwrap_or_default();
        if attempts.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for a in &attempts {
        assert_eq!(a["outcome"]["kind"], "not_tls", "{a}");
        assert_eq!(a["outcome"]["what"], "proxy_protocol", "{a}");
        assert!(a["load_balancer"].is_null());
        let not_tls = a["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == "tls.not-tls")
            .unwrap_or_else(|| panic!("no tls.not-tls in {a}"));
        assert!(
            not_tls["title"]
                .as_str()
                .unwrap()
                .contains("PROXY protocol"),
            "{not_tls}"
        );
    }
    // On the plain-HTTP port it is just a bad request.
    let raw = http_raw_via(
        connect(server.http),
        &v1("198.51.100.7", "203.0.113.1", 51000, 80),
        "/api/v1/connection",
    );
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
}

// ---- Through a real HAProxy ---------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A connection from another loopback address, so the client and the
/// balancer (127.0.0.1) differ.
fn try_connect_from(last: u8, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, last], 0)).into())?;
    socket.connect(&addr.into())?;
    let sock: TcpStream = socket.into();
    sock.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(sock)
}

fn connect_from_127_0_0_2(addr: SocketAddr) -> TcpStream {
    try_connect_from(2, addr).expect("connect from 127.0.0.2")
}

#[test]
fn through_haproxy_send_proxy_v2_and_v1() {
    if !require_tool("haproxy") {
        return;
    }
    let server = Tlsdiag::start(&["--proxy-protocol"]);
    let dir = tempfile::tempdir().unwrap();
    let (tls_port, http_port) = (free_port(), free_port());
    let config = format!(
        "global\n  maxconn 100\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend tls_in\n  bind 127.0.0.1:{tls_port}\n  default_backend tls_out\n\
         backend tls_out\n  server tlsdiag {} send-proxy-v2\n\
         frontend http_in\n  bind 127.0.0.1:{http_port}\n  default_backend http_out\n\
         backend http_out\n  server tlsdiag {} send-proxy\n",
        server.https, server.http
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let haproxy = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("haproxy starts");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let haproxy = Kill(haproxy);
    let tls_front = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let http_front = SocketAddr::from(([127, 0, 0, 1], http_port));
    let deadline = Instant::now() + Duration::from_secs(10);
    // Probed from 127.0.0.3: HAProxy relays even these empty connections.
    while try_connect_from(3, tls_front).is_err() || try_connect_from(3, http_front).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (hello, body) = tls_get_via(
        connect_from_127_0_0_2(tls_front),
        b"",
        &server.cert,
        "/api/v1/connection",
    );
    let report = json(&body);
    assert_tls_report(&report, &hello, "127.0.0.2", 2);
    assert_eq!(
        report["load_balancer"]["destination"],
        tls_front.to_string()
    );

    let raw = http_raw_via(
        connect_from_127_0_0_2(http_front),
        b"",
        "/api/v1/connection",
    );
    let report = json(&body_of(raw.as_bytes()));
    assert_behind_balancer(&report, "127.0.0.2", 1);
    // The HTTPS attempt is on record for 127.0.0.2, not for HAProxy's address.
    assert_eq!(
        report["recent_attempts"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert!(attempts_of(&server, "127.0.0.1").is_empty());
    drop(haproxy);
}
