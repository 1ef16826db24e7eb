//! Graceful shutdown of the real binary: on SIGTERM it stops accepting (new
//! connections are refused), lets the request in flight finish, closes idle
//! keep-alive connections, and exits; a request still running when
//! `--shutdown-grace` ends is cut and the process exits on time. Also: JSON
//! logs (`--log-format json`) are one JSON object per line.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::process::Tlsdiag;

/// A request the server holds for 3 s before answering with 1,000 bytes.
const SLOW: &str = "GET /probe/down/1000?run=shutdown001&hold_ms=3000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Sends `request` on a new connection; reads the response in a thread.
fn send(addr: std::net::SocketAddr, request: &str) -> std::thread::JoinHandle<Vec<u8>> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    std::thread::spawn(move || {
        let mut response = Vec::new();
        let _ = tcp.read_to_end(&mut response);
        response
    })
}

/// Waits until connecting to `addr` is refused.
fn wait_refused(addr: std::net::SocketAddr, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => assert!(
                Instant::now() < deadline,
                "{addr} still accepts connections {within:?} after SIGTERM"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_refuses_new_connections_and_lets_the_request_in_flight_finish() {
    let mut server = Tlsdiag::start(&["--shutdown-grace", "10s", "--log-format", "json"]);
    // An idle keep-alive connection, one request already answered.
    let mut idle = TcpStream::connect(server.http).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 512];
    let n = idle.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &first[..n]);

    let started = Instant::now();
    let slow = send(server.http, SLOW);
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    let signalled = Instant::now();

    // New connections: refused, on both listeners.
    wait_refused(server.http, Duration::from_secs(2));
    wait_refused(server.https, Duration::from_secs(2));
    // The idle connection is closed, not kept to the end of the grace.
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let closed = idle.read(&mut first);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "idle connection still open: {closed:?}"
    );

    // The request in flight completes, in full.
    let response = slow.join().unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    // The payload is random bytes: counted as bytes, not text.
    assert_eq!(
        response.len() - head_end - 4,
        1000,
        "the whole body arrived"
    );
    assert!(started.elapsed() >= Duration::from_secs(3));

    // Then the process exits, well within the grace.
    let (status, at) = server
        .wait_exit(Duration::from_secs(5))
        .expect("tlsdiag did not exit after its last request");
    assert!(status.success(), "{status:?}");
    assert!(
        at.duration_since(signalled) < Duration::from_secs(6),
        "exited {:?} after SIGTERM",
        at.duration_since(signalled)
    );

    // Every log line is a JSON object, the shutdown included.
    std::thread::sleep(Duration::from_millis(100));
    let log = server.log();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("every connection finished"), "{log}");
}

#[test]
fn a_request_still_running_when_the_grace_ends_is_cut_and_the_process_exits_on_time() {
    let mut server = Tlsdiag::start(&["--shutdown-grace", "1s"]);
    let slow = send(server.http, SLOW);
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    let signalled = Instant::now();
    let (status, at) = server
        .wait_exit(Duration::from_secs(5))
        .expect("tlsdiag did not exit after its grace");
    let took = at.duration_since(signalled);
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(2500),
        "exited {took:?} after SIGTERM with a 1 s grace and a request due at 3 s"
    );
    // The request (due ~2.7 s after the signal) never got its answer.
    let response = slow.join().unwrap();
    assert!(
        !String::from_utf8_lossy(&response).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert!(server.log().contains("shutdown grace over"));
}
