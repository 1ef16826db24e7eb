//! Findings from what the run's client itself saw and how it reached us:
//! its own HTTPS request failing (evidence even when nothing of it reached
//! us), and the proxy its requests came through (then every TCP fact we
//! measured is the proxy's connection, not the customer's computer's).

use serde::{Deserialize, Serialize};

use super::attribution::FailedTry;
use super::{Finding, Severity};
use crate::attempt::RequestFacts;
use crate::util::printable;

/// What the run's client reported of itself, beyond its transfers.
#[derive(Debug, Clone, Default)]
pub struct ClientSide {
    /// Who ran the test, as the words name it: "your browser", "check.sh".
    pub who: &'static str,
    /// Its HTTPS requests that failed, the certificate check's included.
    pub failed: Vec<FailedTry>,
    /// The first HTTPS request that failed outright (no answer at all), as
    /// the client named the failure.
    pub request_failed: Option<String>,
    /// A later try on a new connection worked.
    pub recovered: bool,
    /// The proxy the run's requests came through.
    pub proxy: Option<ProxyUse>,
    /// Why a path MTU our kernel learned toward the client could not be
    /// forgotten when the run started, if it could not.
    pub cannot_forget: Option<String>,
    /// The last conclusive verdict for the client's address, shown when this
    /// run could not test what it would have needed to.
    pub earlier: Option<EarlierVerdict>,
    /// The client's computer remembers a path MTU we told it.
    pub remembers: Option<Remembered>,
    /// Path MTUs our kernel learned toward the client's address (a router's
    /// ICMP on the way to it reached us), before or during the run.
    pub heard: Vec<Heard>,
}

/// A path MTU toward the client that our kernel learned: a router between us
/// and the client sent "fragmentation needed" / "packet too big" and it
/// reached us. Seen when a run's start forgot it, or still held when the run
/// ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heard {
    pub mtu: u32,
    /// When we saw it (forgot it, or read it as the run ended).
    #[serde(
        serialize_with = "crate::util::rfc3339",
        deserialize_with = "crate::util::parse_rfc3339"
    )]
    pub seen_at: std::time::SystemTime,
    /// Learned before the run began (an earlier test, or another client at
    /// the address), rather than by this run's own transfers.
    pub before_run: bool,
    /// The router whose message taught it, and when it came, when we read
    /// that message ([`crate::icmp::heard`]).
    #[serde(default)]
    pub router: Option<std::net::IpAddr>,
    #[serde(
        default,
        serialize_with = "crate::util::rfc3339_opt",
        deserialize_with = "crate::util::parse_rfc3339_opt"
    )]
    pub told_at: Option<std::time::SystemTime>,
}

impl Heard {
    /// "from the router 198.18.3.1 at 21:40:02 UTC", when known.
    fn told_by(&self) -> Option<String> {
        let router = self.router?;
        Some(match self.told_at {
            Some(at) => format!("from the router {router} at {}", crate::util::clock(at)),
            None => format!("from the router {router}"),
        })
    }
}

/// A router on the path toward the client told us its packets must be
/// smaller, and its message reached us: our downloads adapt (that is PMTU
/// discovery working), and the narrow link probably carries the client's
/// packets toward us too, where the same kind of message must reach the
/// client.
pub fn icmp_toward_you_reached_us(heard: &[Heard], ipv4: bool) -> Option<Finding> {
    // This run's own evidence first; then what was known before it.
    let h = heard
        .iter()
        .filter(|h| !h.before_run)
        .min_by_key(|h| h.mtu)
        .or_else(|| heard.iter().min_by_key(|h| h.mtu))?;
    let message = if ipv4 {
        "ICMP \"fragmentation needed\""
    } else {
        "ICMPv6 \"packet too big\""
    };
    let when = if h.before_run {
        format!(
            "before this run (an earlier test, or another client at your address); our server \
             forgot it at {} so this run could test full-size packets again",
            crate::util::clock(h.seen_at)
        )
    } else {
        format!(
            "during this run, from our downloads to you (seen at {})",
            crate::util::clock(h.seen_at)
        )
    };
    Some(
        Finding::new(
            "path.icmp-toward-you-reached-us",
            Severity::Info,
            format!(
                "A router on the path toward you told our server that packets toward you must \
                 stay under {} bytes",
                crate::util::thousands(h.mtu as usize)
            ),
        )
        .explain(format!(
            "Our large packets toward you met a link of {} bytes, and the router before it sent \
             our server {message}, which reached it: our packets toward you get smaller by \
             themselves (path MTU discovery working as it should). The same narrow link most \
             likely carries your packets toward us as well; they get through only if the same \
             kind of message from the router on your side reaches your computer.",
            crate::util::thousands(h.mtu as usize)
        ))
        .evidence("path MTU toward you", h.mtu.to_string())
        .evidence("learned", when)
        .evidence(
            "message",
            h.told_by().unwrap_or_else(|| {
                "its sender is not known (our server could not read ICMP)".to_owned()
            }),
        ),
    )
}

