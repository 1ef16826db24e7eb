//! Rules about a probe run: where transfers stop completing, in which
//! direction, whether a direction was tested with full-size packets at all,
//! and what the client's clock says.
//!
//! A passing step proves something only if it could have failed: it must have
//! run on a connection whose packets were not clamped below the client's own
//! size, and been large enough to need full-size segments. A direction with no
//! such step is reported as untested, never as fine.

use super::fixes::{self, IpVersion, CLAMP_MSS, FIX_TUNNEL_MTU};
use super::{Finding, Severity};
use crate::probe::{Direction, ProbeRun, StepView};
use crate::tcp::SynInfo;
use crate::util::thousands;

/// Client clocks further off than this break certificate validation at the
/// edges of validity periods and confuse logs.
const CLOCK_SKEW_MS: f64 = 5.0 * 60.0 * 1000.0;

/// Where a ladder breaks: every step up to `largest_ok` passed, every step from
/// `smallest_failed` failed, and there was at least one of each.
struct Break<'a> {
    largest_ok: &'a StepView,
    smallest_failed: &'a StepView,
    failed: usize,
}

fn find_break(steps: &[StepView]) -> Option<Break<'_>> {
    let mut sorted: Vec<&StepView> = steps.iter().filter(|s| s.passed() || s.failed()).collect();
    sorted.sort_by_key(|s| s.bytes);
    let largest_ok = sorted
        .iter()
        .filter(|s| s.passed())
        .max_by_key(|s| s.bytes)?;
    let smallest_failed = sorted
        .iter()
        .filter(|s| s.failed())
        .min_by_key(|s| s.bytes)?;
    // Monotonic: nothing fails below the largest success. Otherwise this is loss,
    // not a size limit.
    if smallest_failed.bytes <= largest_ok.bytes {
        return None;
    }
    Some(Break {
        largest_ok,
        smallest_failed,
        failed: sorted.iter().filter(|s| s.failed()).count(),
    })
}

pub(super) fn black_hole_down(run: &ProbeRun, ip: IpVersion) -> Option<Finding> {
    let b = find_break(&run.down)?;
    let server = b.smallest_failed.server.as_ref();
    let mut f = Finding::new(
        "path.black-hole-down",
        Severity::Error,
        format!(
            "MTU black hole toward you: responses of {} bytes and more never arrive",
            thousands(b.smallest_failed.bytes as usize)
        ),
    )
    .explain(format!(
        "Downloads up to {} bytes complete; from {} bytes on they never finish. Small responses fit \
         in packets the path carries; larger ones need full-size packets, and somewhere between this \
         server and you those are dropped without the {} message that would make us send smaller \
         ones. Your browser or curl waits forever for data that never comes: pages start loading \
         and hang.",
        thousands(b.largest_ok.bytes as usize),
        thousands(b.smallest_failed.bytes as usize),
        ip.too_big_message()
    ))
    .evidence("largest download that completed", format!("{} bytes", thousands(b.largest_ok.bytes as usize)))
    .evidence("smallest download that failed", format!("{} bytes", thousands(b.smallest_failed.bytes as usize)))
    .evidence("failed steps", b.failed.to_string());
    if let Some(obs) = server {
        f = f.evidence(
            "server side",
            format!(
                "{} of {} bytes acknowledged, {} retransmissions, {}",
                thousands(obs.transferred as usize),
                thousands(obs.bytes as usize),
                obs.retransmissions(),
                if obs.stalled {
                    "stalled"
                } else {
                    "no stall seen"
                }
            ),
        );
        if let Some(after) = &obs.after {
            f = f.evidence(
                "our packet size toward you",
                format!(
                    "{} bytes (segment {} + headers); path MTU we know of: {}",
                    thousands((after.snd_mss + ip.headers() + 12) as usize),
                    thousands(after.snd_mss as usize),
                    thousands(after.pmtu as usize)
                ),
            );
        }
    }
    Some(fixes::for_black_hole_toward_client(f, ip))
}

