//! Prometheus metrics: what the server counts, and the text a scrape gets.
//!
//! Counting costs the handshake only atomics: every counter a connection
//! touches is a handle made at start ([`prometheus`]'s `IntCounter` is an
//! atomic, its `Histogram` lock-free shards), indexed by a fixed outcome
//! class; the per-network count is an event on a bounded channel (`feed`).
//! Everything labelled by something outside our control is bounded: outcome
//! and alert labels are fixed sets, networks at most
//! `--metrics-top-networks` plus `other`, AS names sanitized and escaped.
//!
//! - `class`: outcome classes and alert labels (pure).
//! - `asn`: the IP-to-AS table (pure).
//! - `network`: an address's network, AS or prefix (pure).
//! - `topn`: per-network counts with a bounded label set (pure).
//! - `feed`: the channel, the accounting task, the table watcher.
//! - `settings`: the flags.
//!
//! The listener serving `/metrics` is the server's (`server::metrics_http`).
//! What each series means: `docs/metrics.md`.

pub mod asn;
pub mod class;
pub mod feed;
pub mod network;
pub mod settings;
pub mod topn;

pub use settings::{MetricsArgs, MetricsSettings};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use crate::attempt::{Outcome, TlsAttempt};
use crate::diagnose::Status;
use class::OutcomeClass;
use feed::{Feed, NetworkCounts};

/// ClientHello size buckets, bytes: either side of the sizes paths break at
/// (512/1024 for old middleboxes, 1200–1500 for MTUs and MSS clamps, 1460 a
/// full Ethernet segment, 1600+ post-quantum key shares).
pub const HELLO_BYTES_BUCKETS: &[f64] = &[
    256.0, 512.0, 1024.0, 1200.0, 1280.0, 1400.0, 1460.0, 1500.0, 1600.0, 2048.0, 4096.0, 8192.0,
    16384.0, 65536.0,
];

/// Handshake time buckets, seconds (accept to handshake done).
pub const HANDSHAKE_SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const STATUSES: [Status; 3] = [Status::Problem, Status::Inconclusive, Status::Clear];
const AGENTS: [&str; 2] = ["browser", "check.sh"];

/// One listener's connection figures, read when scraped.
#[derive(Debug, Clone, Copy)]
pub struct ListenerStats {
    pub listener: &'static str,
    /// Taken from the kernel (admitted or refused).
    pub accepted: u64,
    /// Closed at once: the limit was reached and every connection was busy.
    pub refused: u64,
    /// Older connections closed to make room for a new one.
    pub shed: u64,
    /// Closed for want of a valid PROXY header (`--proxy-protocol`).
    pub proxy_rejected: u64,
    pub open: u64,
}

/// Every series, and the handles the server counts with.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// By [`OutcomeClass::index`].
    attempts: Vec<IntCounter>,
    /// By alert code; unregistered codes share the `unknown` handle.
    alerts: Vec<IntCounter>,
    hello_bytes: Histogram,
    handshake_seconds: Histogram,
    /// By status (as in [`STATUSES`]) × agent (as in [`AGENTS`]).
    path_tests: Vec<IntCounter>,
    reports_saved: IntCounter,
    reports_not_saved: IntCounter,
    feed: Option<Feed>,
}

impl Metrics {
    /// Counters without per-network accounting.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// Counters, and per-network counts through `feed`.
    pub fn with_feed(feed: Feed) -> Self {
        Self::build(Some(feed))
    }

    fn build(feed: Option<Feed>) -> Self {
        let registry = Registry::new();
        let attempts_vec = counter_vec(
            &registry,
            "tlsdiag_tls_attempts_total",
            "Connections to the HTTPS port (attempts), by how they ended.",
            &["outcome"],
        );
        let attempts = OutcomeClass::ALL
            .iter()
            .map(|c| attempts_vec.with_label_values(&[c.label()]))
            .collect();
        let alerts_vec = counter_vec(
            &registry,
            "tlsdiag_tls_client_alerts_total",
            "Attempts the client aborted with an alert (outcome=\"alert\"), by alert.",
            &["alert"],
        );
        let alerts = (0..=255u8)
            .map(|code| {
                let label = class::alert_label(crate::hello::wire::AlertDescription(code));
                alerts_vec.with_label_values(&[label])
            })
            .collect();
        let hello_bytes = histogram(
            &registry,
            "tlsdiag_client_hello_bytes",
            "Size of each ClientHello on the wire (record headers included); for an incomplete one, the size its headers announced.",
            HELLO_BYTES_BUCKETS,
        );
        let handshake_seconds = histogram(
            &registry,
            "tlsdiag_tls_handshake_seconds",
            "Time from accept to a completed handshake.",
            HANDSHAKE_SECONDS_BUCKETS,
        );
        let path_vec = counter_vec(
            &registry,
            "tlsdiag_path_tests_total",
            "Path-test results posted, by verdict status and client.",
            &["status", "agent"],
        );
        let path_tests = STATUSES
            .iter()
            .flat_map(|s| AGENTS.iter().map(move |a| (s.as_str(), *a)))
            .map(|(s, a)| path_vec.with_label_values(&[s, a]))
            .collect();
        let reports_saved = counter(
            &registry,
            "tlsdiag_reports_saved_total",
            "Path-test reports saved.",
        );
        let reports_not_saved = counter(
            &registry,
            "tlsdiag_reports_not_saved_total",
            "Path-test reports that could not be saved (storage unavailable, full, too large).",
        );
        Self {
            registry,
            attempts,
            alerts,
            hello_bytes,
            handshake_seconds,
            path_tests,
            reports_saved,
            reports_not_saved,
            feed,
        }
    }

