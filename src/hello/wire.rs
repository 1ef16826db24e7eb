//! Wire values of the ClientHello, as newtypes that keep the raw number.
//!
//! Each type keeps the exact value the client sent (unknown and GREASE values
//! included: this server exists to report them) and knows its IANA name when
//! it has one. `Display` prints the name, or the hex value when unnamed.
//!
//! Where the names come from:
//! - cipher suites: `tls-parser`'s table, generated from the IANA TLS Cipher
//!   Suites registry (350+ entries, with key exchange and AEAD metadata we use to
//!   spot legacy-only clients);
//! - extension types, supported groups, signature schemes, protocol versions
//!   and alerts: the tables below, transcribed from the IANA "TLS
//!   ExtensionType Values" and "TLS Parameters" registries. We keep our own because
//!   no maintained crate carries the current registries: `tls-parser` stops before
//!   ECH, ALPS, compress_certificate and the ML-KEM groups, and rustls exposes only
//!   the values it implements, under its own spellings.

use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a saved report reads back of a wire value: its number. The names are
/// ours to derive again.
#[derive(Deserialize)]
struct WireId<T> {
    id: T,
}

/// RFC 8701 reserves these 16 values (0x0A0A, 0x1A1A, ... 0xFAFA) so that
/// clients can exercise servers' tolerance of unknown values.
pub fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

macro_rules! registry {
    (
        $(#[$meta:meta])*
        $name:ident($int:ty) {
            $($konst:ident = $value:literal => $label:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $int);

        #[allow(dead_code)]
        impl $name {
            $(pub const $konst: Self = Self($value);)*

            /// The IANA name, if the value is registered.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($label),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.label() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "0x{:0width$x}", self.0, width = 2 * std::mem::size_of::<$int>()),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(0x{:0width$x} {})", stringify!($name), self.0, self, width = 2 * std::mem::size_of::<$int>())
            }
        }
    };
}

/// `0x` and four lowercase hex digits, without an allocation: reports write
/// one per listed wire value.
pub(crate) fn hex16(value: u16) -> Hex16 {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = *b"0x0000";
    for (i, shift) in [12, 8, 4, 0].into_iter().enumerate() {
        text[2 + i] = DIGITS[usize::from((value >> shift) & 0xf)];
    }
    Hex16(text)
}

/// See [`hex16`].
pub(crate) struct Hex16([u8; 6]);

impl Hex16 {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and letters are ever written.
        std::str::from_utf8(&self.0).unwrap_or("0x????")
    }
}

/// Serializes a 16-bit wire value as `{"id", "hex", "name", "grease"}` so JSON
/// consumers never have to know our name tables.
macro_rules! serialize_u16 {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut st = s.serialize_struct(stringify!($name), 4)?;
                st.serialize_field("id", &self.0)?;
                st.serialize_field("hex", hex16(self.0).as_str())?;
                st.serialize_field("name", &self.label())?;
                st.serialize_field("grease", &self.is_grease())?;
                st.end()
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                WireId::<u16>::deserialize(d).map(|w| Self(w.id))
            }
        }

        impl $name {
            pub fn is_grease(self) -> bool {
                is_grease(self.0)
            }

            /// The name, "GREASE" for RFC 8701 values, or `None`.
            pub fn label(self) -> Option<&'static str> {
                if self.is_grease() {
                    Some("GREASE")
                } else {
                    self.name()
                }
            }
        }
    };
}

/// A cipher suite (IANA TLS Cipher Suites registry).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CipherSuite(pub u16);

impl CipherSuite {
    pub fn name(self) -> Option<&'static str> {
        tls_parser::TlsCipherSuite::from_id(self.0).map(|suite| suite.name)
    }

    /// Signalling values (RFC 5746, RFC 7507) occupy cipher-suite slots but are
    /// not suites anyone can negotiate.
    pub fn is_signalling(self) -> bool {
        matches!(self.0, 0x00ff | 0x5600)
    }

    /// Forward-secret key exchange and an AEAD cipher: what TLS 1.3 requires and
    /// every current TLS 1.2 deployment prefers. `None` for unknown values.
    pub fn is_modern(self) -> Option<bool> {
        use tls_parser::{TlsCipherKx, TlsCipherMac};
        let suite = tls_parser::TlsCipherSuite::from_id(self.0)?;
        let forward_secret = matches!(
            suite.kx,
            TlsCipherKx::Tls13 | TlsCipherKx::Ecdhe | TlsCipherKx::Dhe
        );
        Some(forward_secret && suite.mac == TlsCipherMac::Aead)
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.label() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:04x}", self.0),
        }
    }
}