pub(super) fn black_hole_up(
    run: &ProbeRun,
    syn: Option<&SynInfo>,
    ip: IpVersion,
) -> Option<Finding> {
    let b = find_break(&run.up)?;
    // The largest segment the server saw from this client on a step that worked:
    // a lower bound for what the path carries.
    let largest_seen = run
        .up
        .iter()
        .filter(|s| s.passed())
        .filter_map(|s| s.server.as_ref()?.after.as_ref().map(|t| t.rcv_mss))
        .max()
        .filter(|mss| *mss > 0)
        .map(|mss| mss + ip.headers());
    // What the client sends when it fills a packet: its own MSS says.
    let full_size = syn.and_then(|s| s.implied_mtu);
    let title = match full_size {
        Some(mtu) => format!(
            "MTU black hole from you toward the server: your full-size packets ({} bytes) are dropped",
            thousands(mtu as usize)
        ),
        None => format!(
            "MTU black hole from you toward the server: uploads of {} bytes and more never arrive",
            thousands(b.smallest_failed.bytes as usize)
        ),
    };
    // A client that does not set DF lets routers fragment its large packets; if
    // they still vanish, the fragments are what is dropped (the seed incident's
    // "drop all IP fragments" rule).
    if ip == IpVersion::V4 && syn.and_then(|s| s.dont_fragment) == Some(false) {
        return Some(fragments_dropped(&b, largest_seen));
    }
    let mut f = Finding::new("path.black-hole-up", Severity::Error, title)
        .explain(format!(
        "Uploads up to {} bytes arrive; from {} bytes on they never complete. Your computer sends \
         full-size packets, something on your side of the path (a VPN, tunnel or firewall) cannot \
         carry them, and the {} message that would tell your computer to send smaller ones is \
         blocked. Anything you send that needs a full-size packet, such as a ClientHello with a \
         post-quantum key share, vanishes.",
        thousands(b.largest_ok.bytes as usize),
        thousands(b.smallest_failed.bytes as usize),
        ip.too_big_message()
    ))
        .evidence(
            "largest upload that arrived",
            format!("{} bytes", thousands(b.largest_ok.bytes as usize)),
        )
        .evidence(
            "smallest upload that failed",
            format!("{} bytes", thousands(b.smallest_failed.bytes as usize)),
        );
    if let Some(p) = largest_seen {
        f = f.evidence(
            "largest packet that reached us",
            format!("~{} bytes", thousands(p as usize)),
        );
    }
    if let Some(obs) = &b.smallest_failed.server {
        f = f.evidence(
            "received of the failed upload",
            format!(
                "{} of {} bytes{}",
                thousands(obs.transferred as usize),
                thousands(obs.bytes as usize),
                if obs.out_of_order() > 0 {
                    format!(", {} later segment(s) out of order", obs.out_of_order())
                } else {
                    String::new()
                }
            ),
        );
    }
    if let Some(syn) = syn {
        if let (Some(mss), Some(mtu)) = (syn.mss, syn.implied_mtu) {
            f = f.evidence(
                "your computer's MSS (from its SYN)",
                format!(
                    "{mss} bytes: it sends packets of up to {} bytes",
                    thousands(mtu as usize)
                ),
            );
        }
    }
    Some(fixes::for_black_hole_toward_server(f, ip))
}

fn fragments_dropped(b: &Break<'_>, largest_seen: Option<u32>) -> Finding {
    let mut f = Finding::new(
        "path.fragments-dropped",
        Severity::Error,
        format!(
            "IP fragments from your network are dropped: uploads of {} bytes and more never arrive",
            thousands(b.smallest_failed.bytes as usize)
        ),
    )
    .explain(format!(
        "Your computer sends without the \"don't fragment\" flag, so a router with a smaller MTU \
         splits large packets into fragments instead of asking for smaller ones. Uploads up to {} \
         bytes arrive; larger ones never do, so something on the path drops the fragments: a \
         firewall rule that discards all IP fragments as a \"hardening\" measure is the usual cause.",
        thousands(b.largest_ok.bytes as usize)
    ))
    .evidence("largest upload that arrived", format!("{} bytes", thousands(b.largest_ok.bytes as usize)))
    .evidence("smallest upload that failed", format!("{} bytes", thousands(b.smallest_failed.bytes as usize)))
    .evidence("don't-fragment flag in your SYN", "not set");
    if let Some(p) = largest_seen {
        f = f.evidence(
            "largest packet that reached us",
            format!("~{} bytes", thousands(p as usize)),
        );
    }
    f.fix("Let IP fragments through the firewall (or at least fragments of established TCP connections).")
        .fix(CLAMP_MSS)
        .fix(FIX_TUNNEL_MTU)
}

