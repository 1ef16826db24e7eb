//! Findings that something between the client and us handles its traffic:
//! a TLS client that cannot be the one the request names (an intercepting
//! proxy), and the headers a forwarding proxy adds.
//!
//! The bar is zero false positives: `tls.intercepted` fires only on a trait
//! no direct client of the claimed family can produce (`client_traits`);
//! what a policy or flag could explain is shown beside it, never alone.

use super::client_traits::{self, Mismatch};
use super::user_agent::claim;
use super::{interceptors, Finding, Severity};
use crate::attempt::{RequestFacts, TlsAttempt};
use crate::hello::ClientHello;
use crate::util::printable;

/// Characters of a User-Agent shown as evidence.
const SHOWN_USER_AGENT_CHARS: usize = 160;

/// The attempt's TLS client is not the client its first request names.
pub(super) fn intercepted(attempt: &TlsAttempt) -> Option<Finding> {
    let facts = attempt.first_request.get()?;
    let f = intercepted_hello(attempt.client_hello.as_ref()?, facts)?;
    // The SYN's TTL is only ever supporting evidence: an operating system's
    // default can be changed.
    let ttl = attempt
        .syn
        .as_ref()
        .zip(facts.user_agent.as_deref())
        .and_then(|(syn, ua)| ttl_mismatch(ua, syn.initial_ttl));
    Some(match ttl {
        Some(text) => f.evidence("SYN's initial TTL", text),
        None => f,
    })
}

/// The SYN's initial TTL against the operating system the User-Agent
/// names: Windows starts at 128, Linux, Android, macOS and iOS at 64.
fn ttl_mismatch(user_agent: &str, initial_ttl: u8) -> Option<String> {
    let (os, expected) = if user_agent.contains("Windows NT") {
        ("Windows", 128)
    } else if ["Android", "Linux", "Mac OS X", "iPhone", "iPad"]
        .iter()
        .any(|os| user_agent.contains(os))
    {
        ("your operating system", 64)
    } else {
        return None;
    };
    (initial_ttl != expected).then(|| {
        format!(
            "{initial_ttl}, where {os} starts at {expected}: the SYN too may come from the \
             middlebox (supporting only: the default can be changed)"
        )
    })
}

fn intercepted_hello(hello: &ClientHello, facts: &RequestFacts) -> Option<Finding> {
    let user_agent = facts.user_agent.as_deref()?;
    let claim = claim(user_agent)?;
    let interceptor = interceptors::identify(hello);
    let mismatches = client_traits::mismatches(&claim, hello, interceptor);
    if !mismatches.iter().any(|m| m.certain) {
        return None;
    }
    let title = match interceptor {
        Some(i) if !i.lookalikes.contains(&claim.family) => format!(
            "Your HTTPS is intercepted: {} made this TLS connection, not your {claim}",
            i.name
        ),
        _ => format!(
            "Your HTTPS is intercepted: this TLS connection was not made by the {claim} your \
             request came from"
        ),
    };
    let mut f = Finding::new("tls.intercepted", Severity::Warning, title)
        .explain(
            "Your request names its client, and the ClientHello that opened this connection has \
             traits that client cannot produce (listed below). Something between you and us ends \
             your TLS connection and opens its own to us: a TLS-inspecting proxy or firewall, \
             antivirus software, or a program that only claims to be your browser. What this \
             report shows of the ClientHello and its path is that middlebox's, not your \
             client's: your own hello (with post-quantum key shares it is 1.7 KB or more) can \
             break where the middlebox's small one gets through, and the reverse.",
        )
        .evidence("your request says", shown_user_agent(user_agent))
        .evidence("ClientHello we received", hello_summary(hello));
    if let Some(i) = interceptor {
        f = f.evidence("recognised as", format!("{} ({})", i.name, i.source));
    }
    for m in &mismatches {
        f = f.evidence(m.what, describe(m));
    }
    Some(
        f.fix("Exempt this host from TLS inspection (the proxy's bypass list) and test again: you will then see your client's own ClientHello.")
            .fix("If inspection must stay, check that the proxy's TLS stack supports post-quantum key exchange (X25519MLKEM768) and ClientHellos larger than one packet: browsers send both, and inspection products that cannot are a known cause of failed handshakes.")
            .fix("Expect the proxy's root CA, not ours, in the chain your client is shown: openssl s_client -connect HOST:443 -showcerts from the client's network names the issuer that answers."),
    )
}

