//! The lab itself, checked against its own construction: each [`LabSpec`]
//! fault does what it says, seen with `ping`, the kernel's counters and its
//! path-MTU cache; the big certificate chain is served whole; the real-time
//! Chromium driver returns while a fetch hangs forever.
//!
//! Needs root (see `common::netns`), `ping` (iputils) and, for some tests,
//! `python3`, `openssl`, `chromium`. Every test has its own lab (its own tag),
//! so they run in parallel.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::browser;
use common::netns::{self, Lab, LabSpec, BLOCKED_PORT, HTTPS_PORT, HTTP_PORT};
use common::require_tool;

/// The MTU of every link but the narrow one: the size of a full-size packet.
const FULL: u32 = 1500;

/// The lab, and `ping` for the tests that use it.
fn lab_available() -> bool {
    netns::available() && require_tool("ping")
}

/// IP + ICMP header bytes: `ping -s` takes the payload size.
fn headers(lab: &Lab) -> u32 {
    if lab.spec.ipv6 {
        40 + 8
    } else {
        20 + 8
    }
}

/// Pings `to` from `ns`, three packets of `size` bytes (IP header included).
fn ping(lab: &Lab, ns: &str, to: &str, size: u32, extra: &str) -> netns::Out {
    let payload = size - headers(lab);
    lab.sh(
        ns,
        &format!("ping -c 3 -i 0.2 -W 1 {extra} -s {payload} {to}"),
        15,
    )
}

/// One counter of the namespace's `/proc/net/snmp` (`Ip`, `Icmp`: name/value
/// line pairs) or, for IPv6, `/proc/net/snmp6` (`Icmp6InEchos 3` lines).
fn snmp(lab: &Lab, ns: &str, proto: &str, field: &str) -> u64 {
    let (file, v6) = if proto.ends_with('6') {
        ("/proc/net/snmp6", true)
    } else {
        ("/proc/net/snmp", false)
    };
    let out = lab.sh(ns, &format!("cat {file}"), 5);
    let found = if v6 {
        out.stdout.lines().find_map(|l| {
            let (name, value) = l.split_once(char::is_whitespace)?;
            (name == format!("{proto}{field}")).then(|| value.trim().parse().ok())?
        })
    } else {
        let prefix = format!("{proto}:");
        let lines: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        lines.get(..2).and_then(|pair| {
            let names = pair[0].split_whitespace();
            let values = pair[1].split_whitespace();
            names
                .zip(values)
                .find(|(n, _)| *n == field)
                .and_then(|(_, v)| v.parse().ok())
        })
    };
    found.unwrap_or_else(|| panic!("no {proto} {field} in {ns}'s {file}: {out:?}"))
}

/// Echo requests that reached `ns`.
fn echoes_in(lab: &Lab, ns: &str) -> u64 {
    if lab.spec.ipv6 {
        snmp(lab, ns, "Icmp6", "InEchos")
    } else {
        snmp(lab, ns, "Icmp", "InEchos")
    }
}

/// What one direction of the lab does with DF packets.
#[derive(Debug)]
struct Direction {
    /// `spec.mtu`-sized echo requests that arrived (of 3).
    narrow_arrived: u64,
    /// Full-size echo requests that arrived (of 3).
    full_arrived: u64,
    /// The path MTU the sender cached afterwards.
    learned: Option<u32>,
}

/// Sends DF pings from `from` to `to` (in namespace `to_ns`): first packets
/// that fit the narrow link, then full-size ones, counting arrivals at the
/// far end.
fn probe_direction(lab: &Lab, from: &str, to_ns: &str, to: &str) -> Direction {
    let before = echoes_in(lab, to_ns);
    let narrow = ping(lab, from, to, lab.spec.mtu, "-M do");
    let middle = echoes_in(lab, to_ns);
    assert!(
        narrow.ok(),
        "{}-byte pings {from} → {to} failed: {narrow:?}",
        lab.spec.mtu
    );
    let full = ping(lab, from, to, FULL, "-M do");
    eprintln!(
        "{from} → {to}, {FULL} bytes with DF: {}",
        full.stdout.trim()
    );
    Direction {
        narrow_arrived: middle - before,
        full_arrived: echoes_in(lab, to_ns) - middle,
        learned: lab.path_mtu(from, to),
    }
}

