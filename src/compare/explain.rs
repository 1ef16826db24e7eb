//! The ranked explanation: the few differences that say why one run works and
//! the other does not, each a sentence or two with the numbers of both
//! reports. Every candidate reason carries a weight; the heaviest come first
//! (the ranking is described in `docs/compare.md`):
//!
//! | weight | reason |
//! |---|---|
//! | 100 | a direction of the path broken on one side only (black hole, dropped fragments), with how the ClientHellos arrived on both |
//! | 90  | handshakes that failed on one side only, for a TLS reason |
//! | 85  | interception (a foreign certificate, an intercepting proxy) on one side only |
//! | 82 / 68 | different clients: when the networks agree / when both differ |
//! | 80  | the same client on both (so the network differs) |
//! | 75 / 72 / 65 | the networks agree / differ / share their source but not their path |
//! | 55  | a direction broken on both sides alike |
//! | 50  | findings only one side has |
//! | 40  | clock offsets far apart |
//! | 20  | different server instances |

use serde::Serialize;

use super::facts::{icmp_words, plural, stuck_words, whole_words, Facts, Standing};
use super::hello::{self, HelloDiff};
use super::side::Side;
use crate::attempt::IcmpProbe;
use crate::util::thousands;

/// Reasons shown in the explanation; the rest is in the table.
pub const MAX_REASONS: usize = 5;

/// Finding ids that say something between the client and us speaks TLS in
/// its place (`docs/findings.md#interception`).
pub const INTERCEPTION: &[&str] = &[
    "tls.intercepted",
    "tls.foreign-certificate",
    "tls.interceptor-rejected-certificate",
    "http.proxy-headers",
];

/// One reason, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Stable id of the kind of difference (`path.client-to-server`,
    /// `client.same`, ...), listed in `docs/api.md`.
    pub id: &'static str,
    /// Higher comes first.
    pub weight: u32,
    pub text: String,
}

/// Whether two runs share a client, or a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sameness {
    Same,
    Different,
    Unknown,
}

/// Both sides, and what the comparison decided about them.
#[derive(Debug)]
pub struct Pair<'a> {
    pub a: Facts<'a>,
    pub b: Facts<'a>,
    pub client: Sameness,
    /// How the client was told the same or apart, in words.
    pub client_how: String,
    pub network: Sameness,
    pub network_how: String,
    /// The sides' source network and SYN agree (even when their paths do not).
    pub same_source: bool,
    /// What the sides are called: `network` when the client is the same,
    /// `client` when the network is, `run` otherwise.
    pub noun: &'static str,
}

impl<'a> Pair<'a> {
    pub fn new(a: Facts<'a>, b: Facts<'a>) -> Self {
        let client = same_client(&a, &b);
        let (source, source_how) = same_source(&a, &b);
        let paths_differ = a.up_broken != b.up_broken || a.down_broken != b.down_broken;
        // The same place with one path broken is a network that differs.
        let network = match source {
            Sameness::Same if paths_differ => Sameness::Different,
            other => other,
        };
        let noun = match (client, network) {
            (Sameness::Same, _) => "network",
            (Sameness::Different, Sameness::Same) => "client",
            _ => "run",
        };
        let mut pair = Pair {
            a,
            b,
            client,
            client_how: String::new(),
            network,
            network_how: source_how,
            same_source: source == Sameness::Same,
            noun,
        };
        pair.client_how = pair.client_words();
        pair
    }

    /// "A (check.sh)": a side's name, with its test when the two differ.
    fn label(&self, f: &Facts<'_>) -> String {
        match (&self.a.side.agent, &self.b.side.agent, &f.side.agent) {
            (Some(x), Some(y), Some(agent)) if x != y => format!("{} ({agent})", self.name(f)),
            _ => self.name(f),
        }
    }

