//! What one side's report says, worked out once for both the explanation and
//! the table: whether it works, its clients' ClientHellos and how they
//! arrived, its ladders, its ICMP tests, its source network. Pure.

use crate::attempt::{IcmpProbe, Outcome};
use crate::diagnose::{Finding, Severity, Status, DOWN_BROKEN, UP_BROKEN};
use crate::hello::wire::NamedGroup;
use crate::metrics::asn::AsTable;
use crate::metrics::network::Network;
use crate::probe::{ClientStep, ProbeObservation, StepView};
use crate::report::AttemptView;
use crate::util::thousands;

use super::side::{KeptHello, Role, Side};

/// Bytes of the TCP timestamp option in every segment when both ends use it.
const TIMESTAMP_OPTION: usize = 12;

/// Where a side stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Its run found no problem while the other's did.
    Working,
    /// Its run found a problem while the other's did not.
    Failing,
    /// Both found problems, or neither did.
    Undecided,
}

/// One ladder, read.
#[derive(Debug, Clone, Default)]
pub struct Ladder<'a> {
    pub ran: usize,
    pub passed: usize,
    pub largest_ok: Option<u64>,
    /// The first size that failed, and the client's word for it.
    pub first_failure: Option<(u64, String)>,
    /// The server's view of the step that failed.
    pub failed_step: Option<&'a ProbeObservation>,
    pub largest: Option<u64>,
}

impl<'a> Ladder<'a> {
    pub fn of(steps: &'a [StepView]) -> Self {
        let mut ladder = Ladder::default();
        for step in steps {
            if step.passed() {
                ladder.ran += 1;
                ladder.passed += 1;
                ladder.largest_ok = ladder.largest_ok.max(Some(step.bytes));
                ladder.largest = ladder.largest.max(Some(step.bytes));
            } else if step.failed() {
                ladder.ran += 1;
                ladder.largest = ladder.largest.max(Some(step.bytes));
                if ladder
                    .first_failure
                    .as_ref()
                    .is_none_or(|(b, _)| step.bytes < *b)
                {
                    let why = step
                        .client
                        .as_ref()
                        .and_then(|c| c.error.clone())
                        .unwrap_or_else(|| "stalled".to_owned());
                    ladder.first_failure = Some((step.bytes, why));
                    ladder.failed_step = step.server.as_ref();
                }
            }
        }
        ladder
    }

    /// "all 12 sizes passed, up to 1,048,576 bytes", "failed from 1,400 bytes
    /// (timeout); 1,300 passed", "not run".
    pub fn summary(&self, verb_passed: &str) -> String {
        match (&self.first_failure, self.largest_ok) {
            _ if self.ran == 0 => "not run".to_owned(),
            (None, largest) => format!(
                "all {} size{} {verb_passed}, up to {} bytes",
                self.passed,
                plural(self.passed),
                thousands(largest.unwrap_or_default() as usize)
            ),
            (Some((bytes, why)), Some(ok)) => format!(
                "failed from {} bytes ({}); {} {verb_passed}",
                thousands(*bytes as usize),
                why,
                thousands(ok as usize)
            ),
            (Some((bytes, why)), None) => format!(
                "failed from {} bytes ({}); nothing smaller {verb_passed}",
                thousands(*bytes as usize),
                why
            ),
        }
    }
}

/// check.sh's ClientHello size ladder, read.
pub fn hello_ladder(steps: &[ClientStep]) -> Ladder<'static> {
    let mut ladder = Ladder::default();
    for step in steps {
        ladder.ran += 1;
        ladder.largest = ladder.largest.max(Some(step.bytes));
        if step.ok {
            ladder.passed += 1;
            ladder.largest_ok = ladder.largest_ok.max(Some(step.bytes));
        } else if ladder
            .first_failure
            .as_ref()
            .is_none_or(|(b, _)| step.bytes < *b)
        {
            let why = step.error.clone().unwrap_or_else(|| "failed".to_owned());
            ladder.first_failure = Some((step.bytes, why));
        }
    }
    ladder
}

/// One client of a run (see [`Role`]) as its connections show it.
#[derive(Debug, Clone, Default)]
pub struct ClientFacts<'a> {
    pub hello: Option<&'a KeptHello>,
    /// Distinct JA4s of its connections, the most frequent first.
    pub ja4: Vec<String>,
    pub ja3_md5: Vec<String>,
    /// Groups its handshakes settled on.
    pub negotiated_groups: Vec<NamedGroup>,
    /// Connections whose ClientHello arrived whole, newest first.
    pub whole: Vec<&'a AttemptView>,
    /// Connections whose ClientHello never did.
    pub stuck: Vec<&'a AttemptView>,
    /// Whole ClientHellos whose handshake still failed.
    pub failed: Vec<&'a AttemptView>,
}