    /// Counts one finished attempt: a few atomics, and one event for the
    /// per-network count (no allocation, no lock).
    pub fn attempt(&self, a: &TlsAttempt) {
        let class = OutcomeClass::of(&a.outcome);
        self.attempts[class.index()].inc();
        let announced = match &a.outcome {
            Outcome::ClientAlert { alert } => {
                self.alerts[usize::from(alert.0)].inc();
                None
            }
            Outcome::HelloIncomplete { expected, .. } => *expected,
            _ => None,
        };
        if let Some(bytes) = a.client_hello.as_ref().map(|h| h.wire_length).or(announced) {
            self.hello_bytes.observe(bytes as f64);
        }
        if class == OutcomeClass::Completed {
            if let Some(ms) = a.handshake_ms {
                self.handshake_seconds.observe(ms / 1000.0);
            }
        }
        if let Some(feed) = &self.feed {
            feed.send(a.peer.ip(), class);
        }
    }

    /// Counts one path-test result.
    pub fn path_test(&self, status: Status, agent: &str) {
        let s = STATUSES.iter().position(|&x| x == status).unwrap_or(0);
        let a = usize::from(agent != AGENTS[0]);
        self.path_tests[s * AGENTS.len() + a].inc();
    }

    /// Counts a report saved (`true`) or not.
    pub fn report(&self, saved: bool) {
        if saved {
            self.reports_saved.inc();
        } else {
            self.reports_not_saved.inc();
        }
    }

    /// The per-network counts, when they are kept.
    pub fn networks(&self) -> Option<&Arc<NetworkCounts>> {
        self.feed.as_ref().map(Feed::counts)
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub fn render(
        &self,
        listeners: &[ListenerStats],
        packets: Option<&crate::packets::Usage>,
    ) -> String {
        let mut families = self.registry.gather();
        families.extend(listener_families(listeners));
        if let Some(usage) = packets {
            families.extend(packet_families(usage));
        }
        if let Some(counts) = self.networks() {
            families.extend(network_families(counts));
        }
        let mut out = String::with_capacity(16 * 1024);
        if let Err(err) = prometheus::TextEncoder::new().encode_utf8(&families, &mut out) {
            // Only an empty family can fail, and none is built empty.
            tracing::error!(error = %err, "encoding metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// Names and label sets are constants: registering them cannot fail.
#[allow(clippy::expect_used)]
fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(vec.clone()))
        .expect("registered once");
    vec
}

#[allow(clippy::expect_used)]
fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

#[allow(clippy::expect_used)]
fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn sample(labels: &[(&str, &str)], kind: MetricType, value: f64) -> proto::Metric {
    let mut m = proto::Metric::default();
    m.set_label(
        labels
            .iter()
            // An empty label value means "no such label" to Prometheus: leave it out.
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name((*k).to_owned());
                pair.set_value((*v).to_owned());
                pair
            })
            .collect(),
    );
    if kind == MetricType::GAUGE {
        let mut g = proto::Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
    } else {
        let mut c = proto::Counter::default();
        c.set_value(value);
        m.set_counter(c);
    }
    m
}

/// The packet capture's memory and what it did with packets, read now.
fn packet_families(u: &crate::packets::Usage) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE};
    let c = &u.counters;
    let one = |name: &str, help: &str, kind, labels: &[(&str, &str, u64)]| {
        let metrics = labels
            .iter()
            .map(|(k, v, n)| {
                let labels: &[(&str, &str)] = if k.is_empty() { &[] } else { &[(*k, *v)] };
                sample(labels, kind, *n as f64)
            })
            .collect();
        family(name, help, kind, metrics)
    };
    vec![
        one(
            "tlsdiag_packets_memory_bytes",
            "Memory of the packet capture: the kernel ring, and the connections' packets as charged against --packet-memory-mb.",
            GAUGE,
            &[("part", "ring", u.ring_bytes as u64), ("part", "table", u.table_bytes as u64)],
        ),
        one(
            "tlsdiag_packets_memory_limit_bytes",
            "The bound on the connections' packets (--packet-memory-mb).",
            GAUGE,
            &[("", "", u.table_limit as u64)],
        ),
        one(
            "tlsdiag_packets_connections",
            "Connections whose packets are held now.",
            GAUGE,
            &[("", "", u.connections as u64)],
        ),
        one(
            "tlsdiag_packets_total",
            "Captured packets: kept (whole, or their headers), not kept (past their connection's bound), unmatched (no connection held: no SYN seen, or already dropped).",
            COUNTER,
            &[("fate", "kept", c.kept), ("fate", "not_kept", c.not_kept), ("fate", "unmatched", c.unmatched)],
        ),
        one(
            "tlsdiag_packets_connections_dropped_total",
            "Connections whose packets were dropped: evicted (to stay within an address's share or the total), expired (15 minutes old).",
            COUNTER,
            &[("why", "evicted", c.evicted), ("why", "expired", c.expired)],
        ),
        one(
            "tlsdiag_packets_ring_drops_total",
            "Packets the kernel could not put in the capture ring because it was full.",
            COUNTER,
            &[("", "", u.ring_drops)],
        ),
    ]
}

