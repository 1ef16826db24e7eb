//! What each client family's ClientHello always has, or never has, checked
//! against a hello that claims (through its request's User-Agent) to come
//! from that family.
//!
//! Each trait is either **certain** (no client of the family, however it is
//! configured, can send a hello without it: the interception finding rests on
//! these alone) or **supporting** (the family's default, which a policy, flag
//! or preference can turn off: listed as evidence, never enough alone).
//! The sources for every trait are in `docs/findings.md`.

use std::borrow::Cow;

use super::interceptors::Interceptor;
use super::user_agent::{Claim, Family};
use crate::hello::wire::{is_grease, ExtensionType, ProtocolVersion};
use crate::hello::ClientHello;

/// One way the hello differs from what the claimed client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Which trait, in a few words.
    pub what: &'static str,
    /// What this hello has, and what the claimed client would have sent.
    pub detail: Cow<'static, str>,
    /// No client of the family can send this (see the module docs).
    pub certain: bool,
}

/// Every cipher suite any Chrome since version 60 can offer (BoringSSL's
/// list as Chrome configures it; policies can only remove suites): the TLS
/// 1.3 suites, ECDHE with AES-GCM, ChaCha20 and AES-CBC-SHA, RSA with AES-GCM
/// and AES-CBC-SHA, 3DES until Chrome 93, and the pre-standard ChaCha20 ids
/// and DHE suites of Chrome in its fifties.
const CHROMIUM_SUITES: &[u16] = &[
    0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc009, 0xc013, 0xc00a,
    0xc014, 0x009c, 0x009d, 0x002f, 0x0035, 0x000a, 0xcc13, 0xcc14, 0x0033, 0x0039, 0x00ff,
];

/// Every cipher suite Firefox since 78 can be set to offer: its defaults
/// plus the ones `about:config` can switch back on (DHE with AES-CBC-SHA,
/// 3DES). NSS knows more, but Firefox exposes no way to enable them.
const FIREFOX_SUITES: &[u16] = &[
    0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013,
    0xc014, 0x0033, 0x0039, 0x009c, 0x009d, 0x002f, 0x0035, 0x000a, 0x00ff,
];

/// Every cipher suite Go's crypto/tls implements, the insecure ones a
/// program can opt into included. Go has never implemented finite-field
/// Diffie-Hellman (DHE) or the SHA-384 CBC suites.
const GO_SUITES: &[u16] = &[
    0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc009, 0xc013, 0xc00a,
    0xc014, 0x009c, 0x009d, 0x002f, 0x0035, 0xc012, 0x000a, 0xc023, 0xc027, 0x003c, 0x0005, 0xc011,
    0xc007, 0x00ff,
];

/// Every key-exchange group Chrome has offered since 60: X25519, P-256,
/// P-384 (P-521 until 2015's removal, kept for safety), and the hybrid
/// post-quantum ones. Chrome has never offered X448 or finite-field groups.
const CHROMIUM_GROUPS: &[u16] = &[0x001d, 0x0017, 0x0018, 0x0019, 0x11ec, 0x6399];

/// Every group Firefox can offer: NSS's elliptic curves (no X448), the
/// finite-field groups, and the hybrid post-quantum ones.
const FIREFOX_GROUPS: &[u16] = &[
    0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104, 0x11ec, 0x6399,
];

