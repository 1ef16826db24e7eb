//! Parser tests on real captures (tests/fixtures/hellos/*.bin, recorded from the
//! named clients with tests/fixtures/capture_hello.py).

use super::*;

const FIXTURES: &[(&str, &[u8])] = &[
    (
        "chromium_pq",
        include_bytes!("../../tests/fixtures/hellos/chromium_pq.bin"),
    ),
    (
        "curl_openssl3",
        include_bytes!("../../tests/fixtures/hellos/curl_openssl3.bin"),
    ),
    (
        "gnutls_cli",
        include_bytes!("../../tests/fixtures/hellos/gnutls_cli.bin"),
    ),
    (
        "openssl_s_client_noservername",
        include_bytes!("../../tests/fixtures/hellos/openssl_s_client_noservername.bin"),
    ),
    (
        "openssl_s_client_tls12_sni",
        include_bytes!("../../tests/fixtures/hellos/openssl_s_client_tls12_sni.bin"),
    ),
    (
        "openssl_s_client_tls13_default",
        include_bytes!("../../tests/fixtures/hellos/openssl_s_client_tls13_default.bin"),
    ),
    (
        "openssl_s_client_tls1_legacy",
        include_bytes!("../../tests/fixtures/hellos/openssl_s_client_tls1_legacy.bin"),
    ),
];

/// linkerd's prefix sweep: every strict prefix is `Incomplete` and announces the
/// full length as soon as the headers allow; the whole parses.
#[test]
fn every_prefix_is_incomplete_until_the_hello_is_whole() {
    for (name, bytes) in FIXTURES {
        for cut in 0..bytes.len() {
            match parse_client_hello(&bytes[..cut]) {
                Err(HelloError::Incomplete { have, need }) => {
                    assert_eq!(have, cut, "{name} at {cut}");
                    assert!(need > cut, "{name} at {cut}: need {need}");
                    if cut >= 9 {
                        assert_eq!(need, bytes.len(), "{name} at {cut}");
                    }
                }
                other => panic!("{name} cut at {cut}: {other:?}"),
            }
        }
        let hello = parse_client_hello(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(hello.wire_length, bytes.len(), "{name}");
    }
}

#[test]
fn chromium_hello_has_grease_pq_share_and_ech() {
    let hello = parse_client_hello(FIXTURES[0].1).unwrap();
    assert!(
        hello.cipher_suites[0].is_grease(),
        "Chromium leads with GREASE"
    );
    assert!(hello.extensions.first().unwrap().kind.is_grease());
    assert_eq!(hello.sni(), Some("localhost"));
    assert_eq!(hello.highest_version(), wire::ProtocolVersion::TLS_1_3);
    let pq = hello
        .key_shares()
        .iter()
        .find(|s| s.group == wire::NamedGroup::X25519MLKEM768);
    assert_eq!(pq.map(|s| s.key_exchange_length), Some(1216));
    assert!(hello
        .extension(wire::ExtensionType::ENCRYPTED_CLIENT_HELLO)
        .is_some());
}

#[test]
fn legacy_hello_without_extensions_parses() {
    let hello = parse_client_hello(FIXTURES[6].1).unwrap();
    assert_eq!(hello.legacy_version, wire::ProtocolVersion::TLS_1_0);
    assert!(hello.supported_versions().is_empty());
    assert_eq!(hello.highest_version(), wire::ProtocolVersion::TLS_1_0);
}

/// Mutated real hellos (a deterministic xorshift picks bytes to flip, lengths to
/// shorten): the parser must return, never panic.
#[test]
fn mutated_hellos_never_panic() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (_, bytes) in FIXTURES {
        for _ in 0..2000 {
            let mut m = bytes.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            let cut = (next() as usize) % (m.len() + 1);
            let _ = parse_client_hello(&m[..cut]);
            let _ = parse_client_hello(&m);
        }
    }
}

/// The lists are allocated at their size, not grown: a record's footprint
/// charges capacity, and growing would also copy them.
#[test]
fn extension_lists_are_allocated_at_their_size() {
    for (name, bytes) in FIXTURES {
        let hello = parse_client_hello(bytes).expect(name);
        assert_eq!(
            hello.extensions.capacity(),
            hello.extensions.len(),
            "{name}"
        );
        assert_eq!(
            hello.cipher_suites.capacity(),
            hello.cipher_suites.len(),
            "{name}"
        );
    }
}

/// An ALPN id is kept as its bytes and still serializes as its name, lossy
/// where it is not UTF-8, as reports have always shown it.
#[test]
fn protocol_ids_serialize_as_their_names() {
    let h2 = model::Protocol::from_raw(b"h2");
    assert_eq!(serde_json::to_string(&h2).unwrap(), r#"{"name":"h2"}"#);
    let odd = model::Protocol::from_raw(&[0x68, 0xff]);
    assert_eq!(
        serde_json::to_string(&odd).unwrap(),
        "{\"name\":\"h\u{fffd}\"}"
    );
}
