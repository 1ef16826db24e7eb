//! The path-MTU black hole, for real: four network namespaces (client — r1 —
//! r2 — server) with a 1,400-byte link between the routers, the routers
//! dropping the ICMP "fragmentation needed" they would send, and tlsdiag in the
//! server namespace. Packets up to 1,400 bytes pass; 1,500-byte packets vanish
//! in both directions. tlsdiag's plain-HTTP port clamps its MSS, so its reports
//! still reach the client; the probe port does not, so the ladders show the
//! hole. A control lab, identical but for the ICMP drop, shows that path-MTU
//! discovery then repairs everything.
//!
//! Needs root (it creates namespaces); see `common::netns`. The two labs use
//! their own namespaces and run in parallel.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::netns::{self, Lab, Out, HTTPS_PORT, HTTP_PORT, PROBE_PORT, SERVER_IP};
use serde_json::Value;

/// A real 1,917-byte post-quantum ClientHello, as Chromium sent it: more than
/// one full-size segment.
const CHROMIUM_HELLO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/hellos/chromium_pq.bin"
);
const CHROMIUM_HELLO_LEN: u64 = 1917;

/// Sizes that fit in one packet across the narrow link, and sizes that cannot.
/// (A download's ~420 bytes of response headers share its first packet.)
const DOWN_PASSES: [u64; 1] = [512];
const DOWN_FAILS: [u64; 3] = [2000, 4000, 65536];
const UP_PASSES: u64 = 512;
const UP_FAILS: u64 = 4000;
const MIB: u64 = 1_048_576;

fn base() -> String {
    format!("http://{SERVER_IP}:{HTTP_PORT}")
}

/// The probe listener: full-size packets, so the black hole shows.
fn probe_base() -> String {
    format!("http://{SERVER_IP}:{PROBE_PORT}")
}

#[test]
fn black_hole_lab_shows_the_hello_stall_and_the_failing_sizes() {
    if !netns::available() {
        return;
    }
    let mut lab = Lab::build("b", true);
    lab.start_server();
    let base = base();

    // 1. Small packets pass: the report for a plain-HTTP request with no
    //    attempts yet fits in one packet.
    let page = lab.client(&format!("curl -s --max-time 5 {base}/"), 10);
    assert!(page.ok(), "curl {base}/ from the client failed: {page:?}");
    assert!(!page.stdout.trim().is_empty(), "empty page: {page:?}");

    // 2. A ClientHello larger than one packet hangs. One write of 1,917
    //    bytes: the kernel sends a full-size segment (a 1,500-byte packet,
    //    black-holed at r1) and the tail (which arrives, out of order).
    let sent = lab.send_file_once(HTTPS_PORT, Path::new(CHROMIUM_HELLO), 5);
    assert!(sent.ok(), "sending the hello failed: {sent:?}");
    // The lab itself: r1 refused the big packet and its ICMP never left.
    assert!(
        dropped_frag_needed(&lab, &lab.r1) >= 1,
        "r1 dropped no fragmentation-needed: the hello was not black-holed"
    );
    assert!(
        !route_mtu(&lab).contains("mtu 1400"),
        "the client learned the path MTU: ICMP got through"
    );

    let attempt = newest_attempt(&lab);
    let outcome = &attempt["outcome"];
    assert_eq!(outcome["kind"], "hello_incomplete", "{attempt:#}");
    let received = outcome["received"].as_u64().unwrap();
    if received == 0 {
        // Nothing in order; the tail sat in the server's out-of-order queue.
        let ooo = outcome["out_of_order_segments"].as_u64().unwrap_or(0);
        assert!(
            ooo >= 1,
            "received 0 but no out-of-order segment: {outcome:#}"
        );
    } else {
        // The first segment's payload: 1,448 with TCP timestamps, else 1,460.
        assert!(
            received == 1448 || received == 1460,
            "received {received} of {CHROMIUM_HELLO_LEN}: {outcome:#}"
        );
    }
    assert!(
        finding_ids(&attempt).contains(&"tls.hello-incomplete".to_owned()),
        "{:#}",
        attempt["findings"]
    );

    let text = lab.client(
        &format!("curl -s --max-time 5 -H 'User-Agent: curl/8' {base}/"),
        10,
    );
    assert!(
        text.stdout.contains("ClientHello"),
        "text report does not mention the ClientHello{}: {text:?}",
        black_hole_hint(&text)
    );
    assert!(
        text.stdout.contains("clamp-mss-to-pmtu"),
        "text report does not suggest clamping the MSS: {}",
        text.stdout
    );

    // 3. The ladders on the probe port: what fits in one packet passes, the
    //    rest is lost. The same large download on the clamped plain-HTTP port
    //    crosses the hole, which is why reports stay readable.
    assert_eq!(
        download_from(&lab, &base, 65536, 10),
        Some(65536),
        "the plain-HTTP port's clamped MSS should carry 64 KiB across the hole"
    );
    for n in DOWN_PASSES {
        let got = download(&lab, n, 4);
        assert_eq!(got, Some(n), "download of {n} bytes did not complete");
    }
    for n in DOWN_FAILS {
        let got = download(&lab, n, 4);
        assert!(
            got.is_none_or(|g| g < n),
            "download of {n} bytes crossed the black hole ({got:?})"
        );
    }
    let up = upload(&lab, UP_PASSES, 4);
    assert_eq!(
        received_of(&up),
        Some(UP_PASSES),
        "upload of {UP_PASSES}: {up:?}"
    );
    let up = upload(&lab, UP_FAILS, 4);
    assert_ne!(
        received_of(&up),
        Some(UP_FAILS),
        "upload of {UP_FAILS} crossed the black hole: {up:?}"
    );

    let check = lab.client(&format!("curl -s --max-time 20 {base}/check.sh | sh"), 300);
    eprintln!("check.sh said:\n{}", check.stdout);
    let said = check.stdout.to_lowercase();
    assert!(
        said.contains("black hole"),
        "check.sh does not name a black hole{}: {check:?}",
        black_hole_hint(&check)
    );
    assert!(
        said.contains("toward"),
        "check.sh does not say which direction fails: {}",
        check.stdout
    );
    assert!(
        said.contains("icmp") && said.contains("clamp"),
        "check.sh does not give the fix: {}",
        check.stdout
    );
    assert!(
        check.stdout.contains(&format!("{base}/r/")),
        "check.sh printed no report link: {}",
        check.stdout
    );
}

