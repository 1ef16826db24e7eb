//! The server's packet capture on loopback, with the real binary and real
//! clients: `tshark` (not our code) reads the pcapng a client downloads, and
//! finds its SYN with the MSS its kernel announced, its ClientHello with the
//! JA3 we reported and our ServerHello; a saved report keeps the run's
//! packets; another address gets nothing; and floods of connections with
//! 64 KiB hellos from one or many addresses stay within the stated memory.
//!
//! Needs root (the packet socket needs CAP_NET_RAW), curl and tshark.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process::Tlsdiag;
use common::*;

/// Root (CAP_NET_RAW) and the tools; with CI=true, missing ones fail.
fn available() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("packet capture tests need root (CAP_NET_RAW): run CI as root");
        }
        eprintln!("SKIPPED: packet capture needs root (CAP_NET_RAW)");
        return false;
    }
    require_tool("curl") && require_tool("tshark")
}

/// Downloads `url` from source address `from` into `to`: (status, content type).
fn download(url: &str, from: &str, to: &Path) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--interface", from, "-o"])
        .arg(to)
        .args(["-w", "%{http_code} %{content_type}", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, kind) = text.split_once(' ').unwrap_or((&text, ""));
    (code.parse().unwrap_or(0), kind.to_owned())
}

/// tshark's fields of every packet in `file` (one row per packet, `|` between
/// fields, `,` between repeated values), sequence numbers absolute.
fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(["-o", "tcp.relative_sequence_numbers:FALSE"])
        .args(["-T", "fields", "-E", "separator=|", "-E", "aggregator=,"]);
    if !filter.is_empty() {
        cmd.args(["-Y", filter]);
    }
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// The MSS a client on loopback announces: the interface's MTU, within the
/// largest IPv4 packet (65,535 bytes: the header's length field), less the
/// IPv4 and TCP headers (read from the machine, not from tlsdiag).
fn loopback_mss() -> u32 {
    let mtu: u32 = std::fs::read_to_string("/sys/class/net/lo/mtu")
        .expect("lo's MTU")
        .trim()
        .parse()
        .expect("a number");
    mtu.min(65_535) - 40
}

#[test]
fn tshark_finds_a_real_clients_syn_hello_and_our_flight_in_its_pcapng() {
    if !available() {
        return;
    }
    let server = Tlsdiag::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "https://localhost:{}/api/v1/connection",
        server.https.port()
    );
    let curl = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&server.cert)
        .arg(&url)
        .output()
        .expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "200",
        "curl's request"
    );

    let list = json(&http_get_from(server.http, [127, 0, 0, 1].into(), "/api/v1/attempts").rt());
    let attempt = list["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .find(|a| a["outcome"]["kind"] == "completed")
        .unwrap_or_else(|| panic!("curl's attempt in {list}"))
        .clone();
    let id = attempt["id"].as_u64().expect("id");
    let our_ja3 = attempt["tls"]["fingerprints"]["ja3_md5"]
        .as_str()
        .expect("our JA3");

    let file = dir.path().join("attempt.pcapng");
    let path = format!(
        "http://127.0.0.1:{}/api/v1/attempts/{id}/packets.pcapng",
        server.http.port()
    );
    let (status, kind) = download(&path, "127.0.0.1", &file);
    assert_eq!((status, kind.as_str()), (200, "application/x-pcapng"));

    let port = server.https.port().to_string();
    let rows = tshark(
        &file,
        "",
        &[
            "tcp.srcport",
            "tcp.dstport",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "tcp.options.mss_val",
            "tls.handshake.type",
            "tls.handshake.ja3",
            "frame.comment",
        ],
    );
    assert!(rows.len() >= 6, "a handshake's packets at least: {rows:?}");
    let client_port = &rows[0][0];
    // The SYN first, from the client, with the MSS its kernel announced.
    assert_eq!(
        (&rows[0][1], rows[0][2].as_str(), rows[0][3].as_str()),
        (&port, "1", "0")
    );
    assert_eq!(rows[0][4], loopback_mss().to_string(), "the SYN's MSS");
    assert!(
        rows[0][7].contains(&format!("tlsdiag attempt {id}")),
        "{rows:?}"
    );
    // Then our SYN-ACK.
    assert_eq!(
        (&rows[1][0], rows[1][2].as_str(), rows[1][3].as_str()),
        (&port, "1", "1")
    );
    // The ClientHello, whose JA3 tshark works out as we did.
    let hello = rows
        .iter()
        .find(|r| r[5].split(',').any(|t| t == "1"))
        .unwrap_or_else(|| panic!("no ClientHello in {rows:?}"));
    assert_eq!(&hello[0], client_port);
    assert_eq!(hello[6], our_ja3, "tshark's JA3 of the captured hello");
    // Our flight: the ServerHello, from our port.
    assert!(
        rows.iter()
            .any(|r| r[0] == port && r[5].split(',').any(|t| t == "2")),
        "no ServerHello from port {port}: {rows:?}"
    );
    // Every packet is this connection's.
    assert!(rows
        .iter()
        .all(|r| (&r[0] == client_port && r[1] == port) || (r[0] == port && &r[1] == client_port)));

    // Another address cannot have them: the id is not found for it.
    let other = dir.path().join("other.pcapng");
    let (status, _) = download(&path, "127.0.0.2", &other);
    assert_eq!(
        status, 404,
        "another address fetched attempt {id}'s packets"
    );
}