impl fmt::Debug for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CipherSuite(0x{:04x} {self})", self.0)
    }
}

serialize_u16!(CipherSuite);

registry! {
    /// A TLS or SSL protocol version as it appears on the wire.
    ProtocolVersion(u16) {
        SSL_2_0 = 0x0002 => "SSL 2.0",
        SSL_3_0 = 0x0300 => "SSL 3.0",
        TLS_1_0 = 0x0301 => "TLS 1.0",
        TLS_1_1 = 0x0302 => "TLS 1.1",
        TLS_1_2 = 0x0303 => "TLS 1.2",
        TLS_1_3 = 0x0304 => "TLS 1.3",
        TLS_1_3_DRAFT_23 = 0x7f17 => "TLS 1.3 (draft 23)",
        TLS_1_3_DRAFT_28 = 0x7f1c => "TLS 1.3 (draft 28)",
        DTLS_1_0 = 0xfeff => "DTLS 1.0",
        DTLS_1_2 = 0xfefd => "DTLS 1.2",
        DTLS_1_3 = 0xfefc => "DTLS 1.3",
    }
}
serialize_u16!(ProtocolVersion);

registry! {
    /// A ClientHello extension type (IANA "TLS ExtensionType Values"; the few
    /// unregistered code points in wide use are noted).
    ExtensionType(u16) {
        SERVER_NAME = 0 => "server_name",
        MAX_FRAGMENT_LENGTH = 1 => "max_fragment_length",
        CLIENT_CERTIFICATE_URL = 2 => "client_certificate_url",
        TRUSTED_CA_KEYS = 3 => "trusted_ca_keys",
        TRUNCATED_HMAC = 4 => "truncated_hmac",
        STATUS_REQUEST = 5 => "status_request",
        USER_MAPPING = 6 => "user_mapping",
        CLIENT_AUTHZ = 7 => "client_authz",
        SERVER_AUTHZ = 8 => "server_authz",
        CERT_TYPE = 9 => "cert_type",
        SUPPORTED_GROUPS = 10 => "supported_groups",
        EC_POINT_FORMATS = 11 => "ec_point_formats",
        SRP = 12 => "srp",
        SIGNATURE_ALGORITHMS = 13 => "signature_algorithms",
        USE_SRTP = 14 => "use_srtp",
        HEARTBEAT = 15 => "heartbeat",
        ALPN = 16 => "application_layer_protocol_negotiation",
        STATUS_REQUEST_V2 = 17 => "status_request_v2",
        SIGNED_CERTIFICATE_TIMESTAMP = 18 => "signed_certificate_timestamp",
        CLIENT_CERTIFICATE_TYPE = 19 => "client_certificate_type",
        SERVER_CERTIFICATE_TYPE = 20 => "server_certificate_type",
        PADDING = 21 => "padding",
        ENCRYPT_THEN_MAC = 22 => "encrypt_then_mac",
        EXTENDED_MASTER_SECRET = 23 => "extended_master_secret",
        TOKEN_BINDING = 24 => "token_binding",
        CACHED_INFO = 25 => "cached_info",
        TLS_LTS = 26 => "tls_lts",
        COMPRESS_CERTIFICATE = 27 => "compress_certificate",
        RECORD_SIZE_LIMIT = 28 => "record_size_limit",
        PWD_PROTECT = 29 => "pwd_protect",
        PWD_CLEAR = 30 => "pwd_clear",
        PASSWORD_SALT = 31 => "password_salt",
        TICKET_PINNING = 32 => "ticket_pinning",
        TLS_CERT_WITH_EXTERN_PSK = 33 => "tls_cert_with_extern_psk",
        DELEGATED_CREDENTIAL = 34 => "delegated_credential",
        SESSION_TICKET = 35 => "session_ticket",
        TLMSP = 36 => "TLMSP",
        TLMSP_PROXYING = 37 => "TLMSP_proxying",
        TLMSP_DELEGATE = 38 => "TLMSP_delegate",
        SUPPORTED_EKT_CIPHERS = 39 => "supported_ekt_ciphers",
        PRE_SHARED_KEY = 41 => "pre_shared_key",
        EARLY_DATA = 42 => "early_data",
        SUPPORTED_VERSIONS = 43 => "supported_versions",
        COOKIE = 44 => "cookie",
        PSK_KEY_EXCHANGE_MODES = 45 => "psk_key_exchange_modes",
        CERTIFICATE_AUTHORITIES = 47 => "certificate_authorities",
        OID_FILTERS = 48 => "oid_filters",
        POST_HANDSHAKE_AUTH = 49 => "post_handshake_auth",
        SIGNATURE_ALGORITHMS_CERT = 50 => "signature_algorithms_cert",
        KEY_SHARE = 51 => "key_share",
        TRANSPARENCY_INFO = 52 => "transparency_info",
        CONNECTION_ID_DEPRECATED = 53 => "connection_id (deprecated)",
        CONNECTION_ID = 54 => "connection_id",
        EXTERNAL_ID_HASH = 55 => "external_id_hash",
        EXTERNAL_SESSION_ID = 56 => "external_session_id",
        QUIC_TRANSPORT_PARAMETERS = 57 => "quic_transport_parameters",
        TICKET_REQUEST = 58 => "ticket_request",
        DNSSEC_CHAIN = 59 => "dnssec_chain",
        SEQUENCE_NUMBER_ENCRYPTION_ALGORITHMS = 60 => "sequence_number_encryption_algorithms",
        RRC = 61 => "rrc",
        TLS_FLAGS = 62 => "tls_flags",
        // Unregistered, but sent by real clients.
        NEXT_PROTOCOL_NEGOTIATION = 0x3374 => "next_protocol_negotiation",
        APPLICATION_SETTINGS_OLD = 0x4469 => "application_settings (old code point)",
        APPLICATION_SETTINGS = 0x44cd => "application_settings",
        CHANNEL_ID = 0x7550 => "channel_id",
        ECH_OUTER_EXTENSIONS = 0xfd00 => "ech_outer_extensions",
        ENCRYPTED_CLIENT_HELLO = 0xfe0d => "encrypted_client_hello",
        RENEGOTIATION_INFO = 0xff01 => "renegotiation_info",
    }
}
serialize_u16!(ExtensionType);

