//! Why bytes on the TLS port did not (yet) make a ClientHello.
//!
//! Three very different answers must stay apart, because each means something
//! different to a customer: *need more bytes* (the seed incident: the rest of the
//! hello never came), *malformed* (a broken client or middlebox, with the field
//! that was wrong), and *not TLS at all* (plain HTTP or SSH sent to the TLS port).

use serde::Serialize;

/// A length or value inside the ClientHello that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("malformed {field}: {reason}")]
pub struct Malformed {
    /// The ClientHello field (RFC 8446 names) where parsing failed.
    pub field: &'static str,
    pub reason: String,
}

impl Malformed {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// What the first bytes on the TLS port look like when they are not TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotTlsKind {
    /// An HTTP/1.x request line (`GET / HTTP/1.1`): `http://` used for the HTTPS port.
    PlainHttp,
    /// The HTTP/2 cleartext preface (`PRI * HTTP/2.0`).
    PlainHttp2,
    /// An SSH identification string (`SSH-2.0-...`).
    Ssh,
    /// An SSL 2.0-format ClientHello: a client from before TLS 1.0 or one configured for SSLv2 compatibility.
    Sslv2Hello,
    /// A TLS record of a type other than handshake, e.g. application data or an alert.
    OtherTlsRecord,
    /// A PROXY protocol header (v1 `PROXY ...` or the v2 signature): a load
    /// balancer sending PROXY to a server not told to expect it.
    ProxyProtocol,
    /// Anything else.
    Unknown,
}

impl NotTlsKind {
    pub fn describe(self) -> &'static str {
        match self {
            NotTlsKind::PlainHttp => "plain HTTP sent to the HTTPS port",
            NotTlsKind::PlainHttp2 => "cleartext HTTP/2 sent to the HTTPS port",
            NotTlsKind::Ssh => "an SSH client connected to the HTTPS port",
            NotTlsKind::Sslv2Hello => "an SSL 2.0-format ClientHello",
            NotTlsKind::OtherTlsRecord => "a TLS record that is not a handshake",
            NotTlsKind::ProxyProtocol => "a PROXY protocol header from a load balancer",
            NotTlsKind::Unknown => "bytes that are not TLS",
        }
    }
}

/// Why [`parse_client_hello`](super::parse_client_hello) produced no hello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum HelloError {
    /// The bytes so far are a valid prefix; more must arrive.
    #[error("incomplete ClientHello: have {have} bytes, need at least {need}")]
    Incomplete {
        have: usize,
        /// Total bytes the headers seen so far announce (a lower bound while
        /// even the first record header has not arrived).
        need: usize,
    },
    /// The first bytes are not a TLS handshake record.
    #[error("not TLS: {}", kind.describe())]
    NotTls { kind: NotTlsKind },
    /// A record announced more than TLS allows (RFC 8446 §5.1: 2^14 bytes).
    #[error("TLS record of {length} bytes exceeds the 16,384-byte limit")]
    RecordOverflow { length: usize },
    /// The first handshake message is not a ClientHello.
    #[error("first handshake message has type {msg_type}, not ClientHello (1)")]
    NotClientHello { msg_type: u8 },
    /// The handshake message announces more than we are willing to buffer.
    #[error("ClientHello announces {length} bytes, more than the {limit}-byte capture limit")]
    TooLarge { length: usize, limit: usize },
    /// Lengths or values that cannot be right.
    #[error(transparent)]
    Malformed(#[from] Malformed),
}
