//! Rules about how an attempt ended: one finding per failed outcome, in plain
//! language, with this attempt's numbers and the change that fixes it.

use super::fixes::{self, IpVersion};
use super::{Finding, Severity};
use crate::attempt::{Outcome, StallEnd, TlsAttempt};
use crate::hello::error::NotTlsKind;
use crate::hello::wire::{
    AlertDescription, CipherSuite, ExtensionType, NamedGroup, SignatureScheme,
};
use crate::hello::ClientHello;
use crate::profile::ServerProfile;
use crate::util::{printable, thousands};

pub(super) fn outcome(attempt: &TlsAttempt, server: &ServerProfile) -> Option<Finding> {
    let hello = attempt.client_hello.as_ref();
    let ip = IpVersion::of(attempt.peer.ip());
    match &attempt.outcome {
        Outcome::Completed => None,
        Outcome::NoData { ended } => Some(no_data(*ended, attempt)),
        Outcome::HelloIncomplete {
            received,
            expected,
            ended,
            out_of_order_segments,
        } => Some(hello_incomplete(
            *received,
            *expected,
            *ended,
            *out_of_order_segments,
            attempt,
        )),
        Outcome::NotTls { what, preview } => Some(not_tls(*what, preview)),
        Outcome::Malformed { detail } => Some(
            Finding::new("tls.malformed-hello", Severity::Error, "The ClientHello is malformed")
                .explain(
                    "The bytes look like TLS but break its rules, so no TLS server will accept them. \
                     Either the client's TLS library is broken, or a middlebox on the path rewrote \
                     the handshake and got it wrong.",
                )
                .evidence("what was wrong", detail.clone())
                .fix("Try the same client from another network: if it works there, a middlebox on this path is rewriting TLS.")
                .fix("Otherwise update the client's TLS library."),
        ),
        Outcome::VersionTooOld { offered } => Some(version_too_old(*offered, hello, server)),
        Outcome::NoSharedCipher => Some(no_shared_cipher(hello, server)),
        Outcome::NoSharedGroup => Some(no_shared_group(hello, server)),
        Outcome::NoSharedSignatureScheme => Some(no_shared_signature_scheme(hello, server)),
        Outcome::NoApplicationProtocol { offered, supported } => {
            Some(no_common_alpn(offered, supported, hello))
        }
        Outcome::ClientAlert { alert } => Some(client_alert(*alert, hello)),
        Outcome::ClosedMidHandshake if interceptor_took_our_flight(attempt).is_some() => {
            interceptor_took_our_flight(attempt).map(interceptor_hung_up)
        }
        Outcome::ClosedMidHandshake => Some(fixes::for_black_hole_toward_client(
            Finding::new(
                "tls.closed-mid-handshake",
                Severity::Error,
                "The client hung up after its ClientHello",
            )
            .explain(
                "Your ClientHello arrived complete and we answered with our ServerHello and \
                 certificate, then the client closed the connection without a word (no TLS alert). \
                 Clients do this when they give up waiting for our answer: if our reply (several \
                 packets, because of the certificate) never reached them, the path drops large \
                 packets toward the client. Some old clients also close silently on a certificate \
                 they dislike.",
            )
            .evidence("handshake ended after", ms(attempt.handshake_ms)),
            ip,
        )),
        Outcome::ResetMidHandshake => Some(
            Finding::new(
                "tls.reset-mid-handshake",
                Severity::Error,
                "The connection was reset during the handshake",
            )
            .explain(
                "After the ClientHello arrived, the connection was reset (TCP RST) instead of \
                 continuing the handshake. Either the client gave up and closed its socket with our \
                 reply still unread (the kernel then resets rather than closes: look in the client's \
                 own error message for why it gave up), or a firewall or intrusion-prevention system \
                 on the path inspected the handshake (the server name, an unusual extension) and \
                 killed the connection.",
            )
            .evidence("reset after", ms(attempt.handshake_ms))
            .fix("Check the firewall/IPS logs on the client's network for this connection and time.")
            .fix("Compare with a connection from outside that network: if it works there, the middlebox is the cause."),
        ),
        Outcome::HandshakeTimeout => Some(fixes::for_black_hole_toward_client(
            Finding::new(
                "tls.handshake-timeout",
                Severity::Error,
                "The client went silent after our reply",
            )
            .explain(
                "Your ClientHello arrived complete and we answered, but the client never sent the \
                 rest of its handshake. Our reply spans several full-size packets; if the path \
                 toward the client drops packets above its MTU and the ICMP messages that would \
                 report it, the client never receives it and waits forever. That is an MTU black \
                 hole in the server-to-client direction.",
            )
            .evidence("waited", ms(attempt.handshake_ms)),
            ip,
        )),
        Outcome::OtherError { detail } => Some(
            Finding::new("tls.handshake-failed", Severity::Error, "The TLS handshake failed")
                .explain("The handshake failed for a reason not covered by the other checks; the TLS stack's own words are below.")
                .evidence("TLS error", detail.clone()),
        ),
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{:.1} s", v / 1000.0))
}

fn no_data(ended: StallEnd, attempt: &TlsAttempt) -> Finding {
    let waited = format!("{:.1} s", attempt.arrival.capture_ms / 1000.0);
    let (title, severity) = match ended {
        StallEnd::Timeout => ("TCP connected, but no ClientHello arrived", Severity::Error),
        StallEnd::Closed => (
            "The client connected and closed without sending anything",
            Severity::Warning,
        ),
        StallEnd::Reset => (
            "The client connected and reset without sending anything",
            Severity::Warning,
        ),
        // Browsers open spare connections they may never use: not a fault yet.
        StallEnd::Waiting => (
            "A connection is open with no ClientHello on it yet",
            Severity::Info,
        ),
    };
    let f = Finding::new("tcp.no-data", severity, title)
        .explain(format!(
            "The TCP connection opened, so the port is reachable, but not one byte of TLS arrived \
             ({}). If a TLS client made this connection, its ClientHello was lost on the way: a \
             ClientHello that fills a whole packet is exactly what a path with a smaller MTU and \
             blocked ICMP swallows. Port scanners and TCP health checks produce this too, and are \
             harmless.",
            match ended {
                StallEnd::Timeout => format!("we waited {waited}"),
                StallEnd::Closed => format!("the client closed after {waited}"),
                StallEnd::Reset => format!("the connection was reset after {waited}"),
                StallEnd::Waiting => format!("still waiting after {waited}"),
            }
        ))
        .evidence("bytes received", "0")
        .evidence("waited", waited);
    fixes::for_black_hole_toward_server(f, IpVersion::of(attempt.peer.ip()))
}

fn hello_incomplete(
    received: usize,
    expected: Option<usize>,
    ended: StallEnd,
    out_of_order: u32,
    attempt: &TlsAttempt,
) -> Finding {
    let of = expected.map_or_else(String::new, |m| format!(" of {}", thousands(m)));
    let after = format!("{:.1} s", attempt.arrival.capture_ms / 1000.0);
    let how = match ended {
        StallEnd::Timeout => format!("then nothing for {after}"),
        StallEnd::Closed => format!("then the client gave up and closed after {after}"),
        StallEnd::Reset => format!("then the connection was reset after {after}"),
        StallEnd::Waiting => format!("then nothing for {after} so far (still waiting)"),
    };
    let first_piece = attempt.arrival.reads.first().map_or(0, |r| r.bytes);
    let (title, what) = if received == 0 {
        (
            "The first packet of your ClientHello never arrived".to_owned(),
            format!(
                "TCP connected and {out_of_order} later piece(s) of your ClientHello arrived, but the \
                 first, full-size packet never did ({how}). A small tail getting through while the \
                 large packet before it vanishes"
            ),
        )
    } else {
        (
            format!(
                "Your ClientHello stopped after {}{of} bytes",
                thousands(received)
            ),
            format!(
                "The first {}{of} bytes of your ClientHello arrived, {how}. The start came through \
                 and the rest never did",
                thousands(received)
            ),
        )
    };
    let ip = IpVersion::of(attempt.peer.ip());
    let mut finding = Finding::new("tls.hello-incomplete", Severity::Error, title)
        .explain(format!(
            "{what}: the classic sign of a path from you to us that drops packets larger than its \
             MTU (a VPN, tunnel or MPLS overlay) while {} is blocked, so your computer never \
             learns to send smaller packets.{} Small requests work and TCP connects, so it looks \
             like a TLS problem; it is a packet-size problem.",
            ip.too_big_message(),
            match ip {
                IpVersion::V4 => " A firewall that drops IP fragments does the same.",
                IpVersion::V6 => "",
            }
        ))
        .evidence("bytes received in order", thousands(received))
        .evidence(
            "bytes the ClientHello announced",
            expected.map_or_else(|| "unknown".into(), thousands),
        );
    if let Some(balancer) = &attempt.balancer {
        // Its pieces are the balancer's segments, not the client's packets.
        finding = finding.evidence(
            "received through",
            format!(
                "a load balancer ({}): where the rest was lost, between you and it or in it, only \
                 the balancer can tell",
                balancer.via.balancer.ip().to_canonical()
            ),
        );
    } else if received > 0 {
        finding = finding
            .evidence("first piece", format!("{} bytes", thousands(first_piece)))
            .evidence("pieces received", attempt.arrival.read_count.to_string());
    }
    if out_of_order > 0 {
        finding = finding.evidence("later segments held out of order", out_of_order.to_string());
    }
    if let Some(tcp) = &attempt.tcp {
        if tcp.rcv_mss > 0 {
            finding = finding.evidence(
                "largest segment received",
                format!("{} bytes", thousands(tcp.rcv_mss as usize)),
            );
        }
    }
    if let Some(syn) = &attempt.syn {
        if let (Some(mss), Some(mtu)) = (syn.mss, syn.implied_mtu) {
            finding = finding.evidence(
                "your computer's MSS (from its SYN)",
                format!(
                    "{mss} bytes, so it sends packets of up to {} bytes",
                    thousands(mtu as usize)
                ),
            );
        }
    }
    finding = finding.evidence("waited", after);
    if ended == StallEnd::Reset {
        finding = finding.fix("A reset in mid-hello can also be a firewall/IPS killing the connection: check its logs.");
    }
    fixes::for_black_hole_toward_server(finding, ip)
}

/// An incomplete ClientHello from a client that sends without "don't
/// fragment" (IPv4): its large packet was cut into fragments on the way, and
/// they were dropped — the seed incident's firewall rule.
pub(super) fn hello_fragments_dropped(attempt: &TlsAttempt) -> Option<Finding> {
    let Outcome::HelloIncomplete {
        received, expected, ..
    } = &attempt.outcome
    else {
        return None;
    };
    let syn = attempt.syn.as_ref()?;
    if IpVersion::of(attempt.peer.ip()) != IpVersion::V4 || syn.dont_fragment != Some(false) {
        return None;
    }
    let of = expected.map_or_else(String::new, |m| format!(" of {}", thousands(m)));
    Some(
        Finding::new(
            "path.fragments-dropped",
            Severity::Error,
            match received {
                0 => "IP fragments from your network are dropped: the first packet of your \
                      ClientHello never arrived"
                    .to_owned(),
                n => format!(
                    "IP fragments from your network are dropped: your ClientHello stopped after \
                     {}{of} bytes",
                    thousands(*n)
                ),
            },
        )
        .explain(
            "Your computer sends without the \"don't fragment\" flag, so a router with a smaller \
             MTU splits its large packets into fragments instead of asking for smaller ones. The \
             part of your ClientHello that needed a full-size packet never arrived, so something on \
             the path drops the fragments: a firewall rule that discards all IP fragments as a \
             \"hardening\" measure is the usual cause.",
        )
        .evidence("don't-fragment flag in your SYN", "not set")
        .evidence("bytes received in order", thousands(*received))
        .fix("Let IP fragments through the firewall (or at least fragments of established TCP connections).")
        .fix(fixes::CLAMP_MSS)
        .fix(fixes::FIX_TUNNEL_MTU),
    )
}

fn not_tls(what: NotTlsKind, preview: &str) -> Finding {
    let (title, explanation, fix) = match what {
        NotTlsKind::PlainHttp | NotTlsKind::PlainHttp2 => (
            "Plain HTTP was sent to the HTTPS port",
            "The client spoke unencrypted HTTP to the port that expects TLS: usually an http:// URL \
             with the HTTPS port number, or a proxy configured for the wrong scheme.",
            "Use https:// for this port (or the plain-HTTP port for http://).",
        ),
        NotTlsKind::Ssh => (
            "An SSH client connected to the HTTPS port",
            "The client sent an SSH banner: it was pointed at the wrong port.",
            "Point the SSH client at the SSH port.",
        ),
        NotTlsKind::Sslv2Hello => (
            "The client sent an SSL 2.0-format ClientHello",
            "SSL 2.0 and its hello format are obsolete and insecure (RFC 6176); no current server \
             accepts them. Only very old clients, or ones explicitly configured for SSLv2 \
             compatibility, send this.",
            "Update the client, or disable its SSLv2-compatible hello.",
        ),
        NotTlsKind::OtherTlsRecord => (
            "The connection started with a TLS record that is not a handshake",
            "A TLS connection must start with a ClientHello. This one started with another record \
             type, as if the client thought a session was already established: a proxy or client bug.",
            "Check for a proxy between the client and this server.",
        ),
        NotTlsKind::ProxyProtocol => (
            "A PROXY protocol header was sent to a server not configured for it",
            "The connection starts with a PROXY protocol header (this looks like one: \"PROXY \
             ...\" or the binary v2 signature). A load balancer (HAProxy send-proxy, AWS NLB \
             with proxy protocol, ...) is sending PROXY to a server not configured for it, so \
             the header is not trusted and the TLS handshake cannot start.",
            "Either start tlsdiag with --proxy-protocol (then every connection must carry the \
             header), or turn PROXY protocol off on the load balancer.",
        ),
        NotTlsKind::Unknown => (
            "Something other than TLS was sent to the HTTPS port",
            "The first bytes are not TLS. A different protocol's client, a scanner, or a middlebox \
             that injected its own data can cause this.",
            "Check which program made the connection and where it was pointed.",
        ),
    };
    Finding::new("tls.not-tls", Severity::Error, title)
        .explain(explanation)
        .evidence("what it looked like", what.describe())
        .evidence("first bytes", preview.to_owned())
        .fix(fix)
}

fn version_label(v: crate::hello::wire::ProtocolVersion) -> String {
    v.to_string()
}

fn version_too_old(
    offered: crate::hello::wire::ProtocolVersion,
    hello: Option<&ClientHello>,
    server: &ServerProfile,
) -> Finding {
    let mut f = Finding::new(
        "tls.version-too-old",
        Severity::Error,
        format!(
            "The client offered at most {}; this server needs TLS 1.2 or newer",
            version_label(offered)
        ),
    )
    .explain(format!(
        "Your client's highest TLS version is {}. TLS 1.0 and 1.1 were deprecated in 2021 (RFC \
         8996) and current servers refuse them. The client, its TLS library or its configuration \
         must allow TLS 1.2 or 1.3.",
        version_label(offered)
    ))
    .evidence("highest version offered", version_label(offered));
    if let Some(h) = hello {
        f = f.evidence("legacy_version", h.legacy_version.to_string());
        let versions: Vec<String> = h
            .supported_versions()
            .iter()
            .map(|v| v.to_string())
            .collect();
        f = f.evidence(
            "supported_versions",
            if versions.is_empty() {
                "(absent)".into()
            } else {
                versions.join(", ")
            },
        );
    }
    f.evidence(
        "this server accepts",
        server.versions.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "),
    )
    .fix("Enable TLS 1.2 in the client: Java -Dhttps.protocols=TLSv1.2,TLSv1.3; .NET: use the OS default (SslProtocols.None) on .NET 4.7+; curl/openssl: remove --tlsv1.0/--tls-max 1.1 or -tls1_1.")
    .fix("On old systems, update the OS or TLS library (Windows 7 needs KB3140245 for TLS 1.2 in WinHTTP).")
}

fn list<T: ToString>(items: impl Iterator<Item = T>) -> String {
    let v: Vec<String> = items.map(|i| i.to_string()).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

fn no_shared_cipher(hello: Option<&ClientHello>, server: &ServerProfile) -> Finding {
    let offered = hello.map_or_else(
        || "(unknown)".into(),
        |h| {
            list(
                h.cipher_suites
                    .iter()
                    .filter(|c| !c.is_grease())
                    .map(|c: &CipherSuite| c.to_string()),
            )
        },
    );
    Finding::new(
        "tls.no-shared-cipher",
        Severity::Error,
        "No cipher suite in common",
    )
    .explain(
        "None of the cipher suites the client offered is one this server accepts. Usually the client \
         offers only legacy suites (RSA key exchange, CBC, 3DES, RC4) that modern servers have \
         removed, or it was restricted to a list that does not overlap.",
    )
    .evidence("client offered", offered)
    .evidence("this server accepts", list(server.cipher_suites.iter()))
    .fix("Enable ECDHE with AES-GCM or ChaCha20-Poly1305 suites in the client (e.g. openssl -cipher 'ECDHE+AESGCM:ECDHE+CHACHA20'), or update its TLS library.")
}

fn no_shared_group(hello: Option<&ClientHello>, server: &ServerProfile) -> Finding {
    let offered = hello.map_or_else(
        || "(unknown)".into(),
        |h| {
            list(
                h.supported_groups()
                    .iter()
                    .filter(|g| !g.is_grease())
                    .map(|g: &NamedGroup| g.to_string()),
            )
        },
    );
    Finding::new(
        "tls.no-shared-group",
        Severity::Error,
        "No key-exchange group in common",
    )
    .explain(
        "The client offered no elliptic curve or finite-field group this server supports for key \
         exchange (or left the supported_groups/key_share extensions out).",
    )
    .evidence("client offered", offered)
    .evidence("this server accepts", list(server.groups.iter()))
    .fix("Allow x25519 or secp256r1 in the client (openssl: -groups X25519:P-256).")
}

fn no_shared_signature_scheme(hello: Option<&ClientHello>, server: &ServerProfile) -> Finding {
    let offered = hello.map_or_else(
        || "(unknown)".into(),
        |h| {
            list(h.signature_algorithms().iter().map(|s: &SignatureScheme| {
                s.describe().unwrap_or_else(|| format!("0x{:04x}", s.0))
            }))
        },
    );
    Finding::new(
        "tls.no-shared-signature-scheme",
        Severity::Error,
        "No signature algorithm in common",
    )
    .explain(
        "The client does not accept any signature algorithm this server's certificate key can \
         produce, so the server cannot prove its identity.",
    )
    .evidence("client accepts", offered)
    .evidence(
        "this server can sign with",
        list(server.signature_schemes.iter()),
    )
    .fix(
        "Allow ECDSA and RSA-PSS signatures with SHA-256 in the client, or update its TLS library.",
    )
}

/// HTTP/3 (RFC 9114) and its drafts' ALPN ids: `h3`, `h3-29`, Google's `h3-Q050`.
fn is_h3(id: &str) -> bool {
    id == "h3" || id.starts_with("h3-")
}

/// `offered` is the outcome's (bounded) copy of the client's ALPN list, whose
/// ids are the peer's bytes: shown through [`printable`].
fn no_common_alpn(
    offered: &[String],
    supported: &[String],
    hello: Option<&ClientHello>,
) -> Finding {
    let total = hello.map_or(offered.len(), |h| h.alpn().len());
    let mut theirs = list(offered.iter().map(|id| printable(id)));
    if total > offered.len() {
        theirs.push_str(&format!(" and {} more", thousands(total - offered.len())));
    }
    let ours = list(supported.iter());
    let only_h3 =
        total == offered.len() && !offered.is_empty() && offered.iter().all(|id| is_h3(id));
    // Only a QUIC stack adds this extension (RFC 9001 §8.2).
    let quic_parameters = hello.is_some_and(|h| {
        h.extension(ExtensionType::QUIC_TRANSPORT_PARAMETERS)
            .is_some()
    });
    let alert = AlertDescription::NO_APPLICATION_PROTOCOL.to_string();
    let f = if only_h3 || quic_parameters {
        let why = match (only_h3, quic_parameters) {
            (true, true) => {
                format!("it offers only HTTP/3 ({theirs}) and carries QUIC transport parameters")
            }
            (true, false) => format!("it offers only HTTP/3 ({theirs})"),
            (false, _) => "it carries QUIC transport parameters".to_owned(),
        };
        Finding::new(
            "tls.no-common-alpn",
            Severity::Error,
            "A QUIC ClientHello was sent over TCP",
        )
        .explain(format!(
            "This is a QUIC ClientHello: {why}. HTTP/3 runs over QUIC, on UDP, with the TLS \
             handshake carried inside QUIC packets, so no server can agree to it on a TCP \
             connection. The client thinks it is talking QUIC/HTTP/3 but sent its ClientHello over \
             TCP: usually TLS settings made for a QUIC connection reused for a TCP one. Over TCP \
             this server speaks {ours}, none of which the client offered, so it ended the \
             handshake with the {alert} alert."
        ))
        .evidence("client offered", theirs)
        .evidence("this server speaks", ours.clone())
        .fix(format!(
            "Over TCP (HTTPS), offer one of {ours} in ALPN; keep h3 for connections made over QUIC."
        ))
        .fix("To use HTTP/3, send the ClientHello inside QUIC, over UDP, to a server that serves HTTP/3: this server does not.")
    } else {
        Finding::new(
            "tls.no-common-alpn",
            Severity::Error,
            "No application protocol (ALPN) in common",
        )
        .explain(format!(
            "With ALPN (RFC 7301) the client lists the application protocols it can speak over \
             TLS and the server picks one. None of the client's ({theirs}) is one this server \
             speaks ({ours}), so it ended the handshake with the {alert} alert rather than guess. \
             Either the client was pointed at the wrong service, or it was configured with \
             protocol names this server does not use."
        ))
        .evidence("client offered", theirs)
        .evidence("this server speaks", ours.clone())
        .fix(format!(
            "Let the client offer one of {ours} (openssl s_client: -alpn http/1.1), or send no ALPN extension at all."
        ))
        .fix("If the client speaks a protocol other than HTTP, point it at the host and port of that service.")
    };
    let f = f.evidence("alert we sent", alert);
    if quic_parameters {
        f.evidence(
            "quic_transport_parameters",
            "present: a QUIC stack built this ClientHello",
        )
    } else {
        f
    }
}

fn client_alert(alert: AlertDescription, hello: Option<&ClientHello>) -> Finding {
    let name = alert.to_string();
    let certificate_alert = matches!(
        alert,
        AlertDescription::UNKNOWN_CA
            | AlertDescription::BAD_CERTIFICATE
            | AlertDescription::CERTIFICATE_UNKNOWN
            | AlertDescription::UNSUPPORTED_CERTIFICATE
    );
    if certificate_alert {
        if let Some(interceptor) = hello.and_then(super::interceptors::identify) {
            return interceptor_rejected_certificate(interceptor, &name);
        }
    }
    match alert {
        _ if certificate_alert => Finding::new(
            "tls.client-rejected-certificate",
            Severity::Error,
            format!("The client does not trust this server's certificate ({name})"),
        )
        .explain(
            "The client received our certificate chain and rejected it. Either the chain is \
             incomplete (a missing intermediate that browsers fetch by themselves but other clients \
             do not), or the client's trust store lacks the root: an outdated CA bundle, a container \
             without ca-certificates, a Java keystore, or a client pinned to a corporate \
             TLS-inspection CA that only trusts certificates its proxy issues.",
        )
        .evidence("alert from the client", name)
        .evidence(
            "who sent it",
            if hello.is_some_and(super::client_traits::looks_like_browser) {
                "a browser-like client (GREASE values and h2 in its ClientHello): a proxy that \
                 re-signs certificates would have answered the browser itself, so the browser saw \
                 our certificate and lacks a trust path to it"
            } else {
                "a client we cannot name from its ClientHello"
            },
        )
        .fix("See the chain we send: openssl s_client -connect SERVER:443 -servername NAME -showcerts")
        .fix("Server side: serve the full chain (leaf + intermediates).")
        .fix("Client side: update its CA bundle (apt-get install --reinstall ca-certificates; update-ca-certificates), or add the missing root to its trust store."),
        AlertDescription::CERTIFICATE_EXPIRED => Finding::new(
            "tls.client-says-certificate-expired",
            Severity::Error,
            "The client says our certificate has expired",
        )
        .explain(
            "The client judged our certificate outside its validity period. If the certificate is \
             current, the client's clock is wrong: check its date and time sync.",
        )
        .evidence("alert from the client", name)
        .fix("Check the client's clock: date -u; timedatectl status (enable NTP)."),
        AlertDescription::PROTOCOL_VERSION => Finding::new(
            "tls.client-alert",
            Severity::Error,
            "The client rejected the protocol version (protocol_version)",
        )
        .explain("The client refused the TLS version we chose: it may be configured for a version range this server does not support.")
        .evidence("alert from the client", name)
        .fix("Let the client offer TLS 1.2 and TLS 1.3."),
        other => Finding::new(
            "tls.client-alert",
            Severity::Error,
            format!("The client aborted the handshake ({other})"),
        )
        .explain(match other {
            AlertDescription::HANDSHAKE_FAILURE => "The client found nothing acceptable in our reply (cipher, group or certificate); its own logs say which.",
            AlertDescription::DECODE_ERROR | AlertDescription::ILLEGAL_PARAMETER => "The client could not parse or accept a field in our reply: a client bug, or a middlebox that altered the handshake.",
            AlertDescription::USER_CANCELED => "The client (or its user) cancelled the handshake.",
            AlertDescription::UNRECOGNIZED_NAME => "The client expected us to recognise the server name it sent.",
            _ => "The client sent a TLS alert and closed the connection.",
        })
        .evidence("alert from the client", name),
    }
}

/// The known interceptor whose hello opened `attempt`, when it received our
/// whole handshake flight: then its hanging up was its own decision, not
/// packets lost on the way.
fn interceptor_took_our_flight(
    attempt: &TlsAttempt,
) -> Option<&'static super::interceptors::Interceptor> {
    let delivered = attempt
        .handshake_flight
        .is_some_and(|f| f.fate == crate::attempt::Fate::Delivered && f.written > 0);
    if !delivered {
        return None;
    }
    super::interceptors::identify(attempt.client_hello.as_ref()?)
}

/// A known interceptor received our certificate and closed without a word.
fn interceptor_hung_up(interceptor: &super::interceptors::Interceptor) -> Finding {
    Finding::new(
        "tls.interceptor-rejected-certificate",
        Severity::Error,
        format!(
            "A TLS-intercepting proxy ({}) hung up on receiving this server's certificate",
            interceptor.name
        ),
    )
    .explain(
        "The ClientHello of this connection is an intercepting proxy's, not a browser's or a \
         tool's: the proxy ends your TLS connections and opens its own to us. It received our \
         whole handshake (every byte acknowledged) and closed the connection without a TLS \
         alert, which is what it does when it cannot verify a server's certificate against its \
         own trust store; your client is then shown the proxy's error instead of our site.",
    )
    .evidence(
        "recognised as",
        format!("{} ({})", interceptor.name, interceptor.source),
    )
    .evidence("on refusal", interceptor.on_refusal)
    .fix("Ask your network team to exempt this host from TLS inspection (the proxy's bypass list).")
    .fix("Or add the root of our certificate chain to the proxy's upstream trust store.")
}

/// A known TLS-intercepting proxy made the connection and refused our
/// certificate: the customer's client never reached us at all.
fn interceptor_rejected_certificate(
    interceptor: &super::interceptors::Interceptor,
    alert: &str,
) -> Finding {
    Finding::new(
        "tls.interceptor-rejected-certificate",
        Severity::Error,
        format!(
            "A TLS-intercepting proxy ({}) refused this server's certificate ({alert})",
            interceptor.name
        ),
    )
    .explain(
        "The ClientHello of this connection is an intercepting proxy's, not a browser's or a \
         tool's: the proxy ends your TLS connections and opens its own to us. It checked our \
         certificate against its own trust store and refused it, so it cannot have shown your \
         client our site; your client sees the proxy's error page or certificate instead.",
    )
    .evidence("alert from the proxy", alert)
    .evidence(
        "recognised as",
        format!("{} ({})", interceptor.name, interceptor.source),
    )
    .fix("Ask your network team to exempt this host from TLS inspection (the proxy's bypass list).")
    .fix("Or add the root of our certificate chain to the proxy's upstream trust store.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture;
    use crate::hello::wire::ProtocolVersion;

    #[test]
    fn names_the_offered_version() {
        let f = version_too_old(ProtocolVersion::TLS_1_1, None, &ServerProfile::default());
        assert!(f.title.contains("TLS 1.1"), "{}", f.title);
    }

    #[test]
    fn trust_alerts_point_at_the_chain() {
        let f = client_alert(AlertDescription::UNKNOWN_CA, None);
        assert_eq!(f.id, "tls.client-rejected-certificate");
        assert!(f.title.contains("unknown_ca"));
    }

    #[test]
    fn a_browser_refusing_our_certificate_is_said_to_lack_the_trust_path() {
        let hello = fixture("chromium_pq");
        let f = client_alert(AlertDescription::BAD_CERTIFICATE, Some(&hello));
        assert_eq!(f.id, "tls.client-rejected-certificate");
        let who = f
            .evidence
            .iter()
            .find(|e| e.label == "who sent it")
            .unwrap();
        assert!(
            who.value.starts_with("a browser-like client"),
            "{}",
            who.value
        );
        let curl = fixture("curl_openssl3");
        let f = client_alert(AlertDescription::UNKNOWN_CA, Some(&curl));
        let who = f
            .evidence
            .iter()
            .find(|e| e.label == "who sent it")
            .unwrap();
        assert!(
            who.value.starts_with("a client we cannot name"),
            "{}",
            who.value
        );
    }

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn shown<'a>(f: &'a Finding, label: &str) -> &'a str {
        let e = f.evidence.iter().find(|e| e.label == label);
        e.map_or_else(|| panic!("no {label:?} in {f:#?}"), |e| e.value.as_str())
    }

    const HTTP: [&str; 2] = ["h2", "http/1.1"];

    #[test]
    fn no_common_alpn_names_both_lists() {
        // openssl s_client -alpn foo
        let f = no_common_alpn(&ids(&["foo"]), &ids(&HTTP), None);
        assert_eq!(f.id, "tls.no-common-alpn");
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.title, "No application protocol (ALPN) in common");
        assert_eq!(shown(&f, "client offered"), "foo");
        assert_eq!(shown(&f, "this server speaks"), "h2, http/1.1");
        assert_eq!(shown(&f, "alert we sent"), "no_application_protocol");
        assert!(
            f.explanation.contains("(foo)") && f.explanation.contains("(h2, http/1.1)"),
            "{}",
            f.explanation
        );
        assert!(!f.explanation.contains("QUIC"), "{}", f.explanation);
    }

    #[test]
    fn only_h3_is_a_quic_hello_over_tcp() {
        for offered in [&["h3"][..], &["h3-29"], &["h3", "h3-29", "h3-Q050"]] {
            let f = no_common_alpn(&ids(offered), &ids(&HTTP), None);
            assert_eq!(f.id, "tls.no-common-alpn");
            assert_eq!(
                f.title, "A QUIC ClientHello was sent over TCP",
                "{offered:?}"
            );
            assert!(
                f.explanation.contains("sent its ClientHello over TCP"),
                "{}",
                f.explanation
            );
            assert!(
                f.fix.iter().any(|s| s.contains("h2, http/1.1")),
                "{:?}",
                f.fix
            );
        }
        // h3 beside a protocol that is not HTTP/3 is a plain mismatch.
        let f = no_common_alpn(&ids(&["h3", "foo"]), &ids(&HTTP), None);
        assert_eq!(f.title, "No application protocol (ALPN) in common");
        let f = no_common_alpn(&ids(&["h30"]), &ids(&HTTP), None);
        assert_eq!(f.title, "No application protocol (ALPN) in common");
    }

    #[test]
    fn a_quic_stacks_hello_is_named_quic_whatever_its_alpn() {
        // What rustls' QUIC client puts in its CRYPTO frames, framed as a TLS
        // record: as if written to a TCP socket.
        let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        config.alpn_protocols = vec![b"hq-interop".to_vec()];
        let mut conn = rustls::quic::ClientConnection::new(
            std::sync::Arc::new(config),
            rustls::quic::Version::V1,
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            vec![0x01, 0x02, 0x40, 0x64],
        )
        .unwrap();
        let mut message = Vec::new();
        conn.write_hs(&mut message);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend(u16::try_from(message.len()).unwrap().to_be_bytes());
        record.extend(message);
        let hello = crate::hello::parse_client_hello(&record).unwrap();
        let f = no_common_alpn(&ids(&["hq-interop"]), &ids(&HTTP), Some(&hello));
        assert_eq!(f.title, "A QUIC ClientHello was sent over TCP");
        assert!(shown(&f, "quic_transport_parameters").starts_with("present"));
    }

    #[test]
    fn hostile_alpn_ids_are_shown_escaped() {
        // Lossy UTF-8 (as the outcome keeps them), with a terminal escape and
        // a right-to-left override.
        let offered = ids(&["x\u{1b}[31m", "\u{fffd}\u{fffd}", "a\u{202e}b"]);
        let f = no_common_alpn(&offered, &ids(&HTTP), None);
        let text = format!("{} {}", shown(&f, "client offered"), f.explanation);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert_eq!(
            shown(&f, "client offered"),
            "x\\u{1b}[31m, \u{fffd}\u{fffd}, a\\u{202e}b"
        );
    }

    #[test]
    fn mitmproxy_refusing_our_certificate_is_named() {
        let hello = fixture("mitmproxy_11_openssl_3_4");
        let f = client_alert(AlertDescription::UNKNOWN_CA, Some(&hello));
        assert_eq!(f.id, "tls.interceptor-rejected-certificate");
        assert_eq!(
            f.title,
            "A TLS-intercepting proxy (mitmproxy) refused this server's certificate (unknown_ca)"
        );
        // Any other alert from it is just an alert.
        let f = client_alert(AlertDescription::USER_CANCELED, Some(&hello));
        assert_eq!(f.id, "tls.client-alert");
    }
}
