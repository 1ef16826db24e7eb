//! What our own ICMP "fragmentation needed" / "packet too big" did for one
//! stuck ClientHello (see `crate::icmp`). Pure data.

use serde::{Deserialize, Serialize};

/// The ICMP test of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum IcmpProbe {
    /// We sent the message, and the rest of the ClientHello arrived after it:
    /// ICMP from the internet reaches the client.
    Reached {
        /// `ICMP "fragmentation needed"` or `ICMPv6 "packet too big"`.
        message: String,
        /// The MTU the message announced.
        mtu: u32,
        /// When we sent it, in milliseconds from accept.
        sent_at_ms: f64,
        /// When the ClientHello was complete.
        complete_at_ms: f64,
        /// Out-of-order segments we held when we sent it.
        held_segments: u32,
    },
    /// We sent the message and nothing more arrived before the attempt ended:
    /// something near the client filters these messages.
    NoChange {
        message: String,
        mtu: u32,
        sent_at_ms: f64,
        /// How long we kept waiting after sending.
        waited_ms: f64,
        held_segments: u32,
    },
    /// The ClientHello showed the signature, but we could not send.
    NotSent { why: String },
}
