//! An attempt as a shared store keeps it, and back (pure). What is stored is
//! what was observed, never what we derived from it: the ClientHello's raw
//! bytes and the client's SYN as the kernel saved it, both parsed again on
//! read, so a later parser (or fingerprint) gives its answer from the same
//! bytes; beside them the facts only the connection could see (times,
//! addresses, reads log, `TCP_INFO`, negotiated parameters, outcome, our
//! ICMP test) as one JSON document.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{AfterHandshake, Arrival, IcmpProbe, Negotiated, Outcome, SentData, TlsAttempt};
use crate::capture::ReadEvent;
use crate::tcp::TcpInfo;

/// Version of the metadata layout; a row of another version is skipped on read.
pub const META_VERSION: u32 = 1;

/// One attempt as a row: columns a query selects and orders by, the raw
/// bytes, and the metadata document.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAttempt {
    /// The attempt's id on the instance that saw it.
    pub attempt_id: i64,
    pub instance: String,
    /// The client's address, canonical (an IPv4-mapped IPv6 address as IPv4),
    /// as reports look attempts up.
    pub address: String,
    pub started_at_ms: i64,
    /// The ClientHello's bytes (or a failed attempt's first bytes).
    pub hello: Vec<u8>,
    /// The SYN as the kernel saved it, when it did.
    pub syn: Option<Vec<u8>>,
    /// The metadata (times, addresses, reads, outcome, ...) as JSON.
    pub meta: String,
}

/// What the connection saw beside the raw bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    v: u32,
    peer: SocketAddr,
    local: SocketAddr,
    arrival_bytes: usize,
    read_count: usize,
    reads: Vec<ReadEvent>,
    capture_ms: f64,
    negotiated: Option<Negotiated>,
    handshake_ms: Option<f64>,
    outcome: Outcome,
    tcp: Option<TcpInfo>,
    #[serde(default)]
    our_mss: Option<crate::attempt::OurMss>,
    handshake_flight: Option<SentData>,
    after_handshake: Option<SentData>,
    icmp_probe: Option<IcmpProbe>,
    /// Known when the attempt was queued after its first request; rows
    /// written before carry none.
    #[serde(default)]
    first_request: Option<crate::attempt::RequestFacts>,
    /// The test run a request on the connection named, when it had by then.
    #[serde(default)]
    run: Option<String>,
    /// Behind a load balancer (`--proxy-protocol`): whose TCP facts the
    /// attempt does not have.
    #[serde(default)]
    balancer: Option<Box<crate::attempt::Balancer>>,
}