registry! {
    /// A key-exchange group (IANA "TLS Supported Groups").
    NamedGroup(u16) {
        SECT163K1 = 0x0001 => "sect163k1",
        SECT163R1 = 0x0002 => "sect163r1",
        SECT163R2 = 0x0003 => "sect163r2",
        SECT193R1 = 0x0004 => "sect193r1",
        SECT193R2 = 0x0005 => "sect193r2",
        SECT233K1 = 0x0006 => "sect233k1",
        SECT233R1 = 0x0007 => "sect233r1",
        SECT239K1 = 0x0008 => "sect239k1",
        SECT283K1 = 0x0009 => "sect283k1",
        SECT283R1 = 0x000a => "sect283r1",
        SECT409K1 = 0x000b => "sect409k1",
        SECT409R1 = 0x000c => "sect409r1",
        SECT571K1 = 0x000d => "sect571k1",
        SECT571R1 = 0x000e => "sect571r1",
        SECP160K1 = 0x000f => "secp160k1",
        SECP160R1 = 0x0010 => "secp160r1",
        SECP160R2 = 0x0011 => "secp160r2",
        SECP192K1 = 0x0012 => "secp192k1",
        SECP192R1 = 0x0013 => "secp192r1",
        SECP224K1 = 0x0014 => "secp224k1",
        SECP224R1 = 0x0015 => "secp224r1",
        SECP256K1 = 0x0016 => "secp256k1",
        SECP256R1 = 0x0017 => "secp256r1",
        SECP384R1 = 0x0018 => "secp384r1",
        SECP521R1 = 0x0019 => "secp521r1",
        BRAINPOOLP256R1 = 0x001a => "brainpoolP256r1",
        BRAINPOOLP384R1 = 0x001b => "brainpoolP384r1",
        BRAINPOOLP512R1 = 0x001c => "brainpoolP512r1",
        X25519 = 0x001d => "x25519",
        X448 = 0x001e => "x448",
        BRAINPOOLP256R1TLS13 = 0x001f => "brainpoolP256r1tls13",
        BRAINPOOLP384R1TLS13 = 0x0020 => "brainpoolP384r1tls13",
        BRAINPOOLP512R1TLS13 = 0x0021 => "brainpoolP512r1tls13",
        GC256A = 0x0022 => "GC256A",
        GC256B = 0x0023 => "GC256B",
        GC256C = 0x0024 => "GC256C",
        GC256D = 0x0025 => "GC256D",
        GC512A = 0x0026 => "GC512A",
        GC512B = 0x0027 => "GC512B",
        GC512C = 0x0028 => "GC512C",
        CURVE_SM2 = 0x0029 => "curveSM2",
        FFDHE2048 = 0x0100 => "ffdhe2048",
        FFDHE3072 = 0x0101 => "ffdhe3072",
        FFDHE4096 = 0x0102 => "ffdhe4096",
        FFDHE6144 = 0x0103 => "ffdhe6144",
        FFDHE8192 = 0x0104 => "ffdhe8192",
        MLKEM512 = 0x0200 => "MLKEM512",
        MLKEM768 = 0x0201 => "MLKEM768",
        MLKEM1024 = 0x0202 => "MLKEM1024",
        SECP256R1MLKEM768 = 0x11eb => "SecP256r1MLKEM768",
        X25519MLKEM768 = 0x11ec => "X25519MLKEM768",
        SECP384R1MLKEM1024 = 0x11ed => "SecP384r1MLKEM1024",
        X25519KYBER768DRAFT00 = 0x6399 => "X25519Kyber768Draft00",
        SECP256R1KYBER768DRAFT00 = 0x639a => "SecP256r1Kyber768Draft00",
        ARBITRARY_EXPLICIT_PRIME_CURVES = 0xff01 => "arbitrary_explicit_prime_curves",
        ARBITRARY_EXPLICIT_CHAR2_CURVES = 0xff02 => "arbitrary_explicit_char2_curves",
    }
}
serialize_u16!(NamedGroup);

