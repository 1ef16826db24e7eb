//! The SYN parser (`TCP_SAVED_SYN` bytes: IPv4/IPv6 header, TCP header and
//! options), then the SYN as reports show it.
//!
//! Checks, beyond "no panic": the parsed fields agree with each other and with
//! the options list, the JSON reads back equal, and a plain-HTTP report that
//! carries the SYN (diagnosis, text, HTML) renders with no control characters
//! in its text.
#![no_main]

use libfuzzer_sys::fuzz_target;

use tlsdiag::diagnose::{self, IpVersion, Observations};
use tlsdiag::tcp::syn::{self, SynInfo};
use tlsdiag_fuzz::{peer, plain_report, profile, render_and_read_back};

fuzz_target!(|data: &[u8]| {
    let Ok(syn) = syn::parse(data) else {
        return;
    };
    check(data, &syn);
    render(&syn);
});

fn check(data: &[u8], s: &SynInfo) {
    assert_eq!(s.ip_version, data[0] >> 4);
    match s.ip_version {
        4 => {
            assert!(s.dont_fragment.is_some());
            assert_eq!(s.ttl, data[8]);
        }
        6 => {
            assert!(s.dont_fragment.is_none());
            assert_eq!(s.ttl, data[7]);
        }
        v => panic!("IP version {v} parsed"),
    }
    assert!([32, 64, 128, 255].contains(&s.initial_ttl), "{s:?}");
    assert!(s.initial_ttl >= s.ttl);
    assert_eq!(s.hops, s.initial_ttl - s.ttl);
    // The smallest common initial TTL at or above the TTL seen.
    if let Some(lower) = [32u8, 64, 128]
        .into_iter()
        .rev()
        .find(|&t| t < s.initial_ttl)
    {
        assert!(s.ttl > lower, "{s:?}");
    }

    let first = |kind: u8| s.options.iter().find(|o| o.kind == kind);
    assert_eq!(
        s.mss,
        first(2).and_then(|o| o.value?.to_string().parse().ok())
    );
    assert_eq!(
        s.window_scale,
        first(3).and_then(|o| o.value?.to_string().parse().ok())
    );
    assert_eq!(s.sack_permitted, first(4).is_some());
    assert_eq!(s.timestamps, first(8).is_some());
    let overhead = if s.ip_version == 4 { 40 } else { 60 };
    assert_eq!(s.implied_mtu, s.mss.map(|m| u32::from(m) + overhead));
    // Nothing after an end-of-list or a malformed option.
    if let Some(i) = s
        .options
        .iter()
        .position(|o| o.kind == 0 || o.name == "malformed")
    {
        assert_eq!(
            i + 1,
            s.options.len(),
            "options after the end: {:?}",
            s.options
        );
    }
    // 40 option bytes at most, so at most 40 options.
    assert!(s.options.len() <= 40, "{} options", s.options.len());

    let json = serde_json::to_string(s).expect("SynInfo serializes");
    let back: SynInfo = serde_json::from_str(&json).expect("SynInfo reads back");
    assert_eq!(without_raw(&back), without_raw(s));
    assert_eq!(&*s.raw, data, "the raw SYN is the bytes parsed");
}

/// The raw bytes stay out of JSON by design (a shared store keeps them beside
/// it and parses them again): what reads back is everything parsed from them.
fn without_raw(s: &SynInfo) -> SynInfo {
    SynInfo {
        raw: std::sync::Arc::from(&[][..]),
        ..s.clone()
    }
}

fn render(s: &SynInfo) {
    let ipv6 = s.ip_version == 6;
    let diagnosis = diagnose::diagnose(
        &Observations {
            ip: IpVersion::of(peer(ipv6).ip()),
            attempts: &[],
            run: None,
            hello_ladder: &[],
            tls_check: None,
            syn: Some(s),
            how_to_test: "curl -sS http://203.0.113.1:8080/check.sh | sh",
            via: None,
            judged: None,
            client: None,
        },
        profile(),
    );
    let report = plain_report(ipv6, Some(s.clone()), diagnosis);
    let facts = report.connection_facts();
    assert!(facts.iter().any(|f| f.label == "Your SYN"));
    let back = render_and_read_back(&report);
    assert_eq!(back.syn.as_ref().map(without_raw), Some(without_raw(s)));
}