/// A conclusive verdict an earlier run from the same address got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierVerdict {
    #[serde(
        serialize_with = "crate::util::rfc3339",
        deserialize_with = "crate::util::parse_rfc3339"
    )]
    pub at: std::time::SystemTime,
    pub status: super::Status,
    pub verdict: String,
    /// Its saved report, when it was saved.
    pub report_url: Option<String>,
}

/// Our own ICMP "fragmentation needed" / "packet too big" reached the
/// client's computer, which now keeps its packets to us small (ten minutes,
/// on Linux): its SYNs announce exactly the MSS our message implied.
#[derive(Debug, Clone, PartialEq)]
pub struct Remembered {
    /// When we sent it.
    pub told_at: std::time::SystemTime,
    /// The MTU it announced.
    pub mtu: u32,
    /// The MSS the client announced before we told it, and now.
    pub mss_before: u16,
    pub mss_now: u16,
    /// The cause our message uncovered then, found on that connection.
    pub cause: Vec<Finding>,
}

/// How long a client's kernel keeps a path MTU it learned (Linux's
/// `net.ipv4.route.mtu_expires` and IPv6's default).
pub const CLIENT_MEMORY: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether the client's computer remembers our own ICMP: this run's SYN
/// announces exactly the MSS our message implied, we sent it to a
/// connection from this address within [`CLIENT_MEMORY`] before the run,
/// and that connection's SYN announced more. A network clamping every SYN
/// (the seed incident's fix) announces the same smaller MSS from its first
/// SYN on, with no message of ours before it.
pub fn client_remembers(
    run_mss: Option<u16>,
    ipv4: bool,
    our_icmp_mtu: u32,
    attempts: &[std::sync::Arc<crate::attempt::TlsAttempt>],
    run_started: std::time::SystemTime,
    server: &crate::profile::ServerProfile,
) -> Option<Remembered> {
    use crate::attempt::IcmpProbe;
    let mss_now = run_mss?;
    let headers = if ipv4 { 40 } else { 60 };
    if u32::from(mss_now) + headers != our_icmp_mtu {
        return None;
    }
    attempts.iter().find_map(|a| {
        let Some(IcmpProbe::Reached {
            mtu, sent_at_ms, ..
        }) = &a.icmp_probe
        else {
            return None;
        };
        let told_at =
            a.started_at + std::time::Duration::from_secs_f64(sent_at_ms.max(0.0) / 1000.0);
        let fresh = told_at <= run_started + std::time::Duration::from_secs(5)
            && run_started.duration_since(told_at).unwrap_or_default() < CLIENT_MEMORY;
        let mss_before = a.syn.as_ref()?.mss?;
        (*mtu == our_icmp_mtu && fresh && mss_before > mss_now).then(|| Remembered {
            told_at,
            mtu: *mtu,
            mss_before,
            mss_now,
            cause: super::attempt(a, server)
                .into_iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| {
                    f.evidence(
                        "found",
                        format!(
                            "on your connection of {} (attempt {}), when our message rescued it",
                            crate::util::clock(told_at),
                            a.id
                        ),
                    )
                })
                .collect(),
        })
    })
}