impl NamedGroup {
    /// Hybrid or pure post-quantum key agreement (ML-KEM and its Kyber drafts).
    pub fn is_post_quantum(self) -> bool {
        matches!(self.0, 0x0200..=0x0202 | 0x11eb..=0x11ed | 0x6399 | 0x639a)
    }
}

registry! {
    /// A signature scheme (IANA "TLS SignatureScheme"). TLS 1.2's
    /// (hash, signature) pairs share this code space; unregistered pairs are
    /// described by [`SignatureScheme::describe`].
    SignatureScheme(u16) {
        RSA_PKCS1_SHA1 = 0x0201 => "rsa_pkcs1_sha1",
        ECDSA_SHA1 = 0x0203 => "ecdsa_sha1",
        RSA_PKCS1_SHA256 = 0x0401 => "rsa_pkcs1_sha256",
        ECDSA_SECP256R1_SHA256 = 0x0403 => "ecdsa_secp256r1_sha256",
        RSA_PKCS1_SHA256_LEGACY = 0x0420 => "rsa_pkcs1_sha256_legacy",
        RSA_PKCS1_SHA384 = 0x0501 => "rsa_pkcs1_sha384",
        ECDSA_SECP384R1_SHA384 = 0x0503 => "ecdsa_secp384r1_sha384",
        RSA_PKCS1_SHA384_LEGACY = 0x0520 => "rsa_pkcs1_sha384_legacy",
        RSA_PKCS1_SHA512 = 0x0601 => "rsa_pkcs1_sha512",
        ECDSA_SECP521R1_SHA512 = 0x0603 => "ecdsa_secp521r1_sha512",
        RSA_PKCS1_SHA512_LEGACY = 0x0620 => "rsa_pkcs1_sha512_legacy",
        ECCSI_SHA256 = 0x0704 => "eccsi_sha256",
        ISO_IBS1 = 0x0705 => "iso_ibs1",
        ISO_IBS2 = 0x0706 => "iso_ibs2",
        ISO_CHINESE_IBS = 0x0707 => "iso_chinese_ibs",
        SM2SIG_SM3 = 0x0708 => "sm2sig_sm3",
        GOSTR34102012_256A = 0x0709 => "gostr34102012_256a",
        GOSTR34102012_256B = 0x070a => "gostr34102012_256b",
        GOSTR34102012_256C = 0x070b => "gostr34102012_256c",
        GOSTR34102012_256D = 0x070c => "gostr34102012_256d",
        GOSTR34102012_512A = 0x070d => "gostr34102012_512a",
        GOSTR34102012_512B = 0x070e => "gostr34102012_512b",
        GOSTR34102012_512C = 0x070f => "gostr34102012_512c",
        RSA_PSS_RSAE_SHA256 = 0x0804 => "rsa_pss_rsae_sha256",
        RSA_PSS_RSAE_SHA384 = 0x0805 => "rsa_pss_rsae_sha384",
        RSA_PSS_RSAE_SHA512 = 0x0806 => "rsa_pss_rsae_sha512",
        ED25519 = 0x0807 => "ed25519",
        ED448 = 0x0808 => "ed448",
        RSA_PSS_PSS_SHA256 = 0x0809 => "rsa_pss_pss_sha256",
        RSA_PSS_PSS_SHA384 = 0x080a => "rsa_pss_pss_sha384",
        RSA_PSS_PSS_SHA512 = 0x080b => "rsa_pss_pss_sha512",
        ECDSA_BRAINPOOLP256R1TLS13_SHA256 = 0x081a => "ecdsa_brainpoolP256r1tls13_sha256",
        ECDSA_BRAINPOOLP384R1TLS13_SHA384 = 0x081b => "ecdsa_brainpoolP384r1tls13_sha384",
        ECDSA_BRAINPOOLP512R1TLS13_SHA512 = 0x081c => "ecdsa_brainpoolP512r1tls13_sha512",
        MLDSA44 = 0x0904 => "mldsa44",
        MLDSA65 = 0x0905 => "mldsa65",
        MLDSA87 = 0x0906 => "mldsa87",
    }
}
serialize_u16!(SignatureScheme);

