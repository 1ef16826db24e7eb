//! What counting an attempt for metrics costs the connection task:
//! `cargo bench --bench metrics` (add `-- --quick` for a shorter run).
//!
//! Times `Metrics::attempt` (outcome counter, hello-size and handshake-time
//! histograms, the per-network event) for a completed handshake, an
//! incomplete hello and an alert, with and without per-network accounting
//! (its thread draining the channel meanwhile, as in the server). Prints ns
//! per attempt, the best of 50 rounds of 12,000: to set against a full TLS handshake
//! (hundreds of microseconds of CPU).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tlsdiag::attempt::{Arrival, Outcome, StallEnd, TlsAttempt};
use tlsdiag::hello::wire::AlertDescription;
use tlsdiag::metrics::{feed, Metrics};

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

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Under the queue's 16,384 events, so a round measures sends that are
    // queued, not dropped (a real server sends far fewer than the thread
    // drains: thousands a second, not millions).
    let per_round: u32 = 12_000;
    let rounds = if quick { 5 } else { 50 };
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
    let (feed, tasks) = feed::new(50, None, Duration::from_secs(30));
    tasks.start().unwrap();
    for (name, metrics) in [
        ("counters only", Metrics::new()),
        ("with per-network", Metrics::with_feed(feed)),
    ] {
        let mut best = f64::INFINITY;
        for _ in 0..rounds {
            let start = Instant::now();
            for a in attempts.iter().cycle().take(per_round as usize) {
                metrics.attempt(black_box(a));
            }
            best = best.min(start.elapsed().as_nanos() as f64 / f64::from(per_round));
            // Let the accounting thread catch up, so no round is measured
            // against a full queue (events dropped cost less than counted).
            std::thread::sleep(Duration::from_millis(50));
        }
        let dropped = metrics
            .networks()
            .map_or(0, |n| n.dropped.load(std::sync::atomic::Ordering::Relaxed));
        println!("{name:<18} {best:>7.1} ns/attempt   (events dropped: {dropped})");
    }
}
