//! Classifies how an attempt ended, from the captured bytes and the TLS stack's
//! error: never just "handshake error".

use std::io;

use serde::Serialize;

use crate::capture::CaptureEnd;
use crate::hello::error::{HelloError, NotTlsKind};
use crate::hello::wire::{AlertDescription, ProtocolVersion};
use crate::hello::ClientHello;
use crate::profile::ServerProfile;
use crate::tcp::TcpInfo;

/// How an incomplete ClientHello stopped arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StallEnd {
    /// Nothing more arrived before the deadline: the connection stayed open.
    Timeout,
    /// The client closed the connection.
    Closed,
    /// The connection was reset.
    Reset,
    /// Still open and still waiting: the attempt is in progress.
    Waiting,
}

/// The handshake failure as the TLS layer reported it, reduced to what
/// classification needs (so this module needs no socket types).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The client sent this alert.
    Alert(AlertDescription),
    NoSharedCipher,
    NoSharedGroup,
    NoSharedSignatureScheme,
    /// None of the client's ALPN protocols is one we serve: rustls sent the
    /// `no_application_protocol` alert.
    NoApplicationProtocol,
    /// rustls refused the client's versions (its words).
    UnsupportedVersion(String),
    /// The client's messages broke the protocol.
    Protocol(String),
    /// The client closed mid-handshake.
    Closed,
    /// The connection was reset mid-handshake.
    Reset,
    /// The handshake did not finish in time.
    Timeout,
    Other(String),
}

impl HandshakeError {
    /// Maps the error `tokio-rustls` returns from `accept`.
    pub fn from_io(err: &io::Error) -> Self {
        if let Some(tls) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Self::from_rustls(tls);
        }
        match err.kind() {
            io::ErrorKind::UnexpectedEof => Self::Closed,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::Reset,
            io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Other(err.to_string()),
        }
    }

    pub fn from_rustls(err: &rustls::Error) -> Self {
        use rustls::PeerIncompatible as P;
        match err {
            rustls::Error::AlertReceived(alert) => Self::Alert(AlertDescription(u8::from(*alert))),
            rustls::Error::PeerIncompatible(p) => match p {
                P::NoCipherSuitesInCommon => Self::NoSharedCipher,
                P::NoKxGroupsInCommon
                | P::KeyShareExtensionRequired
                | P::NamedGroupsExtensionRequired => Self::NoSharedGroup,
                P::NoSignatureSchemesInCommon | P::SignatureAlgorithmsExtensionRequired => {
                    Self::NoSharedSignatureScheme
                }
                P::ServerDoesNotSupportTls12Or13
                | P::SupportedVersionsExtensionRequired
                | P::Tls12NotOffered
                | P::Tls12NotOfferedOrEnabled => Self::UnsupportedVersion(format!("{p:?}")),
                other => Self::Protocol(format!("{other:?}")),
            },
            rustls::Error::NoApplicationProtocol => Self::NoApplicationProtocol,
            rustls::Error::PeerMisbehaved(m) => Self::Protocol(format!("{m:?}")),
            rustls::Error::InvalidMessage(m) => Self::Protocol(format!("invalid message: {m:?}")),
            other => Self::Other(other.to_string()),
        }
    }
}

/// Most ALPN ids an outcome keeps of the client's list. Clients offer two or
/// three; a hostile hello can offer thousands, all still in the raw bytes.
pub const MAX_OFFERED_PROTOCOLS: usize = 16;

