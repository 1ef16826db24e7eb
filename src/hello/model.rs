//! The parsed ClientHello: every field the client sent, in the order it sent it.
//!
//! Extension order matters (JA3 and JA4_o hash it), so extensions are a `Vec`.
//! Each extension keeps its raw bytes next to the decoded view, so anything we
//! show can be checked against the wire.

use serde::Serialize;

use super::wire::{CipherSuite, ExtensionType, NamedGroup, ProtocolVersion, SignatureScheme};

/// One TLS record header that carried (part of) the ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordHeader {
    pub version: ProtocolVersion,
    /// Length of the record body in bytes.
    pub length: u16,
}

/// A ClientHello (RFC 8446 §4.1.2), with the record framing it arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientHello {
    /// The records the hello was spread over, in order (usually one).
    pub records: Vec<RecordHeader>,
    /// Bytes on the wire from the first record header to the end of the record
    /// that completed the hello.
    pub wire_length: usize,
    /// Length from the handshake header (the hello body, without its 4-byte header).
    pub handshake_length: u32,
    pub legacy_version: ProtocolVersion,
    #[serde(serialize_with = "hex_bytes")]
    pub random: [u8; 32],
    #[serde(serialize_with = "hex_bytes")]
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<CipherSuite>,
    pub compression_methods: Vec<u8>,
    pub extensions: Vec<Extension>,
}

/// One extension: its type, its length and (where we know the type) what it
/// says. Its bytes are not copied: the attempt keeps the whole hello as it
/// arrived, and a post-quantum key share alone is over a kilobyte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    #[serde(rename = "type")]
    pub kind: ExtensionType,
    /// Length of the extension body in bytes.
    pub length: usize,
    pub decoded: ExtensionData,
}

/// The decoded body of an extension we know how to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExtensionData {
    ServerName {
        names: Vec<ServerName>,
    },
    Alpn {
        protocols: Vec<Protocol>,
    },
    SupportedGroups {
        groups: Vec<NamedGroup>,
    },
    EcPointFormats {
        formats: Vec<u8>,
    },
    SignatureAlgorithms {
        schemes: Vec<SignatureScheme>,
    },
    SupportedVersions {
        versions: Vec<ProtocolVersion>,
    },
    KeyShare {
        shares: Vec<KeyShareEntry>,
    },
    PskKeyExchangeModes {
        modes: Vec<u8>,
    },
    PreSharedKey {
        identities: usize,
        binders: usize,
    },
    SessionTicket {
        ticket_length: usize,
    },
    Padding {
        padding_length: usize,
    },
    EncryptedClientHello(EchInfo),
    RenegotiationInfo {
        renegotiated_connection_length: usize,
    },
    StatusRequest {
        status_type: u8,
    },
    CompressCertificate {
        algorithms: Vec<u16>,
    },
    ApplicationSettings {
        protocols: Vec<Protocol>,
    },
    RecordSizeLimit {
        limit: u16,
    },
    /// A body-less flag extension (extended_master_secret, post_handshake_auth, ...).
    Empty,
    /// A type we do not decode; only its length is reported.
    Opaque,
    /// A type we know, with a body that does not parse. The hello as a whole
    /// still parses: this is evidence, and rustls will decide whether to reject it.
    Malformed {
        reason: String,
    },
}

/// One server_name entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerName {
    pub name_type: u8,
    /// The name as the client sent it (lossy UTF-8; escaped wherever it is shown).
    pub name: String,
}

/// An ALPN / ALPS protocol id, as the raw bytes the client sent; shown (and
/// serialized as `{"name": ...}`) as lossy UTF-8, worked out when shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub raw: Vec<u8>,
}

impl Protocol {
    pub(crate) fn from_raw(raw: &[u8]) -> Self {
        Self { raw: raw.to_vec() }
    }

    /// The id as text (lossy UTF-8; escaped wherever it is shown).
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.raw)
    }
}

