//! Rules about the ClientHello itself and how it arrived.

use super::{Finding, Severity};
use crate::attempt::Arrival;
use crate::hello::model::ExtensionData;
use crate::hello::wire::ExtensionType;
use crate::hello::ClientHello;
use crate::profile::ServerProfile;
use crate::util::thousands;

/// TCP payload per packet at a 1,500-byte MTU with TCP timestamps (Linux's
/// default): 1500 - 20 (IPv4) - 20 (TCP) - 12 (timestamps). IPv6 headers are 20
/// bytes larger.
const SEGMENT_AT_1500_V4: usize = 1448;
const SEGMENT_AT_1500_V6: usize = 1428;

/// Linux's minimum retransmission timeout: a gap this long between pieces of
/// one ClientHello means a lost packet was resent, not a slow sender.
const RETRANSMIT_GAP_MS: f64 = 200.0;

pub(super) fn hello_size(hello: &ClientHello, ipv6: bool) -> Option<Finding> {
    let segment = if ipv6 {
        SEGMENT_AT_1500_V6
    } else {
        SEGMENT_AT_1500_V4
    };
    let size = hello.wire_length;
    if size <= segment {
        return None;
    }
    let packets = size.div_ceil(segment);
    let mut causes = Vec::new();
    for ext in &hello.extensions {
        match &ext.decoded {
            ExtensionData::KeyShare { shares } => {
                for share in shares.iter().filter(|s| s.group.is_post_quantum()) {
                    causes.push(format!(
                        "a post-quantum key share ({}, {} bytes)",
                        share.group,
                        thousands(share.key_exchange_length)
                    ));
                }
            }
            ExtensionData::Padding { padding_length } if *padding_length >= 64 => {
                causes.push(format!("padding ({} bytes)", thousands(*padding_length)));
            }
            ExtensionData::EncryptedClientHello(ech) => {
                if let Some(len) = ech.payload_length.filter(|l| *l >= 128) {
                    causes.push(format!(
                        "an encrypted ClientHello ({} bytes)",
                        thousands(len)
                    ));
                }
            }
            _ if ext.kind == ExtensionType::PRE_SHARED_KEY && ext.length >= 256 => {
                causes.push(format!(
                    "a resumption ticket ({} bytes)",
                    thousands(ext.length)
                ));
            }
            _ => {}
        }
    }
    let because = if causes.is_empty() {
        String::from(".")
    } else {
        format!(", because it carries {}.", join_and(&causes))
    };
    Some(
        Finding::new(
            "hello.multi-packet",
            Severity::Info,
            format!(
                "ClientHello of {} bytes needs {packets} packets",
                thousands(size)
            ),
        )
        .explain(format!(
            "Your ClientHello is {} bytes, so it needs at least {packets} packets at the common \
             1,500-byte MTU{because} That is normal for current browsers. It only fails on a path \
             that drops the second packet: one whose MTU is smaller (a VPN or tunnel) while ICMP \
             \"fragmentation needed\" is blocked, or a firewall that drops fragments. If your \
             HTTPS connections hang right after connecting, that is the first thing to check.",
            thousands(size)
        ))
        .evidence("ClientHello size", format!("{} bytes", thousands(size)))
        .evidence(
            "payload per packet at MTU 1,500",
            format!("{} bytes", thousands(segment)),
        ),
    )
}

pub(super) fn no_sni(hello: &ClientHello) -> Option<Finding> {
    if hello.extension(ExtensionType::SERVER_NAME).is_some() {
        return None;
    }
    Some(
        Finding::new(
            "tls.no-sni",
            Severity::Info,
            "The client sent no server name (SNI)",
        )
        .explain(
            "The ClientHello has no server_name extension. This server has one certificate, so \
                 here it changes nothing; but a server cannot tell which site you want before \
                 choosing a certificate, and servers that host several names \
                 (CDNs, load balancers, shared hosting) then answer with a default certificate \
                 whose name does not match, or refuse the handshake. Clients leave SNI out when \
                 they connect to an IP address or are configured not to send it.",
        )
        .evidence("server_name extension", "absent")
        .fix("Connect by hostname, not IP address.")
        .fix("openssl: pass -servername HOST; most libraries send SNI when given a hostname."),
    )
}

pub(super) fn sni_not_served(hello: &ClientHello, server: &ServerProfile) -> Option<Finding> {
    let sni = hello.sni()?;
    if server.serves(sni) {
        return None;
    }
    Some(
        Finding::new(
            "tls.sni-not-served",
            Severity::Warning,
            "The client asked for a name this server does not serve",
        )
        .explain(format!(
            "The ClientHello asks for \"{sni}\", but this server's certificate covers {}. A client \
             that checks hostnames will reject the certificate. Usually the name resolves to the \
             wrong server, or a proxy or DNS override sends the connection here.",
            join_and(&server.served_names)
        ))
        .evidence("requested name (SNI)", sni)
        .evidence("names served", server.served_names.join(", "))
        .fix(match crate::util::hostname(sni) {
            // Only a well-formed hostname goes into a command someone may paste.
            Some(name) => format!("Check where the name resolves: dig +short {name}"),
            None => "Check where the name resolves: dig +short <the-name> (the name sent has \
                     characters no hostname has, so it is not repeated here)"
                .to_owned(),
        })
        .fix("Connect with a name the certificate covers."),
    )
}