fn describe(m: &Mismatch) -> String {
    if m.certain {
        m.detail.clone().into_owned()
    } else {
        format!("{} (supporting only: a setting can explain it)", m.detail)
    }
}

fn shown_user_agent(user_agent: &str) -> String {
    let mut shown: String = user_agent.chars().take(SHOWN_USER_AGENT_CHARS).collect();
    if shown.len() < user_agent.len() {
        shown.push('…');
    }
    printable(&shown)
}

fn hello_summary(hello: &ClientHello) -> String {
    let groups: Vec<String> = hello
        .key_shares()
        .iter()
        .map(|k| k.group.to_string())
        .collect();
    format!(
        "{} bytes, {} cipher suites, {} extensions, key shares: {}",
        crate::util::thousands(hello.wire_length),
        hello.cipher_suites.len(),
        hello.extensions.len(),
        if groups.is_empty() {
            "none".to_owned()
        } else {
            groups.join(", ")
        }
    )
}

/// The request carried headers a forwarding proxy adds. Over TLS only a
/// proxy that decrypted it can have added them (or the client itself);
/// over plain HTTP a transparent proxy handles the customer's unencrypted
/// traffic, which matters less but is worth knowing.
pub fn proxy_headers(facts: &RequestFacts, encrypted: bool) -> Option<Finding> {
    if facts.proxy_headers.is_empty() {
        return None;
    }
    let f = if encrypted {
        Finding::new(
            "http.proxy-headers",
            Severity::Warning,
            "A proxy that decrypted your HTTPS request added its headers to it",
        )
        .explain(
            "Your request arrived over HTTPS with headers a forwarding proxy adds (Via, \
             Forwarded, X-Forwarded-For). Over an encrypted connection only something that \
             decrypted it can add them: a TLS-inspecting proxy, unless your client sets them \
             itself.",
        )
        .fix("Exempt this host from TLS inspection and test again.")
    } else {
        Finding::new(
            "http.proxy-headers",
            Severity::Info,
            "A proxy forwarded your plain-HTTP request",
        )
        .explain(
            "Your plain-HTTP request arrived with headers a forwarding proxy adds (Via, \
             Forwarded, X-Forwarded-For): a proxy on your network handles unencrypted web \
             traffic. HTTPS may be sent through it too; the HTTPS attempts below say whether \
             their TLS client was yours.",
        )
    };
    Some(facts.proxy_headers.iter().fold(f, |f, h| {
        f.evidence("header", printable(&format!("{}: {}", h.name, h.value)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::ProxyHeader;
    use crate::diagnose::fixture;

    fn facts(ua: &str, version: &str) -> RequestFacts {
        RequestFacts {
            user_agent: Some(ua.to_owned()),
            http_version: version.to_owned(),
            proxy_headers: Vec::new(),
        }
    }

    const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36";

    #[test]
    fn mitmproxy_behind_chrome_is_named_with_each_mismatch() {
        let f = intercepted_hello(
            &fixture("mitmproxy_11_openssl_3_4"),
            &facts(HEADLESS, "HTTP/2"),
        )
        .expect("a finding");
        assert_eq!(f.id, "tls.intercepted");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(
            f.title,
            "Your HTTPS is intercepted: mitmproxy made this TLS connection, not your HeadlessChrome 156"
        );
        let labels: Vec<&str> = f.evidence.iter().map(|e| &*e.label).collect();
        for label in [
            "your request says",
            "recognised as",
            "GREASE",
            "cipher suites",
            "post-quantum key share",
        ] {
            assert!(labels.contains(&label), "{label} in {labels:?}");
        }
        let ciphers = f
            .evidence
            .iter()
            .find(|e| e.label == "cipher suites")
            .unwrap();
        // 11 of mitmproxy's 28 suites are outside Chrome's list (DHE, and the
        // SHA-256/384 CBC suites), counted by hand from mitmproxy's source.
        assert!(
            ciphers
                .value
                .starts_with("11 of 28 are suites Chrome never offers"),
            "{}",
            ciphers.value
        );
        assert_eq!(f.fix.len(), 3);
    }

    #[test]
    fn mitmproxy_behind_curl_is_named() {
        let f = intercepted_hello(
            &fixture("mitmproxy_11_openssl_3_4"),
            &facts("curl/7.88.1", "HTTP/2"),
        )
        .expect("a finding");
        assert!(f
            .title
            .ends_with("mitmproxy made this TLS connection, not your curl"));
    }

    #[test]
    fn direct_clients_get_no_finding() {
        for (hello, ua) in [
            ("chromium_pq", HEADLESS),
            ("curl_openssl3", "curl/7.88.1"),
            ("gnutls_cli", "Wget/1.21.3"),
            ("openssl_s_client_tls13_default", "Python-urllib/3.11"),
            ("mitmproxy_11_openssl_3_4", "Python-urllib/3.11"),
        ] {
            assert!(
                intercepted_hello(&fixture(hello), &facts(ua, "HTTP/1.1")).is_none(),
                "{hello} as {ua}"
            );
        }
    }

    #[test]
    fn an_unknown_or_missing_user_agent_claims_nothing() {
        let hello = fixture("mitmproxy_11_openssl_3_4");
        assert!(intercepted_hello(&hello, &facts("my-agent/1.0", "HTTP/1.1")).is_none());
        let none = RequestFacts {
            user_agent: None,
            http_version: "HTTP/1.1".into(),
            proxy_headers: Vec::new(),
        };
        assert!(intercepted_hello(&hello, &none).is_none());
    }

    #[test]
    fn a_hostile_user_agent_is_shown_escaped_and_cut() {
        let ua = format!("curl/8.0\u{1b}[31m{}", "x".repeat(400));
        let f = intercepted_hello(
            &fixture("mitmproxy_11_openssl_3_4"),
            &facts(&ua, "HTTP/1.1"),
        )
        .expect("a finding");
        let shown = &f.evidence[0].value;
        assert!(!shown.contains('\u{1b}') && shown.ends_with('…'));
        assert!(shown.chars().count() < 200);
    }

    #[test]
    fn the_syn_ttl_is_checked_against_the_named_os() {
        let win = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0";
        assert!(ttl_mismatch(win, 64)
            .unwrap()
            .starts_with("64, where Windows starts at 128"));
        assert_eq!(ttl_mismatch(win, 128), None);
        assert!(ttl_mismatch(HEADLESS, 128).is_some());
        assert_eq!(ttl_mismatch(HEADLESS, 64), None);
        assert_eq!(ttl_mismatch("curl/8.0", 128), None);
    }

    #[test]
    fn proxy_headers_are_warned_over_tls_and_noted_over_plain_http() {
        let mut facts = facts("curl/8.0", "HTTP/1.1");
        assert!(proxy_headers(&facts, true).is_none());
        facts.proxy_headers.push(ProxyHeader {
            name: "via".into(),
            value: "1.1 squid".into(),
        });
        let tls = proxy_headers(&facts, true).unwrap();
        assert_eq!(tls.severity, Severity::Warning);
        assert_eq!(tls.evidence[0].value, "via: 1.1 squid");
        assert_eq!(
            proxy_headers(&facts, false).unwrap().severity,
            Severity::Info
        );
    }
}