/// Failures that are not a size limit: some small steps fail while larger pass.
pub(super) fn unreliable(run: &ProbeRun) -> Vec<Finding> {
    let mut out = Vec::new();
    for (steps, direction, id) in [
        (&run.down, "toward you", "path.loss-down"),
        (&run.up, "from you", "path.loss-up"),
    ] {
        let failed: Vec<&StepView> = steps.iter().filter(|s| s.failed()).collect();
        if failed.is_empty() || find_break(steps).is_some() {
            continue;
        }
        let all = steps.iter().filter(|s| s.passed() || s.failed()).count();
        let (severity, title) = if failed.len() == all {
            (
                Severity::Error,
                format!("No transfer {direction} completed"),
            )
        } else {
            (
                Severity::Warning,
                format!("Some transfers {direction} failed at random sizes"),
            )
        };
        out.push(
            Finding::new(id, severity, title)
                .explain(
                    "The failures do not line up with packet size (smaller transfers failed while \
                     larger ones passed, or everything failed), so this is not an MTU black hole: \
                     look for packet loss, a proxy or a filter on the path.",
                )
                .evidence(
                    "failed sizes",
                    failed
                        .iter()
                        .map(|s| format!("{} ({})", thousands(s.bytes as usize), reason(s)))
                        .collect::<Vec<_>>()
                        .join(", "),
                )
                .evidence("steps run", all.to_string()),
        );
    }
    out
}

fn reason(step: &StepView) -> String {
    step.client
        .as_ref()
        .and_then(|c| c.error.clone())
        .unwrap_or_else(|| "stalled".into())
}

