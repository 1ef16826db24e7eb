//! Behind a load balancer (`--proxy-protocol`), the TCP connection we hold is
//! the balancer's: its SYN, `TCP_INFO`, the way the ClientHello was cut into
//! reads and what became of our sends say nothing about the client's path.
//! The rules that read those facts are not run on such attempts (they are
//! absent from the record, or skipped in `diagnose::attempt`), and this note
//! says so in their place, so no verdict (and no all-clear) rests on them.

use super::{Finding, Severity};
use crate::proxy::{Via, ViaKind};

/// The id of the note; the headline turns "clear" into "inconclusive" when
/// it is present.
pub const BEHIND_BALANCER: &str = "net.behind-load-balancer";

pub(super) fn behind_balancer(via: &Via) -> Finding {
    let kind = match via.kind {
        ViaKind::Proxied => "PROXY: the header names the client",
        ViaKind::HealthCheck => "LOCAL: the balancer's own health check",
        ViaKind::Unnamed => "client not named (UNKNOWN/UNSPEC): the balancer's address stands in",
    };
    Finding::new(
        BEHIND_BALANCER,
        Severity::Info,
        "Inconclusive behind a load balancer: our TCP facts are the balancer's, not yours",
    )
    .explain(format!(
        "{} Withheld for that reason: dropped-fragment and black-hole signatures from the SYN \
         and TCP_INFO, how the ClientHello arrived in pieces, whether our handshake and \
         responses were acknowledged, and our own ICMP test. Packet-size limits between you and \
         the balancer can only be seen by the balancer, or by a client-side test such as \
         check.sh's ClientHello ladder.",
        via.note()
    ))
    .evidence(
        "load balancer",
        via.balancer.ip().to_canonical().to_string(),
    )
    .evidence("PROXY protocol", format!("v{} ({kind})", via.version))
}