registry! {
    /// A TLS alert description (IANA "TLS Alerts").
    AlertDescription(u8) {
        CLOSE_NOTIFY = 0 => "close_notify",
        UNEXPECTED_MESSAGE = 10 => "unexpected_message",
        BAD_RECORD_MAC = 20 => "bad_record_mac",
        DECRYPTION_FAILED = 21 => "decryption_failed",
        RECORD_OVERFLOW = 22 => "record_overflow",
        DECOMPRESSION_FAILURE = 30 => "decompression_failure",
        HANDSHAKE_FAILURE = 40 => "handshake_failure",
        NO_CERTIFICATE = 41 => "no_certificate",
        BAD_CERTIFICATE = 42 => "bad_certificate",
        UNSUPPORTED_CERTIFICATE = 43 => "unsupported_certificate",
        CERTIFICATE_REVOKED = 44 => "certificate_revoked",
        CERTIFICATE_EXPIRED = 45 => "certificate_expired",
        CERTIFICATE_UNKNOWN = 46 => "certificate_unknown",
        ILLEGAL_PARAMETER = 47 => "illegal_parameter",
        UNKNOWN_CA = 48 => "unknown_ca",
        ACCESS_DENIED = 49 => "access_denied",
        DECODE_ERROR = 50 => "decode_error",
        DECRYPT_ERROR = 51 => "decrypt_error",
        EXPORT_RESTRICTION = 60 => "export_restriction",
        PROTOCOL_VERSION = 70 => "protocol_version",
        INSUFFICIENT_SECURITY = 71 => "insufficient_security",
        INTERNAL_ERROR = 80 => "internal_error",
        INAPPROPRIATE_FALLBACK = 86 => "inappropriate_fallback",
        USER_CANCELED = 90 => "user_canceled",
        NO_RENEGOTIATION = 100 => "no_renegotiation",
        MISSING_EXTENSION = 109 => "missing_extension",
        UNSUPPORTED_EXTENSION = 110 => "unsupported_extension",
        CERTIFICATE_UNOBTAINABLE = 111 => "certificate_unobtainable",
        UNRECOGNIZED_NAME = 112 => "unrecognized_name",
        BAD_CERTIFICATE_STATUS_RESPONSE = 113 => "bad_certificate_status_response",
        BAD_CERTIFICATE_HASH_VALUE = 114 => "bad_certificate_hash_value",
        UNKNOWN_PSK_IDENTITY = 115 => "unknown_psk_identity",
        CERTIFICATE_REQUIRED = 116 => "certificate_required",
        NO_APPLICATION_PROTOCOL = 120 => "no_application_protocol",
        ECH_REQUIRED = 121 => "ech_required",
    }
}