/// How one attempt ended. Serialized with a `kind` tag; the ids are stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The handshake completed.
    Completed,
    /// TCP connected, then no byte arrived before the deadline (or before close).
    NoData {
        ended: StallEnd,
    },
    /// Part of a ClientHello arrived, the rest never did.
    HelloIncomplete {
        /// Bytes received in order (what the TLS layer could read).
        received: usize,
        /// Total bytes the record and handshake headers announced.
        expected: Option<usize>,
        ended: StallEnd,
        /// Segments the kernel holds out of order: later pieces that arrived
        /// while an earlier one never did (`TCP_INFO` rcv_ooopack).
        out_of_order_segments: u32,
    },
    /// The client spoke something other than TLS.
    NotTls {
        what: NotTlsKind,
        /// The first bytes, printable ASCII kept and everything else as `\xNN`.
        preview: String,
    },
    /// TLS, but a ClientHello we cannot parse (or a record TLS forbids).
    Malformed {
        detail: String,
    },
    /// The client's highest version is below what we accept (TLS 1.2).
    VersionTooOld {
        offered: ProtocolVersion,
    },
    NoSharedCipher,
    NoSharedGroup,
    NoSharedSignatureScheme,
    /// No application protocol in common (ALPN, RFC 7301 §3.2): we answered
    /// with the `no_application_protocol` alert.
    NoApplicationProtocol {
        /// The client's ALPN ids in its order, as `tls.alpn` shows them (lossy
        /// UTF-8), at most [`MAX_OFFERED_PROTOCOLS`].
        offered: Vec<String>,
        /// The ids we serve, in our order of preference.
        supported: Vec<String>,
    },
    /// The client aborted the handshake with an alert.
    ClientAlert {
        alert: AlertDescription,
    },
    /// The client closed after its ClientHello, without an alert.
    ClosedMidHandshake,
    /// The connection was reset after the ClientHello.
    ResetMidHandshake,
    /// The ClientHello arrived but the handshake did not finish in time.
    HandshakeTimeout,
    /// Any other failure, with the TLS stack's words.
    OtherError {
        detail: String,
    },
}

impl Outcome {
    /// One line for lists: what happened, with the key number.
    pub fn describe(&self) -> String {
        use crate::util::thousands;
        match self {
            Outcome::Completed => "Handshake completed".into(),
            Outcome::NoData { ended } => match ended {
                StallEnd::Timeout => "Connected, but no ClientHello arrived".into(),
                StallEnd::Closed => "Connected and closed without sending anything".into(),
                StallEnd::Reset => "Connected and reset without sending anything".into(),
                StallEnd::Waiting => "Connected, and no ClientHello yet (still waiting)".into(),
            },
            Outcome::HelloIncomplete {
                received: 0,
                out_of_order_segments,
                ..
            } => format!(
                "ClientHello incomplete: {out_of_order_segments} later segment(s) arrived, the first never did"
            ),
            Outcome::HelloIncomplete {
                received,
                expected,
                ended,
                ..
            } => {
                let of = expected.map_or_else(String::new, |m| format!(" of {}", thousands(m)));
                let then = match ended {
                    StallEnd::Timeout => "the rest never arrived",
                    StallEnd::Closed => "then the client closed",
                    StallEnd::Reset => "then the connection was reset",
                    StallEnd::Waiting => "the rest has not arrived (still waiting)",
                };
                format!(
                    "ClientHello incomplete: {}{of} bytes, {then}",
                    thousands(*received)
                )
            }
            Outcome::NotTls { what, .. } => format!("Not TLS: {}", what.describe()),
            Outcome::Malformed { detail } => format!("Malformed ClientHello: {detail}"),
            Outcome::VersionTooOld { offered } => {
                format!("Version mismatch: the client offered at most {offered}")
            }
            Outcome::NoSharedCipher => "No cipher suite in common".into(),
            Outcome::NoSharedGroup => "No key-exchange group in common".into(),
            Outcome::NoSharedSignatureScheme => "No signature algorithm in common".into(),
            Outcome::NoApplicationProtocol { .. } => "No application protocol (ALPN) in common".into(),
            Outcome::ClientAlert { alert } => format!("The client aborted with alert {alert}"),
            Outcome::ClosedMidHandshake => "The client closed after its ClientHello".into(),
            Outcome::ResetMidHandshake => "Reset after the ClientHello".into(),
            Outcome::HandshakeTimeout => "The client went silent after our reply".into(),
            Outcome::OtherError { detail } => format!("Handshake failed: {detail}"),
        }
    }
}