/// Builds `spec` and checks both directions against it: a full-size DF packet
/// never crosses the narrow link; its sender learns the narrow MTU unless the
/// router's ICMP toward it is dropped, and that router's OUTPUT rule counts it.
fn check_path_mtu(tag: &str, spec: LabSpec) {
    let lab = Lab::build(tag, &spec);
    let started = Instant::now();
    let up = probe_direction(&lab, &lab.client, &lab.server, lab.server_ip());
    let down = probe_direction(&lab, &lab.server, &lab.client, lab.client_ip());
    let (r1_dropped, r2_dropped) = (
        lab.dropped(&lab.r1, "OUTPUT"),
        lab.dropped(&lab.r2, "OUTPUT"),
    );
    eprintln!(
        "{tag}: client→server {up:?}, r1 dropped {r1_dropped} ICMP; \
         server→client {down:?}, r2 dropped {r2_dropped} ICMP ({:?})",
        started.elapsed()
    );

    for (dir, got, hole, dropped) in [
        (
            "client→server",
            &up,
            spec.drop_icmp_toward_client,
            r1_dropped,
        ),
        (
            "server→client",
            &down,
            spec.drop_icmp_toward_server,
            r2_dropped,
        ),
    ] {
        assert_eq!(got.narrow_arrived, 3, "{dir}: {got:?}");
        assert_eq!(
            got.full_arrived, 0,
            "{dir}: a full-size DF packet crossed: {got:?}"
        );
        if hole {
            assert_eq!(
                got.learned, None,
                "{dir}: the sender learned the MTU: {got:?}"
            );
            assert!(dropped >= 1, "{dir}: the router dropped no ICMP");
        } else {
            assert_eq!(got.learned, Some(spec.mtu), "{dir}: {got:?}");
            assert_eq!(dropped, 0, "{dir}");
        }
    }
}

#[test]
fn client_to_server_black_hole_hides_the_narrow_link_from_the_client_only() {
    if lab_available() {
        check_path_mtu("a", LabSpec::client_to_server_black_hole());
    }
}

#[test]
fn server_to_client_black_hole_hides_the_narrow_link_from_the_server_only() {
    if lab_available() {
        check_path_mtu("b", LabSpec::server_to_client_black_hole());
    }
}

#[test]
fn control_lab_lets_both_ends_learn_the_path_mtu() {
    if lab_available() {
        check_path_mtu("c", LabSpec::control());
    }
}

#[test]
fn black_hole_drops_icmp_both_ways() {
    if lab_available() {
        check_path_mtu("h", LabSpec::black_hole());
    }
}

#[test]
fn ipv6_client_to_server_black_hole_drops_packet_too_big() {
    if lab_available() {
        check_path_mtu("d", LabSpec::client_to_server_black_hole().v6());
    }
}

#[test]
fn ipv6_control_at_1280() {
    if lab_available() {
        check_path_mtu(
            "k",
            LabSpec {
                mtu: 1280,
                ..LabSpec::control().v6()
            },
        );
    }
}

/// Serves an empty directory over plain HTTP on `ports` in the server
/// namespace and waits until each answers there (not through the client's
/// policy).
fn serve_directory(lab: &Lab, dir: &std::path::Path, ports: &[u16]) {
    let dir = dir.to_str().unwrap();
    for port in ports {
        let port = port.to_string();
        lab.spawn(
            &lab.server,
            "python3",
            &[
                "-m",
                "http.server",
                "--bind",
                lab.server_ip(),
                "--directory",
                dir,
                &port,
            ],
        );
    }
    for port in ports {
        let url = format!("http://{}:{port}/", lab.server_host());
        let wait = format!(
            "for i in $(seq 50); do curl -s -g -o /dev/null --max-time 1 {url} && exit 0; sleep 0.1; done; exit 1"
        );
        let ready = lab.sh(&lab.server, &wait, 15);
        assert!(ready.ok(), "nothing listens on {url}: {ready:?}");
    }
}