fn listener_families(listeners: &[ListenerStats]) -> Vec<MetricFamily> {
    if listeners.is_empty() {
        return Vec::new();
    }
    type Pick = fn(&ListenerStats) -> u64;
    let series: [(&str, &str, MetricType, Pick); 5] = [
        (
            "tlsdiag_connections_accepted_total",
            "Connections accepted from the kernel, by listener (admitted or refused).",
            MetricType::COUNTER,
            |l| l.accepted,
        ),
        (
            "tlsdiag_connections_open",
            "Connections held now, by listener.",
            MetricType::GAUGE,
            |l| l.open,
        ),
        (
            "tlsdiag_connections_shed_total",
            "Connections closed to make room for a new one (a per-address or listener limit was reached).",
            MetricType::COUNTER,
            |l| l.shed,
        ),
        (
            "tlsdiag_connections_refused_total",
            "Connections closed on accept: a limit was reached and every held connection was busy.",
            MetricType::COUNTER,
            |l| l.refused,
        ),
        (
            "tlsdiag_connections_proxy_rejected_total",
            "Connections closed for want of a valid PROXY protocol header (--proxy-protocol).",
            MetricType::COUNTER,
            |l| l.proxy_rejected,
        ),
    ];
    series
        .iter()
        .map(|(name, help, kind, pick)| {
            let metrics = listeners
                .iter()
                .map(|l| sample(&[("listener", l.listener)], *kind, pick(l) as f64))
                .collect();
            family(name, help, *kind, metrics)
        })
        .collect()
}

fn network_families(counts: &NetworkCounts) -> Vec<MetricFamily> {
    let (by_network, ranges) = {
        let state = counts.lock();
        let mut metrics = Vec::with_capacity((state.by.slots().len() + 1) * OutcomeClass::COUNT);
        let (other_labels, other_counts) = state.by.other();
        let rows = state
            .by
            .slots()
            .iter()
            .map(|s| (&s.labels, &s.counts))
            .chain(std::iter::once((other_labels, other_counts)));
        for (labels, counts) in rows {
            for class in OutcomeClass::ALL {
                metrics.push(sample(
                    &[
                        ("network", &labels.network),
                        ("asn", &labels.asn),
                        ("as_name", &labels.as_name),
                        ("outcome", class.label()),
                    ],
                    MetricType::COUNTER,
                    counts[class.index()] as f64,
                ));
            }
        }
        (metrics, state.table.as_ref().map_or(0, |t| t.ranges()))
    };
    let plain = |name, help, kind, value: u64| {
        family(name, help, kind, vec![sample(&[], kind, value as f64)])
    };
    vec![
        family(
            "tlsdiag_tls_attempts_by_network_total",
            "Attempts by source network (AS from --asn-db, else /24 or /48) and outcome; networks beyond --metrics-top-networks count as network=\"other\".",
            MetricType::COUNTER,
            by_network,
        ),
        plain(
            "tlsdiag_network_events_dropped_total",
            "Attempts not counted by network because the accounting queue was full.",
            MetricType::COUNTER,
            counts.dropped.load(Ordering::Relaxed),
        ),
        plain(
            "tlsdiag_asn_db_ranges",
            "Address ranges in the AS table in use (0: none).",
            MetricType::GAUGE,
            ranges as u64,
        ),
        plain(
            "tlsdiag_asn_db_reloads_total",
            "AS table files loaded after start.",
            MetricType::COUNTER,
            counts.reloads.load(Ordering::Relaxed),
        ),
        plain(
            "tlsdiag_asn_db_reload_failures_total",
            "Changed AS table files refused (the table in use was kept).",
            MetricType::COUNTER,
            counts.reload_failures.load(Ordering::Relaxed),
        ),
    ]
}