    /// How the client was told the same or apart, in words.
    fn client_words(&self) -> String {
        let (a, b) = (&self.a, &self.b);
        match self.client {
            Sameness::Same => {
                if let Some(shared) = a.client.ja4.iter().find(|j| b.client.ja4.contains(j)) {
                    return format!("same JA4 {shared}");
                }
                let mut how = format!(
                    "same User-Agent {}",
                    short_agent(a.side.user_agent.as_deref().unwrap_or_default())
                );
                if let (Some(p), Some(q)) = (&a.side.syn, &b.side.syn) {
                    if same_syn(p, q) {
                        how.push_str(&format!(
                            " and the same SYN: TTL {}, MSS {}, window scale {}",
                            p.ttl,
                            p.mss.map_or("none".into(), |m| thousands(usize::from(m))),
                            p.window_scale.map_or("none".into(), |w| w.to_string())
                        ));
                    }
                }
                for f in [a, b] {
                    if f.client.ja4.is_empty() && !f.client.stuck.is_empty() {
                        how.push_str(&format!(
                            "; no ClientHello of {} arrived whole, so its JA4 is unknown there",
                            self.name(f)
                        ));
                    }
                }
                how
            }
            Sameness::Different => self.different_clients(),
            Sameness::Unknown => String::new(),
        }
    }