/// Decides the outcome from how capture ended and, when the hello was complete,
/// what the handshake returned. For negotiation failures the hello's own facts,
/// compared with what `server` accepts, decide: a TLS 1.0-only client is "version
/// too old" and a client with no usable suite is "no shared cipher", whichever
/// check the TLS stack happened to run first.
pub fn classify(
    capture: &CaptureEnd,
    raw: &[u8],
    handshake: Option<&HandshakeError>,
    server: &ServerProfile,
    tcp: Option<&TcpInfo>,
) -> Outcome {
    let out_of_order = tcp.map_or(0, |t| t.rcv_ooopack);
    let stalled = |need: &Option<usize>, ended| {
        if raw.is_empty() && out_of_order == 0 {
            Outcome::NoData { ended }
        } else {
            Outcome::HelloIncomplete {
                received: raw.len(),
                expected: *need,
                ended,
                out_of_order_segments: out_of_order,
            }
        }
    };
    match capture {
        CaptureEnd::TimedOut { need } => stalled(need, StallEnd::Timeout),
        CaptureEnd::Closed { need } => stalled(need, StallEnd::Closed),
        CaptureEnd::Failed { need, .. } => stalled(need, StallEnd::Reset),
        CaptureEnd::Rejected(HelloError::NotTls { kind }) => Outcome::NotTls {
            what: *kind,
            preview: preview(raw),
        },
        CaptureEnd::Rejected(err) => Outcome::Malformed {
            detail: err.to_string(),
        },
        CaptureEnd::Complete(hello) => match handshake {
            None => Outcome::Completed,
            Some(err) => classify_handshake(hello, err, server),
        },
    }
}

fn classify_handshake(
    hello: &ClientHello,
    err: &HandshakeError,
    server: &ServerProfile,
) -> Outcome {
    let highest = hello.highest_version();
    let negotiation = matches!(
        err,
        HandshakeError::NoSharedCipher
            | HandshakeError::NoSharedGroup
            | HandshakeError::NoSharedSignatureScheme
            | HandshakeError::NoApplicationProtocol
            | HandshakeError::UnsupportedVersion(_)
            | HandshakeError::Protocol(_)
            | HandshakeError::Other(_)
    );
    if negotiation {
        let too_old = matches!(highest.0, 0x0002 | 0x0300..=0x0302);
        if too_old {
            return Outcome::VersionTooOld { offered: highest };
        }
        let shared_cipher = hello
            .cipher_suites
            .iter()
            .any(|c| server.cipher_suites.contains(c));
        if !shared_cipher && !server.cipher_suites.is_empty() {
            return Outcome::NoSharedCipher;
        }
    }
    match err {
        HandshakeError::Alert(alert) => Outcome::ClientAlert { alert: *alert },
        HandshakeError::NoSharedCipher => Outcome::NoSharedCipher,
        HandshakeError::NoSharedGroup => Outcome::NoSharedGroup,
        HandshakeError::NoSharedSignatureScheme => Outcome::NoSharedSignatureScheme,
        HandshakeError::NoApplicationProtocol => Outcome::NoApplicationProtocol {
            offered: hello
                .alpn()
                .iter()
                .take(MAX_OFFERED_PROTOCOLS)
                .map(|p| p.name().into_owned())
                .collect(),
            supported: server.alpn_protocols.clone(),
        },
        // The hello offers TLS 1.2 or newer (older returned above), so this is
        // not "too old": report rustls' own words.
        HandshakeError::UnsupportedVersion(detail) => Outcome::OtherError {
            detail: format!("version negotiation failed: {detail}"),
        },
        HandshakeError::Closed => Outcome::ClosedMidHandshake,
        HandshakeError::Reset => Outcome::ResetMidHandshake,
        HandshakeError::Timeout => Outcome::HandshakeTimeout,
        HandshakeError::Protocol(detail) => Outcome::Malformed {
            detail: detail.clone(),
        },
        HandshakeError::Other(detail) => Outcome::OtherError {
            detail: detail.clone(),
        },
    }
}