#[test]
fn a_saved_report_keeps_its_runs_packets_and_only_under_its_id() {
    if !available() || !require_tool("sh") {
        return;
    }
    let server = Tlsdiag::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let check = check_sh(&server);
    let stdout = check.stdout.clone();
    let id = check
        .report_id()
        .unwrap_or_else(|| panic!("no report link:\n{stdout}"));
    assert!(
        stdout.contains(&format!("/r/{id}/packets.pcapng")),
        "check.sh's answer links the packets:\n{stdout}"
    );
    let report = json(
        &http_get_from(
            server.http,
            [127, 0, 0, 1].into(),
            &format!("/api/v1/reports/{id}"),
        )
        .rt(),
    );
    assert_eq!(
        report["server_packets"]["path"],
        format!("/r/{id}/packets.pcapng"),
        "{}",
        report["server_packets"]
    );
    let run = report["probe"]["run"].as_str().expect("run id").to_owned();

    let file = dir.path().join("run.pcapng");
    let url = format!(
        "http://127.0.0.1:{}/r/{id}/packets.pcapng",
        server.http.port()
    );
    // A saved report is reached by its id, from anywhere (support opens it).
    let (status, kind) = download(&url, "127.0.0.3", &file);
    assert_eq!((status, kind.as_str()), (200, "application/x-pcapng"));
    // check.sh's ClientHello size ladder named the run in its ALPN: tshark
    // finds those hellos in the file, and the SYNs of each connection.
    let alpn = tshark(
        &file,
        "tls.handshake.type == 1",
        &["tls.handshake.extensions_alpn_str"],
    );
    let ladder = alpn
        .iter()
        .filter(|r| r[0].contains(&format!("tlsdiag-{run}")))
        .count();
    assert!(ladder >= 3, "the run's ladder hellos in the file: {alpn:?}");
    let syns = tshark(
        &file,
        "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        &["tcp.srcport"],
    );
    let connections = report["server_packets"]["connections"]
        .as_u64()
        .expect("count");
    assert_eq!(
        syns.len() as u64,
        connections,
        "one SYN per connection kept"
    );
    let comments = tshark(&file, "frame.comment", &["frame.comment"]);
    assert!(
        comments.iter().any(|r| r[0].contains("this run's")),
        "{comments:?}"
    );

    // Any other id, well-formed or not, has nothing.
    for other in ["0123456789abcdef0123456789abcdef", "nope"] {
        let url = format!(
            "http://127.0.0.1:{}/r/{other}/packets.pcapng",
            server.http.port()
        );
        let (status, _) = download(&url, "127.0.0.1", &dir.path().join("x"));
        assert_eq!(status, 404, "{other}");
    }
}

