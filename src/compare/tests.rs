//! The comparison on documents built here, shaped as tlsdiag saves them: the
//! expected words come from how each document was built.

use serde_json::{json, Value};

use super::*;
use crate::fingerprint::Fingerprints;

const CHROMIUM_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/hellos/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A SYN from a Linux client with MSS 1,460, `ttl` as it arrived.
fn syn(ttl: u8, mss: u16) -> Value {
    json!({
        "ip_version": 4, "ttl": ttl, "initial_ttl": 64, "hops": 64 - ttl,
        "dont_fragment": true, "window": 64240, "sequence": 1,
        "options": [
            {"kind": 2, "name": "mss", "value": mss.to_string()},
            {"kind": 4, "name": "sack_permitted", "value": null},
            {"kind": 8, "name": "timestamps", "value": "1 0"},
            {"kind": 1, "name": "nop", "value": null},
            {"kind": 3, "name": "window_scale", "value": "10"}
        ],
        "mss": mss, "window_scale": 10, "sack_permitted": true, "timestamps": true,
        "implied_mtu": u32::from(mss) + 40
    })
}

fn wire(id: u16) -> Value {
    json!({ "id": id })
}

/// One of the run's attempts whose ClientHello (`hello`, a fixture's bytes)
/// arrived whole in `reads` and completed.
fn whole(id: u64, tie: &str, hello: &[u8], reads: &[usize], keep: bool) -> Value {
    let parsed = crate::hello::parse_client_hello(hello).unwrap();
    let f = Fingerprints::of(&parsed);
    let group = if parsed
        .key_shares()
        .iter()
        .any(|k| k.group.is_post_quantum())
    {
        0x11ec
    } else {
        0x001d
    };
    // One read every 1.5 ms.
    let reads: Vec<Value> = reads
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let gap = if i == 0 { Value::Null } else { json!(1.5) };
            json!({ "at_ms": 1.0 + 1.5 * i as f64, "bytes": b, "gap_ms": gap })
        })
        .collect();
    let mut a = json!({
        "tie": { "by": tie },
        "attempt": {
            "id": id, "started_at": "2026-12-01T10:00:00.000Z", "succeeded": true,
            "summary": "TLS 1.3", "outcome": { "kind": "completed" },
            "tls": {
                "negotiated": { "version": wire(0x0304), "cipher_suite": wire(0x1301),
                                "key_exchange_group": wire(group), "alpn": "h2" },
                "handshake_ms": 3.0,
                "arrival": { "bytes": hello.len(), "read_count": reads.len(), "tls_records": 1,
                             "reads": reads, "capture_ms": 2.0 },
                "icmp_probe": null, "sni": null,
                "fingerprints": { "ja3_md5": f.ja3_md5, "ja4": f.ja4, "ja4_o": f.ja4_o }
            },
            "findings": []
        }
    });
    if keep {
        a["hello_base64"] = json!(base64(hello));
    }
    a
}

/// An attempt whose ClientHello never arrived: a later segment came, the
/// first never did, and our ICMP changed nothing.
fn stuck(id: u64) -> Value {
    json!({
        "tie": { "by": "evidence", "reasons": ["it began while this run's own HTTPS request was waiting"] },
        "attempt": {
            "id": id, "started_at": "2026-12-01T11:00:00.000Z", "succeeded": false,
            "summary": "ClientHello incomplete",
            "outcome": { "kind": "hello_incomplete", "received": 0, "expected": null,
                         "ended": "timeout", "out_of_order_segments": 1 },
            "tls": {
                "negotiated": null, "handshake_ms": null,
                "arrival": { "bytes": 0, "read_count": 0, "tls_records": 0, "reads": [], "capture_ms": 3000.0 },
                "icmp_probe": { "result": "no_change", "message": "ICMP \"fragmentation needed\"",
                                "mtu": 1280, "sent_at_ms": 1000.0, "waited_ms": 2000.0, "held_segments": 1 },
                "sni": null, "fingerprints": null
            },
            "findings": [
                { "id": "path.icmp-filtered-toward-you", "severity": "error", "title": "Your firewall drops ICMP" },
                { "id": "tls.hello-incomplete", "severity": "error", "title": "The ClientHello never arrived whole" }
            ]
        }
    })
}

fn finding(id: &str, severity: &str, title: &str) -> Value {
    json!({ "id": id, "severity": severity, "title": title, "explanation": "…" })
}

fn step(bytes: u64, ok: bool) -> Value {
    json!({ "bytes": bytes,
            "client": { "bytes": bytes, "ok": ok, "ms": 10.0, "error": if ok { Value::Null } else { json!("timeout") } },
            "server": null })
}