/// The first 64 bytes, safe to show anywhere: printable ASCII as is, the rest escaped.
pub(crate) fn preview(raw: &[u8]) -> String {
    let mut out = String::new();
    for &b in raw.iter().take(64) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_escapes_everything_unprintable() {
        assert_eq!(
            preview(b"GET / HTTP/1.1\r\n\x00\xff"),
            "GET / HTTP/1.1\\r\\n\\x00\\xff"
        );
    }

    #[test]
    fn a_stall_with_no_bytes_is_no_data() {
        let got = classify(
            &CaptureEnd::TimedOut { need: None },
            b"",
            None,
            &ServerProfile::default(),
            None,
        );
        assert_eq!(
            got,
            Outcome::NoData {
                ended: StallEnd::Timeout
            }
        );
    }

    #[test]
    fn a_partial_hello_reports_received_and_expected() {
        let got = classify(
            &CaptureEnd::TimedOut { need: Some(1547) },
            &[0x16; 1460],
            None,
            &ServerProfile::default(),
            None,
        );
        assert_eq!(
            got,
            Outcome::HelloIncomplete {
                received: 1460,
                expected: Some(1547),
                ended: StallEnd::Timeout,
                out_of_order_segments: 0,
            }
        );
    }

    /// A real ClientHello from a rustls client configured to offer `alpn`.
    fn rustls_hello(alpn: &[&[u8]]) -> (Vec<u8>, ClientHello) {
        let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let mut wire = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut wire).unwrap();
        }
        let hello = crate::hello::parse_client_hello(&wire).unwrap();
        (wire, hello)
    }

    fn http_server() -> ServerProfile {
        ServerProfile {
            alpn_protocols: vec!["h2".into(), "http/1.1".into()],
            ..ServerProfile::default()
        }
    }

    #[test]
    fn rustls_no_application_protocol_through_tokio_rustls_is_recognised() {
        // tokio-rustls hands rustls' error back inside an io::Error.
        let err = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::NoApplicationProtocol,
        );
        assert_eq!(
            HandshakeError::from_io(&err),
            HandshakeError::NoApplicationProtocol
        );
    }

    #[test]
    fn no_common_alpn_carries_both_lists() {
        let (raw, hello) = rustls_hello(&[b"foo"]);
        let got = classify(
            &CaptureEnd::Complete(Box::new(hello)),
            &raw,
            Some(&HandshakeError::NoApplicationProtocol),
            &http_server(),
            None,
        );
        assert_eq!(
            got,
            Outcome::NoApplicationProtocol {
                offered: vec!["foo".into()],
                supported: vec!["h2".into(), "http/1.1".into()],
            }
        );
        let json = serde_json::to_value(&got).unwrap();
        assert_eq!(json["kind"], "no_application_protocol");
        assert_eq!(json["offered"], serde_json::json!(["foo"]));
    }

    #[test]
    fn a_hostile_alpn_list_is_kept_to_its_bound() {
        let names: Vec<Vec<u8>> = (0..40).map(|i| format!("p{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let (raw, hello) = rustls_hello(&refs);
        let got = classify(
            &CaptureEnd::Complete(Box::new(hello)),
            &raw,
            Some(&HandshakeError::NoApplicationProtocol),
            &http_server(),
            None,
        );
        let Outcome::NoApplicationProtocol { offered, .. } = got else {
            panic!("{got:?}");
        };
        assert_eq!(offered.len(), MAX_OFFERED_PROTOCOLS);
        assert_eq!(offered[0], "p0");
    }

    #[test]
    fn nothing_in_order_but_later_segments_is_an_incomplete_hello() {
        let tcp = TcpInfo {
            rcv_ooopack: 1,
            data_segs_in: 1,
            ..TcpInfo::default()
        };
        let got = classify(
            &CaptureEnd::TimedOut { need: None },
            b"",
            None,
            &ServerProfile::default(),
            Some(&tcp),
        );
        assert!(matches!(
            got,
            Outcome::HelloIncomplete {
                received: 0,
                out_of_order_segments: 1,
                ..
            }
        ));
    }
}