impl Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("Protocol", 1)?;
        out.serialize_field("name", &self.name())?;
        out.end()
    }
}

/// One key_share entry: which group, how many key bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyShareEntry {
    pub group: NamedGroup,
    pub key_exchange_length: usize,
}

/// The outer encrypted_client_hello extension (draft-ietf-tls-esni).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EchInfo {
    /// 0 = outer, 1 = inner.
    pub ech_type: u8,
    pub config_id: Option<u8>,
    pub enc_length: Option<usize>,
    pub payload_length: Option<usize>,
}

impl ClientHello {
    pub fn extension(&self, kind: ExtensionType) -> Option<&Extension> {
        self.extensions.iter().find(|ext| ext.kind == kind)
    }

    /// The first host_name in server_name, if any.
    pub fn sni(&self) -> Option<&str> {
        match &self.extension(ExtensionType::SERVER_NAME)?.decoded {
            ExtensionData::ServerName { names } => names
                .iter()
                .find(|n| n.name_type == 0)
                .map(|n| n.name.as_str()),
            _ => None,
        }
    }

    pub fn alpn(&self) -> &[Protocol] {
        match self.extension(ExtensionType::ALPN).map(|e| &e.decoded) {
            Some(ExtensionData::Alpn { protocols }) => protocols,
            _ => &[],
        }
    }

    pub fn supported_groups(&self) -> &[NamedGroup] {
        match self
            .extension(ExtensionType::SUPPORTED_GROUPS)
            .map(|e| &e.decoded)
        {
            Some(ExtensionData::SupportedGroups { groups }) => groups,
            _ => &[],
        }
    }

    pub fn ec_point_formats(&self) -> &[u8] {
        match self
            .extension(ExtensionType::EC_POINT_FORMATS)
            .map(|e| &e.decoded)
        {
            Some(ExtensionData::EcPointFormats { formats }) => formats,
            _ => &[],
        }
    }

    pub fn signature_algorithms(&self) -> &[SignatureScheme] {
        match self
            .extension(ExtensionType::SIGNATURE_ALGORITHMS)
            .map(|e| &e.decoded)
        {
            Some(ExtensionData::SignatureAlgorithms { schemes }) => schemes,
            _ => &[],
        }
    }

    pub fn supported_versions(&self) -> &[ProtocolVersion] {
        match self
            .extension(ExtensionType::SUPPORTED_VERSIONS)
            .map(|e| &e.decoded)
        {
            Some(ExtensionData::SupportedVersions { versions }) => versions,
            _ => &[],
        }
    }

    pub fn key_shares(&self) -> &[KeyShareEntry] {
        match self.extension(ExtensionType::KEY_SHARE).map(|e| &e.decoded) {
            Some(ExtensionData::KeyShare { shares }) => shares,
            _ => &[],
        }
    }

    /// The highest version the client offers: from supported_versions when
    /// present (RFC 8446 §4.2.1 makes legacy_version meaningless then),
    /// otherwise legacy_version. GREASE is ignored.
    pub fn highest_version(&self) -> ProtocolVersion {
        self.supported_versions()
            .iter()
            .copied()
            .filter(|v| !v.is_grease())
            .max_by_key(|v| version_rank(*v))
            .unwrap_or(self.legacy_version)
    }
}

/// Orders versions by age. DTLS counts down on the wire and TLS 1.3 drafts sit
/// above 0x0304, so the raw number is not the order.
fn version_rank(v: ProtocolVersion) -> u32 {
    match v.0 {
        0x7f00..=0x7fff => 0x0303_8000 + u32::from(v.0 & 0xff),
        0xfe00..=0xffff => u32::from(0xffff - v.0),
        other => u32::from(other) << 16,
    }
}

fn hex_bytes<S: serde::Serializer>(bytes: impl AsRef<[u8]>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_hex(bytes.as_ref()))
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}
