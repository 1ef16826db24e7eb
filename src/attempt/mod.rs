//! One attempt to reach the TLS port: what arrived, what was negotiated, and
//! exactly how it ended. Plain data plus pure classification; the server fills it
//! in, the store keeps it, diagnosis and reports read it.

mod delivery;
pub mod footprint;
mod icmp_probe;
mod our_mss;
mod outcome;
mod request;
mod run_tag;
pub mod stored;

pub use delivery::{AfterHandshake, Fate, SentData, STALL_AFTER_MS};
pub use icmp_probe::IcmpProbe;
pub use our_mss::OurMss;
pub use outcome::{classify, HandshakeError, Outcome, StallEnd, MAX_OFFERED_PROTOCOLS};
pub use request::{
    version_name, FirstRequest, ProxyHeader, RequestFacts, MAX_PROXY_HEADER_BYTES,
    MAX_USER_AGENT_BYTES, PROXY_HEADERS,
};
pub use run_tag::{
    named_in_hello, named_in_query, RunTag, HELLO_LADDER_ALPN_PREFIX, MAX_RUN_ID_BYTES,
};

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::Serialize;

use crate::capture::ReadEvent;
use crate::fingerprint::Fingerprints;
use crate::hello::wire::{CipherSuite, NamedGroup, ProtocolVersion};
use crate::hello::ClientHello;
use crate::tcp::{SynInfo, TcpInfo};

/// Bytes of a failed attempt kept for the report (the hello itself is kept in
/// full when it parsed): enough to show what a non-TLS client sent.
pub const KEPT_BYTES_OF_FAILED_ATTEMPT: usize = 4096;

/// What the handshake settled on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Negotiated {
    pub version: ProtocolVersion,
    pub cipher_suite: CipherSuite,
    pub key_exchange_group: Option<NamedGroup>,
    pub alpn: Option<String>,
}

/// How the ClientHello arrived.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arrival {
    /// Bytes received before the hello was complete (or the attempt ended).
    pub bytes: usize,
    pub read_count: usize,
    /// The first reads, in order ([`crate::capture::MAX_LOGGED_READS`] at most).
    pub reads: Vec<ReadEvent>,
    /// From accept to the end of capture.
    pub capture_ms: f64,
}

/// Everything recorded about one TCP connection to the TLS port.
#[derive(Debug, Clone, Serialize)]
pub struct TlsAttempt {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    #[serde(serialize_with = "crate::util::rfc3339")]
    pub started_at: SystemTime,
    pub arrival: Arrival,
    /// The raw bytes received (the whole hello when it parsed; otherwise the
    /// first [`KEPT_BYTES_OF_FAILED_ATTEMPT`]).
    #[serde(skip)]
    pub raw: Vec<u8>,
    pub client_hello: Option<ClientHello>,
    /// JA3/JA4 of `client_hello`, through [`TlsAttempt::fingerprints`].
    #[serde(skip)]
    pub fingerprint_cache: FingerprintCache,
    pub negotiated: Option<Negotiated>,
    /// From accept to handshake completion (or failure).
    pub handshake_ms: Option<f64>,
    pub outcome: Outcome,
    /// The client's SYN, when the kernel kept it (shared with the
    /// connection's own TCP facts).
    pub syn: Option<std::sync::Arc<SynInfo>>,
    /// `TCP_INFO` when capture ended.
    pub tcp: Option<TcpInfo>,
    /// The MSS our SYN-ACK announced, and whether a path MTU our kernel had
    /// cached toward the client shrank it.
    pub our_mss: Option<OurMss>,
    /// Our handshake flight when the handshake ended (completed, failed or
    /// timed out): how much of it the client acknowledged.
    pub handshake_flight: Option<SentData>,
    /// What we sent after the handshake (responses), updated while the
    /// connection lives.
    pub after_handshake: AfterHandshake,
    /// Our own ICMP test, when the ClientHello looked stuck behind a black hole.
    pub icmp_probe: Option<IcmpProbe>,
    /// Who the connection's first request said it was, once it arrived.
    pub first_request: FirstRequest,
    /// The test run one of the connection's requests named (`?run=`).
    pub run: RunTag,
    /// The instance (`--instance-name`) whose listener saw the attempt:
    /// several instances share attempts through `--database-url`.
    #[serde(skip)]
    pub seen_by: Option<std::sync::Arc<str>>,
    /// Behind a load balancer (`--proxy-protocol`): `peer` is the client its
    /// header named, and `syn`, `tcp`, `handshake_flight` and the ICMP test
    /// are absent because the TCP connection was the balancer's; its own
    /// facts are here, for showing only.
    pub balancer: Option<Box<Balancer>>,
}

/// The load balancer an attempt came through, and its connection's facts.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Balancer {
    pub via: crate::proxy::Via,
    /// `TCP_INFO` of the balancer's connection when capture ended.
    pub tcp_at_capture: Option<TcpInfo>,
}

/// An attempt's fingerprints, worked out the first time something reads
/// them: a busy server records far more attempts than anyone looks at, and
/// hashing every hello on the handshake's path cost several percent of a
/// full handshake. The store charges them in full either way
/// ([`footprint`]).
#[derive(Debug, Clone, Default)]
pub struct FingerprintCache(std::sync::OnceLock<Fingerprints>);

impl TlsAttempt {
    /// JA3 and JA4 of the hello, when one was parsed.
    pub fn fingerprints(&self) -> Option<&Fingerprints> {
        let hello = self.client_hello.as_ref()?;
        Some(
            self.fingerprint_cache
                .0
                .get_or_init(|| Fingerprints::of(hello)),
        )
    }

    /// The test run this connection proved it belongs to: a request on it
    /// named the run, or its ClientHello did (check.sh's size ladder).
    pub fn run_id(&self) -> Option<&str> {
        self.run
            .get()
            .or_else(|| self.client_hello.as_ref().and_then(named_in_hello))
    }

    /// The handshake completed and nothing we sent afterwards stalled.
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::Completed) && !self.responses_stalled()
    }

    /// What we sent after the handshake, counted from the end of our flight.
    pub fn responses(&self) -> Option<SentData> {
        let total = self.after_handshake.get()?;
        Some(match &self.handshake_flight {
            Some(flight) => total.since(flight),
            None => total,
        })
    }

    /// The handshake completed, then our responses stopped reaching the client.
    pub fn responses_stalled(&self) -> bool {
        self.responses().is_some_and(|r| r.stalled())
    }
}

#[cfg(test)]
impl TlsAttempt {
    /// An attempt with nothing recorded yet, for tests to fill in.
    pub(crate) fn fixture(id: u64, peer: SocketAddr) -> Self {
        Self {
            id,
            peer,
            local: SocketAddr::from(([198, 18, 3, 2], 443)),
            started_at: SystemTime::now(),
            arrival: Arrival {
                bytes: 0,
                read_count: 0,
                reads: vec![],
                capture_ms: 0.0,
            },
            raw: vec![],
            client_hello: None,
            fingerprint_cache: Default::default(),
            negotiated: None,
            handshake_ms: None,
            outcome: Outcome::Completed,
            syn: None,
            tcp: None,
            handshake_flight: None,
            after_handshake: AfterHandshake::default(),
            icmp_probe: None,
            first_request: Default::default(),
            run: Default::default(),
            our_mss: None,
            seen_by: None,
            balancer: None,
        }
    }
}
