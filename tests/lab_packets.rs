//! The packets of an attempt (issue #29), in the namespace lab, against a
//! referee: the seed's client→server black hole (`common::netns`: an MTU 1,400
//! r1–r2 link whose router, r1, never sends "fragmentation needed" / "packet
//! too big"). openssl sends a ~1,900-byte ClientHello from a client whose own
//! link is 1,500: its first, full-size segment vanishes at r1, the later one
//! arrives out of order, and tlsdiag sends its own ICMP toward the client.
//!
//! A `tcpdump` started by the test on the server namespace's interface before
//! the client connects is the referee; the attempt's pcapng is fetched from
//! the client namespace over plain HTTP (`/api/v1/attempts/{id}/packets.pcapng`)
//! and both files are decoded by tshark, never by our code. The pcapng must
//! show:
//!
//! 1. the ClientHello's later segment arriving first, out of order: its
//!    sequence number is the SYN's + 1 + one full-size segment, the size the
//!    lab's 1,500-byte client link makes (tshark: "previous segment not
//!    captured"), and the first segment missing;
//! 2. our ICMP "fragmentation needed" (IPv6: "packet too big") toward the
//!    client, quoting the connection, with a comment;
//! 3. where the client's edge passes it, the missing bytes again in smaller
//!    segments that fit the lab's narrow link; where the edge drops it (the
//!    seed incident's firewall), never;
//! 4. the connection's TCP and ICMP packets equal to tcpdump's, field by
//!    field at the IP level (tcpdump sees Ethernet frames, the pcapng raw IP),
//!    in the same order, each with its direction flag.
//!
//! Also: link type RAW (101), nanosecond timestamps, the attempt's id in the
//! first packet's comment, the same file over HTTPS, `404` for another
//! address. IPv4 and IPv6, each edge, every run in a lab of its own, all at
//! once; and check.sh's saved report's pcapng (`/r/{id}/packets.pcapng`), each
//! connection against tcpdump. About 10 s. The captures are left in
//! `target/lab/packets-*`.
//!
//! Needs root, the lab's tools, openssl, tcpdump, tshark and capinfos (with
//! CI=true their absence fails the test).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::{self, Lab, LabSpec, HTTPS_PORT, HTTP_PORT};
use serde_json::Value;