/// How `hello` differs from what `claim` sends. `interceptor` is the known
/// interceptor whose hello this is, if any.
pub fn mismatches(
    claim: &Claim,
    hello: &ClientHello,
    interceptor: Option<&Interceptor>,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let at_least = |v: u32| claim.major.is_none_or(|m| m >= v);
    match claim.family {
        Family::Chromium => {
            if at_least(55) && !has_grease(hello) {
                out.push(Mismatch {
                    what: "GREASE",
                    detail: "none in the cipher suites, extensions or groups; Chrome has put \
                             GREASE values (RFC 8701) in every ClientHello since version 55"
                        .into(),
                    certain: true,
                });
            }
            if at_least(60) {
                out.extend(foreign_suites(hello, CHROMIUM_SUITES, "Chrome"));
                out.extend(foreign_groups(hello, CHROMIUM_GROUPS, "Chrome"));
            }
            if claim.major.is_some_and(|m| m >= 124)
                && !hello.key_shares().iter().any(|k| k.group.is_post_quantum())
            {
                out.push(Mismatch {
                    what: "post-quantum key share",
                    detail: "none; Chrome 124 and later send a hybrid ML-KEM (Kyber) key share \
                             unless a policy turns it off"
                        .into(),
                    certain: false,
                });
            }
            if claim.major.is_some_and(|m| m >= 117)
                && hello
                    .extension(ExtensionType::ENCRYPTED_CLIENT_HELLO)
                    .is_none()
            {
                out.push(Mismatch {
                    what: "encrypted_client_hello",
                    detail: "absent; Chrome 117 and later send it (as GREASE when the server \
                             publishes no ECH key) unless a policy turns it off"
                        .into(),
                    certain: false,
                });
            }
        }
        Family::Firefox => {
            if at_least(78) {
                out.extend(foreign_suites(hello, FIREFOX_SUITES, "Firefox"));
                out.extend(foreign_groups(hello, FIREFOX_GROUPS, "Firefox"));
            }
            if claim.major.is_some_and(|m| m >= 132)
                && !hello.key_shares().iter().any(|k| k.group.is_post_quantum())
            {
                out.push(Mismatch {
                    what: "post-quantum key share",
                    detail: "none; Firefox 132 and later send X25519MLKEM768 unless a preference \
                             turns it off"
                        .into(),
                    certain: false,
                });
            }
        }
        Family::Go => out.extend(foreign_suites(hello, GO_SUITES, "Go's crypto/tls")),
        // No trait of these is beyond their configuration (curl and wget
        // take cipher lists, Python and Node expose OpenSSL's settings, and
        // Safari's stack is not one we have checked): only a known
        // interceptor's hello, below, is evidence against them.
        Family::Safari | Family::Curl | Family::Wget | Family::Python | Family::Node => {}
    }
    if claim.family.is_browser() {
        if !hello.alpn().iter().any(|p| p.raw == b"h2") {
            out.push(Mismatch {
                what: "ALPN",
                detail: "does not offer h2; browsers offer HTTP/2 on every HTTPS connection \
                         unless started with it disabled"
                    .into(),
                certain: false,
            });
        }
        if hello.highest_version() != ProtocolVersion::TLS_1_3 {
            out.push(Mismatch {
                what: "TLS 1.3",
                detail: "not offered; current browsers offer TLS 1.3 unless a policy caps them"
                    .into(),
                certain: false,
            });
        }
    }
    if let Some(interceptor) = interceptor {
        if !interceptor.lookalikes.contains(&claim.family) {
            out.push(Mismatch {
                what: "the whole ClientHello",
                detail: format!(
                    "{}'s, which {} cannot send: {}",
                    interceptor.name,
                    claim.family.name(),
                    not_sent_because(claim.family)
                )
                .into(),
                certain: true,
            });
        }
    }
    out
}

/// Why the family cannot send a known interceptor's hello.
fn not_sent_because(family: Family) -> &'static str {
    match family {
        Family::Curl => {
            "curl built on OpenSSL always adds post_handshake_auth, and curl on any other TLS \
             library sends that library's own list"
        }
        Family::Chromium => "Chrome always adds GREASE and never offers DHE or CBC-SHA256 suites",
        Family::Firefox => "Firefox never offers DHE-GCM or CBC-SHA256 suites",
        Family::Safari => "Safari's stack never sends OpenSSL's ClientHello",
        Family::Go => "Go's crypto/tls implements no DHE suite",
        Family::Wget | Family::Python | Family::Node => "it can be set up to send this very hello",
    }
}

/// The suites of `hello` the family can never offer, as one certain mismatch.
fn foreign_suites(hello: &ClientHello, allowed: &[u16], who: &str) -> Option<Mismatch> {
    let listed = hello.cipher_suites.iter().map(|s| (s.0, s.to_string()));
    foreign(
        "cipher suites",
        "suites",
        listed,
        hello.cipher_suites.len(),
        allowed,
        who,
    )
}

