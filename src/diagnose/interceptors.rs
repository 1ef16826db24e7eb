//! TLS-intercepting middleboxes whose own ClientHello we know from a real
//! capture, and how to recognise it. Only what was captured is here: naming
//! a product from a guess would send support after the wrong box.
//!
//! A signature is a trait of the interceptor's hello that survives its
//! releases (a configured cipher list, not a JA4 that changes with every
//! OpenSSL update), plus whatever rules out the clients that could be set up
//! to send the same list directly.

use super::user_agent::Family;
use crate::hello::wire::{CipherSuite, ExtensionType};
use crate::hello::ClientHello;

/// A known interceptor.
#[derive(Debug)]
pub struct Interceptor {
    pub name: &'static str,
    /// Where its signature comes from.
    pub source: &'static str,
    /// Families that can be configured to send this very hello themselves:
    /// for them a match proves nothing.
    pub lookalikes: &'static [Family],
    /// What it does when it refuses a server's certificate, as observed.
    pub on_refusal: &'static str,
}

/// mitmproxy's upstream connection: pyOpenSSL with mitmproxy's default cipher
/// list (`_DEFAULT_CIPHERS` in mitmproxy/addons/tlsconfig.py, the same since
/// mitmproxy 7), and no post-handshake authentication. Captured from
/// mitmproxy 11.0.2 on OpenSSL 3.4.1:
/// `tests/fixtures/hellos/mitmproxy_11_openssl_3_4.bin`.
pub static MITMPROXY: Interceptor = Interceptor {
    name: "mitmproxy",
    source: "its default cipher list, in its order, with no post_handshake_auth \
             (from a capture of mitmproxy 11)",
    // Any OpenSSL-based Python or Node program, or wget built on OpenSSL,
    // can be given this list; none of them adds post_handshake_auth unless
    // asked to.
    lookalikes: &[Family::Python, Family::Node, Family::Wget],
    // Observed with mitmproxy 11 against a self-signed certificate: it logs
    // "Certificate verify failed", closes, and answers its client 502.
    on_refusal: "closes the connection without a TLS alert and shows its client a 502 \
                 \"Certificate verify failed\" page",
};

/// mitmproxy's TLS 1.2 suites in its order. `DES-CBC3-SHA` (0x000a) ends
/// the list where the OpenSSL build still allows it; OpenSSL 3 at its default
/// security level leaves it out.
const MITMPROXY_TLS12_SUITES: [u16; 25] = [
    0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009e, 0x009f, 0xccaa, 0xc023, 0xc027, 0xc009,
    0xc013, 0xc024, 0xc028, 0xc00a, 0xc014, 0x0067, 0x006b, 0x009c, 0x009d, 0x003c, 0x003d, 0x002f,
    0x0035,
];
const DES_CBC3_SHA: u16 = 0x000a;

/// The interceptor that sent `hello`, if it is one we know.
pub fn identify(hello: &ClientHello) -> Option<&'static Interceptor> {
    is_mitmproxy(hello).then_some(&MITMPROXY)
}

fn is_mitmproxy(hello: &ClientHello) -> bool {
    let tls12: Vec<u16> = hello
        .cipher_suites
        .iter()
        .map(|s| s.0)
        .filter(|&s| !is_tls13_suite(s) && !CipherSuite(s).is_grease() && s != SCSV)
        .collect();
    let list_matches = match tls12.split_last() {
        Some((&DES_CBC3_SHA, rest)) => rest == MITMPROXY_TLS12_SUITES,
        _ => tls12 == MITMPROXY_TLS12_SUITES,
    };
    list_matches
        && hello
            .extension(ExtensionType::POST_HANDSHAKE_AUTH)
            .is_none()
}

/// TLS_EMPTY_RENEGOTIATION_INFO_SCSV: a signal, not a cipher.
const SCSV: u16 = 0x00ff;

fn is_tls13_suite(suite: u16) -> bool {
    (0x1301..=0x1305).contains(&suite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture;

    #[test]
    fn recognises_mitmproxy_from_its_capture() {
        let hello = fixture("mitmproxy_11_openssl_3_4");
        assert_eq!(identify(&hello).map(|i| i.name), Some("mitmproxy"));
    }

    #[test]
    fn names_no_interceptor_for_direct_clients() {
        for name in [
            "chromium_pq",
            "curl_openssl3",
            "gnutls_cli",
            "openssl_s_client_tls13_default",
            "openssl_s_client_tls12_sni",
            "openssl_s_client_noservername",
            "openssl_s_client_tls1_legacy",
        ] {
            assert!(identify(&fixture(name)).is_none(), "{name}");
        }
    }

    #[test]
    fn the_same_list_with_post_handshake_auth_is_not_mitmproxy() {
        // curl with OpenSSL always asks for post-handshake authentication;
        // given mitmproxy's cipher list it still would.
        let mut hello = fixture("mitmproxy_11_openssl_3_4");
        hello.extensions.push(crate::hello::Extension {
            kind: ExtensionType::POST_HANDSHAKE_AUTH,
            length: 0,
            decoded: crate::hello::ExtensionData::Empty,
        });
        assert!(identify(&hello).is_none());
    }
}
