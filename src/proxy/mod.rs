//! The PROXY protocol (HAProxy's, versions 1 and 2), for running behind a TCP
//! load balancer (`--proxy-protocol`): every connection on our listeners then
//! starts with a header naming the client the balancer accepted. This module
//! owns reading that header, exactly and within bounds, and what we keep of it
//! ([`Via`]): who the client is, and that the TCP connection we hold is the
//! balancer's, not the client's.
//!
//! - `header`: framing and decoding the header bytes (pure; the `ppp` crate
//!   decodes, we frame and bound).
//! - `read`: consuming exactly the header from a fresh socket, under a
//!   deadline, so the bytes after it (a ClientHello) are the client's own.
//!
//! Bounds: a v1 header is at most [`header::V1_MAX`] bytes (107, as the
//! specification says); a v2 header at most [`header::V2_MAX`] (its 16 fixed
//! bytes plus 520 of addresses and TLVs: room for a UNIX-socket pair and the
//! TLVs AWS, GCP and HAProxy send, which we read past and do not keep).

mod header;
mod read;

pub use header::{decode, frame, split, Decoded, Frame, V1_MAX, V2_MAX, V2_MAX_PAYLOAD};
pub use read::{read_header, HEADER_TIMEOUT};

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::tcp::SynInfo;

/// What the header said the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViaKind {
    /// A client's connection, relayed: the header names the client.
    Proxied,
    /// The balancer's own connection (v2 `LOCAL`): a health check. The
    /// balancer's address stands for the client.
    HealthCheck,
    /// A relayed connection whose client the balancer did not name (v1
    /// `UNKNOWN`, v2 `UNSPEC` or a UNIX socket): the balancer's address stands
    /// for the client.
    Unnamed,
}

/// A connection that reached us through a load balancer: what its PROXY
/// header said, and the facts of the TCP connection we really hold (the
/// balancer's). Everything per client address uses the header's client; the
/// SYN here is the balancer's and is kept only to show it as such.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Via {
    /// The load balancer: the TCP peer that sent the header.
    pub balancer: SocketAddr,
    /// PROXY protocol version, 1 (text) or 2 (binary).
    pub version: u8,
    pub kind: ViaKind,
    /// The address the client connected to, as the balancer reports it.
    pub destination: Option<SocketAddr>,
    /// The SYN of the balancer's connection to us (not the client's).
    pub balancer_syn: Option<SynInfo>,
}

impl Via {
    /// The note every report carries for a connection behind a balancer.
    pub fn note(&self) -> String {
        let what = match self.kind {
            ViaKind::Proxied => "relayed by",
            ViaKind::HealthCheck => "a health check from",
            ViaKind::Unnamed => "relayed, client not named, by",
        };
        format!(
            "This connection is {what} a load balancer ({}, PROXY protocol v{}). The SYN, TTL, \
             MSS, TCP_INFO and the sizes and timing of the ClientHello's reads describe the \
             balancer's connection to us, not the client's: findings that depend on them are \
             withheld, and our ICMP test is not sent.",
            self.balancer.ip().to_canonical(),
            self.version
        )
    }
}

/// Who a connection is from: the client (from the PROXY header when there is
/// one, else the TCP peer) and, behind a balancer, what the header said.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The address every per-client thing is keyed by.
    pub client: SocketAddr,
    pub via: Option<std::sync::Arc<Via>>,
}

impl Peer {
    /// A connection straight from its client.
    pub fn direct(client: SocketAddr) -> Self {
        Self { client, via: None }
    }
}

/// Why a connection's PROXY header was refused (the connection is closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("no PROXY header: the connection starts with {0}")]
    Missing(String),
    #[error("PROXY v2 signature does not match")]
    BadSignature,
    #[error("PROXY v2 version/command byte {0:#04x} is not 0x20 (LOCAL) or 0x21 (PROXY)")]
    BadVersionCommand(u8),
    #[error("PROXY header longer than {limit} bytes")]
    TooLong { limit: usize },
    #[error("PROXY v1 line does not end in CRLF")]
    NoCrlf,
    #[error("invalid PROXY v{version} header: {detail}")]
    Invalid { version: u8, detail: String },
    #[error("PROXY header not complete within {0:?}")]
    Timeout(std::time::Duration),
    #[error("connection closed after {0} bytes of the PROXY header")]
    Closed(usize),
    #[error("reading the PROXY header: {0}")]
    Io(String),
}