impl<'a> ClientFacts<'a> {
    fn of(side: &'a Side, role: Role) -> Self {
        let mut facts = ClientFacts {
            hello: side.hello(role),
            ..Self::default()
        };
        let mut ja4: Vec<(String, usize)> = Vec::new();
        let count = |list: &mut Vec<(String, usize)>, value: &str| match list
            .iter_mut()
            .find(|(v, _)| v == value)
        {
            Some((_, n)) => *n += 1,
            None => list.push((value.to_owned(), 1)),
        };
        let mut ja3: Vec<(String, usize)> = Vec::new();
        for a in side.attempts_of(role) {
            if super::side::stuck(&a.outcome) {
                facts.stuck.push(a);
                continue;
            }
            if a.tls.fingerprints.is_some() || a.tls.arrival.tls_records > 0 {
                facts.whole.push(a);
            }
            if let Some(f) = &a.tls.fingerprints {
                count(&mut ja4, &f.ja4);
                count(&mut ja3, &f.ja3_md5);
            }
            if !a.succeeded && !matches!(a.outcome, Outcome::Completed) {
                facts.failed.push(a);
            }
            if let Some(group) = a.tls.negotiated.as_ref().and_then(|n| n.key_exchange_group) {
                if !facts.negotiated_groups.contains(&group) {
                    facts.negotiated_groups.push(group);
                }
            }
        }
        if role == Role::Client {
            if let Some(tls) = &side.posting_tls {
                if let Some(f) = &tls.fingerprints {
                    count(&mut ja4, &f.ja4);
                    count(&mut ja3, &f.ja3_md5);
                }
                if let Some(group) = tls.negotiated.as_ref().and_then(|n| n.key_exchange_group) {
                    if !facts.negotiated_groups.contains(&group) {
                        facts.negotiated_groups.push(group);
                    }
                }
            }
        }
        if let Some(h) = facts.hello {
            count(&mut ja4, &h.fingerprints.ja4);
            count(&mut ja3, &h.fingerprints.ja3_md5);
        }
        // Most frequent first; a stable sort keeps the newest first on a tie.
        ja4.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        ja3.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        facts.ja4 = ja4.into_iter().map(|(v, _)| v).collect();
        facts.ja3_md5 = ja3.into_iter().map(|(v, _)| v).collect();
        facts
    }

    /// Whether this client was seen at all.
    pub fn seen(&self) -> bool {
        self.hello.is_some() || !self.whole.is_empty() || !self.stuck.is_empty()
    }

    /// The largest ClientHello that arrived whole.
    pub fn largest_whole(&self) -> Option<&'a AttemptView> {
        self.whole
            .iter()
            .copied()
            .max_by_key(|a| a.tls.arrival.bytes)
    }
}

/// Everything the comparison reads from one side.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub side: &'a Side,
    pub standing: Standing,
    /// Its findings say packets toward the server / toward the client vanish.
    pub up_broken: bool,
    pub down_broken: bool,
    pub client: ClientFacts<'a>,
    /// check.sh's openssl.
    pub ladder_client: ClientFacts<'a>,
    pub down: Ladder<'a>,
    pub up: Ladder<'a>,
    pub hellos: Ladder<'static>,
    /// Our own ICMP tests: the stuck ClientHellos' and the stalled uploads'.
    pub icmp: Vec<&'a IcmpProbe>,
    /// `AS64500 (NAME)`, `192.0.2.0/24`, `2001:db8:1::/48`.
    pub network: Option<String>,
}