/// The client's computer keeps its packets to us small since our message:
/// this run could not test its full-size packets, and the cause found then
/// stands.
pub fn remembers(r: &Remembered) -> Finding {
    Finding::new(
        "path.client-remembers-our-icmp",
        Severity::Warning,
        format!(
            "Your computer remembers, from our message at {}, that packets to us must stay under \
             {} bytes",
            crate::util::clock(r.told_at),
            crate::util::thousands(r.mtu as usize)
        ),
    )
    .explain(format!(
        "When your connection was stuck behind the black hole, our server sent your computer the \
         ICMP message your network's router should have sent. Your computer keeps what it said \
         for about ten minutes: its connections to us now announce an MSS of {} instead of {}, \
         so their packets are small and this run could not test your full-size packets again. \
         Other servers never sent it that message: your connections to them still send \
         full-size packets, and those still vanish. The cause found then stands.",
        r.mss_now, r.mss_before
    ))
    .evidence("MSS your computer announced before our message", r.mss_before.to_string())
    .evidence("MSS it announces now", r.mss_now.to_string())
    .fix("Fix the cause below; to test again with full-size packets, run the test after ten minutes, or from Linux run: sudo ip route flush cache")
}

/// The run's own connections were asked for smaller packets than the
/// client offered, because our kernel remembered a smaller path MTU toward
/// it: nothing they carried tests full-size packets.
pub fn our_mss_shrunk(
    own: &[std::sync::Arc<crate::attempt::TlsAttempt>],
    client: &ClientSide,
) -> Option<Finding> {
    let shrunk = own.iter().find_map(|a| a.our_mss.filter(|m| m.shrunk()))?;
    let mtu = shrunk.cached_path_mtu?;
    let f = Finding::new(
        "path.our-mss-shrunk",
        Severity::Warning,
        format!(
            "Our server already knew packets toward you must stay under {} bytes, so it asked \
             your computer for smaller ones: this run could not test your full-size packets",
            crate::util::thousands(mtu as usize)
        ),
    )
    .explain(format!(
        "An earlier test's downloads taught our server's kernel that packets toward your \
         address must stay under {} bytes (a router on the way told it). For ten minutes \
         after, every connection of yours to us is asked for packets of at most {} bytes of \
         data instead of {}, so your computer never sends us a full-size packet, and a black \
         hole for them cannot show. {}",
        crate::util::thousands(mtu as usize),
        shrunk.announced,
        shrunk
            .full
            .map_or_else(|| "the full size".to_owned(), |f| f.to_string()),
        match &client.cannot_forget {
            Some(why) => format!("Our server could not forget it for this run: {why}."),
            None => "It was learned during this run.".to_owned(),
        }
    ))
    .evidence("MSS we announced", shrunk.announced.to_string())
    .evidence("path MTU our server remembered toward you", mtu.to_string());
    let f = match client
        .heard
        .iter()
        .filter(|h| h.mtu == mtu)
        .find_map(Heard::told_by)
    {
        Some(by) => f.evidence("it was told", by),
        None => f,
    };
    let f = match shrunk.full {
        Some(full) => f.evidence("MSS our interface allows", full.to_string()),
        None => f,
    };
    let f = match &client.earlier {
        Some(e) => f.evidence(
            "last conclusive test from your address",
            format!(
                "{} ({}): {}{}",
                crate::util::clock(e.at),
                e.status.as_str(),
                e.verdict,
                e.report_url
                    .as_deref()
                    .map_or_else(String::new, |u| format!(" {u}"))
            ),
        ),
        None => f,
    };
    Some(f.fix("Run the test again after ten minutes, or ask the operator to give tlsdiag CAP_NET_ADMIN so it can forget before each run (docs/deployment.md)."))
}

/// A forwarding proxy between the run's client and us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyUse {
    /// What it calls itself (`squid/5.7`), or its address.
    pub name: String,
    /// How we know, in sentences.
    pub evidence: Vec<String>,
    /// The plain-HTTP request of the run that carried its headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestFacts>,
}