fn check_egress(tag: &str, ipv6: bool) {
    if !netns::available() || !require_tool("python3") {
        return;
    }
    let spec = LabSpec {
        ipv6,
        egress_only: Some(vec![HTTPS_PORT, HTTP_PORT]),
        ..LabSpec::control()
    };
    let lab = Lab::build(tag, &spec);
    let site = tempfile::tempdir().unwrap();
    serve_directory(&lab, site.path(), &[HTTPS_PORT, HTTP_PORT, BLOCKED_PORT]);

    for port in [HTTPS_PORT, HTTP_PORT, BLOCKED_PORT] {
        let url = format!("http://{}:{port}/", lab.server_host());
        let curl = format!("curl -s -g -o /dev/null -w '%{{http_code}}' --connect-timeout 3 {url}");
        let started = Instant::now();
        let out = lab.client(&curl, 10);
        let took = started.elapsed();
        eprintln!(
            "{tag}: client → {url}: exit {:?}, HTTP {:?}, {took:?}",
            out.code, out.stdout
        );
        if port == BLOCKED_PORT {
            // 28: curl's timeout. A refused connection (7) would mean the
            // SYN got through.
            assert_eq!(out.code, Some(28), "port {port} should time out: {out:?}");
            assert!(took >= Duration::from_secs(3), "{took:?}");
        } else {
            assert!(out.ok() && out.stdout == "200", "port {port}: {out:?}");
        }
    }
}

#[test]
fn egress_policy_lets_only_the_allowed_ports_through() {
    check_egress("e", false);
}

#[test]
fn ipv6_egress_policy_lets_only_the_allowed_ports_through() {
    check_egress("v", true);
}

/// Without DF the client's large packets are fragmented by r1 (not refused),
/// and then reach the server unless r2 drops fragments.
fn check_fragments(tag: &str, drop_fragments: bool) {
    let spec = LabSpec {
        client_sets_df: false,
        drop_fragments,
        ..LabSpec::control()
    };
    let lab = Lab::build(tag, &spec);
    let to = lab.server_ip();
    let fragmented_at = |ns: &str| snmp(&lab, ns, "Ip", "FragCreates");

    // 1,500 bytes fit the client's link: only r1 fragments, which it may
    // because DF is off (with DF it would refuse: see the control lab).
    let (client_before, r1_before) = (fragmented_at(&lab.client), fragmented_at(&lab.r1));
    let echoes = echoes_in(&lab, &lab.server);
    let full = ping(&lab, &lab.client, to, FULL, "");
    let full_arrived = echoes_in(&lab, &lab.server) - echoes;
    let r1_made = fragmented_at(&lab.r1) - r1_before;
    assert_eq!(
        fragmented_at(&lab.client),
        client_before,
        "the client fragmented"
    );
    assert!(r1_made >= 3, "r1 made {r1_made} fragments of 3 packets");

    // 2,000 bytes: the client fragments too.
    let echoes = echoes_in(&lab, &lab.server);
    let big = ping(&lab, &lab.client, to, 2000, "");
    let big_arrived = echoes_in(&lab, &lab.server) - echoes;
    let dropped = lab.dropped(&lab.r2, "FORWARD");
    eprintln!(
        "{tag}: {FULL}-byte pings: {full_arrived} of 3 arrived, r1 made {r1_made} fragments; \
         2000-byte pings: {big_arrived} of 3 arrived; r2 dropped {dropped} fragments"
    );
    if drop_fragments {
        assert!(!full.ok() && !big.ok(), "{full:?}\n{big:?}");
        assert_eq!((full_arrived, big_arrived), (0, 0));
        assert!(dropped >= 6, "r2 dropped {dropped} fragments");
    } else {
        assert!(full.ok() && big.ok(), "{full:?}\n{big:?}");
        assert_eq!((full_arrived, big_arrived), (3, 3));
        assert_eq!(dropped, 0);
    }
}

#[test]
fn without_df_fragments_cross_unless_dropped() {
    if lab_available() {
        check_fragments("f", true);
    }
}

#[test]
fn without_df_fragments_cross() {
    if lab_available() {
        check_fragments("g", false);
    }
}

#[test]
fn big_chain_is_served_whole() {
    if !netns::available() || !require_tool("openssl") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (chain, key, root) = netns::big_chain(certs.path(), netns::SERVER_IP);
    eprintln!("big_chain: {:?}", started.elapsed());
    let mut lab = Lab::build("i", &LabSpec::control());
    lab.start_server_with(&[
        "--tls-cert",
        chain.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);

    let s_client = format!(
        "openssl s_client -connect {}:{HTTPS_PORT} -showcerts -CAfile {} -verify_ip {} \
         -verify_return_error </dev/null",
        lab.server_host(),
        root.display(),
        lab.server_ip()
    );
    let out = lab.client(&s_client, 30);
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.contains("Verify return code: 0 (ok)"),
        "{}",
        out.stdout
    );
    let ders: Vec<usize> = pem_blocks(&out.stdout)
        .iter()
        .map(|block| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(block)
                .unwrap()
                .len()
        })
        .collect();
    let total: usize = ders.iter().sum();
    eprintln!("the server sent certificates of {ders:?} bytes: {total}");
    assert_eq!(ders.len(), 3, "{}", out.stdout);
    assert!(total >= netns::BIG_CHAIN_MIN_DER, "{total}");
}