/// A direction whose transfers could not have shown a black hole: none ran,
/// none was observed by the server, or all ran over a clamped connection or
/// were too small to need full-size packets. Failures are reported by the
/// other rules; this one speaks only where everything "passed".
pub(super) fn untested(run: &ProbeRun, direction: Direction, how_to_test: &str) -> Option<Finding> {
    let (steps, id, toward) = match direction {
        Direction::Down => (&run.down, "path.untested-down", "toward you"),
        Direction::Up => (&run.up, "path.untested-up", "from you to us"),
    };
    let largest_mss = largest_client_mss(run);
    if steps.iter().any(StepView::failed) || steps.iter().any(|s| proves_full_size(s, largest_mss))
    {
        return None;
    }
    let ran: Vec<&StepView> = steps.iter().filter(|s| s.passed()).collect();
    let clamp = ran
        .iter()
        .filter_map(|s| s.server.as_ref()?.packets.mss_clamp)
        .min();
    let why = if ran.is_empty() {
        format!(
            "No transfer {toward} was run, so nothing is known about packets in that direction."
        )
    } else if let Some(clamp) = clamp.filter(|_| {
        ran.iter()
            .all(|s| s.server.as_ref().is_some_and(|o| o.packets.clamped()))
    }) {
        format!(
            "Every transfer {toward} ran over plain HTTP, whose packets this server limits to \
             segments of {} bytes so its pages get through broken paths. Packets that small cross \
             a black hole too, so these transfers cannot tell whether full-size packets do.",
            thousands(clamp as usize)
        )
    } else if let Some(smaller) = ran.iter().filter_map(|s| s.server.as_ref()).find(|o| {
        !o.packets.clamped() && o.bytes >= 2 * u64::from(o.packets.client_mss.unwrap_or(1460))
    }) {
        match direction {
            Direction::Down => {
                format!(
                "The transfers toward you ran on connections for which your computer asked for \
                 segments of at most {} bytes, less than it asked for earlier in this run: it had \
                 learned a smaller path MTU in between, so our packets stayed small and could not \
                 show whether full-size packets reach you.",
                smaller.packets.client_mss.map_or_else(|| "?".into(), |m| thousands(m as usize))
            )
            }
            Direction::Up => "The transfers from you ran on connections for which we had asked \
                 for segments smaller than your computer's own (we had learned a smaller path MTU \
                 toward you), so your packets stayed small and could not show whether full-size \
                 packets from you reach us."
                .to_owned(),
        }
    } else if ran.iter().all(|s| s.server.is_none()) {
        format!(
            "The transfers {toward} were reported as passed, but the server saw none of them, so \
             nothing shows which packets they used."
        )
    } else {
        format!(
            "No transfer {toward} was large enough to need full-size packets on an unclamped \
             connection."
        )
    };
    Some(
        Finding::new(
            id,
            Severity::Warning,
            format!("Inconclusive {toward}: full-size packets were not tested"),
        )
        .explain(why)
        .evidence(
            "transfers that passed",
            ran.iter()
                .map(|s| thousands(s.bytes as usize))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .fix(how_to_test.to_owned()),
    )
}

/// A passed step that could have failed: the server watched it on a
/// connection whose packets were full size and it needed full segments.
pub(super) fn proves_full_size(step: &StepView, largest_client_mss: Option<u32>) -> bool {
    step.passed()
        && step
            .server
            .as_ref()
            .is_some_and(|o| o.exercised_full_size(largest_client_mss))
}

/// The largest MSS the client announced on any connection of the run.
fn largest_client_mss(run: &ProbeRun) -> Option<u32> {
    run.down
        .iter()
        .chain(&run.up)
        .filter_map(|s| s.server.as_ref()?.packets.client_mss)
        .max()
}

pub(super) fn clock_skew(run: &ProbeRun) -> Option<Finding> {
    let offset = run.clock_offset_ms?;
    if offset.abs() < CLOCK_SKEW_MS {
        return None;
    }
    let minutes = offset.abs() / 60_000.0;
    let direction = if offset > 0.0 { "ahead of" } else { "behind" };
    Some(
        Finding::new(
            "client.clock-skew",
            Severity::Warning,
            format!("Your clock is {minutes:.0} minutes {direction} ours"),
        )
        .explain(
            "Certificates are valid only between two dates. A client clock this far off rejects \
             certificates that were just issued or are about to expire (\"not yet valid\", \
             \"expired\"), and makes its logs hard to match with ours.",
        )
        .evidence("difference", format!("{:.0} s", offset / 1000.0))
        .fix("Enable time synchronisation: timedatectl set-ntp true (Linux), or check Date & Time settings."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ClientStep;

    fn steps(results: &[(u64, bool)]) -> Vec<StepView> {
        results
            .iter()
            .map(|(bytes, ok)| StepView {
                bytes: *bytes,
                client: Some(ClientStep {
                    bytes: *bytes,
                    ok: *ok,
                    ms: Some(5.0),
                    error: (!ok).then(|| "timeout".to_string()),
                }),
                server: None,
            })
            .collect()
    }

    fn run(down: &[(u64, bool)], up: &[(u64, bool)]) -> ProbeRun {
        ProbeRun {
            run: "testrun1".into(),
            agent: "check.sh".into(),
            clock_offset_ms: Some(0.0),
            down: steps(down),
            up: steps(up),
        }
    }

    #[test]
    fn a_size_threshold_is_a_black_hole() {
        let r = run(
            &[(512, true), (1300, true), (1400, false), (2000, false)],
            &[],
        );
        let f = black_hole_down(&r, IpVersion::V4).unwrap();
        assert!(f.title.contains("1,400 bytes and more"), "{}", f.title);
        assert!(unreliable(&r).is_empty());
    }

    #[test]
    fn without_df_a_size_limit_means_fragments_are_dropped() {
        let r = run(&[], &[(512, true), (1400, false), (2000, false)]);
        let syn = crate::tcp::syn::SynInfo {
            ip_version: 4,
            ttl: 64,
            initial_ttl: 64,
            hops: 0,
            dont_fragment: Some(false),
            window: 64240,
            sequence: 1,
            options: vec![],
            mss: Some(1460),
            window_scale: None,
            sack_permitted: false,
            timestamps: false,
            implied_mtu: Some(1500),
            raw: Default::default(),
        };
        assert_eq!(
            black_hole_up(&r, Some(&syn), IpVersion::V4).unwrap().id,
            "path.fragments-dropped"
        );
    }

    #[test]
    fn random_failures_are_loss_not_a_black_hole() {
        let r = run(&[], &[(512, false), (1300, true), (1400, true)]);
        assert!(black_hole_up(&r, None, IpVersion::V4).is_none());
        assert_eq!(unreliable(&r)[0].id, "path.loss-up");
    }

    #[test]
    fn a_clean_run_has_no_findings() {
        let ok = [(512, true), (1500, true), (1048576, true)];
        let r = run(&ok, &ok);
        assert!(black_hole_down(&r, IpVersion::V4).is_none());
        assert!(black_hole_up(&r, None, IpVersion::V4).is_none());
        assert!(unreliable(&r).is_empty() && clock_skew(&r).is_none());
    }

    #[test]
    fn flags_a_skewed_clock() {
        let mut r = run(&[], &[]);
        r.clock_offset_ms = Some(-7.0 * 60_000.0);
        assert!(clock_skew(&r).unwrap().title.contains("7 minutes behind"));
    }
}