impl ProxyUse {
    /// The proxy a request's headers name, if it came through one.
    pub fn from_request(facts: &RequestFacts) -> Option<Self> {
        let via = facts.proxy_headers.iter().find(|h| h.name == "via");
        let name = via
            .and_then(|h| via_product(&h.value))
            .or_else(|| {
                via.and_then(|h| h.value.split_whitespace().nth(1))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "a forwarding proxy".to_owned());
        let first = facts.proxy_headers.first()?;
        Some(Self {
            name: printable(&name),
            evidence: vec![format!(
                "the run's plain-HTTP requests arrived with the header a forwarding proxy adds ({}: {})",
                first.name,
                printable(&first.value)
            )],
            request: Some(facts.clone()),
        })
    }

    /// The proxy check.sh was told to use (`https_proxy`), when no header
    /// showed one.
    pub fn configured(address: &str) -> Self {
        Self {
            name: printable(address),
            evidence: vec![format!(
                "check.sh ran with https_proxy set to {}",
                printable(address)
            )],
            request: None,
        }
    }
}

/// The product in a `Via` entry's comment: `1.1 host (squid/5.7)` → `squid/5.7`.
fn via_product(value: &str) -> Option<String> {
    let last = value.split(',').next_back()?;
    let open = last.find('(')?;
    let close = last[open..].find(')')? + open;
    let product = last[open + 1..close].trim();
    (!product.is_empty()).then(|| product.chars().take(64).collect())
}

/// The run's own HTTPS request failed, and nothing that reached us explains
/// it: never "nothing failed".
pub fn https_failed(client: &ClientSide, own_failed: bool) -> Option<Finding> {
    let error = client.request_failed.as_deref()?;
    if own_failed {
        // An attempt of its own that failed says more than the client's word.
        return None;
    }
    let who = client.who;
    let f = if client.recovered {
        Finding::new(
            "run.https-failed",
            Severity::Warning,
            format!(
                "{}'s first HTTPS request failed ({}); a retry on a new connection worked",
                capitalized(who),
                printable(error)
            ),
        )
        .explain(format!(
            "The first try never reached our TLS stack: no ClientHello that could be {who}'s \
             arrived while it waited. The retry did, and the test went on over it. A network \
             that changed under {who} (a VPN reconnecting, Wi-Fi roaming) does this; so does a \
             firewall or proxy that drops some connections."
        ))
        .fix("If HTTPS fails now and then from this network, run the test again when it does.")
    } else {
        Finding::new(
            "run.https-failed",
            Severity::Error,
            format!(
                "{}'s HTTPS request failed ({}); no ClientHello from it reached us",
                capitalized(who),
                printable(error)
            ),
        )
        .explain(format!(
            "{} could not complete an HTTPS request to us, and while it waited no ClientHello \
             that could be its own reached our TLS port. Something between it and us stops the \
             connection before TLS: a firewall blocking TCP port 443, a proxy refusing or \
             holding the connection, DNS sending this name somewhere else, or a path that drops \
             the connection's first full-size packet (then an attempt would show here once it \
             is stuck long enough).",
            capitalized(who)
        ))
        .fix("From the same machine: curl -v https://THIS-HOST/ and check which address it connects to and where it stops.")
        .fix("Ask the network team whether TCP port 443 to this server is allowed and whether a proxy is in the way.")
    };
    Some(
        client
            .failed
            .iter()
            .fold(f, |f, t| f.evidence("HTTPS request", printable(&t.error))),
    )
}

/// The run's requests came through a proxy: what was and was not tested.
pub fn through_proxy(proxy: &ProxyUse) -> Finding {
    let f = Finding::new(
        "run.through-proxy",
        Severity::Info,
        format!(
            "This test ran through your proxy ({}): the path tested is the proxy's to us",
            proxy.name
        ),
    )
    .explain(
        "Your requests reached us through a forwarding proxy, so the TCP connections we \
         measured (their SYN, packet sizes and TCP_INFO) were the proxy's, not your \
         computer's. The transfers crossed your own path to the proxy too, but nothing here \
         shows its packet sizes; a test without the proxy (where your network allows it) \
         tests your computer's own path.",
    );
    proxy
        .evidence
        .iter()
        .fold(f, |f, e| f.evidence("how we know", printable(e)))
}

fn capitalized(who: &str) -> String {
    let mut chars = who.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::ProxyHeader;

    #[test]
    fn names_squid_from_its_via_header() {
        let facts = RequestFacts {
            user_agent: None,
            http_version: "HTTP/1.1".into(),
            proxy_headers: vec![ProxyHeader {
                name: "via".into(),
                value: "1.1 proxy.example (squid/5.7)".into(),
            }],
        };
        let proxy = ProxyUse::from_request(&facts).unwrap();
        assert_eq!(proxy.name, "squid/5.7");
        let plain = RequestFacts {
            proxy_headers: vec![ProxyHeader {
                name: "via".into(),
                value: "1.1 gateway".into(),
            }],
            ..facts
        };
        assert_eq!(ProxyUse::from_request(&plain).unwrap().name, "gateway");
    }

    fn rescued(
        mss: u16,
        ago: std::time::Duration,
        run: std::time::SystemTime,
    ) -> std::sync::Arc<crate::attempt::TlsAttempt> {
        let mut syn = crate::tcp::syn::parse(&crate::tcp::syn::linux_syn_v4()).unwrap();
        syn.mss = Some(mss);
        let mut a = crate::attempt::TlsAttempt::fixture(7, ([198, 18, 1, 1], 40007).into());
        a.started_at = run - ago;
        a.syn = Some(std::sync::Arc::new(syn));
        a.icmp_probe = Some(crate::attempt::IcmpProbe::Reached {
            message: "ICMP fragmentation needed".into(),
            mtu: 1280,
            sent_at_ms: 1000.0,
            complete_at_ms: 1010.0,
            held_segments: 1,
        });
        std::sync::Arc::new(a)
    }

    #[test]
    fn a_client_that_remembers_our_message_is_told_so_and_a_clamp_is_not() {
        use std::time::{Duration, SystemTime};
        let server = crate::profile::ServerProfile::default();
        let run = SystemTime::now();
        let earlier = [rescued(1460, Duration::from_secs(200), run)];
        // 1,280 less 40 bytes of IPv4 and TCP headers: exactly what we said.
        let r = client_remembers(Some(1240), true, 1280, &earlier, run, &server).unwrap();
        assert_eq!((r.mss_before, r.mss_now, r.mtu), (1460, 1240, 1280));
        assert!(
            r.cause.iter().any(|f| f.id == "path.router-icmp-missing"),
            "{:?}",
            r.cause
        );
        let f = remembers(&r);
        assert!(f
            .title
            .starts_with("Your computer remembers, from our message at "));
        // A network clamping every SYN to 1,360 (the seed's fix).
        assert!(client_remembers(Some(1360), true, 1280, &earlier, run, &server).is_none());
        // Longer ago than a kernel keeps it.
        let stale = [rescued(1460, Duration::from_secs(700), run)];
        assert!(client_remembers(Some(1240), true, 1280, &stale, run, &server).is_none());
        // IPv6: 1,280 less 60.
        assert!(client_remembers(Some(1220), false, 1280, &earlier, run, &server).is_some());
    }

    #[test]
    fn what_our_kernel_heard_toward_the_client_is_said_with_when() {
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let before = Heard {
            mtu: 1400,
            seen_at: t,
            before_run: true,
            router: None,
            told_at: None,
        };
        let during = Heard {
            before_run: false,
            router: Some([198, 18, 3, 1].into()),
            told_at: Some(t),
            ..before
        };
        assert!(icmp_toward_you_reached_us(&[], true).is_none());
        let f = icmp_toward_you_reached_us(&[before, during], true).unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert!(
            f.title.ends_with("must stay under 1,400 bytes"),
            "{}",
            f.title
        );
        assert!(f
            .evidence
            .iter()
            .any(|e| e.value.starts_with("during this run")));
        let f = icmp_toward_you_reached_us(&[before], false).unwrap();
        assert!(f.explanation.contains("packet too big"));
        assert!(f
            .evidence
            .iter()
            .any(|e| e.value.starts_with("before this run")));
    }

    #[test]
    fn a_failed_request_is_never_nothing() {
        let client = ClientSide {
            who: "your browser",
            failed: vec![],
            request_failed: Some("timeout".into()),
            recovered: false,
            proxy: None,
            cannot_forget: None,
            earlier: None,
            remembers: None,
            heard: vec![],
        };
        let f = https_failed(&client, false).unwrap();
        assert_eq!(f.severity, Severity::Error);
        assert!(f
            .title
            .starts_with("Your browser's HTTPS request failed (timeout)"));
        assert!(https_failed(&client, true).is_none());
        let recovered = ClientSide {
            recovered: true,
            ..client
        };
        assert_eq!(
            https_failed(&recovered, false).unwrap().severity,
            Severity::Warning
        );
    }
}