/// The base64 of every certificate in `text`.
fn pem_blocks(text: &str) -> Vec<String> {
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|rest| {
            let body = rest.split("-----END CERTIFICATE-----").next().unwrap();
            body.split_whitespace().collect()
        })
        .collect()
}

/// The page for the driver test: its fetch to the blocked port hangs (SYNs
/// dropped, and Chromium has no connect timeout of its own), and 3 s later
/// its own timer marks it. The fetch stays pending only if the lab is quiet
/// once built: any late interface event makes Chromium fail it
/// (ERR_NETWORK_CHANGED), which `data-error` would show.
const HANGING_PAGE: &str = r#"<!doctype html>
<title>hanging fetch</title>
<p id="probe" data-state="waiting" data-fetch="pending">waiting</p>
<script>
const probe = document.getElementById("probe");
fetch("http://HOST:PORT/never", { mode: "no-cors" })
  .then(() => probe.dataset.fetch = "answered",
        (e) => { probe.dataset.fetch = "failed"; probe.dataset.error = `${e} after ${performance.now()} ms`; });
setTimeout(() => { probe.dataset.state = "timer-fired"; probe.textContent = "3 s passed"; }, 3000);
</script>
"#;

#[test]
fn browser_driver_runs_in_real_time_while_a_fetch_hangs() {
    if !netns::available() || !browser::available() {
        return;
    }
    let spec = LabSpec {
        egress_only: Some(vec![HTTPS_PORT, HTTP_PORT]),
        ..LabSpec::control()
    };
    let lab = Lab::build("j", &spec);
    let site = tempfile::tempdir().unwrap();
    let page = HANGING_PAGE
        .replace("HOST", &lab.server_host())
        .replace("PORT", &BLOCKED_PORT.to_string());
    std::fs::write(site.path().join("index.html"), page).unwrap();
    serve_directory(&lab, site.path(), &[HTTP_PORT]);
    let url = format!("http://{}:{HTTP_PORT}/", lab.server_host());
    let state =
        "document.getElementById('probe') && document.getElementById('probe').dataset.state";
    let shot = site.path().join("shot.png");

    let started = Instant::now();
    let page = browser::run_page(
        Some(&lab.client),
        &url,
        state,
        &["timer-fired"],
        Duration::from_secs(20),
        &[],
        Some(&shot),
    );
    eprintln!(
        "driver: reached {} ({}) after {:?}; whole run {:?}",
        page.reached,
        page.value_text(),
        page.elapsed,
        started.elapsed()
    );
    assert!(page.reached, "{page:#?}");
    assert!(page.elapsed >= Duration::from_secs(3), "{page:?}");
    assert!(
        page.html.contains(r#"data-fetch="pending""#),
        "{}",
        page.html
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG"),
        "not a PNG: {} bytes",
        png.len()
    );

    // A value never reached: back at the deadline, though the fetch still hangs.
    // The deadline leaves the page's 3 s timer room for a slow page load
    // (this runs beside the other labs and their browsers): 5 s once was
    // not enough for it to fire.
    let deadline = Duration::from_secs(10);
    let started = Instant::now();
    let page = browser::run_page(
        Some(&lab.client),
        &url,
        state,
        &["never"],
        deadline,
        &[],
        None,
    );
    let took = started.elapsed();
    eprintln!(
        "driver: deadline {deadline:?}, value {}, {:?}, whole run {took:?}",
        page.value_text(),
        page.elapsed
    );
    assert!(!page.reached);
    assert_eq!(page.value_text(), "timer-fired");
    assert!(
        page.html.contains(r#"data-fetch="pending""#),
        "{}",
        page.html
    );
    assert!(page.elapsed <= deadline, "{page:?}");
    assert!(took < deadline + Duration::from_secs(15), "{took:?}");
}
