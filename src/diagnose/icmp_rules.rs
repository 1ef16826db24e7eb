//! Rules about our own ICMP test (`crate::icmp`): what it proves about where
//! the "fragmentation needed" / "packet too big" message goes missing.

use super::fixes::{self, IpVersion};
use super::{Finding, Severity};
use crate::attempt::{IcmpProbe, TlsAttempt};
use crate::probe::ProbeRun;
use crate::tcp::SynInfo;
use crate::util::thousands;

/// An IPv4 client whose SYN came without "don't fragment": routers fragment
/// its large packets instead of answering with ICMP.
fn sends_without_df(ip: IpVersion, syn: Option<&SynInfo>) -> bool {
    ip == IpVersion::V4 && syn.is_some_and(|s| s.dont_fragment == Some(false))
}

/// The test of a stuck ClientHello.
pub(super) fn icmp_test(attempt: &TlsAttempt) -> Option<Finding> {
    let ip = IpVersion::of(attempt.peer.ip());
    let df_off = sends_without_df(ip, attempt.syn.as_deref());
    of_probe(attempt.icmp_probe.as_ref()?, ip, df_off, "your ClientHello")
}

/// The tests of stalled uploads in a run (the first that ran one); `syn` is
/// the posting connection's, for the "don't fragment" flag.
pub(super) fn upload_tests(
    run: &ProbeRun,
    ip: IpVersion,
    syn: Option<&SynInfo>,
) -> Option<Finding> {
    let df_off = sends_without_df(ip, syn);
    run.up.iter().find_map(|step| {
        let probe = step.server.as_ref()?.icmp_probe.as_ref()?;
        of_probe(
            probe,
            ip,
            df_off,
            &format!("your upload of {} bytes", thousands(step.bytes as usize)),
        )
    })
}

/// The numbers of a rescue: what we sent, when, and what followed.
fn rescue_evidence(
    f: Finding,
    message: &str,
    mtu: u32,
    sent_at_ms: f64,
    complete_at_ms: f64,
    held_segments: u32,
) -> Finding {
    let seconds = |ms: f64| format!("{:.1} s", ms / 1000.0);
    f.evidence(
        "what we sent",
        format!("{message}, MTU {}", thousands(mtu as usize)),
    )
    .evidence("sent", format!("{} after it began", seconds(sent_at_ms)))
    .evidence(
        "what your computer did next",
        format!(
            "resent smaller packets; the rest arrived, complete {} after our message",
            seconds(complete_at_ms - sent_at_ms)
        ),
    )
    .evidence(
        "segments held out of order before",
        held_segments.to_string(),
    )
}

/// What one test proved; `what` names the stuck data ("your ClientHello").
fn of_probe(probe: &IcmpProbe, ip: IpVersion, df_off: bool, what: &str) -> Option<Finding> {
    let seconds = |ms: f64| format!("{:.1} s", ms / 1000.0);
    match probe {
        IcmpProbe::Reached {
            message,
            mtu,
            sent_at_ms,
            complete_at_ms,
            held_segments,
        } if df_off => {
            let f = Finding::new(
                "path.fragments-dropped",
                Severity::Error,
                format!(
                    "IP fragments from your network are dropped; our {message} made your computer \
                     send smaller packets and rescued this connection"
                ),
            )
            .explain(format!(
                "Your computer sends without the \"don't fragment\" flag, so a router with a \
                 smaller MTU splits its large packets into fragments instead of asking for smaller \
                 ones, and the full-size packets of {what} never arrived whole: something on the \
                 path drops the fragments (a firewall rule that discards all IP fragments is the \
                 usual cause). Our message made your computer send packets small enough to need no \
                 fragmenting; other servers will not do that."
            ))
            .evidence("don't-fragment flag in your SYN", "not set");
            let f = rescue_evidence(f, message, *mtu, *sent_at_ms, *complete_at_ms, *held_segments)
            .fix("Let IP fragments through the firewall (or at least fragments of established TCP connections).")
            .fix(fixes::CLAMP_MSS)
            .fix(fixes::FIX_TUNNEL_MTU);
            Some(f)
        }
        IcmpProbe::Reached {
            message,
            mtu,
            sent_at_ms,
            complete_at_ms,
            held_segments,
        } => {
            let f = Finding::new(
                "path.router-icmp-missing",
                Severity::Error,
                format!(
                    "MTU black hole from you to us: your network never sends {message}; ours \
                     reached your computer and rescued this connection"
                ),
            )
            .explain(format!(
                "The full-size packets of {what} never arrived, while {held_segments} later \
                 segment(s) did: something between you and us cannot carry full-size packets and \
                 does not say so. We sent your computer the {message} its router should have \
                 sent, and it resent in smaller packets at once: {} messages from the internet do \
                 reach you, so the router (a VPN, tunnel or PPPoE link) that drops your large \
                 packets is not sending it, or something right next to it filters it. Other \
                 servers will not do what we did: their connections hang.",
                ip.too_big_message()
            ));
            let f = rescue_evidence(f, message, *mtu, *sent_at_ms, *complete_at_ms, *held_segments)
            .fix("Find the router or tunnel endpoint with the smaller MTU and make it send the ICMP message (or stop filtering it right there).");
            Some(fixes::for_black_hole_toward_server(f, ip))
        }
        IcmpProbe::NoChange {
            message,
            mtu,
            sent_at_ms,
            waited_ms,
            held_segments,
        } => {
            let f = Finding::new(
                "path.icmp-filtered-toward-you",
                Severity::Error,
                format!("Your firewall drops {message} toward you"),
            )
            .explain(format!(
                "The full-size packets of {what} never arrived, while {held_segments} later \
                 segment(s) did. We sent your computer a {message} for exactly those packets, \
                 which makes any computer resend smaller ones at once; nothing changed. So these \
                 messages do not reach your computer: a firewall on your side drops them, and that \
                 is why your computer never learns the path's real MTU and its large packets \
                 vanish. Allow this one ICMP type and the problem fixes itself."
            ))
            .evidence(
                "what we sent",
                format!("{message}, MTU {}", thousands(*mtu as usize)),
            )
            .evidence(
                "sent",
                format!("{} after the connection opened", seconds(*sent_at_ms)),
            )
            .evidence(
                "what your computer did next",
                format!(
                    "nothing: no smaller packets in the {} we kept waiting",
                    seconds(*waited_ms)
                ),
            )
            .evidence("segments held out of order", held_segments.to_string());
            Some(fixes::for_black_hole_toward_server(f, ip))
        }
        IcmpProbe::NotSent { why } => Some(
            Finding::new(
                "path.icmp-test-unavailable",
                Severity::Info,
                "The ICMP test could not run",
            )
            .explain(format!(
                "The full-size packets of {what} looked stuck behind an MTU black hole, and we \
                 would have sent your computer our own \"too big\" message to see whether such \
                 messages reach it. We could not; the other findings stand without it."
            ))
            .evidence("why", why.clone()),
        ),
    }
}