/// Runs check.sh against `server` as a customer would.
fn check_sh(server: &Tlsdiag) -> CheckSh {
    run_check_sh(server.http, &server.cert, None)
}

#[test]
fn without_the_capability_or_when_turned_off_the_report_says_why_there_are_no_packets() {
    if !available() || !require_tool("setpriv") {
        return;
    }
    // Root without CAP_NET_RAW (as a unit without it would run), then root
    // with capture turned off.
    let without_raw = [
        "setpriv",
        "--bounding-set",
        "-net_raw",
        "--inh-caps",
        "-net_raw",
    ];
    for (wrapper, args, why) in [
        (&without_raw[..], &[][..], "it needs CAP_NET_RAW"),
        (&[][..], &["--no-packet-capture"][..], "--no-packet-capture"),
    ] {
        let server = Tlsdiag::start_under(wrapper, args);
        let dir = tempfile::tempdir().expect("temp dir");
        let curl = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--cacert"])
            .arg(&server.cert)
            .arg(format!("https://localhost:{}/", server.https.port()))
            .status()
            .expect("curl");
        assert!(curl.success(), "HTTPS works without packets");
        let list =
            json(&http_get_from(server.http, [127, 0, 0, 1].into(), "/api/v1/attempts").rt());
        let id = list["attempts"][0]["id"].as_u64().expect("curl's attempt");
        let body = dir.path().join("answer");
        let url = format!(
            "http://127.0.0.1:{}/api/v1/attempts/{id}/packets.pcapng",
            server.http.port()
        );
        let (status, _) = download(&url, "127.0.0.1", &body);
        let text = std::fs::read_to_string(&body).unwrap_or_default();
        assert_eq!(status, 503, "{text}");
        assert!(text.contains(why), "{why}: {text}");

        let check = check_sh(&server);
        let id = check
            .report_id()
            .unwrap_or_else(|| panic!("the run still gets its report:\n{}", check.stdout));
        assert!(
            check.stdout.contains("No packets of this run: this server")
                && check.stdout.contains(why),
            "{why}:\n{}",
            check.stdout
        );
        let report = json(
            &http_get_from(
                server.http,
                [127, 0, 0, 1].into(),
                &format!("/api/v1/reports/{id}"),
            )
            .rt(),
        );
        assert!(report["server_packets"]["path"].is_null());
        assert!(report["server_packets"]["note"]
            .as_str()
            .is_some_and(|n| n.contains(why)));
        let url = format!(
            "http://127.0.0.1:{}/r/{id}/packets.pcapng",
            server.http.port()
        );
        assert_eq!(download(&url, "127.0.0.1", &body).0, 404);
    }
}

/// The value of each series of `name` in a scrape, by its label text.
fn series(scrape: &str, name: &str) -> BTreeMap<String, f64> {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let key = key.strip_prefix(name)?;
            (key.is_empty() || key.starts_with('{'))
                .then(|| (key.to_owned(), value.parse().unwrap_or(f64::NAN)))
        })
        .collect()
}

fn scrape(server: &Tlsdiag) -> String {
    let metrics = server.metrics.expect("metrics listener");
    http_get_from(metrics, [127, 0, 0, 1].into(), "/metrics").rt()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `count` connections from `from`, each sending a 64 KiB ClientHello
/// (a handshake header announcing it, then random bytes), at most 32 at once.
fn flood(to: SocketAddr, from: IpAddr, count: usize) {
    let mut hello = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xff, 0xfc];
    hello.resize(64 * 1024, 0);
    for (i, b) in hello.iter_mut().enumerate().skip(9) {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0];
    }
    for batch in (0..count).collect::<Vec<_>>().chunks(32) {
        let conns: Vec<_> = batch
            .iter()
            .filter_map(|_| {
                let socket =
                    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                        .ok()?;
                socket.bind(&SocketAddr::new(from, 0).into()).ok()?;
                socket
                    .connect_timeout(&to.into(), Duration::from_secs(2))
                    .ok()?;
                let mut stream: std::net::TcpStream = socket.into();
                let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                let _ = stream.write_all(&hello);
                Some(stream)
            })
            .collect();
        drop(conns);
    }
}