/// A saved run report as tlsdiag writes it (schema 2).
fn doc(agent: &str, status: &str, ua: &str, address: &str) -> Value {
    json!({
        "schema_version": 2, "id": null, "created_at": "2026-12-01T10:00:00.000Z",
        "server_version": "0.1.0", "label": "ACME-1", "agent": agent,
        "status": status, "verdict": format!("{status} verdict"), "worst": null,
        "findings": [],
        "probe": { "run": "run1", "clock_offset_ms": 0.0, "down": [], "up": [], "hello": [], "tls_check": null },
        "client": { "address": address, "port": 40000 },
        "attempts": [], "other_clients": [],
        "connection": {
            "schema_version": 2, "generated_at": "2026-12-01T10:00:00.000Z", "server_version": "0.1.0",
            "status": status, "headline": "h", "summary": "Plain HTTP/1.1",
            "client": { "address": address, "port": 40000 },
            "connection": { "scheme": "http", "encrypted": false, "http_version": "HTTP/1.1",
                            "user_agent": ua, "host": "198.18.3.2:8080" },
            "syn": syn(62, 1460), "load_balancer": null, "tls": null,
            "findings": [], "recent_attempts": []
        }
    })
}

fn side(id: &str, doc: &Value) -> Side {
    Side::from_value(id, doc).unwrap()
}

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// The seed incident: one browser, its ClientHello stuck behind a black hole
/// on one network and whole on another.
fn black_hole_pair() -> (Value, Value) {
    let chromium = fixture("chromium_pq");
    let mut failing = doc("browser", "problem", CHROMIUM_UA, "198.18.1.1");
    failing["findings"] = json!([
        finding(
            "path.icmp-filtered-toward-you",
            "error",
            "Your firewall drops ICMP \"fragmentation needed\" toward you"
        ),
        finding(
            "tls.hello-incomplete",
            "error",
            "Your ClientHello never arrived whole"
        ),
    ]);
    failing["attempts"] = json!([stuck(7), stuck(6)]);
    failing["probe"]["tls_check"] = json!({ "verified": false, "error": "timeout" });
    let mut working = doc("browser", "clear", CHROMIUM_UA, "198.18.1.1");
    working["attempts"] = json!([whole(3, "request", &chromium, &[chromium.len()], true)]);
    working["probe"]["down"] = json!([step(512, true), step(1_048_576, true)]);
    working["probe"]["up"] = json!([step(512, true), step(1_048_576, true)]);
    (failing, working)
}

#[test]
fn a_black_hole_on_one_network_comes_first_with_both_sides_numbers() {
    let (failing, working) = black_hole_pair();
    let hello_bytes = fixture("chromium_pq").len();
    let c = compare(&side(A, &failing), &side(B, &working), None);
    assert_eq!(c.a.standing, Standing::Failing);
    assert_eq!(c.b.standing, Standing::Working);
    assert_eq!(c.client, Sameness::Same, "{c:#?}");
    assert_eq!(c.network, Sameness::Different);
    assert_eq!(
        c.headline,
        "A fails and B works: same client, the network differs."
    );
    let first = &c.explanation[0];
    assert_eq!(first.id, "path.client-to-server", "{c:#?}");
    for words in [
        "The failing network has a black hole from the client toward the server",
        "two of its ClientHellos never arrived whole",
        "a later segment came and the first never did: 0 bytes in order, 1 segment held out of order",
        &format!(
            "on the working network the ClientHello arrived whole ({} bytes in 1 read, 2 packets at MSS 1,460)",
            crate::util::thousands(hello_bytes)
        ),
        "changed nothing",
        "something near the client filters it",
    ] {
        assert!(first.text.contains(words), "{words:?} not in {}", first.text);
    }
    let same = c
        .explanation
        .iter()
        .find(|r| r.id == "client.same")
        .expect("the client is named the same");
    assert!(
        same.text.contains("HeadlessChrome/156.0.0.0")
            && same.text.contains("the network, not the client, differs")
            && same.text.contains("JA4 is unknown there"),
        "{}",
        same.text
    );
    // Same address and SYN: the same place, a different path.
    assert!(c.explanation.iter().any(|r| r.id == "network.same-source"));
}

#[test]
fn which_side_fails_does_not_depend_on_the_order() {
    let (failing, working) = black_hole_pair();
    let c = compare(&side(A, &working), &side(B, &failing), None);
    assert_eq!(c.a.name, "the working network");
    assert_eq!(c.b.name, "the failing network");
    assert_eq!(
        c.headline,
        "A works and B fails: same client, the network differs."
    );
    assert_eq!(c.explanation[0].id, "path.client-to-server");
    assert!(c.explanation[0]
        .text
        .starts_with("The failing network has a black hole"));
}