/// Why a stored row cannot be an attempt again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("attempt metadata is not valid JSON for this version: {0}")]
    Meta(#[from] serde_json::Error),
    #[error("attempt metadata version {0} is not {META_VERSION}")]
    Version(u32),
    #[error("attempt id {0} is negative")]
    Id(i64),
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl StoredAttempt {
    /// The row for `a`, seen by `instance`. After-handshake data is what the
    /// connection has sent so far, when this is called.
    pub fn encode(a: &TlsAttempt, instance: &str) -> Self {
        let meta = Meta {
            v: META_VERSION,
            peer: a.peer,
            local: a.local,
            arrival_bytes: a.arrival.bytes,
            read_count: a.arrival.read_count,
            reads: a.arrival.reads.clone(),
            capture_ms: a.arrival.capture_ms,
            negotiated: a.negotiated.clone(),
            handshake_ms: a.handshake_ms,
            outcome: a.outcome.clone(),
            tcp: a.tcp,
            our_mss: a.our_mss,
            handshake_flight: a.handshake_flight,
            after_handshake: a.after_handshake.get(),
            icmp_probe: a.icmp_probe.clone(),
            first_request: a.first_request.get().cloned(),
            run: a.run.get().map(str::to_owned),
            balancer: a.balancer.clone(),
        };
        Self {
            attempt_id: i64::try_from(a.id).unwrap_or(i64::MAX),
            instance: instance.to_owned(),
            address: a.peer.ip().to_canonical().to_string(),
            started_at_ms: millis(a.started_at),
            hello: a.raw.clone(),
            syn: a
                .syn
                .as_ref()
                .map(|s| s.raw.to_vec())
                .filter(|r| !r.is_empty()),
            // Plain data with string keys only: serializing cannot fail.
            meta: serde_json::to_string(&meta).unwrap_or_default(),
        }
    }

    /// The attempt again: the hello and the SYN parsed from their bytes.
    pub fn decode(self) -> Result<TlsAttempt, DecodeError> {
        let meta: Meta = serde_json::from_str(&self.meta)?;
        if meta.v != META_VERSION {
            return Err(DecodeError::Version(meta.v));
        }
        let id = u64::try_from(self.attempt_id).map_err(|_| DecodeError::Id(self.attempt_id))?;
        let client_hello = crate::hello::parse_client_hello(&self.hello).ok();
        let syn = self
            .syn
            .as_deref()
            .and_then(|raw| crate::tcp::syn::parse(raw).ok());
        let after_handshake = AfterHandshake::default();
        if let Some(sent) = meta.after_handshake {
            after_handshake.update(sent);
        }
        Ok(TlsAttempt {
            id,
            peer: meta.peer,
            local: meta.local,
            started_at: UNIX_EPOCH
                + Duration::from_millis(u64::try_from(self.started_at_ms).unwrap_or(0)),
            arrival: Arrival {
                bytes: meta.arrival_bytes,
                read_count: meta.read_count,
                reads: meta.reads,
                capture_ms: meta.capture_ms,
            },
            raw: self.hello,
            client_hello,
            fingerprint_cache: Default::default(),
            negotiated: meta.negotiated,
            handshake_ms: meta.handshake_ms,
            outcome: meta.outcome,
            syn: syn.map(std::sync::Arc::new),
            tcp: meta.tcp,
            handshake_flight: meta.handshake_flight,
            after_handshake,
            icmp_probe: meta.icmp_probe,
            seen_by: Some(Arc::from(self.instance)),
            first_request: meta
                .first_request
                .map(crate::attempt::FirstRequest::known)
                .unwrap_or_default(),
            run: crate::attempt::RunTag::known(meta.run),
            our_mss: meta.our_mss,
            balancer: meta.balancer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::StallEnd;

    /// A real capture (openssl s_client, TLS 1.2, SNI example.test, 28
    /// cipher suites): bytes from outside this code, so the round trip
    /// proves a re-parse.
    const HELLO: &[u8] =
        include_bytes!("../../tests/fixtures/hellos/openssl_s_client_tls12_sni.bin");

    /// An IPv4 SYN: TTL 57, DF, MSS 1460, SACK, timestamps, window scale 7.
    fn syn_bytes() -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 60, 0, 0, 0x40, 0, 57, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        let tcp = [
            0xc3, 0x50, 0x20, 0xfb, 0, 0, 0, 42, 0, 0, 0, 0, 0xa0, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, 2,
            4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        ip.extend_from_slice(&tcp);
        ip
    }

    fn attempt() -> TlsAttempt {
        let raw = HELLO.to_vec();
        TlsAttempt {
            id: 7,
            peer: "192.0.2.1:50000".parse().expect("addr"),
            local: "192.0.2.2:8443".parse().expect("addr"),
            started_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            arrival: Arrival {
                bytes: raw.len(),
                read_count: 2,
                reads: vec![
                    ReadEvent {
                        at_ms: 0.5,
                        bytes: 100,
                    },
                    ReadEvent {
                        at_ms: 40.25,
                        bytes: raw.len() - 100,
                    },
                ],
                capture_ms: 40.3,
            },
            client_hello: crate::hello::parse_client_hello(&raw).ok(),
            raw,
            fingerprint_cache: Default::default(),
            negotiated: None,
            handshake_ms: None,
            outcome: Outcome::HelloIncomplete {
                received: 100,
                expected: Some(HELLO.len()),
                ended: StallEnd::Timeout,
                out_of_order_segments: 1,
            },
            syn: crate::tcp::syn::parse(&syn_bytes())
                .ok()
                .map(std::sync::Arc::new),
            tcp: Some(TcpInfo {
                rcv_ooopack: 1,
                ..TcpInfo::default()
            }),
            handshake_flight: None,
            after_handshake: AfterHandshake::default(),
            icmp_probe: None,
            seen_by: None,
            balancer: None,
            first_request: Default::default(),
            run: Default::default(),
            our_mss: None,
        }
    }

    #[test]
    fn round_trip_keeps_the_raw_bytes_and_parses_them_again() {
        let original = attempt();
        let row = StoredAttempt::encode(&original, "edge-1");
        assert_eq!(row.address, "192.0.2.1");
        assert_eq!(row.started_at_ms, 1_700_000_000_123);
        assert_eq!(row.syn.as_deref(), Some(&syn_bytes()[..]));
        // The parsed forms are not stored: only their bytes are.
        assert!(!row.meta.contains("cipher_suites"), "{}", row.meta);
        let back = row.decode().expect("decodes");
        assert_eq!(back.raw, original.raw);
        assert_eq!(back.started_at, original.started_at);
        assert_eq!(back.seen_by.as_deref(), Some("edge-1"));
        let hello = back.client_hello.as_ref().expect("hello parsed again");
        assert_eq!(hello.sni(), Some("example.test"));
        assert_eq!(hello.cipher_suites.len(), 28);
        let syn = back.syn.as_ref().expect("SYN parsed again");
        assert_eq!(
            (syn.ttl, syn.mss, syn.window_scale),
            (57, Some(1460), Some(7))
        );
        assert_eq!(syn.dont_fragment, Some(true));
        assert_eq!(back.outcome, original.outcome);
        assert_eq!(back.arrival, original.arrival);
        assert_eq!(back.tcp, original.tcp);
        assert_eq!(
            back.fingerprints().map(|f| f.ja4.clone()),
            original.fingerprints().map(|f| f.ja4.clone())
        );
    }

    #[test]
    fn a_row_of_another_version_or_garbage_is_an_error_not_a_panic() {
        let mut row = StoredAttempt::encode(&attempt(), "a");
        row.meta = row.meta.replacen("\"v\":1", "\"v\":99", 1);
        assert!(matches!(
            row.clone().decode(),
            Err(DecodeError::Version(99))
        ));
        row.meta = "{".into();
        assert!(row.clone().decode().is_err());
        let mut row = StoredAttempt::encode(&attempt(), "a");
        row.hello = vec![0xff; 10];
        row.syn = Some(vec![1, 2]);
        let back = row.decode().expect("metadata is fine");
        assert!(back.client_hello.is_none() && back.syn.is_none());
    }
}