impl<'a> Facts<'a> {
    /// The interception findings of the run and of its own connections
    /// (`super::explain::INTERCEPTION`), in report order.
    pub fn interception(&self) -> impl Iterator<Item = &'a crate::diagnose::Finding> {
        let side = self.side;
        side.findings
            .iter()
            .chain(
                side.attempts
                    .iter()
                    .flatten()
                    .flat_map(|a| &a.attempt.findings),
            )
            .filter(|x| super::explain::INTERCEPTION.contains(&&*x.id))
    }

    pub fn of(side: &'a Side, other: &Side, table: Option<&AsTable>) -> Self {
        let has = |ids: &[&str]| side.findings.iter().any(|f| ids.contains(&&*f.id));
        let icmp = side
            .stuck()
            .into_iter()
            .filter_map(|a| a.tls.icmp_probe.as_ref())
            .chain(
                side.up
                    .iter()
                    .filter_map(|s| s.server.as_ref()?.icmp_probe.as_ref()),
            )
            .collect();
        let network = side
            .client_address
            .as_deref()
            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            .map(|ip| {
                let labels = Network::of(ip, table).labels(table);
                if labels.as_name.is_empty() {
                    labels.network
                } else {
                    format!("{} ({})", labels.network, labels.as_name)
                }
            });
        Facts {
            side,
            standing: standing(side.status, other.status),
            up_broken: has(UP_BROKEN),
            down_broken: has(DOWN_BROKEN),
            client: ClientFacts::of(side, Role::Client),
            ladder_client: ClientFacts::of(side, Role::HelloLadder),
            down: Ladder::of(&side.down),
            up: Ladder::of(&side.up),
            hellos: hello_ladder(&side.hello_ladder),
            icmp,
            network,
        }
    }

    pub fn has(&self, id: &str) -> bool {
        self.side.findings.iter().any(|f| f.id == id)
    }

    /// Findings above info.
    pub fn alarms(&self) -> impl Iterator<Item = &'a Finding> {
        self.side
            .findings
            .iter()
            .filter(|f| f.severity > Severity::Info)
    }

    /// The payload of one full segment from this client: its SYN's MSS, less
    /// the timestamp option when it offers it.
    pub fn segment_payload(&self) -> Option<usize> {
        let syn = self.side.syn.as_ref()?;
        let mss = usize::from(syn.mss?);
        let options = if syn.timestamps { TIMESTAMP_OPTION } else { 0 };
        Some(mss.saturating_sub(options).max(1))
    }

    /// " (2 packets at MSS 1,460)" for a ClientHello of `bytes`.
    pub fn packets(&self, bytes: usize) -> String {
        match (
            self.segment_payload(),
            self.side.syn.as_ref().and_then(|s| s.mss),
        ) {
            (Some(payload), Some(mss)) if bytes > 0 => {
                let n = bytes.div_ceil(payload);
                format!(
                    "{n} packet{} at MSS {}",
                    plural(n),
                    thousands(usize::from(mss))
                )
            }
            _ => String::new(),
        }
    }
}

/// Working or failing: only a `problem` beside a run without one decides.
fn standing(own: Option<Status>, other: Option<Status>) -> Standing {
    match (own, other) {
        (Some(Status::Problem), Some(s)) if s != Status::Problem => Standing::Failing,
        (Some(s), Some(Status::Problem)) if s != Status::Problem => Standing::Working,
        _ => Standing::Undecided,
    }
}

/// How one ClientHello that never arrived whole ended, in words.
pub fn stuck_words(outcome: &Outcome) -> String {
    match outcome {
        Outcome::HelloIncomplete {
            received: 0,
            out_of_order_segments,
            ..
        } if *out_of_order_segments > 0 => format!(
            "a later segment came and the first never did: 0 bytes in order, {} segment{} held out of order",
            out_of_order_segments,
            plural(*out_of_order_segments as usize)
        ),
        Outcome::HelloIncomplete {
            received,
            expected,
            out_of_order_segments,
            ..
        } => {
            let of = expected.map_or_else(String::new, |e| format!(" of {}", thousands(e)));
            let held = if *out_of_order_segments > 0 {
                format!(
                    ", {} later segment{} held out of order",
                    out_of_order_segments,
                    plural(*out_of_order_segments as usize)
                )
            } else {
                String::new()
            };
            format!(
                "{}{of} bytes came and the rest never did{held}",
                thousands(*received)
            )
        }
        Outcome::NoData { .. } => "nothing arrived after the TCP handshake".to_owned(),
        other => other.describe(),
    }
}

/// How a whole ClientHello arrived: "1,931 bytes in 1 read", "4,000 bytes in
/// 2 reads, the longest gap 0.1 ms".
pub fn whole_words(a: &AttemptView) -> String {
    let arrival = &a.tls.arrival;
    let mut text = format!(
        "{} bytes in {} read{}",
        thousands(arrival.bytes),
        arrival.read_count,
        plural(arrival.read_count)
    );
    if arrival.tls_records > 1 {
        text.push_str(&format!(" and {} TLS records", arrival.tls_records));
    }
    let gap = arrival
        .reads
        .iter()
        .filter_map(|r| r.gap_ms)
        .fold(None, |max: Option<f64>, g| {
            Some(max.map_or(g, |m| m.max(g)))
        });
    if let Some(gap) = gap {
        text.push_str(&format!(", the longest gap {gap:.1} ms"));
    }
    text
}

/// What our ICMP test did, in words.
pub fn icmp_words(probe: &IcmpProbe) -> String {
    match probe {
        IcmpProbe::Reached {
            message,
            mtu,
            sent_at_ms,
            complete_at_ms,
            ..
        } => format!(
            "our own {message} (MTU {}) reached the client and the rest arrived {:.0} ms later",
            thousands(*mtu as usize),
            (complete_at_ms - sent_at_ms).max(0.0)
        ),
        IcmpProbe::NoChange {
            message,
            mtu,
            waited_ms,
            ..
        } => format!(
            "our own {message} (MTU {}) changed nothing in {:.1} s",
            thousands(*mtu as usize),
            waited_ms / 1000.0
        ),
        IcmpProbe::NotSent { why } => format!("our ICMP test could not run ({why})"),
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