#[test]
fn different_clients_on_one_network_name_the_hello_differences() {
    let curl = fixture("curl_openssl3");
    let chromium = fixture("chromium_pq");
    let mut check = doc("check.sh", "clear", "curl/7.88.1", "127.0.0.1");
    check["attempts"] = json!([whole(2, "request", &curl, &[curl.len()], true)]);
    check["probe"]["up"] = json!([step(1_048_576, true)]);
    check["probe"]["down"] = json!([step(1_048_576, true)]);
    let mut browser = doc("browser", "clear", CHROMIUM_UA, "127.0.0.1");
    browser["attempts"] = json!([whole(9, "request", &chromium, &[chromium.len()], true)]);
    browser["probe"]["up"] = json!([step(1_048_576, true)]);
    browser["probe"]["down"] = json!([step(1_048_576, true)]);
    let c = compare(&side(A, &check), &side(B, &browser), None);
    assert_eq!((c.client, c.network), (Sameness::Different, Sameness::Same));
    assert_eq!(
        c.headline,
        "Neither run found a problem: same network, the clients differ."
    );
    let first = &c.explanation[0];
    assert_eq!(first.id, "client.different", "{c:#?}");
    let ja4 =
        |bytes: &[u8]| Fingerprints::of(&crate::hello::parse_client_hello(bytes).unwrap()).ja4;
    for words in [
        ja4(&curl),
        ja4(&chromium),
        format!(
            "B (browser) offers the post-quantum key share X25519MLKEM768 (1,216 bytes), in a \
             ClientHello of {} bytes (2 packets at MSS 1,460); A (check.sh) offers x25519 (32 bytes) \
             in {} bytes (1 packet at MSS 1,460)",
            crate::util::thousands(chromium.len()),
            curl.len()
        ),
        "User-Agent curl/7.88.1 vs HeadlessChrome/156.0.0.0".to_owned(),
    ] {
        assert!(first.text.contains(&words), "{words:?} not in {}", first.text);
    }
    let agree = c
        .explanation
        .iter()
        .find(|r| r.id == "network.same")
        .expect("the networks agree");
    assert!(
        agree.text.contains("127.0.0.0/24") && agree.text.contains("both paths passed every size"),
        "{}",
        agree.text
    );
    // The table lists the key shares and marks them.
    let row = c
        .sections
        .iter()
        .flat_map(|s| &s.rows)
        .find(|r| r.label == "Key shares")
        .unwrap();
    assert!(row.differs && row.b.contains("X25519MLKEM768"), "{row:?}");
}

#[test]
fn an_older_report_is_compared_as_far_as_its_fields_allow() {
    let (failing, working) = black_hole_pair();
    // Schema 1: no run attribution, the posting connection's ClientHello as
    // a parsed object without its bytes.
    let mut old = failing.clone();
    old["schema_version"] = json!(1);
    old.as_object_mut().unwrap().remove("attempts");
    old["connection"]["tls"] = json!({ "client_hello": { "sni": null }, "fingerprints": { "ja4": "t13i1516h2_8daaf6152771_cb7bf5808d99" } });
    let c = compare(&side(A, &old), &side(B, &working), None);
    let missing = c.a.missing.join("\n");
    assert!(missing.contains("saved under report schema 1"), "{missing}");
    assert!(missing.contains("`attempts`"), "{missing}");
    assert!(missing.contains("`raw_base64`"), "{missing}");
    assert!(c.b.missing.is_empty(), "{:?}", c.b.missing);
    // What it has still counts: its findings say the path is broken.
    assert_eq!(c.explanation[0].id, "path.client-to-server");
}

#[test]
fn a_document_that_is_not_json_is_an_error_not_a_panic() {
    assert!(Side::from_json(A, "not json").is_err());
    assert!(Side::from_json(A, "[1, 2]").is_err());
    // An empty object is read, and everything is missing.
    let empty = Side::from_json(A, "{}").unwrap();
    assert!(empty.missing.len() > 5);
    let c = compare(&empty, &empty, None);
    assert!(c.explanation.is_empty(), "{c:#?}");
}

#[test]
fn a_hello_in_several_reads_says_how_far_apart() {
    let (failing, mut working) = black_hole_pair();
    let chromium = fixture("chromium_pq");
    let first = 1348;
    working["attempts"] = json!([whole(
        3,
        "request",
        &chromium,
        &[first, chromium.len() - first],
        true
    )]);
    let c = compare(&side(A, &failing), &side(B, &working), None);
    assert!(
        c.explanation[0].text.contains(&format!(
            "on the working network the ClientHello arrived whole ({} bytes in 2 reads, the longest gap 1.5 ms, 2 packets at MSS 1,460)",
            crate::util::thousands(chromium.len())
        )),
        "{}",
        c.explanation[0].text
    );
}