/// The MTU of every lab link but the narrow r1–r2 one (`common::netns`): the
/// client's own link, so its full-size segments are this big.
const EDGE_MTU: u32 = 1500;
const TCP_HEADER: u32 = 20;
/// The TCP timestamp option as Linux sends it (with its two NOPs).
const TIMESTAMP_OPTION: u32 = 12;
/// LINKTYPE_RAW: IP packets without a link header.
const LINKTYPE_RAW: u16 = 101;
/// The server namespace's interface (toward r2), where the referee listens.
const SERVER_IF: &str = "to-r2";
/// How far apart tlsdiag's and tcpdump's timestamps of one packet may be: both
/// are the kernel's.
const TIME_SLACK: f64 = 0.01;
/// Tools beyond the lab's own.
const TOOLS: [&str; 4] = ["openssl", "tcpdump", "tshark", "capinfos"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Edge {
    /// Only the router's own ICMP is missing: ours reaches the client.
    PassesIcmp,
    /// The client's edge drops forwarded ICMP too (the seed's firewall).
    DropsIcmp,
}

#[test]
fn an_attempts_pcapng_shows_the_black_hole_as_tcpdump_saw_it() {
    if !requirements_met() || !netns::available() {
        return;
    }
    let mut runs = Vec::new();
    let mut letter = b'a';
    for v6 in [false, true] {
        for edge in [Edge::PassesIcmp, Edge::DropsIcmp] {
            let name = format!("{}-{edge:?}", if v6 { "v6" } else { "v4" });
            let tag = format!("p{}", letter as char);
            runs.push(std::thread::spawn(move || {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(&tag, &name, v6, edge)
                }));
                (name, outcome)
            }));
            letter += 1;
        }
    }
    let mut failures = Vec::new();
    for run in runs {
        let (name, outcome) = run.join().unwrap();
        match outcome {
            Ok(summary) => eprintln!("{name:>14} ok: {summary}"),
            Err(panic) => failures.push(format!("{name}: {}", netns::panic_text(&*panic))),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Root and every tool, all named at once when something is missing: with
/// CI=true a failure, otherwise a skip with a message.
fn requirements_met() -> bool {
    let mut missing = Vec::new();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        missing.push("root (id -u is not 0)".to_owned());
    }
    let lab_tools = [
        "ip",
        "iptables",
        "ip6tables",
        "ethtool",
        "sysctl",
        "curl",
        "timeout",
        "bash",
    ];
    for tool in lab_tools.iter().chain(&TOOLS) {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            missing.push(format!("{tool} (not installed)"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "the packet-capture lab test needs {what}: .ci/run must run it as root with \
             them installed (apt-get install tcpdump tshark openssl ...)"
        );
    }
    eprintln!("SKIPPED: the packet-capture lab test needs {what}");
    false
}

fn run(tag: &str, name: &str, v6: bool, edge: Edge) -> String {
    let base = LabSpec::client_to_server_black_hole();
    let spec = LabSpec {
        drop_forwarded_icmp_toward_client: edge == Edge::DropsIcmp,
        ..if v6 { base.v6() } else { base }
    };
    let ip_header = if v6 { 40 } else { 20 };
    assert!(
        EDGE_MTU > spec.mtu,
        "the lab's full-size packets must not fit its narrow link"
    );
    let scratch = tempfile::tempdir().unwrap();
    let mut lab = Lab::build(tag, &spec);
    lab.start_server();
    let (client, server) = (lab.client_ip(), lab.server_ip());
    let host = lab.server_host();

    let referee_file = kept(&format!("packets-{name}-tcpdump"), "pcap");
    let ours_file = kept(&format!("packets-{name}-tlsdiag"), "pcapng");
    let referee = Referee::start(&lab, &referee_file);

    let (hello_bytes, rescued) = openssl_handshake(&lab, v6);
    match edge {
        Edge::PassesIcmp => assert!(rescued, "the handshake was not rescued by our ICMP"),
        Edge::DropsIcmp => assert!(!rescued, "the handshake crossed a filtering edge"),
    }
    let attempt = ended_attempt_with_icmp(&lab, &host);
    let id = attempt["id"].as_u64().unwrap();
    // The connection's last packets (FIN, ACK) are on their way as openssl
    // exits.
    std::thread::sleep(Duration::from_millis(500));

    let path = format!("/api/v1/attempts/{id}/packets.pcapng");
    let (status, content_type) = fetch(
        &lab,
        &lab.client,
        &format!("http://{host}:{HTTP_PORT}{path}"),
        &ours_file,
    );
    let body =
        || String::from_utf8_lossy(&std::fs::read(&ours_file).unwrap_or_default()).into_owned();
    assert_eq!(status, 200, "GET {path} over plain HTTP: {}", body());
    assert_eq!(content_type, "application/x-pcapng", "GET {path}");
    let tcpdump_said = referee.stop();
    assert!(
        tcpdump_said
            .lines()
            .any(|l| l.trim() == "0 packets dropped by kernel"),
        "the referee lost packets: {tcpdump_said}"
    );

    // The file: raw IP, nanoseconds.
    let idb_link_types = pcapng_link_types(&ours_file);
    assert!(
        !idb_link_types.is_empty() && idb_link_types.iter().all(|&l| l == LINKTYPE_RAW),
        "interface link types {idb_link_types:?}, not RAW ({LINKTYPE_RAW})"
    );
    let info = capinfos(&ours_file);
    assert!(info.contains("Encapsulation = Raw IP"), "capinfos:\n{info}");
    assert!(
        info.contains("Time precision = nanoseconds (9)"),
        "capinfos:\n{info}"
    );

    // The referee's view of the connection: the only SYN to the HTTPS port.
    let referee_all = decode(&referee_file, v6, &format!("tcp.port == {HTTPS_PORT}"));
    let syns: Vec<&Pkt> = referee_all
        .iter()
        .filter(|p| p.is_syn() && p.src() == client)
        .collect();
    assert_eq!(
        syns.len(),
        1,
        "the referee saw {} SYNs to port {HTTPS_PORT}: {syns:#?}",
        syns.len()
    );
    let syn = syns[0].clone();
    let cport = syn.sport.clone();
    let connection = format!("tcp.port == {HTTPS_PORT} && tcp.port == {cport}");
    let theirs = decode(&referee_file, v6, &connection);
    let ours = decode(&ours_file, v6, "");
    let table = || {
        format!(
            "--- tlsdiag's pcapng ({}) ---\n{}\n--- tcpdump ({}) ---\n{}",
            ours_file.display(),
            rows(&ours),
            referee_file.display(),
            rows(&theirs)
        )
    };
    assert!(!ours.is_empty(), "the pcapng holds no packets: {}", table());
    for p in &ours {
        assert!(
            p.of_connection(&cport),
            "a packet of another connection in attempt {id}'s pcapng: {p:?}\n{}",
            table()
        );
    }

    // The attempt is that connection, and its first packet says so.
    if let Some(sequence) = attempt["syn"]["sequence"].as_u64() {
        assert_eq!(
            Some(sequence as u32),
            syn.seq(),
            "attempt {id} is not the connection tcpdump saw"
        );
    }
    let first = &ours[0];
    assert!(
        first.is_syn() && first.src() == client,
        "the pcapng does not start with the client's SYN: {}",
        table()
    );
    assert!(
        first
            .comment
            .starts_with(&format!("tlsdiag attempt {id}: ")),
        "the first packet's comment is {:?}",
        first.comment
    );

    // Directions, as the lab routes them.
    for p in &ours {
        let expected = if p.src() == client {
            1
        } else if p.src() == server {
            2
        } else {
            panic!("a packet from {} in the pcapng: {}", p.src(), table())
        };
        assert_eq!(
            p.direction,
            Some(expected),
            "frame {}: direction flag {:?}, expected {expected} (1 inbound, 2 outbound)\n{}",
            p.number,
            p.direction,
            table()
        );
    }

    // What the lab makes of the hello: one full-size segment (the client's
    // 1,500-byte link, the timestamp option if both SYNs carry it), then the
    // rest.
    let syn_ack = ours
        .iter()
        .find(|p| p.is_syn_ack())
        .unwrap_or_else(|| panic!("no SYN-ACK in the pcapng: {}", table()));
    assert_eq!(
        syn.mss,
        (EDGE_MTU - ip_header - TCP_HEADER).to_string(),
        "the client's SYN MSS is not its 1,500-byte link's"
    );
    let timestamps = !syn.tsval.is_empty() && !syn_ack.tsval.is_empty();
    let full = EDGE_MTU - ip_header - TCP_HEADER - if timestamps { TIMESTAMP_OPTION } else { 0 };
    assert!(
        hello_bytes > full && hello_bytes <= 2 * full,
        "a {hello_bytes}-byte ClientHello is not two segments of at most {full}"
    );
    let isn = syn.seq().unwrap();
    let hole = isn.wrapping_add(1);
    let later = hole.wrapping_add(full);
    let client_data = |p: &Pkt| p.is_tcp() && p.src() == client && p.len > 0;

    // 1. The later segment first, out of order; the first one missing.
    let (ooo_at, ooo) = ours
        .iter()
        .enumerate()
        .find(|(_, p)| client_data(p))
        .unwrap_or_else(|| panic!("no data from the client in the pcapng: {}", table()));
    assert_eq!(
        (ooo.seq(), ooo.len),
        (Some(later), hello_bytes - full),
        "the client's first data segment to arrive is not the hello's later one \
         (SYN {isn} + 1 + {full}, {} bytes): {}",
        hello_bytes - full,
        table()
    );
    assert!(
        ooo.expert.contains("Previous segment(s) not captured"),
        "tshark does not see a missing segment before frame {}: {:?}\n{}",
        ooo.number,
        ooo.expert,
        table()
    );

    // 2. Our ICMP toward the client, about this connection, after it.
    let (icmp_type, icmp_code) = if v6 { ("2", "0") } else { ("3", "4") };
    let (icmp_at, icmp) = ours
        .iter()
        .enumerate()
        .find(|(_, p)| p.icmp_type == icmp_type && p.icmp_code == icmp_code)
        .unwrap_or_else(|| {
            panic!(
                "no ICMP type {icmp_type} code {icmp_code} in the pcapng: {}",
                table()
            )
        });
    assert!(
        icmp_at > ooo_at,
        "our ICMP before the out-of-order segment: {}",
        table()
    );
    assert_eq!(
        (icmp.src(), icmp.dst()),
        (server, client),
        "our ICMP is not from the server to the client: {}",
        table()
    );
    assert_eq!(
        (
            icmp.inner_src(),
            icmp.inner_dst(),
            icmp.sport.as_str(),
            icmp.dport.as_str()
        ),
        (
            Some(client),
            Some(server),
            cport.as_str(),
            HTTPS_PORT.to_string().as_str()
        ),
        "our ICMP does not quote the client's packet of this connection: {icmp:?}"
    );
    // (tshark 4.0 decodes the 8 quoted TCP bytes' sequence number in ICMP,
    // not in ICMPv6.)
    match icmp.seq() {
        Some(quoted) => assert!(
            quoted.wrapping_sub(hole) < hello_bytes,
            "our ICMP quotes sequence {quoted}, outside the hello's bytes from {hole}"
        ),
        None => assert!(v6, "our ICMP quotes no sequence number: {icmp:?}"),
    }
    let mtu: u32 = icmp
        .mtu
        .parse()
        .unwrap_or_else(|_| panic!("our ICMP names no MTU: {icmp:?}"));
    assert!(
        mtu <= spec.mtu && mtu >= 1280,
        "our ICMP announces MTU {mtu}: not through the lab's {} link",
        spec.mtu
    );
    assert!(
        !icmp.comment.is_empty(),
        "our ICMP carries no comment: {icmp:?}"
    );

    // 3. The missing bytes again, in segments that fit the narrow link, or
    //    (the edge dropping our ICMP) never.
    let refill: Vec<(usize, &Pkt)> = ours
        .iter()
        .enumerate()
        .filter(|(_, p)| client_data(p) && p.seq().is_some_and(|s| s.wrapping_sub(hole) < full))
        .collect();
    let retransmission = match edge {
        Edge::PassesIcmp => {
            let (at, _) = refill
                .first()
                .unwrap_or_else(|| panic!("the missing bytes never arrived: {}", table()));
            assert!(
                *at > icmp_at,
                "the missing bytes arrived before our ICMP: {}",
                table()
            );
            let mut next = hole;
            for (_, p) in &refill {
                if next == later {
                    break;
                }
                assert_eq!(
                    p.seq(),
                    Some(next),
                    "the retransmission is not contiguous from the SYN's + 1: {}",
                    table()
                );
                assert!(
                    p.len < full && p.ip_total() <= mtu.min(spec.mtu),
                    "frame {}: a {}-byte segment in a {}-byte packet is not smaller than \
                     the {full}-byte original and within MTU {mtu}: {}",
                    p.number,
                    p.len,
                    p.ip_total(),
                    table()
                );
                next = next.wrapping_add(p.len);
            }
            assert_eq!(
                next,
                later,
                "the retransmission never filled the hole: {}",
                table()
            );
            let sizes: Vec<u32> = refill.iter().map(|(_, p)| p.len).collect();
            format!("retransmitted as {sizes:?}")
        }
        Edge::DropsIcmp => {
            assert!(
                refill.is_empty(),
                "the missing bytes reached the server through a filtering edge: {}",
                table()
            );
            "no retransmission got through".to_owned()
        }
    };

    // 4. tcpdump saw the same packets, in the same order.
    assert!(
        ours.len() <= theirs.len(),
        "the pcapng has more packets than tcpdump saw: {}",
        table()
    );
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            a.key(),
            b.key(),
            "packet {} differs from tcpdump's: {}",
            i + 1,
            table()
        );
        assert!(
            (a.time - b.time).abs() <= TIME_SLACK,
            "packet {}: tlsdiag's time {:.9}, tcpdump's {:.9}",
            i + 1,
            a.time,
            b.time
        );
    }
    // Whatever the pcapng leaves out comes after the handshake's end: the
    // server's flight (rescued) or its close at the hello timeout (stuck).
    let end = match edge {
        Edge::PassesIcmp => theirs
            .iter()
            .position(|p| p.is_tcp() && p.src() == server && p.len > 0),
        Edge::DropsIcmp => theirs
            .iter()
            .position(|p| p.is_tcp() && p.src() == server && p.fin_or_rst()),
    }
    .unwrap_or_else(|| panic!("the referee never saw the handshake end: {}", table()));
    assert!(
        ours.len() > end,
        "the pcapng stops before the handshake's end (tcpdump's packet {}): {}",
        end + 1,
        table()
    );

    // The same file over HTTPS; nothing for another address (r2's).
    let over_https = kept(&format!("packets-{name}-https"), "pcapng");
    let (status, content_type) = fetch(
        &lab,
        &lab.client,
        &format!("https://{host}:{HTTPS_PORT}{path}"),
        &over_https,
    );
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/x-pcapng"),
        "GET {path} over HTTPS"
    );
    let again = decode(&over_https, v6, "");
    assert_eq!(
        again.iter().map(Pkt::key).collect::<Vec<_>>(),
        ours.iter().map(Pkt::key).collect::<Vec<_>>(),
        "the pcapng over HTTPS differs from the one over plain HTTP"
    );
    let elsewhere = scratch.path().join("r2.body");
    let (status, _) = fetch(
        &lab,
        &lab.r2,
        &format!("http://{host}:{HTTP_PORT}{path}"),
        &elsewhere,
    );
    assert_eq!(
        status, 404,
        "another address (r2) fetched attempt {id}'s packets"
    );

    format!(
        "attempt {id}: {} of tcpdump's {} packets equal; later segment at +{full}, \
         our ICMP (MTU {mtu}) as packet {}, {retransmission}",
        ours.len(),
        theirs.len(),
        icmp_at + 1
    )
}

