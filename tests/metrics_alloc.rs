//! Counting an attempt for metrics allocates nothing: the counters and
//! histograms are handles made at start, and the per-network event goes on a
//! preallocated channel (the counting global allocator of tests/counting_alloc;
//! a binary of its own so no other test allocates meanwhile).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tlsdiag::attempt::{Arrival, Outcome, StallEnd, TlsAttempt};
use tlsdiag::hello::wire::AlertDescription;
use tlsdiag::metrics::{feed, Metrics};

mod counting_alloc;

fn attempt(outcome: Outcome, peer: &str) -> TlsAttempt {
    TlsAttempt {
        id: 1,
        peer: peer.parse().unwrap(),
        local: SocketAddr::from(([127, 0, 0, 1], 8443)),
        started_at: SystemTime::now(),
        arrival: Arrival {
            bytes: 0,
            read_count: 0,
            reads: Vec::new(),
            capture_ms: 1.0,
        },
        raw: Vec::new(),
        client_hello: None,
        fingerprint_cache: Default::default(),
        negotiated: None,
        handshake_ms: Some(3.5),
        outcome,
        syn: None,
        tcp: None,
        handshake_flight: None,
        after_handshake: Default::default(),
        icmp_probe: None,
        first_request: Default::default(),
        run: Default::default(),
        our_mss: None,
        seen_by: None,
        balancer: None,
    }
}

#[test]
fn counting_an_attempt_allocates_nothing() {
    let (feed, tasks) = feed::new(50, None, Duration::from_secs(30));
    let metrics = Metrics::with_feed(feed);
    tasks.start().unwrap();
    let attempts = [
        attempt(Outcome::Completed, "198.18.0.1:40000"),
        attempt(
            Outcome::HelloIncomplete {
                received: 1460,
                expected: Some(1547),
                ended: StallEnd::Timeout,
                out_of_order_segments: 1,
            },
            "198.18.1.1:40000",
        ),
        attempt(
            Outcome::ClientAlert {
                alert: AlertDescription::UNKNOWN_CA,
            },
            "[2001:db8::1]:40000",
        ),
    ];
    let mut counted_rounds = Vec::new();
    for round in 0..20 {
        let before = counting_alloc::allocations();
        for a in attempts.iter().cycle().take(300) {
            metrics.attempt(a);
        }
        let after = counting_alloc::allocations();
        // Time for the accounting thread to drain the channel (its own
        // allocations, such as each network's labels the first time, count too).
        std::thread::sleep(Duration::from_millis(20));
        if round > 0 {
            counted_rounds.push(after - before);
        }
    }
    let total: usize = counted_rounds.iter().sum();
    // 5,700 attempts after warm-up.
    assert!(
        total == 0,
        "allocations per 300 attempts, by round: {counted_rounds:?}"
    );
    let text = metrics.render(&[], None);
    assert!(
        text.contains("tlsdiag_tls_attempts_total{outcome=\"completed\"} 2000"),
        "{text}"
    );
    assert!(
        text.contains("tlsdiag_tls_attempts_by_network_total{network=\"198.18.0.0/24\",outcome=\"completed\"} 2000"),
        "{text}"
    );
    assert!(
        text.contains("tlsdiag_tls_attempts_by_network_total{network=\"2001:db8::/48\",outcome=\"alert\"} 2000"),
        "{text}"
    );
    assert!(text.contains("tlsdiag_network_events_dropped_total 0"));
}
