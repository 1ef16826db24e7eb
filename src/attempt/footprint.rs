//! What an attempt really occupies in memory: the record itself and every
//! heap buffer it owns, by capacity. The recent-attempts store budgets by
//! this, so a hostile hello (thousands of empty extensions, a 64 KiB cipher
//! list) is charged for what its parsed form and fingerprints actually hold.

use std::mem::size_of;

use super::{Outcome, TlsAttempt};
use crate::hello::{ClientHello, ExtensionData};

/// Bytes held by `a`, its own struct included (shared parts, like the
/// after-handshake cell, once).
pub fn of(a: &TlsAttempt) -> usize {
    size_of::<TlsAttempt>()
        + a.raw.capacity()
        + a.arrival.reads.capacity() * size_of::<crate::capture::ReadEvent>()
        + a.client_hello.as_ref().map_or(0, hello)
        + a.client_hello.as_ref().map_or(0, fingerprints)
        + a.negotiated
            .as_ref()
            .and_then(|n| n.alpn.as_ref())
            .map_or(0, String::capacity)
        + outcome(&a.outcome)
        + a.syn.as_ref().map_or(0, |s| {
            s.options.capacity() * size_of::<crate::tcp::syn::TcpOption>() + s.raw.len()
        })
        + a.icmp_probe.as_ref().map_or(0, |p| {
            // Its one message string, at most.
            serde_json::to_string(p).map_or(0, |s| s.len())
        })
        + a.balancer.as_ref().map_or(0, |b| {
            size_of::<super::Balancer>()
                + b.via.balancer_syn.as_ref().map_or(0, |s| {
                    s.options.capacity() * size_of::<crate::tcp::syn::TcpOption>()
                })
        })
        // The shared cell behind `after_handshake`.
        + 64
        // The first request's facts arrive after the attempt is stored:
        // charged by their bound from the start.
        + super::RequestFacts::MAX_BYTES
        // Likewise the run a request names.
        + super::MAX_RUN_ID_BYTES
}

/// The most a hello's fingerprints hold once worked out (they are computed
/// when first read, and charged from the start): JA3 writes each listed value
/// in at most 5 digits and a separator, JA4's raw forms at most 4 hex digits
/// and a separator per cipher, extension and signature algorithm, twice
/// (sorted and original order); the hashes and prefixes are fixed-size.
pub fn fingerprints(h: &ClientHello) -> usize {
    const FIXED: usize = 32 + 2 * 36 + 2 * 40 + 16;
    let ja3_values = 1
        + h.cipher_suites.len()
        + h.extensions.len()
        + h.supported_groups().len()
        + h.ec_point_formats().len();
    let ja4_values = h.cipher_suites.len() + h.extensions.len() + h.signature_algorithms().len();
    FIXED + 6 * ja3_values + 2 * 5 * ja4_values
}

/// A parsed hello's heap: its lists and each extension's raw and decoded parts.
pub fn hello(h: &ClientHello) -> usize {
    let records = h.records.capacity() * size_of::<crate::hello::model::RecordHeader>();
    let suites = h.cipher_suites.capacity() * size_of::<crate::hello::wire::CipherSuite>();
    let extensions = h.extensions.capacity() * size_of::<crate::hello::Extension>()
        + h.extensions
            .iter()
            .map(|e| decoded(&e.decoded))
            .sum::<usize>();
    records + suites + extensions + h.session_id.capacity() + h.compression_methods.capacity()
}

fn decoded(d: &ExtensionData) -> usize {
    use crate::hello::model::{KeyShareEntry, Protocol, ServerName};
    use crate::hello::wire::{NamedGroup, ProtocolVersion, SignatureScheme};
    let protocols = |p: &Vec<Protocol>| {
        p.capacity() * size_of::<Protocol>() + p.iter().map(|p| p.raw.capacity()).sum::<usize>()
    };
    match d {
        ExtensionData::ServerName { names } => {
            names.capacity() * size_of::<ServerName>()
                + names.iter().map(|n| n.name.capacity()).sum::<usize>()
        }
        ExtensionData::Alpn { protocols: p }
        | ExtensionData::ApplicationSettings { protocols: p } => protocols(p),
        ExtensionData::SupportedGroups { groups } => groups.capacity() * size_of::<NamedGroup>(),
        ExtensionData::EcPointFormats { formats } => formats.capacity(),
        ExtensionData::SignatureAlgorithms { schemes } => {
            schemes.capacity() * size_of::<SignatureScheme>()
        }
        ExtensionData::SupportedVersions { versions } => {
            versions.capacity() * size_of::<ProtocolVersion>()
        }
        ExtensionData::KeyShare { shares } => shares.capacity() * size_of::<KeyShareEntry>(),
        ExtensionData::PskKeyExchangeModes { modes } => modes.capacity(),
        ExtensionData::CompressCertificate { algorithms } => algorithms.capacity() * 2,
        ExtensionData::Malformed { reason } => reason.capacity(),
        _ => 0,
    }
}

fn outcome(o: &Outcome) -> usize {
    // Outcomes own at most a few short strings (an alert's name, an error
    // message, a preview of non-TLS bytes); their serialized length bounds them.
    match o {
        Outcome::Completed => 0,
        // Two lists of short strings: their heap, not their JSON, which
        // leaves out each string's own header.
        Outcome::NoApplicationProtocol { offered, supported } => [offered, supported]
            .iter()
            .map(|ids| {
                ids.capacity() * size_of::<String>()
                    + ids.iter().map(String::capacity).sum::<usize>()
            })
            .sum(),
        other => serde_json::to_string(other).map_or(0, |s| s.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_with_thousands_of_empty_extensions_is_charged_for_each() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/hellos/chromium_pq.bin"
        ))
        .expect("fixture");
        let real = crate::hello::parse_client_hello(&raw).expect("parses");
        let small = hello(&real);
        let mut big = real.clone();
        let empty = crate::hello::Extension {
            kind: crate::hello::wire::ExtensionType(0xff01),
            length: 0,
            decoded: ExtensionData::Empty,
        };
        big.extensions = vec![empty; 16_000];
        // 4 bytes on the wire each, but a whole `Extension` struct in memory.
        assert!(hello(&big) >= 16_000 * size_of::<crate::hello::Extension>());
        assert!(small < 64 * 1024, "a real hello stays small: {small}");
    }

    #[test]
    fn fingerprints_are_charged_at_least_what_they_hold() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hellos");
        let mut hellos: Vec<ClientHello> = std::fs::read_dir(dir)
            .expect("fixtures")
            .map(|entry| {
                let raw = std::fs::read(entry.expect("entry").path()).expect("fixture");
                crate::hello::parse_client_hello(&raw).expect("parses")
            })
            .collect();
        // And the largest lists a hello can carry, with five-digit values.
        let mut huge = hellos[0].clone();
        huge.cipher_suites = vec![crate::hello::wire::CipherSuite(0xfffe); 30_000];
        hellos.push(huge);
        for h in &hellos {
            let f = crate::fingerprint::Fingerprints::of(h);
            let held = [&f.ja3, &f.ja3_md5, &f.ja4, &f.ja4_r, &f.ja4_o, &f.ja4_ro]
                .iter()
                .map(|s| s.capacity())
                .sum::<usize>();
            assert!(
                fingerprints(h) >= held,
                "charged {} for {held} bytes",
                fingerprints(h)
            );
        }
    }
}