/// check.sh behind the same black hole (its client may reach only the HTTPS
/// and plain-HTTP ports, as in `tests/lab.rs`' `c2s-1400`): the saved
/// report's pcapng (`/r/{id}/packets.pcapng`) holds the run's connections,
/// each one's packets equal to tcpdump's (in order; a connection's capture
/// may stop early, never skip or add a packet), its comments name exactly the
/// report's attempts, and it has our ICMP toward the client.
#[test]
fn a_saved_reports_pcapng_holds_the_runs_connections_as_tcpdump_saw_them() {
    if !requirements_met() || !netns::available() {
        return;
    }
    let spec = LabSpec {
        egress_only: Some(vec![HTTPS_PORT, HTTP_PORT]),
        ..LabSpec::client_to_server_black_hole()
    };
    let mut lab = Lab::build("pr", &spec);
    lab.start_server();
    let host = lab.server_host();
    let base = format!("http://{host}:{HTTP_PORT}");
    let referee_file = kept("packets-report-tcpdump", "pcap");
    let ours_file = kept("packets-report-tlsdiag", "pcapng");
    let referee = Referee::start(&lab, &referee_file);

    let out = lab.client(
        &format!("curl -s -g --max-time 10 '{base}/check.sh?case=lab-packets' | sh"),
        90,
    );
    assert!(out.ok(), "check.sh failed: {out:?}");
    let report_id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Report link (send it to support): "))
        .and_then(|link| link.rsplit('/').next())
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("check.sh printed no report link:\n{}", out.stdout));
    let saved = lab.client(
        &format!("curl -s -g --max-time 10 '{base}/api/v1/reports/{report_id}'"),
        15,
    );
    let saved: Value = serde_json::from_str(&saved.stdout)
        .unwrap_or_else(|e| panic!("report {report_id}: {e}: {saved:?}"));
    let attempt_ids: Vec<u64> = saved["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts in report {report_id}: {saved:#}"))
        .iter()
        .map(|a| a["attempt"]["id"].as_u64().unwrap())
        .collect();
    assert!(
        !attempt_ids.is_empty(),
        "report {report_id} has no attempts"
    );
    std::thread::sleep(Duration::from_millis(500));

    let path = format!("/r/{report_id}/packets.pcapng");
    let (status, content_type) = fetch(&lab, &lab.client, &format!("{base}{path}"), &ours_file);
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/x-pcapng"),
        "GET {path}: {}",
        String::from_utf8_lossy(&std::fs::read(&ours_file).unwrap_or_default())
    );
    let tcpdump_said = referee.stop();
    assert!(
        tcpdump_said
            .lines()
            .any(|l| l.trim() == "0 packets dropped by kernel"),
        "the referee lost packets: {tcpdump_said}"
    );

    let ours = decode(&ours_file, false, "");
    let theirs = decode(&referee_file, false, "tcp");
    assert!(
        !ours.is_empty(),
        "report {report_id}'s pcapng holds no packets"
    );
    // Each connection by its client port (the client has one address, the
    // server's ports are the listeners') and its SYN's sequence number: a
    // client may reuse a port for a later connection of the run, and a
    // connection past its bound (128 packets) keeps only its first packets,
    // so the next connection on that port must not be read as its tail.
    let by_connection = |packets: &[Pkt]| {
        let mut all: std::collections::BTreeMap<(String, String, String), Vec<Pkt>> =
            Default::default();
        let mut isn: std::collections::BTreeMap<(String, String), String> = Default::default();
        for p in packets {
            let ports = if p.src() == netns::CLIENT_IP || p.inner_src() == Some(netns::CLIENT_IP) {
                (first(&p.sport).to_owned(), first(&p.dport).to_owned())
            } else {
                (first(&p.dport).to_owned(), first(&p.sport).to_owned())
            };
            if p.is_syn() {
                isn.insert(ports.clone(), first(&p.seq_raw).to_owned());
            }
            let current = isn.get(&ports).cloned().unwrap_or_default();
            all.entry((ports.0, ports.1, current))
                .or_default()
                .push(p.clone());
        }
        all
    };
    let (ours_by, theirs_by) = (by_connection(&ours), by_connection(&theirs));
    let mut compared = 0;
    for ((cport, sport, isn), mine) in &ours_by {
        let seen = theirs_by
            .get(&(cport.clone(), sport.clone(), isn.clone()))
            .unwrap_or_else(|| {
                panic!(
                    "the pcapng holds a connection {cport} > {sport} tcpdump never saw:\n{}",
                    rows(mine)
                )
            });
        let context = || {
            format!(
                "--- ours ---\n{}\n--- tcpdump ---\n{}",
                rows(mine),
                rows(seen)
            )
        };
        assert!(
            mine.len() <= seen.len(),
            "connection {cport} > {sport}: more packets than tcpdump saw\n{}",
            context()
        );
        for (i, (a, b)) in mine.iter().zip(seen).enumerate() {
            assert_eq!(
                a.key(),
                b.key(),
                "connection {cport} > {sport}, packet {}: not tcpdump's\n{}",
                i + 1,
                context()
            );
        }
        compared += mine.len();
    }
    let named: Vec<u64> = ours
        .iter()
        .filter_map(|p| {
            let rest = p.comment.split("tlsdiag attempt ").nth(1)?;
            rest.split(':').next()?.parse().ok()
        })
        .collect();
    assert!(
        !named.is_empty(),
        "no comment names an attempt:\n{}",
        rows(&ours)
    );
    for id in &named {
        assert!(
            attempt_ids.contains(id),
            "the pcapng names attempt {id}, not one of report {report_id}'s {attempt_ids:?}"
        );
    }
    let mut all = attempt_ids.clone();
    all.sort_unstable();
    let mut seen = named.clone();
    seen.sort_unstable();
    assert_eq!(
        seen, all,
        "the attempts the pcapng names are not the report's"
    );
    // The black hole stalled something of the run's (a large ClientHello or
    // upload), and our ICMP went to the client (tests/lab.rs: check.sh's
    // verdict here names the router's missing message).
    let ours_icmp = ours
        .iter()
        .filter(|p| {
            (p.icmp_type.as_str(), p.icmp_code.as_str()) == ("3", "4")
                && (p.src(), p.dst()) == (netns::SERVER_IP, netns::CLIENT_IP)
        })
        .count();
    assert!(
        ours_icmp >= 1,
        "no ICMP of ours toward the client in the run's pcapng:\n{}",
        rows(&ours)
    );
    eprintln!(
        "report {report_id}: {} connections, {compared} packets equal to tcpdump's, \
         {ours_icmp} ICMP of ours, attempts {seen:?} named",
        ours_by.len()
    );
}