impl AlertDescription {
    pub fn label(self) -> Option<&'static str> {
        self.name()
    }
}

impl<'de> Deserialize<'de> for AlertDescription {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WireId::<u8>::deserialize(d).map(|w| Self(w.id))
    }
}

impl Serialize for AlertDescription {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("AlertDescription", 2)?;
        st.serialize_field("id", &self.0)?;
        st.serialize_field("name", &self.name())?;
        st.end()
    }
}

impl SignatureScheme {
    /// The registered name, or for TLS 1.2-style (hash, signature) pairs
    /// outside the registry a description such as `dsa_sha256`.
    pub fn describe(self) -> Option<String> {
        if let Some(name) = self.label() {
            return Some(name.to_owned());
        }
        let hash = match self.0 >> 8 {
            1 => "md5",
            2 => "sha1",
            3 => "sha224",
            4 => "sha256",
            5 => "sha384",
            6 => "sha512",
            _ => return None,
        };
        let sig = match self.0 & 0xff {
            1 => "rsa",
            2 => "dsa",
            3 => "ecdsa",
            _ => return None,
        };
        Some(format!("{sig}_{hash}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_all_sixteen_grease_values_and_nothing_else() {
        let grease: Vec<u16> = (0..=u16::MAX).filter(|v| is_grease(*v)).collect();
        assert_eq!(grease.len(), 16);
        assert_eq!(grease[0], 0x0a0a);
        assert_eq!(grease[15], 0xfafa);
    }

    #[test]
    fn hex16_writes_four_lowercase_digits() {
        for value in [0u16, 0x0a0a, 0x1301, 0xc02b, 0xffff] {
            assert_eq!(hex16(value).as_str(), format!("0x{value:04x}"));
        }
    }

    #[test]
    fn names_come_from_the_iana_registries() {
        assert_eq!(CipherSuite(0x1301).name(), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(
            CipherSuite(0xc02f).name(),
            Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        );
        assert_eq!(NamedGroup(0x11ec).to_string(), "X25519MLKEM768");
        assert_eq!(ExtensionType(0xfe0d).to_string(), "encrypted_client_hello");
        assert_eq!(SignatureScheme(0x0804).to_string(), "rsa_pss_rsae_sha256");
        assert_eq!(AlertDescription(48).to_string(), "unknown_ca");
    }

    #[test]
    fn unknown_values_print_as_hex_and_grease_is_labelled() {
        assert_eq!(ExtensionType(0x1234).to_string(), "0x1234");
        assert_eq!(CipherSuite(0x2a2a).to_string(), "GREASE");
        assert_eq!(
            SignatureScheme(0x0402).describe().as_deref(),
            Some("dsa_sha256")
        );
    }

    #[test]
    fn classifies_legacy_and_modern_suites() {
        assert_eq!(CipherSuite(0x002f).is_modern(), Some(false)); // RSA key exchange, CBC
        assert_eq!(CipherSuite(0xc013).is_modern(), Some(false)); // ECDHE but CBC
        assert_eq!(CipherSuite(0xc02b).is_modern(), Some(true));
        assert_eq!(CipherSuite(0x1302).is_modern(), Some(true));
        assert_eq!(CipherSuite(0xeeee).is_modern(), None);
    }
}