pub(super) fn legacy_ciphers_only(hello: &ClientHello) -> Option<Finding> {
    let offered = || {
        hello
            .cipher_suites
            .iter()
            .filter(|c| !c.is_grease() && !c.is_signalling())
    };
    // A modern client's first suite usually settles it: stop there.
    if offered().any(|c| c.is_modern() == Some(true)) || offered().all(|c| c.is_modern().is_none())
    {
        return None;
    }
    Some(
        Finding::new(
            "tls.legacy-ciphers-only",
            Severity::Warning,
            "The client offered only legacy cipher suites",
        )
        .explain(
            "None of the cipher suites the client offered combines forward secrecy (ECDHE/DHE) \
             with authenticated encryption (GCM, CCM, ChaCha20-Poly1305), which TLS 1.3 requires \
             and modern servers insist on. Expect handshake failures with current servers; this \
             client or its TLS library needs an update or a configuration change.",
        )
        .evidence("cipher suites offered", offered().count().to_string())
        .evidence("modern (forward secret + AEAD)", "0")
        .fix("Update the client's TLS library, or enable ECDHE-*-GCM / CHACHA20 suites in its configuration."),
    )
}

pub(super) fn slow_arrival(arrival: &Arrival) -> Option<Finding> {
    let (gap, after) = arrival
        .reads
        .windows(2)
        .map(|w| (w[1].at_ms - w[0].at_ms, w[0]))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    if gap < RETRANSMIT_GAP_MS {
        return None;
    }
    Some(
        Finding::new(
            "hello.slow-arrival",
            Severity::Warning,
            format!("Part of the ClientHello arrived {gap:.0} ms late"),
        )
        .explain(format!(
            "After the first {} bytes of the ClientHello, the next piece took {gap:.0} ms to \
             arrive. A pause this long inside one message usually means a packet was lost and \
             resent. Occasional loss is normal; if it happens on every connection, something on \
             the path drops packets of a certain size.",
            thousands(prefix_bytes(arrival, after.at_ms))
        ))
        .evidence("longest gap between reads", format!("{gap:.0} ms")),
    )
}

fn prefix_bytes(arrival: &Arrival, until_ms: f64) -> usize {
    arrival
        .reads
        .iter()
        .take_while(|r| r.at_ms <= until_ms)
        .map(|r| r.bytes)
        .sum()
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// check.sh's curl would not accept our certificate. Our own self-signed
/// development certificate is expected not to verify (info); a chain from an
/// issuer that is not ours means something on the path answered in our place.
pub(super) fn certificate_not_verified(
    check: &super::TlsCheck,
    server: &ServerProfile,
) -> Option<Finding> {
    // Only a certificate curl saw and refused: a browser that could not
    // complete HTTPS at all says nothing about our certificate.
    if check.verified || check.error.is_some() {
        return None;
    }
    let shown = check.issuer.as_deref().map(crate::util::printable);
    let shown_cn = shown.as_deref().and_then(common_name);
    let ours = server.issuer_cn.as_deref();
    let foreign = matches!((shown_cn, ours), (Some(shown), Some(ours)) if shown != ours);
    let f = if foreign {
        Finding::new(
            "tls.foreign-certificate",
            Severity::Warning,
            "Your HTTPS connection was answered with a certificate we did not send",
        )
        .explain(
            "curl on your computer was shown a certificate from another issuer than ours. Something \
             between you and us (a TLS-inspecting proxy or firewall, antivirus software) ends your \
             TLS connection and opens its own to us: what we see is its ClientHello, not yours, \
             and its limits are the ones that matter.",
        )
        .fix("Ask your network team whether TLS inspection is on, and exempt this host from it to test the direct path.")
        .fix("If inspection must stay, check that the proxy handles large (post-quantum) ClientHellos and full-size packets.")
    } else {
        Finding::new(
            "tls.certificate-not-verified",
            Severity::Info,
            "curl did not accept our certificate",
        )
        .explain(
            "curl could not verify our certificate against your trust store. The issuer it was \
             shown is ours, so nothing answered in our place: this test server's certificate is \
             simply not one your system trusts. The test went on without verification.",
        )
    };
    let mut f = f.evidence(
        "issuer curl was shown",
        shown.unwrap_or_else(|| "(curl did not say)".into()),
    );
    if let Some(ours) = ours {
        f = f.evidence("our certificate's issuer", format!("CN={ours}"));
    }
    if let Some(error) = &check.error {
        f = f.evidence("curl said", crate::util::printable(error));
    }
    Some(f)
}

/// The CN of an issuer as curl prints it ("C=US; O=Example; CN=Example CA",
/// or with commas).
fn common_name(issuer: &str) -> Option<&str> {
    issuer
        .split([';', ','])
        .map(str::trim)
        .find_map(|part| {
            part.strip_prefix("CN=")
                .or_else(|| part.strip_prefix("CN = "))
        })
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture;

    #[test]
    fn explains_a_post_quantum_hello_needs_two_packets() {
        let f = hello_size(&fixture("chromium_pq"), false).unwrap();
        assert_eq!(f.title, "ClientHello of 1,917 bytes needs 2 packets");
        assert!(f
            .explanation
            .contains("post-quantum key share (X25519MLKEM768, 1,216 bytes)"));
    }

    #[test]
    fn small_hellos_need_no_note() {
        assert!(hello_size(&fixture("curl_openssl3"), false).is_none());
    }

    #[test]
    fn flags_missing_sni() {
        assert!(no_sni(&fixture("openssl_s_client_noservername")).is_some());
        assert!(no_sni(&fixture("curl_openssl3")).is_none());
    }

    #[test]
    fn flags_a_legacy_only_client() {
        assert!(legacy_ciphers_only(&fixture("openssl_s_client_tls1_legacy")).is_some());
        assert!(legacy_ciphers_only(&fixture("chromium_pq")).is_none());
    }
}