/// openssl s_client with a ClientHello of about 1,900 bytes (the lab's
/// helper): the hello's bytes on the wire (one record) and whether the
/// handshake completed within 6 s.
fn openssl_handshake(lab: &Lab, v6: bool) -> (u32, bool) {
    let (message, completed) = lab.openssl_padded_hello(v6);
    (5 + message as u32, completed)
}

/// The attempt whose ClientHello got stuck (the one with an ICMP test), read
/// from the client namespace over plain HTTP once it has ended.
fn ended_attempt_with_icmp(lab: &Lab, host: &str) -> Value {
    for _ in 0..60 {
        let out = lab.client(
            &format!("curl -s -g --max-time 5 http://{host}:{HTTP_PORT}/api/v1/attempts"),
            10,
        );
        if let Ok(report) = serde_json::from_str::<Value>(&out.stdout) {
            let ended = report["attempts"].as_array().and_then(|all| {
                all.iter()
                    .find(|a| {
                        !a["tls"]["icmp_probe"].is_null() && a["outcome"]["ended"] != "waiting"
                    })
                    .cloned()
            });
            if let Some(attempt) = ended {
                return attempt;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "no ended attempt with an ICMP test\n--- server log ---\n{}",
        lab.server_log()
    );
}

/// GETs `url` with curl from namespace `ns` into `file`: the status and the
/// content type.
fn fetch(lab: &Lab, ns: &str, url: &str, file: &Path) -> (u16, String) {
    let out = lab.sh(
        ns,
        &format!(
            "curl -s -g -k --max-time 10 -o '{}' -w '%{{http_code}} %{{content_type}}' '{url}'",
            file.display()
        ),
        15,
    );
    assert!(out.ok(), "curl {url} in {ns}: {out:?}");
    let text = out.stdout.trim();
    let (code, content_type) = text.split_once(' ').unwrap_or((text, ""));
    (code.parse().unwrap_or(0), content_type.to_owned())
}

/// Where a capture is left for people to open: `target/lab/NAME.EXT`.
fn kept(name: &str, ext: &str) -> PathBuf {
    netns::screenshot_path(name).with_extension(ext)
}

/// tcpdump on the server namespace's interface, writing every frame to a file
/// as it comes (`-U`), nanosecond timestamps. Killed when dropped.
struct Referee {
    child: Child,
    said: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Referee {
    /// Starts tcpdump and waits until it is listening.
    fn start(lab: &Lab, file: &Path) -> Self {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.server, "tcpdump", "-i", SERVER_IF])
            .args(["-n", "-U", "--immediate-mode", "-Z", "root"])
            .args(["--time-stamp-precision=nano", "-w"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump in the server namespace");
        let stderr = child.stderr.take().expect("tcpdump's stderr");
        let said = Arc::new(Mutex::new(String::new()));
        let (listening, heard) = mpsc::channel();
        let reader = {
            let said = said.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("listening on") {
                        let _ = listening.send(());
                    }
                    let mut said = said.lock().unwrap_or_else(|e| e.into_inner());
                    said.push_str(&line);
                    said.push('\n');
                }
            })
        };
        let referee = Self {
            child,
            said,
            reader: Some(reader),
        };
        if heard.recv_timeout(Duration::from_secs(10)).is_err() {
            panic!("tcpdump never said it was listening: {}", referee.said());
        }
        referee
    }

    fn said(&self) -> String {
        self.said.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops it as a person would (SIGINT: the file is complete, the counters
    /// printed): what it said.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.said()
    }
}

impl Drop for Referee {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One packet as tshark decodes it. For an ICMP error the address fields hold
/// the outer then the quoted header's values ("a,b"), and the TCP fields are
/// the quoted header's.
#[derive(Debug, Clone)]
struct Pkt {
    v6: bool,
    number: u64,
    time: f64,
    direction: Option<u32>,
    src: String,
    dst: String,
    /// IPv4 identification, IPv6 flow label.
    ip_id: String,
    /// IPv4 total length, IPv6 payload length.
    ip_len: String,
    /// TTL, hop limit.
    ttl: String,
    /// IPv4 DF, IPv6 next header.
    df: String,
    sport: String,
    dport: String,
    seq_raw: String,
    ack_raw: String,
    len: u32,
    len_text: String,
    flags: String,
    icmp_type: String,
    icmp_code: String,
    mtu: String,
    tsval: String,
    mss: String,
    expert: String,
    comment: String,
}

/// tshark's fields, in [`Pkt`]'s order; the comment last (it may hold tabs).
fn fields(v6: bool) -> Vec<String> {
    let (ip, icmp) = if v6 {
        ("ipv6", "icmpv6")
    } else {
        ("ip", "icmp")
    };
    let family: [&str; 6] = if v6 {
        ["src", "dst", "flow", "plen", "hlim", "nxt"]
    } else {
        ["src", "dst", "id", "len", "ttl", "flags.df"]
    };
    let mut all: Vec<String> = [
        "frame.number",
        "frame.time_epoch",
        "frame.packet_flags_direction",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    all.extend(family.iter().map(|f| format!("{ip}.{f}")));
    all.extend(
        [
            "tcp.srcport",
            "tcp.dstport",
            "tcp.seq",
            "tcp.ack",
            "tcp.len",
            "tcp.flags",
        ]
        .iter()
        .map(|f| f.to_string()),
    );
    all.extend(
        ["type", "code", "mtu"]
            .iter()
            .map(|f| format!("{icmp}.{f}")),
    );
    all.extend(
        [
            "tcp.options.timestamp.tsval",
            "tcp.options.mss_val",
            "_ws.expert.message",
            "frame.comment",
        ]
        .iter()
        .map(|f| f.to_string()),
    );
    all
}

/// The packets of `file` matching the display filter `filter` (all when
/// empty), decoded by tshark with absolute sequence numbers.
fn decode(file: &Path, v6: bool, filter: &str) -> Vec<Pkt> {
    let names = fields(v6);
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args([
        "-n",
        "-o",
        "tcp.relative_sequence_numbers:FALSE",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    if !filter.is_empty() {
        cmd.args(["-Y", filter]);
    }
    for name in &names {
        cmd.args(["-e", name]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packets: Vec<Pkt> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let c: Vec<&str> = line.splitn(names.len(), '\t').collect();
        let number = c.first().and_then(|n| n.parse::<u64>().ok());
        let (Some(number), true) = (number, c.len() == names.len()) else {
            // A comment's next line.
            let last = packets
                .last_mut()
                .unwrap_or_else(|| panic!("tshark printed {line:?} first"));
            last.comment.push('\n');
            last.comment.push_str(line);
            continue;
        };
        let s = |i: usize| c[i].to_owned();
        packets.push(Pkt {
            v6,
            number,
            time: c[1].parse().unwrap_or(f64::NAN),
            direction: number_of(c[2]),
            src: s(3),
            dst: s(4),
            ip_id: s(5),
            ip_len: s(6),
            ttl: s(7),
            df: s(8),
            sport: s(9),
            dport: s(10),
            seq_raw: s(11),
            ack_raw: s(12),
            len: first(c[13]).parse().unwrap_or(0),
            len_text: s(13),
            flags: s(14),
            icmp_type: s(15),
            icmp_code: s(16),
            mtu: s(17),
            tsval: s(18),
            mss: s(19),
            expert: s(20),
            comment: s(21),
        });
    }
    packets
}

/// A decimal or `0x` hexadecimal number (tshark prints both).
fn number_of(text: &str) -> Option<u32> {
    let text = first(text);
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn first(field: &str) -> &str {
    field.split(',').next().unwrap_or_default()
}

impl Pkt {
    fn src(&self) -> &str {
        first(&self.src)
    }

    fn dst(&self) -> &str {
        first(&self.dst)
    }

    /// The quoted header's source, in an ICMP error.
    fn inner_src(&self) -> Option<&str> {
        self.src.split(',').nth(1)
    }

    fn inner_dst(&self) -> Option<&str> {
        self.dst.split(',').nth(1)
    }

    fn is_tcp(&self) -> bool {
        self.icmp_type.is_empty() && !self.sport.is_empty()
    }

    fn flags(&self) -> u32 {
        number_of(&self.flags).unwrap_or(0)
    }

    fn is_syn(&self) -> bool {
        self.is_tcp() && self.flags() & 0x3f == 0x02
    }

    fn is_syn_ack(&self) -> bool {
        self.is_tcp() && self.flags() & 0x3f == 0x12
    }

    fn fin_or_rst(&self) -> bool {
        self.flags() & 0x05 != 0
    }

    fn seq(&self) -> Option<u32> {
        first(&self.seq_raw).parse().ok()
    }

    /// The IP packet's whole length (outer header).
    fn ip_total(&self) -> u32 {
        let len: u32 = first(&self.ip_len).parse().unwrap_or(0);
        if self.v6 {
            len + 40
        } else {
            len
        }
    }

    /// Whether it is a packet of the connection from client port `cport` to
    /// the HTTPS port (or an ICMP error quoting one).
    fn of_connection(&self, cport: &str) -> bool {
        let https = HTTPS_PORT.to_string();
        let ports = (first(&self.sport), first(&self.dport));
        ports == (cport, https.as_str()) || ports == (https.as_str(), cport)
    }

    /// What must be equal in both captures: every IP, TCP and ICMP field
    /// decoded (not the link layer, the timestamps, flags or comments only
    /// a pcapng has).
    fn key(&self) -> [&str; 17] {
        [
            &self.src,
            &self.dst,
            &self.ip_id,
            &self.ip_len,
            &self.ttl,
            &self.df,
            &self.sport,
            &self.dport,
            &self.seq_raw,
            &self.ack_raw,
            &self.len_text,
            &self.flags,
            &self.icmp_type,
            &self.icmp_code,
            &self.mtu,
            &self.tsval,
            &self.mss,
        ]
    }
}

/// Packets as a table, for failure messages.
fn rows(packets: &[Pkt]) -> String {
    packets
        .iter()
        .map(|p| {
            format!(
                "{:>3} {:.9} dir={:?} {} > {} {} > {} seq={} ack={} len={} flags={} icmp={}/{} mtu={} {:?}",
                p.number,
                p.time,
                p.direction,
                p.src,
                p.dst,
                p.sport,
                p.dport,
                p.seq_raw,
                p.ack_raw,
                p.len,
                p.flags,
                p.icmp_type,
                p.icmp_code,
                p.mtu,
                p.comment
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// capinfos' description of a capture file (Wireshark's, not ours).
fn capinfos(file: &Path) -> String {
    let out = Command::new("capinfos")
        .arg(file)
        .output()
        .expect("capinfos runs");
    assert!(
        out.status.success(),
        "capinfos {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The link type of every Interface Description Block of a pcapng file
/// (capinfos names an encapsulation, "Raw IP", which several link types map
/// to; the number itself is two bytes into the block's body).
fn pcapng_link_types(file: &Path) -> Vec<u16> {
    let bytes = std::fs::read(file).expect("read the pcapng");
    assert!(
        bytes.len() >= 12 && bytes[..4] == [0x0a, 0x0d, 0x0d, 0x0a],
        "not a pcapng file (no Section Header Block): {:?}",
        &bytes[..bytes.len().min(16)]
    );
    let little = match bytes[8..12] {
        [0x4d, 0x3c, 0x2b, 0x1a] => true,
        [0x1a, 0x2b, 0x3c, 0x4d] => false,
        _ => panic!("no byte-order magic in the Section Header Block"),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut types = Vec::new();
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let (kind, len) = (u32_at(at), u32_at(at + 4) as usize);
        assert!(
            len >= 12 && len % 4 == 0 && at + len <= bytes.len(),
            "a bad block length {len} at byte {at}"
        );
        if kind == 1 {
            let b = [bytes[at + 8], bytes[at + 9]];
            types.push(if little {
                u16::from_le_bytes(b)
            } else {
                u16::from_be_bytes(b)
            });
        }
        at += len;
    }
    types
}