#[test]
fn floods_of_64_kib_hellos_stay_within_the_stated_memory() {
    if !available() {
        return;
    }
    // 1 MiB for packets: an address gets 128 KiB of it.
    let server = Tlsdiag::start(&["--packet-memory-mb", "1", "--metrics-addr", "127.0.0.1:0"]);
    let limit = 1024.0 * 1024.0;

    // A customer's handshake first, from its own address.
    let customer: IpAddr = [127, 0, 0, 2].into();
    let page = http_get_from(server.http, customer, "/healthz").rt();
    assert_eq!(page, "ok\n");
    let tls = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--interface",
            "127.0.0.2",
            "--cacert",
        ])
        .arg(&server.cert)
        .arg(format!("https://localhost:{}/", server.https.port()))
        .status()
        .expect("curl");
    assert!(tls.success());
    let rss_before = rss_kib(server.child.id());

    // One address floods: 400 connections, 25 MiB of hellos.
    flood(server.https, [127, 0, 0, 66].into(), 400);
    std::thread::sleep(Duration::from_millis(500));
    let after_one = scrape(&server);
    let memory = series(&after_one, "tlsdiag_packets_memory_bytes");
    let table = memory[r#"{part="table"}"#];
    assert!(table <= limit, "table {table} over the limit: {memory:?}");
    assert!(
        table <= limit / 8.0 + 128.0 * 1024.0,
        "one address held more than its share: {table}"
    );
    // Most of the flood's connections came and went through the table (a
    // burst can outrun the 1 MiB ring: those packets are counted as ring
    // drops, and never held).
    let dropped = series(&after_one, "tlsdiag_packets_connections_dropped_total");
    let ring_drops = series(&after_one, "tlsdiag_packets_ring_drops_total");
    assert!(
        dropped[r#"{why="evicted"}"#] > 100.0,
        "{dropped:?}, ring drops {ring_drops:?}"
    );
    // The customer's packets are still there.
    let list = json(&http_get_from(server.http, customer, "/api/v1/attempts").rt());
    let id = list["attempts"][0]["id"]
        .as_u64()
        .expect("the customer's attempt");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "http://127.0.0.1:{}/api/v1/attempts/{id}/packets.pcapng",
        server.http.port()
    );
    let (status, _) = download(&url, "127.0.0.2", &dir.path().join("c.pcapng"));
    assert_eq!(
        status, 200,
        "the customer's packets after one address's flood"
    );

    // Many addresses flood: 24 of them, 1,200 connections, 75 MiB.
    std::thread::scope(|s| {
        for host in 100..124u8 {
            let to = server.https;
            s.spawn(move || flood(to, [127, 0, 1, host].into(), 50));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let after_many = scrape(&server);
    let memory = series(&after_many, "tlsdiag_packets_memory_bytes");
    assert!(memory[r#"{part="table"}"#] <= limit, "{memory:?}");
    let kept = series(&after_many, "tlsdiag_packets_total");
    assert!(
        kept[r#"{fate="kept"}"#] > 1000.0,
        "the flood was captured: {kept:?}"
    );
    // The process grew by far less than the 100 MiB the floods sent: the
    // 1 MiB ring, the 1 MiB table, and each attempt's first 4 KiB.
    let grown_mib = rss_kib(server.child.id()).saturating_sub(rss_before) / 1024;
    eprintln!("RSS grew by {grown_mib} MiB during the floods");
    assert!(grown_mib < 24, "RSS grew by {grown_mib} MiB");
}

/// Runs a future to completion from a plain test thread.
trait Rt {
    type Out;
    fn rt(self) -> Self::Out;
}

impl<F: std::future::Future> Rt for F {
    type Out = F::Output;
    fn rt(self) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(self)
    }
}