/// The groups of `hello` the family can never offer, as one certain mismatch.
fn foreign_groups(hello: &ClientHello, allowed: &[u16], who: &str) -> Option<Mismatch> {
    let groups = hello.supported_groups();
    let listed = groups.iter().map(|g| (g.0, g.to_string()));
    foreign("groups", "groups", listed, groups.len(), allowed, who)
}

/// The values of a list outside what the family can offer (GREASE aside).
fn foreign(
    what: &'static str,
    noun: &str,
    listed: impl Iterator<Item = (u16, String)>,
    total: usize,
    allowed: &[u16],
    who: &str,
) -> Option<Mismatch> {
    let foreign: Vec<String> = listed
        .filter(|(value, _)| !is_grease(*value) && !allowed.contains(value))
        .map(|(_, name)| name)
        .collect();
    if foreign.is_empty() {
        return None;
    }
    let shown = foreign.len().min(4);
    let more = if foreign.len() > shown {
        format!(" and {} more", foreign.len() - shown)
    } else {
        String::new()
    };
    Some(Mismatch {
        what,
        detail: format!(
            "{} of {total} are {noun} {who} never offers: {}{more}",
            foreign.len(),
            foreign[..shown].join(", "),
        )
        .into(),
        certain: true,
    })
}

/// GREASE values and h2 in ALPN: what Chromium's hellos have and TLS
/// libraries' defaults lack. Only ever used to describe a client, never
/// to accuse one.
pub fn looks_like_browser(hello: &ClientHello) -> bool {
    has_grease(hello) && hello.alpn().iter().any(|p| p.raw == b"h2")
}

/// Any GREASE value where BoringSSL puts them.
fn has_grease(hello: &ClientHello) -> bool {
    hello.cipher_suites.iter().any(|s| is_grease(s.0))
        || hello.extensions.iter().any(|e| is_grease(e.kind.0))
        || hello.supported_groups().iter().any(|g| is_grease(g.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture;
    use crate::diagnose::interceptors::identify;
    use crate::diagnose::user_agent::claim;

    fn certain(ua: &str, hello: &ClientHello) -> Vec<&'static str> {
        let claim = claim(ua).expect("a known client");
        mismatches(&claim, hello, identify(hello))
            .into_iter()
            .filter(|m| m.certain)
            .map(|m| m.what)
            .collect()
    }

    const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36";

    #[test]
    fn chromium_own_hello_matches_its_claim() {
        let hello = fixture("chromium_pq");
        assert_eq!(certain(HEADLESS, &hello), Vec::<&str>::new());
        let claim = claim(HEADLESS).unwrap();
        assert_eq!(mismatches(&claim, &hello, None), vec![]);
    }

    #[test]
    fn mitmproxy_cannot_pass_for_chrome_or_curl() {
        let hello = fixture("mitmproxy_11_openssl_3_4");
        assert_eq!(
            certain(HEADLESS, &hello),
            ["GREASE", "cipher suites", "groups", "the whole ClientHello"]
        );
        assert_eq!(certain("curl/7.88.1", &hello), ["the whole ClientHello"]);
        assert_eq!(
            certain(
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                &hello
            ),
            // mitmproxy offers X448, which NSS does not implement.
            ["cipher suites", "groups", "the whole ClientHello"]
        );
        assert_eq!(
            certain("Go-http-client/1.1", &hello),
            ["cipher suites", "the whole ClientHello"]
        );
    }

    #[test]
    fn clients_that_can_be_set_up_like_mitmproxy_are_not_accused() {
        let hello = fixture("mitmproxy_11_openssl_3_4");
        for ua in [
            "Python-urllib/3.11",
            "python-requests/2.31.0",
            "node",
            "Wget/1.21.3",
        ] {
            assert_eq!(certain(ua, &hello), Vec::<&str>::new(), "{ua}");
        }
    }

    #[test]
    fn direct_tools_match_their_claims() {
        // curl as captured (OpenSSL 3), gnutls-cli and openssl s_client under
        // the names of the tools that are built on the same libraries.
        assert!(certain("curl/7.88.1", &fixture("curl_openssl3")).is_empty());
        assert!(certain("Wget/1.21.3", &fixture("gnutls_cli")).is_empty());
        assert!(certain(
            "Python-urllib/3.11",
            &fixture("openssl_s_client_tls13_default")
        )
        .is_empty());
    }
}
