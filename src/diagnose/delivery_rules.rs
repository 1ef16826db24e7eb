//! Rules about what we sent on an HTTPS connection: our handshake flight and
//! the responses after it. When the client stops acknowledging our full-size
//! packets while small ones got through, the path toward the client drops
//! packets above its MTU: a black hole in the server-to-client direction,
//! proven from our side by `TCP_INFO` rather than guessed from a timeout.

use super::fixes::{self, IpVersion};
use super::{Finding, Severity};
use crate::attempt::{Outcome, SentData, TlsAttempt};
use crate::util::thousands;

/// The handshake completed, then a response stopped being acknowledged.
pub(super) fn response_stalled(attempt: &TlsAttempt) -> Option<Finding> {
    if !matches!(attempt.outcome, Outcome::Completed) {
        return None;
    }
    let sent = attempt.responses().filter(SentData::stalled)?;
    let ip = IpVersion::of(attempt.peer.ip());
    let f = Finding::new(
        "path.response-stalled",
        Severity::Error,
        format!(
            "MTU black hole toward you: the handshake completed, then our {}-byte response was \
             never acknowledged past {} bytes",
            thousands(sent.written as usize),
            thousands(sent.acknowledged as usize)
        ),
    )
    .explain(format!(
        "Your HTTPS connection worked while packets were small: the handshake completed. Then we \
         sent a response that needs full-size packets, and your side stopped acknowledging: we \
         resent it {} time(s) and nothing came back. Somewhere between us and you, packets above \
         the path's MTU are dropped, and the {} message that would make us send smaller ones \
         never reaches us. Pages start loading and hang; small API calls work.",
        sent.retransmissions,
        ip.too_big_message()
    ));
    Some(fixes::for_black_hole_toward_client(
        evidence(
            f,
            &sent,
            "response bytes sent / acknowledged",
            attempt.tcp.map(|t| t.pmtu),
        ),
        ip,
    ))
}

/// The handshake never finished, and our flight is why: the client stopped
/// acknowledging it partway through.
pub(super) fn flight_stalled(attempt: &TlsAttempt) -> Option<Finding> {
    let waiting = matches!(
        attempt.outcome,
        Outcome::HandshakeTimeout | Outcome::ClosedMidHandshake | Outcome::ResetMidHandshake
    );
    let flight = attempt
        .handshake_flight
        .filter(|f| waiting && f.acknowledged < f.written && f.retransmissions > 0)?;
    let ip = IpVersion::of(attempt.peer.ip());
    let f = Finding::new(
        "path.flight-stalled",
        Severity::Error,
        match flight.acknowledged {
            0 => format!(
                "MTU black hole toward you: our {}-byte handshake reply (certificate chain \
                 included) never reached you",
                thousands(flight.written as usize)
            ),
            acked => format!(
                "MTU black hole toward you: our {}-byte handshake reply (certificate chain \
                 included) was acknowledged only up to {} bytes",
                thousands(flight.written as usize),
                thousands(acked as usize)
            ),
        },
    )
    .explain(format!(
        "Your ClientHello arrived whole, and we answered with our ServerHello and certificate \
         chain: several full-size packets. {}, though we resent {} time(s). The path toward you \
         drops packets above its MTU, and the {} message that would make us send smaller ones \
         never reaches us. A large certificate chain (or a post-quantum key share) is what makes \
         the reply need full-size packets.",
        match flight.acknowledged {
            0 => "Your side acknowledged none of it".to_owned(),
            acked => format!(
                "Your side acknowledged the first {} bytes and nothing after",
                thousands(acked as usize)
            ),
        },
        flight.retransmissions,
        ip.too_big_message()
    ));
    Some(fixes::for_black_hole_toward_client(
        evidence(
            f,
            &flight,
            "handshake reply bytes sent / acknowledged",
            attempt.tcp.map(|t| t.pmtu),
        ),
        ip,
    ))
}

/// Whether any "too big" message reached our kernel: it would have lowered
/// our path MTU toward the client below what it was when the connection
/// began (`at_start`, from the snapshot taken as the ClientHello arrived).
fn icmp_heard(sent: &SentData, at_start: Option<u32>) -> String {
    let lowered = at_start.is_some_and(|start| sent.path_mtu < start);
    if sent.path_mtu == 0 || at_start.is_none() {
        format!(
            "unknown (our path MTU toward you is {} bytes)",
            thousands(sent.path_mtu as usize)
        )
    } else if !lowered {
        format!(
            "none reached us: our path MTU toward you is still {} bytes",
            thousands(sent.path_mtu as usize)
        )
    } else {
        format!(
            "one reached us (our path MTU toward you is now {} bytes), but packets still vanish",
            thousands(sent.path_mtu as usize)
        )
    }
}

fn evidence(f: Finding, sent: &SentData, label: &'static str, at_start: Option<u32>) -> Finding {
    f.evidence(
        label,
        format!(
            "{} / {}",
            thousands(sent.written as usize),
            thousands(sent.acknowledged as usize)
        ),
    )
    .evidence("retransmissions", sent.retransmissions.to_string())
    .evidence(
        "our segment size toward you",
        format!("{} bytes", thousands(sent.segment_bytes as usize)),
    )
    .evidence("ICMP from your network", icmp_heard(sent, at_start))
    .evidence(
        "last acknowledgement",
        format!(
            "{:.1} s before we looked",
            f64::from(sent.since_last_ack_ms) / 1000.0
        ),
    )
}