#[test]
fn control_lab_with_icmp_passes_everything() {
    if !netns::available() {
        return;
    }
    let mut lab = Lab::build("c", false);
    lab.start_server();
    let base = base();

    let page = lab.client(&format!("curl -s --max-time 5 {base}/"), 10);
    assert!(page.ok() && !page.stdout.trim().is_empty(), "{page:?}");

    // The same hello arrives: r1's fragmentation-needed reaches the client,
    // which resends in 1,400-byte packets. The client closes after 2 s
    // without finishing the handshake.
    let sent = lab.send_file_once(HTTPS_PORT, Path::new(CHROMIUM_HELLO), 2);
    assert!(sent.ok(), "sending the hello failed: {sent:?}");
    assert!(
        route_mtu(&lab).contains("mtu 1400"),
        "the client did not learn the path MTU: {}",
        route_mtu(&lab)
    );
    let attempt = newest_attempt(&lab);
    let kind = attempt["outcome"]["kind"].as_str().unwrap();
    assert!(
        kind != "hello_incomplete" && kind != "no_data",
        "the hello should have arrived whole: {attempt:#}"
    );

    assert_eq!(download(&lab, MIB, 20), Some(MIB), "1 MiB download");
    let up = upload(&lab, MIB, 20);
    assert_eq!(received_of(&up), Some(MIB), "1 MiB upload: {up:?}");
}

/// The caller's newest HTTPS attempt, from the client namespace through the
/// plain-HTTP attempts API (newest first). Attempts are recorded when they
/// end, so this polls a few times.
fn newest_attempt(lab: &Lab) -> Value {
    let cmd = format!("curl -s --max-time 5 {}/api/v1/attempts", base());
    let mut last = None;
    for _ in 0..4 {
        let out = lab.client(&cmd, 10);
        if let Ok(report) = serde_json::from_str::<Value>(&out.stdout) {
            if let Some(newest) = report["attempts"].get(0) {
                return newest.clone();
            }
        }
        last = Some(out);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let last = last.unwrap();
    panic!(
        "no attempt in /api/v1/attempts{}: {last:?}",
        black_hole_hint(&last)
    );
}

/// A note for an answer that never came: in the black-hole lab a reply that
/// needs a full-size packet toward the client is lost like any other.
fn black_hole_hint(out: &Out) -> &'static str {
    if out.stdout.is_empty() {
        " (no answer at all: replies sent in packets over 1,400 bytes cannot cross the lab's black hole toward the client)"
    } else {
        ""
    }
}

fn finding_ids(attempt: &Value) -> Vec<String> {
    attempt["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings: {attempt:#}"))
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Bytes of `/probe/down/{n}` the client received within `secs`; `None` when
/// curl printed nothing usable.
fn download(lab: &Lab, n: u64, secs: u32) -> Option<u64> {
    download_from(lab, &probe_base(), n, secs)
}

fn download_from(lab: &Lab, base: &str, n: u64, secs: u32) -> Option<u64> {
    let cmd = format!(
        "curl -s -o /dev/null -w '%{{size_download}}' --max-time {secs} '{base}/probe/down/{n}?run=labdown0001'"
    );
    let out = lab.client(&cmd, secs + 5);
    eprintln!("down {n}: curl exit {:?}, {} bytes", out.code, out.stdout);
    out.stdout.trim().parse().ok()
}

/// POSTs `n` random bytes to `/probe/up`; curl's output (the server's JSON).
fn upload(lab: &Lab, n: u64, secs: u32) -> Out {
    let cmd = format!(
        "head -c {n} /dev/urandom | curl -s --max-time {secs} --data-binary @- \
         -H 'Content-Type: application/octet-stream' '{}/probe/up?run=labup00001&size={n}'",
        probe_base()
    );
    let out = lab.client(&cmd, secs + 5);
    eprintln!("up {n}: curl exit {:?}, {}", out.code, out.stdout.trim());
    out
}

/// `received` from the upload's JSON answer.
fn received_of(out: &Out) -> Option<u64> {
    serde_json::from_str::<Value>(&out.stdout).ok()?["received"].as_u64()
}

/// Packets the router's `OUTPUT` rule dropped (fragmentation-needed it tried to send).
fn dropped_frag_needed(lab: &Lab, router: &str) -> u64 {
    let out = lab.sh(router, "iptables -L OUTPUT -v -n -x", 10);
    out.stdout
        .lines()
        .find(|l| l.contains("DROP"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no DROP rule in {router}'s OUTPUT chain: {out:?}"))
}

/// The client's route to the server, with any cached path MTU.
fn route_mtu(lab: &Lab) -> String {
    lab.client(&format!("ip route get {SERVER_IP}"), 10).stdout
}
