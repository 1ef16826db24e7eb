//! check.sh's ClientHello size ladder: handshakes whose ClientHello is grown
//! (with ALPN entries) to about 512, 1,200, 1,400, 1,500, 2,000 and 4,000
//! bytes. Where they stop completing brackets the largest packet the path
//! carries from the client to us, and how they fail tells a black hole (they
//! hang) from a middlebox that kills ClientHellos spanning two packets (they
//! are reset), the post-quantum breakage of 2024–25.
//!
//! The client's account is checked against ours: the attempts we recorded from
//! the same address, matched by the ClientHello length their headers announced.

use std::sync::Arc;

use super::fixes::{self, IpVersion};
use super::{Finding, Severity};
use crate::attempt::{Outcome, TlsAttempt};
use crate::probe::ClientStep;
use crate::util::thousands;

/// How close an attempt's announced hello length must be to a step's size to
/// be that step's (check.sh builds them to the byte; a margin covers an
/// openssl that adds a byte or two of padding).
const MATCH_MARGIN: usize = 16;

pub(super) fn size_limit(
    steps: &[ClientStep],
    attempts: &[Arc<TlsAttempt>],
    ip: IpVersion,
) -> Option<Finding> {
    // A step that passed on a connection we asked for smaller packets (a
    // path MTU our kernel remembered) could not have failed: not evidence.
    let shrunk_to = attempts
        .iter()
        .filter_map(|a| a.our_mss.filter(|m| m.shrunk()))
        .map(|m| u64::from(m.announced))
        .min();
    let tested: Vec<ClientStep> = steps
        .iter()
        .filter(|s| !(s.ok && shrunk_to.is_some_and(|limit| s.bytes > limit)))
        .cloned()
        .collect();
    let steps = tested.as_slice();
    let largest_ok = steps.iter().filter(|s| s.ok).map(|s| s.bytes).max()?;
    let failed: Vec<&ClientStep> = steps
        .iter()
        .filter(|s| !s.ok && s.bytes > largest_ok)
        .collect();
    let smallest_failed = failed.iter().map(|s| s.bytes).min()?;
    // A size limit: everything below the largest success passed.
    if steps.iter().any(|s| !s.ok && s.bytes <= largest_ok) {
        return None;
    }
    let resets = failed
        .iter()
        .filter(|s| s.error.as_deref() == Some("reset"))
        .count();
    let reset = resets == failed.len();
    let ladder = steps
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                thousands(s.bytes as usize),
                if s.ok {
                    "ok"
                } else {
                    s.error.as_deref().unwrap_or("failed")
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (title, explanation) = if reset {
        (
            format!(
                "ClientHellos of {} bytes and more are reset on the way to us",
                thousands(smallest_failed as usize)
            ),
            format!(
                "Handshakes whose ClientHello is up to {} bytes complete; from {} bytes on the \
                 connection is reset. A ClientHello that large needs two packets, and a firewall or \
                 TLS inspection device on your path kills handshakes it cannot read in one. Browsers \
                 with post-quantum key shares (Chrome 124+, Firefox 132+) send ClientHellos of \
                 1.7–2.1 KB and fail the same way.",
                thousands(largest_ok as usize),
                thousands(smallest_failed as usize)
            ),
        )
    } else {
        (
            format!(
                "MTU black hole from you to us: ClientHellos of {} bytes and more never arrive whole",
                thousands(smallest_failed as usize)
            ),
            format!(
                "Handshakes whose ClientHello is up to {} bytes complete; from {} bytes on they \
                 hang. Your computer sends the larger ClientHellos in full-size packets, something \
                 on the path cannot carry them, and the {} message that would tell your computer to \
                 send smaller ones does not reach it.",
                thousands(largest_ok as usize),
                thousands(smallest_failed as usize),
                ip.too_big_message()
            ),
        )
    };
    let mut f = Finding::new("path.hello-size-limit", Severity::Error, title)
        .explain(explanation)
        .evidence("ClientHello sizes tried (check.sh)", ladder)
        .evidence(
            "packets that got through / did not",
            format!(
                "up to ~{} bytes / ~{} bytes and more (ClientHello + {} bytes of headers)",
                thousands(largest_ok as usize + ip.headers() as usize),
                thousands(smallest_failed as usize + ip.headers() as usize),
                ip.headers()
            ),
        );
    if let Some(seen) = server_view(smallest_failed as usize, attempts) {
        f = f.evidence("what reached us of that ClientHello", seen);
    }
    if reset {
        Some(
            f.fix("Find the firewall or TLS inspection device on your network and update it, or exempt this traffic from inspection.")
                .fix("Until then, clients can be told to send smaller ClientHellos (e.g. disable the post-quantum key share), which hides the problem rather than fixing it."),
        )
    } else {
        Some(fixes::for_black_hole_toward_server(f, ip))
    }
}

/// Our record of the attempt whose ClientHello announced about `size` bytes.
fn server_view(size: usize, attempts: &[Arc<TlsAttempt>]) -> Option<String> {
    attempts.iter().find_map(|a| match &a.outcome {
        Outcome::HelloIncomplete {
            received,
            expected: Some(expected),
            out_of_order_segments,
            ..
        } if expected.abs_diff(size) <= MATCH_MARGIN => Some(format!(
            "{} of {} bytes in order, {} later segment(s) held out of order",
            thousands(*received),
            thousands(*expected),
            out_of_order_segments
        )),
        _ => None,
    })
}