    /// "JA4 x (A) vs y (B), differing in ...; B offers X25519MLKEM768 ...".
    fn different_clients(&self) -> String {
        let (a, b) = (&self.a, &self.b);
        let (na, nb) = (self.label(a), self.label(b));
        let mut sentences = Vec::new();
        match (a.client.ja4.first(), b.client.ja4.first()) {
            (Some(x), Some(y)) => {
                let mut s = format!("JA4 {x} on {na} vs {y} on {nb}");
                let parts = hello::ja4_parts(x, y);
                if !parts.is_empty() {
                    s.push_str(&format!(", differing in {}", parts.join(", ")));
                }
                sentences.push(s);
            }
            _ => sentences.push(format!("{na} and {nb} ran different tests")),
        }
        let size = |f: &Facts<'_>, bytes: usize| {
            let packets = f.packets(bytes);
            if packets.is_empty() {
                format!("{} bytes", thousands(bytes))
            } else {
                format!("{} bytes ({packets})", thousands(bytes))
            }
        };
        match (a.client.hello, b.client.hello) {
            (Some(ha), Some(hb)) => {
                let pq = (
                    hello::post_quantum_share(&ha.hello),
                    hello::post_quantum_share(&hb.hello),
                );
                let (with, without, share, hw, ho) = match pq {
                    (Some(share), None) => (a, b, share, &ha.hello, &hb.hello),
                    (None, Some(share)) => (b, a, share, &hb.hello, &ha.hello),
                    _ => {
                        if !HelloDiff::of(&ha.hello, &hb.hello).key_shares.same() {
                            sentences.push(format!(
                                "Key shares: {} on {na}, {} on {nb}",
                                hello::key_share_words(&ha.hello),
                                hello::key_share_words(&hb.hello)
                            ));
                        }
                        sentences.push(format!(
                            "ClientHello of {} on {na}, {} on {nb}",
                            size(a, ha.hello.wire_length),
                            size(b, hb.hello.wire_length)
                        ));
                        return sentences.join(". ") + &self.agents_differ();
                    }
                };
                sentences.push(format!(
                    "{} offers the post-quantum key share {} ({} bytes), in a ClientHello of {}; {} offers {} in {}",
                    capitalize(&self.label(with)),
                    share.0,
                    thousands(share.1),
                    size(with, hw.wire_length),
                    self.label(without),
                    hello::key_share_words(ho),
                    size(without, ho.wire_length)
                ));
            }
            _ => {
                let groups = |f: &Facts<'_>| {
                    f.client
                        .negotiated_groups
                        .iter()
                        .map(|g| {
                            if g.is_post_quantum() {
                                format!("{g} (post-quantum)")
                            } else {
                                g.to_string()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let (ga, gb) = (groups(a), groups(b));
                if !ga.is_empty() && !gb.is_empty() && ga != gb {
                    sentences.push(format!("Key exchange {ga} on {na}, {gb} on {nb}"));
                }
            }
        }
        sentences.join(". ") + &self.agents_differ()
    }

    /// ". User-Agent x vs y" when the two differ.
    fn agents_differ(&self) -> String {
        match (&self.a.side.user_agent, &self.b.side.user_agent) {
            (Some(x), Some(y)) if x != y => {
                format!(". User-Agent {} vs {}", short_agent(x), short_agent(y))
            }
            _ => String::new(),
        }
    }

    /// "the failing network", "the working client", or "A".
    pub fn name(&self, f: &Facts<'_>) -> String {
        match f.standing {
            Standing::Working => format!("the working {}", self.noun),
            Standing::Failing => format!("the failing {}", self.noun),
            Standing::Undecided if std::ptr::eq(f.side, self.a.side) => "A".to_owned(),
            Standing::Undecided => "B".to_owned(),
        }
    }

    /// The failing side first when there is one, else A first.
    fn ordered(&self) -> (&Facts<'a>, &Facts<'a>) {
        if self.b.standing == Standing::Failing {
            (&self.b, &self.a)
        } else {
            (&self.a, &self.b)
        }
    }

    /// The ranked reasons, heaviest first (every one of them; the view shows
    /// the first [`MAX_REASONS`]).
    pub fn reasons(&self) -> Vec<Reason> {
        let mut out = Vec::new();
        out.extend(self.path(Direction::Up));
        out.extend(self.path(Direction::Down));
        out.extend(self.handshakes());
        out.extend(self.interception());
        out.extend(self.client_reason());
        out.extend(self.network_reason());
        out.extend(self.one_sided_findings());
        out.extend(self.clocks());
        out.extend(self.instances());
        out.sort_by_key(|r| std::cmp::Reverse(r.weight));
        out
    }

    fn path(&self, direction: Direction) -> Option<Reason> {
        let broken = |f: &Facts<'_>| match direction {
            Direction::Up => f.up_broken,
            Direction::Down => f.down_broken,
        };
        let (first, second) = self.ordered();
        let (failing, working) = match (broken(first), broken(second)) {
            (true, false) => (first, second),
            (false, true) => (second, first),
            (true, true) => return Some(self.path_on_both(direction)),
            (false, false) => return None,
        };
        let (f, w) = (self.name(failing), self.name(working));
        let mut evidence = Vec::new();
        let stuck = failing.side.stuck();
        if direction == Direction::Up && !stuck.is_empty() {
            // How the ClientHellos arrived: the seed incident's evidence.
            evidence.push(self.stuck_hellos(&stuck, working));
        }
        let (ladder_f, ladder_w, moved) = match direction {
            Direction::Up => (&failing.up, &working.up, "uploads"),
            Direction::Down => (&failing.down, &working.down, "downloads"),
        };
        if let Some((bytes, why)) = &ladder_f.first_failure {
            let upto = ladder_f.largest_ok.map_or_else(
                || format!("no {moved} arrived"),
                |ok| format!("{moved} up to {} bytes arrived", thousands(ok as usize)),
            );
            let there = match (&ladder_w.first_failure, ladder_w.largest_ok) {
                _ if ladder_w.ran == 0 => format!("on {w} no {moved} ran"),
                (None, largest) => format!(
                    "on {w} all {} {moved} arrived, up to {} bytes",
                    ladder_w.passed,
                    thousands(largest.unwrap_or_default() as usize)
                ),
                (Some((b, why)), _) => format!(
                    "on {w} {moved} failed too, from {} bytes ({why})",
                    thousands(*b as usize)
                ),
            };
            evidence.push(format!(
                "{upto} and from {} bytes none did ({why}); {there}",
                thousands(*bytes as usize)
            ));
        }
        if direction == Direction::Up {
            if let Some((bytes, why)) = &failing.hellos.first_failure {
                evidence.push(format!(
                    "check.sh's ClientHellos failed from {} bytes ({why}); on {w}: {}",
                    thousands(*bytes as usize),
                    working.hellos.summary("completed")
                ));
            } else if stuck.is_empty() {
                fn largest<'x>(x: &Facts<'x>) -> Option<&'x crate::report::AttemptView> {
                    [x.client.largest_whole(), x.ladder_client.largest_whole()]
                        .into_iter()
                        .flatten()
                        .max_by_key(|a| a.tls.arrival.bytes)
                }
                if let (Some(fa), Some(wa)) = (largest(failing), largest(working)) {
                    evidence.push(format!(
                        "the client's ClientHellos still arrived whole on both (the largest: {} on {f}, {} on {w})",
                        whole_words(fa),
                        whole_words(wa)
                    ));
                }
            }
            let (fs, ws) = (failing.side.syn.as_ref(), working.side.syn.as_ref());
            if let (Some(fs), Some(ws)) = (fs, ws) {
                if fs.mss != ws.mss {
                    evidence.push(format!(
                        "the client's SYN announces {} on {f} and {} on {w}",
                        mss_words(fs),
                        mss_words(ws)
                    ));
                }
            }
            let mut icmp: Vec<(String, &IcmpProbe)> =
                failing.icmp.iter().map(|p| (icmp_words(p), *p)).collect();
            icmp.dedup_by(|x, y| x.0 == y.0);
            if let Some((words, probe)) = icmp.first() {
                let verdict = match probe {
                    IcmpProbe::NoChange { .. } => ": something near the client filters it",
                    IcmpProbe::Reached { .. } => {
                        ": ICMP reaches the client, so the router's own message is what is missing"
                    }
                    IcmpProbe::NotSent { .. } => "",
                };
                evidence.push(format!("on {f}, {words}{verdict}"));
            }
        }
        if evidence.is_empty() {
            let titles: Vec<String> = failing
                .alarms()
                .filter(|x| direction.ids().contains(&&*x.id))
                .map(|x| x.title.to_string())
                .collect();
            evidence.push(format!("its findings say so ({})", titles.join("; ")));
        }
        let mut sentences = vec![format!(
            "{} has {}: {}",
            capitalize(&f),
            direction.fault(failing),
            evidence.remove(0)
        )];
        sentences.extend(evidence.into_iter().map(|e| capitalize(&e)));
        Some(Reason {
            id: direction.id(),
            weight: 100,
            text: sentences.join(". ") + ".",
        })
    }

    /// "two of its ClientHellos never arrived whole (...); on the working
    /// network the ClientHello arrived whole (...)".
    fn stuck_hellos(&self, stuck: &[&crate::report::AttemptView], working: &Facts<'_>) -> String {
        let words: Vec<String> = stuck.iter().map(|a| stuck_words(&a.outcome)).collect();
        let how = if words.iter().all(|x| *x == words[0]) {
            format!(
                "{}{}",
                if stuck.len() > 1 { "in each, " } else { "" },
                words[0]
            )
        } else {
            let mut distinct = words.clone();
            distinct.dedup();
            distinct.join("; ")
        };
        let w = self.name(working);
        let there = match working
            .client
            .largest_whole()
            .or(working.ladder_client.largest_whole())
        {
            Some(a) => {
                let packets = working.packets(a.tls.arrival.bytes);
                format!(
                    "on {w} the ClientHello arrived whole ({}{})",
                    whole_words(a),
                    if packets.is_empty() {
                        String::new()
                    } else {
                        format!(", {packets}")
                    }
                )
            }
            None => format!("on {w} none was stuck"),
        };
        format!(
            "{} of its ClientHellos never arrived whole ({how}); {there}",
            count_words(stuck.len())
        )
    }

    fn path_on_both(&self, direction: Direction) -> Reason {
        let titles = |f: &Facts<'_>| {
            f.alarms()
                .find(|x| direction.ids().contains(&&*x.id))
                .map_or_else(String::new, |x| x.title.to_string())
        };
        Reason {
            id: direction.id(),
            weight: 55,
            text: format!(
                "Both runs show {}: {} ({}); {} ({}).",
                direction.fault(&self.a),
                self.name(&self.a),
                titles(&self.a),
                self.name(&self.b),
                titles(&self.b)
            ),
        }
    }

    /// Whole ClientHellos whose handshake failed on one side only.
    fn handshakes(&self) -> Option<Reason> {
        // A side's own failures that explain something: not check.sh's
        // certificate check, which fails by design where our certificate is
        // not trusted and goes on without verification.
        let failed = |f: &Facts<'a>| -> Vec<&'a crate::report::AttemptView> {
            let check_went_on = f
                .side
                .tls_check
                .as_ref()
                .is_some_and(|c| !c.verified && c.error.is_none());
            f.client
                .failed
                .iter()
                .copied()
                .filter(|a| !(check_went_on && rejected_our_certificate(&a.outcome)))
                .collect()
        };
        let (first, second) = self.ordered();
        let (failing, working, failures) = match (failed(first), failed(second)) {
            (x, y) if !x.is_empty() && y.is_empty() => (first, second, x),
            (x, y) if x.is_empty() && !y.is_empty() => (second, first, y),
            _ => return None,
        };
        // When one side works, only the other side's failures explain it.
        if working.standing == Standing::Failing {
            return None;
        }
        let mut outcomes: Vec<String> = failures
            .iter()
            .map(|a| decapitalize(&a.outcome.describe()))
            .collect();
        let n = outcomes.len();
        outcomes.dedup();
        let completed = working.client.whole.iter().filter(|a| a.succeeded).count();
        Some(Reason {
            id: "tls.handshake",
            weight: 90,
            text: format!(
                "{}'s handshakes failed after a whole ClientHello ({n} of them: {}); {} completed {completed}.",
                capitalize(&self.name(failing)),
                outcomes.join("; "),
                self.name(working)
            ),
        })
    }

    fn interception(&self) -> Option<Reason> {
        let seen = |f: &Facts<'_>| -> Vec<String> {
            let mut titles: Vec<String> = f.interception().map(|x| x.title.to_string()).collect();
            titles.dedup();
            titles
        };
        let (a, b) = (seen(&self.a), seen(&self.b));
        let issuers = (
            self.a
                .side
                .tls_check
                .as_ref()
                .and_then(|c| c.issuer.clone()),
            self.b
                .side
                .tls_check
                .as_ref()
                .and_then(|c| c.issuer.clone()),
        );
        let issuer_differs = matches!(&issuers, (Some(x), Some(y)) if x != y);
        if a.is_empty() == b.is_empty() && !issuer_differs {
            return None;
        }
        let words = |f: &Facts<'_>, titles: &[String]| {
            if titles.is_empty() {
                format!("nothing intercepts {}'s HTTPS", self.name(f))
            } else {
                format!("{}: {}", self.name(f), titles.join("; "))
            }
        };
        let mut text = format!("{}; {}", words(&self.a, &a), words(&self.b, &b));
        if let (true, (Some(x), Some(y))) = (issuer_differs, &issuers) {
            text.push_str(&format!(
                ". The certificate curl was shown came from {x} on {} and from {y} on {}",
                self.name(&self.a),
                self.name(&self.b)
            ));
        }
        Some(Reason {
            id: "interception",
            weight: 85,
            text: capitalize(&text) + ".",
        })
    }

    fn client_reason(&self) -> Option<Reason> {
        match self.client {
            Sameness::Same => {
                let differs =
                    self.network == Sameness::Different || self.a.standing != Standing::Undecided;
                let tail = if differs {
                    ": the network, not the client, differs"
                } else {
                    ""
                };
                Some(Reason {
                    id: "client.same",
                    weight: 80,
                    text: format!("Same client software on both ({}){tail}.", self.client_how),
                })
            }
            Sameness::Different => Some(Reason {
                id: "client.different",
                weight: if self.network == Sameness::Same {
                    82
                } else {
                    68
                },
                text: format!("Different clients: {}.", self.client_how),
            }),
            Sameness::Unknown => None,
        }
    }

    fn network_reason(&self) -> Option<Reason> {
        match (self.network, self.same_source) {
            (Sameness::Same, _) => Some(Reason {
                id: "network.same",
                weight: 75,
                text: format!("The networks agree: {}.", self.network_how),
            }),
            (Sameness::Different, true) => Some(Reason {
                id: "network.same-source",
                weight: 65,
                text: format!(
                    "Both runs came from the same place ({}); its path did not behave the same.",
                    self.network_how
                ),
            }),
            (Sameness::Different, false) => Some(Reason {
                id: "network.different",
                weight: 72,
                text: format!("The networks differ: {}.", self.network_how),
            }),
            (Sameness::Unknown, _) => None,
        }
    }

    fn one_sided_findings(&self) -> Option<Reason> {
        let only = |x: &Facts<'_>, y: &Facts<'_>| -> Vec<String> {
            x.alarms()
                .filter(|f| !y.side.findings.iter().any(|g| g.id == f.id))
                .map(|f| format!("{} ({})", f.title, f.id))
                .collect()
        };
        let (first, second) = self.ordered();
        let (one, two) = (only(first, second), only(second, first));
        if one.is_empty() && two.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        if !one.is_empty() {
            parts.push(format!("only {} has: {}", self.name(first), one.join("; ")));
        }
        if !two.is_empty() {
            parts.push(format!(
                "only {} has: {}",
                self.name(second),
                two.join("; ")
            ));
        }
        Some(Reason {
            id: "findings.one-side",
            weight: 50,
            text: capitalize(&parts.join(". ")) + ".",
        })
    }

    fn clocks(&self) -> Option<Reason> {
        const APART_MS: f64 = 120_000.0;
        let (a, b) = (self.a.side.clock_offset_ms?, self.b.side.clock_offset_ms?);
        ((a - b).abs() >= APART_MS).then(|| Reason {
            id: "client.clock",
            weight: 40,
            text: format!(
                "The clocks differ: {}'s is off by {:+.0} s, {}'s by {:+.0} s (a certificate can look expired or not yet valid).",
                self.name(&self.a),
                a / 1000.0,
                self.name(&self.b),
                b / 1000.0
            ),
        })
    }

    fn instances(&self) -> Option<Reason> {
        let (a, b) = (&self.a.side.instances, &self.b.side.instances);
        (!a.is_empty() && !b.is_empty() && a != b).then(|| Reason {
            id: "server.instance",
            weight: 20,
            text: format!(
                "Different server instances saw them: {} for {}, {} for {}.",
                a.join(", "),
                self.name(&self.a),
                b.join(", "),
                self.name(&self.b)
            ),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

impl Direction {
    fn id(self) -> &'static str {
        match self {
            Direction::Up => "path.client-to-server",
            Direction::Down => "path.server-to-client",
        }
    }

    fn ids(self) -> &'static [&'static str] {
        match self {
            Direction::Up => crate::diagnose::UP_BROKEN,
            Direction::Down => crate::diagnose::DOWN_BROKEN,
        }
    }

    /// What the failing side's findings say is wrong, named.
    fn fault(self, f: &Facts<'_>) -> String {
        match self {
            Direction::Up if f.has("path.fragments-dropped") => {
                "IP fragments from the client are dropped on the way to the server".to_owned()
            }
            Direction::Up if f.has("path.hello-size-limit") && !f.has("path.black-hole-up") => {
                "large ClientHellos from the client never arrive".to_owned()
            }
            Direction::Up => "a black hole from the client toward the server".to_owned(),
            Direction::Down => "a black hole from the server toward the client".to_owned(),
        }
    }
}

/// Whether `a` and `b` ran the same client software: the same JA4 where
/// both have one, else the same User-Agent, and never across two kinds of
/// test (check.sh's curl against a browser).
fn same_client(a: &Facts<'_>, b: &Facts<'_>) -> Sameness {
    let (sa, sb) = (a.side, b.side);
    if matches!((&sa.agent, &sb.agent), (Some(x), Some(y)) if x != y) {
        return Sameness::Different;
    }
    if !a.client.ja4.is_empty() && !b.client.ja4.is_empty() {
        return if a.client.ja4.iter().any(|j| b.client.ja4.contains(j)) {
            Sameness::Same
        } else {
            Sameness::Different
        };
    }
    match (sa.user_agent.as_deref(), sb.user_agent.as_deref()) {
        (Some(x), Some(y)) if x == y => Sameness::Same,
        (Some(_), Some(_)) => Sameness::Different,
        _ => Sameness::Unknown,
    }
}

/// Whether the sides came from the same place: source network, SYN (TTL and
/// hops, MSS), proxy and load balancer.
fn same_source(a: &Facts<'_>, b: &Facts<'_>) -> (Sameness, String) {
    let (sa, sb) = (a.side, b.side);
    let mut differences = Vec::new();
    let mut same = Vec::new();
    match (&a.network, &b.network) {
        (Some(x), Some(y)) if x != y => differences.push(format!("from {x} vs {y}")),
        (Some(x), Some(_)) => same.push(format!("both from {x}")),
        _ => {}
    }
    // A smaller MSS on one side is the path's doing when the paths differ
    // (the client learned a path MTU, or never did): the path reason says
    // so. Otherwise it is where the client is (a tunnel's MTU).
    let paths_differ = a.up_broken != b.up_broken || a.down_broken != b.down_broken;
    if let (Some(p), Some(q)) = (&sa.syn, &sb.syn) {
        if p.ttl != q.ttl || p.hops != q.hops {
            differences.push(format!(
                "TTL {} ({} hop{}) vs {} ({} hop{})",
                p.ttl,
                p.hops,
                plural(usize::from(p.hops)),
                q.ttl,
                q.hops,
                plural(usize::from(q.hops))
            ));
        } else {
            let mut syn = format!(
                "the same SYN: TTL {} ({} hop{})",
                p.ttl,
                p.hops,
                plural(usize::from(p.hops))
            );
            if p.mss == q.mss {
                syn.push_str(&format!(", {}", mss_words(p)));
            }
            same.push(syn);
        }
        if p.mss != q.mss && !paths_differ {
            differences.push(format!("{} vs {}", mss_words(p), mss_words(q)));
        }
    }
    let proxy = |s: &Side| s.proxy.as_ref().map(|p| p.name.clone());
    if proxy(sa) != proxy(sb) {
        differences.push(format!(
            "proxy {} vs {}",
            proxy(sa).unwrap_or_else(|| "none".into()),
            proxy(sb).unwrap_or_else(|| "none".into())
        ));
    }
    let balancer = |s: &Side| s.load_balancer.as_ref().map(|b| b.address.clone());
    if balancer(sa) != balancer(sb) {
        differences.push(format!(
            "load balancer {} vs {}",
            balancer(sa).unwrap_or_else(|| "none".into()),
            balancer(sb).unwrap_or_else(|| "none".into())
        ));
    }
    if !differences.is_empty() {
        return (Sameness::Different, differences.join("; "));
    }
    if same.is_empty() {
        return (Sameness::Unknown, String::new());
    }
    let paths = match (
        a.up_broken || a.down_broken,
        b.up_broken || b.down_broken,
        a.up.first_failure.is_none() && a.down.first_failure.is_none() && a.up.ran + a.down.ran > 0,
        b.up.first_failure.is_none() && b.down.first_failure.is_none() && b.up.ran + b.down.ran > 0,
    ) {
        (false, false, true, true) => {
            "; both paths passed every size they tried in both directions".to_owned()
        }
        _ => String::new(),
    };
    (Sameness::Same, format!("{}{paths}", same.join(" with ")))
}

fn same_syn(p: &crate::tcp::SynInfo, q: &crate::tcp::SynInfo) -> bool {
    p.ttl == q.ttl && p.mss == q.mss && p.window_scale == q.window_scale && {
        let names = |s: &crate::tcp::SynInfo| s.options.iter().map(|o| o.kind).collect::<Vec<_>>();
        names(p) == names(q)
    }
}

/// The product part of a User-Agent: "HeadlessChrome/156.0.0.0" from a
/// browser's long string, curl's as it is.
fn short_agent(ua: &str) -> String {
    let products: Vec<&str> = ua
        .split_whitespace()
        .filter(|w| w.contains('/') && !w.starts_with('('))
        .collect();
    let pick = products
        .iter()
        .find(|p| {
            ["Firefox/", "Chrome/", "HeadlessChrome/", "Edg/", "OPR/"]
                .iter()
                .any(|k| p.starts_with(k))
        })
        .or(products.first())
        .copied()
        .unwrap_or(ua);
    crate::util::printable(&pick.chars().take(80).collect::<String>())
}

/// "MSS 1,460 (packets up to 1,500 bytes)".
fn mss_words(syn: &crate::tcp::SynInfo) -> String {
    match (syn.mss, syn.implied_mtu) {
        (Some(mss), Some(mtu)) => format!(
            "MSS {} (packets up to {} bytes)",
            thousands(usize::from(mss)),
            thousands(mtu as usize)
        ),
        _ => "no MSS".to_owned(),
    }
}

fn count_words(n: usize) -> String {
    match n {
        1 => "one".to_owned(),
        2 => "two".to_owned(),
        3 => "three".to_owned(),
        n => n.to_string(),
    }
}

/// The client's alerts that say it does not trust our certificate.
fn rejected_our_certificate(outcome: &crate::attempt::Outcome) -> bool {
    use crate::hello::wire::AlertDescription as A;
    matches!(
        outcome,
        crate::attempt::Outcome::ClientAlert { alert }
            if [A::BAD_CERTIFICATE, A::UNKNOWN_CA, A::CERTIFICATE_UNKNOWN].contains(alert)
    )
}

/// "no cipher suite in common" from "No cipher suite in common"; "TLS ..."
/// stays as it is.
fn decapitalize(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if !second.is_uppercase() => first
            .to_lowercase()
            .chain(std::iter::once(second))
            .chain(chars)
            .collect(),
        _ => s.to_owned(),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
