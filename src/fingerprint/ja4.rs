//! JA4, the TLS-client part of FoxIO's JA4+ (github.com/FoxIO-LLC/ja4,
//! `technical_details/JA4.md`), exactly as specified there:
//!
//! `a_b_c` where
//! - **a** = transport (`t` TCP, `q` QUIC, `d` DTLS) + version (highest
//!   supported_versions value, else legacy_version; GREASE ignored) + `d`/`i`
//!   (SNI present or not) + two-digit cipher count + two-digit extension count
//!   (GREASE excluded, capped at 99, SNI and ALPN included) + first and last
//!   character of the first ALPN value (`00` when none; the first and last hex
//!   digits of its bytes when either end is not ASCII alphanumeric);
//! - **b** = first 12 hex of SHA-256 over the sorted, comma-joined 4-digit hex
//!   cipher list (`000000000000` when empty);
//! - **c** = first 12 hex of SHA-256 over the sorted extension list without SNI
//!   (0000) and ALPN (0010), then `_` and the signature algorithms in wire order
//!   (no `_` when there are none; `000000000000` when no extensions remain).
//!
//! The `_r` forms print the lists instead of hashing them; the `_o` forms keep
//! the wire order (and so SNI and ALPN in the extension list).

use sha2::{Digest, Sha256};

use crate::hello::wire::{is_grease, ExtensionType, ProtocolVersion};
use crate::hello::ClientHello;

/// How the hello was carried: JA4's first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Quic,
    Dtls,
}

/// The parts of a JA4 fingerprint, before hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ja4 {
    prefix: String,
    ciphers: Vec<u16>,
    extensions: Vec<u16>,
    signature_algorithms: Vec<u16>,
}

impl Ja4 {
    pub fn of(hello: &ClientHello, transport: Transport) -> Self {
        let ciphers: Vec<u16> = hello
            .cipher_suites
            .iter()
            .map(|c| c.0)
            .filter(|v| !is_grease(*v))
            .collect();
        let extensions: Vec<u16> = hello
            .extensions
            .iter()
            .map(|e| e.kind.0)
            .filter(|v| !is_grease(*v))
            .collect();
        let signature_algorithms = hello
            .signature_algorithms()
            .iter()
            .map(|s| s.0)
            .filter(|v| !is_grease(*v))
            .collect();
        let transport = match transport {
            Transport::Tcp => 't',
            Transport::Quic => 'q',
            Transport::Dtls => 'd',
        };
        let sni = if hello.extension(ExtensionType::SERVER_NAME).is_some() {
            'd'
        } else {
            'i'
        };
        let alpn = hello
            .alpn()
            .first()
            .map(|p| alpn_chars(&p.raw))
            .unwrap_or_else(|| "00".to_owned());
        let prefix = format!(
            "{transport}{}{sni}{:02}{:02}{alpn}",
            version_chars(hello.highest_version()),
            ciphers.len().min(99),
            extensions.len().min(99),
        );
        Self {
            prefix,
            ciphers,
            extensions,
            signature_algorithms,
        }
    }

    /// `JA4`: sorted lists, hashed.
    pub fn hashed(&self) -> String {
        let (ciphers, extensions) = self.sorted();
        self.assemble(&ciphers, &extensions, true)
    }

    /// `JA4_r`: sorted lists, raw.
    pub fn raw(&self) -> String {
        let (ciphers, extensions) = self.sorted();
        self.assemble(&ciphers, &extensions, false)
    }

    /// `JA4_o`: wire order, hashed.
    pub fn hashed_original(&self) -> String {
        self.assemble(&self.ciphers, &self.extensions, true)
    }

    /// `JA4_ro`: wire order, raw.
    pub fn raw_original(&self) -> String {
        self.assemble(&self.ciphers, &self.extensions, false)
    }

    fn sorted(&self) -> (Vec<u16>, Vec<u16>) {
        let mut ciphers = self.ciphers.clone();
        ciphers.sort_unstable();
        let mut extensions: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|e| *e != ExtensionType::SERVER_NAME.0 && *e != ExtensionType::ALPN.0)
            .collect();
        extensions.sort_unstable();
        (ciphers, extensions)
    }

    fn assemble(&self, ciphers: &[u16], extensions: &[u16], hash: bool) -> String {
        let ciphers = hex_list(ciphers);
        let mut ext_part = hex_list(extensions);
        if !self.signature_algorithms.is_empty() {
            ext_part.push('_');
            ext_part.push_str(&hex_list(&self.signature_algorithms));
        }
        if hash {
            let b = truncated_sha256(&ciphers);
            let c = if extensions.is_empty() {
                "000000000000".to_owned()
            } else {
                truncated_sha256(&ext_part)
            };
            format!("{}_{b}_{c}", self.prefix)
        } else {
            format!("{}_{ciphers}_{ext_part}", self.prefix)
        }
    }
}

fn version_chars(version: ProtocolVersion) -> &'static str {
    match version.0 {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 | 0x0200 => "s2",
        0x0100 => "s1",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

fn alpn_chars(value: &[u8]) -> String {
    let (Some(&first), Some(&last)) = (value.first(), value.last()) else {
        return "00".to_owned();
    };
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        format!("{}{}", first as char, last as char)
    } else {
        let hex = crate::hello::model::to_hex(value);
        let mut chars = hex.chars();
        let first = chars.next().unwrap_or('0');
        let last = chars.next_back().unwrap_or('0');
        format!("{first}{last}")
    }
}

fn hex_list(values: &[u16]) -> String {
    let mut out = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // By hand: `write!(out, "{v:04x}")` goes through the formatting
        // machinery per value, and this runs on every completed handshake.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for shift in [12, 8, 4, 0] {
            out.push(char::from(HEX[usize::from((v >> shift) & 0xf)]));
        }
    }
    out
}

/// An empty list hashes to twelve zeros, not to SHA-256 of "".
fn truncated_sha256(text: &str) -> String {
    if text.is_empty() {
        return "000000000000".to_owned();
    }
    let digest = Sha256::digest(text.as_bytes());
    crate::hello::model::to_hex(&digest[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked example values from JA4.md's "Cipher hash" and "Extension hash".
    #[test]
    fn hashes_match_the_spec_worked_example() {
        assert_eq!(
            truncated_sha256(
                "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
            ),
            "8daaf6152771"
        );
        assert_eq!(
            truncated_sha256("0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"),
            "e5627efa2ab1"
        );
        assert_eq!(
            truncated_sha256(
                "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01"
            ),
            "6d807ffa2a79"
        );
    }

    #[test]
    fn alpn_uses_hex_when_an_end_is_not_alphanumeric() {
        assert_eq!(alpn_chars(b"h2"), "h2");
        assert_eq!(alpn_chars(b"http/1.1"), "h1");
        assert_eq!(alpn_chars(&[0xab, 0xcd]), "ad");
        assert_eq!(alpn_chars(b"h"), "hh");
    }
}