#[test]
fn times_and_labels_never_count_as_differences() {
    let (failing, mut working) = black_hole_pair();
    working["created_at"] = json!("2026-12-02T10:00:00.000Z");
    working["label"] = json!("OTHER-2");
    let c = compare(&side(A, &failing), &side(B, &working), None);
    let rows: Vec<&Row> = c.sections.iter().flat_map(|s| &s.rows).collect();
    let get = |label: &str| rows.iter().find(|r| r.label == label).unwrap();
    assert!(!get("Saved").differs && !get("Case label").differs);
    assert!(get("Status").differs);
    assert!(!get("MSS").differs);
    assert!(get("ClientHellos never whole").differs);
}

#[test]
fn peer_strings_are_escaped_in_text_and_html() {
    let (mut failing, working) = black_hole_pair();
    let evil = "curl/8 \u{1b}[31m<script>alert(1)</script>\u{202e}";
    failing["connection"]["connection"]["user_agent"] = json!(evil);
    let c = compare(&side(A, &failing), &side(B, &working), None);
    let text = text::render(&c, "http://h");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
    assert!(text.contains("\\u{1b}[31m"));
    use askama::Template;
    let html = html::ComparePage { c: &c }.render().unwrap();
    assert!(!html.contains("<script>alert"), "unescaped");
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
}

#[test]
fn text_fits_80_columns_where_it_can_break() {
    let (failing, working) = black_hole_pair();
    let c = compare(&side(A, &failing), &side(B, &working), None);
    let text = text::render(&c, "http://h");
    for line in text.lines() {
        // Fingerprint strings and links cannot break; everything else wraps.
        if line.chars().count() > 80 {
            assert!(
                !line.trim().contains(' ') || line.contains("t13") || line.contains("http"),
                "{line:?}"
            );
        }
    }
    assert!(text.contains("* Status"), "{text}");
    assert!(
        text.contains(
            "  1. The failing network has a black hole from the client toward the server"
        ),
        "{text}"
    );
}

fn failed_handshake(id: u64, hello: &[u8], outcome: Value) -> Value {
    let mut a = whole(id, "request", hello, &[hello.len()], false);
    a["attempt"]["succeeded"] = json!(false);
    a["attempt"]["outcome"] = outcome;
    a["attempt"]["tls"]["negotiated"] = Value::Null;
    a
}

#[test]
fn handshakes_that_failed_only_on_the_failing_side_explain_it() {
    let curl = fixture("curl_openssl3");
    let mut failing = doc("check.sh", "problem", "curl/7.88.1", "192.0.2.7");
    failing["attempts"] = json!([failed_handshake(
        4,
        &curl,
        json!({ "kind": "no_shared_cipher" })
    )]);
    let mut working = doc("check.sh", "clear", "curl/7.88.1", "198.51.100.9");
    working["attempts"] = json!([whole(2, "request", &curl, &[curl.len()], false)]);
    let c = compare(&side(A, &failing), &side(B, &working), None);
    let r = c
        .explanation
        .iter()
        .find(|r| r.id == "tls.handshake")
        .expect("a handshake reason");
    assert!(
        r.text.starts_with("The failing network's handshakes failed after a whole ClientHello (1 of them: no cipher suite in common)"),
        "{}",
        r.text
    );
    // Different source networks are named.
    let net = c
        .explanation
        .iter()
        .find(|r| r.id == "network.different")
        .unwrap();
    assert!(
        net.text.contains("192.0.2.0/24 vs 198.51.100.0/24"),
        "{}",
        net.text
    );
}

#[test]
fn check_sh_rejecting_our_certificate_by_design_explains_nothing() {
    let curl = fixture("curl_openssl3");
    let run = |check: Value| {
        let mut d = doc("check.sh", "clear", "curl/7.88.1", "192.0.2.7");
        d["probe"]["tls_check"] = check;
        // curl refused our certificate (unknown_ca) on one connection.
        d["attempts"] = json!([
            whole(3, "request", &curl, &[curl.len()], false),
            failed_handshake(
                2,
                &curl,
                json!({ "kind": "client_alert", "alert": { "id": 48 } })
            ),
        ]);
        d
    };
    let mut plain = doc("check.sh", "clear", "curl/7.88.1", "192.0.2.7");
    plain["attempts"] = json!([whole(5, "request", &curl, &[curl.len()], false)]);
    // check.sh's certificate check, which then went on with -k: by design.
    let by_design = run(json!({ "verified": false, "issuer": "CN=test", "error": null }));
    let c = compare(&side(A, &by_design), &side(B, &plain), None);
    assert!(
        !c.explanation.iter().any(|r| r.id == "tls.handshake"),
        "{:#?}",
        c.explanation
    );
    // Without such a check, the same failure is the difference.
    let c = compare(&side(A, &run(Value::Null)), &side(B, &plain), None);
    let r = c
        .explanation
        .iter()
        .find(|r| r.id == "tls.handshake")
        .expect("a handshake reason");
    assert!(
        r.text.contains("the client aborted with alert unknown_ca"),
        "{}",
        r.text
    );
}
