//! Display rows derived from the view model, shared by the HTML and text
//! renderers so both show the same words.

use crate::hello::model::{Extension, ExtensionData};
use crate::hello::wire::CipherSuite;
use crate::tcp::SynInfo;
use crate::util::thousands;

use super::{ConnectionReport, HelloView, TlsView};

/// A labelled value.
#[derive(Debug, Clone)]
pub struct Fact {
    pub label: &'static str,
    pub value: String,
}

fn fact(label: &'static str, value: impl Into<String>) -> Fact {
    Fact {
        label,
        value: value.into(),
    }
}

#[derive(Debug, Clone)]
pub struct CipherRow {
    pub hex: String,
    pub name: String,
    pub note: &'static str,
}

#[derive(Debug, Clone)]
pub struct ExtensionRow {
    pub hex: String,
    pub name: String,
    pub length: usize,
    pub detail: String,
}

impl ConnectionReport {
    /// The connection at a glance.
    pub fn connection_facts(&self) -> Vec<Fact> {
        let mut out = vec![fact(
            "Client",
            format!("{} port {}", self.client.address, self.client.port),
        )];
        match self.tls.as_ref().and_then(|t| t.negotiated.as_ref()) {
            Some(n) => {
                out.push(fact(
                    "Protocol",
                    format!("{} over {}", self.connection.http.http_version, n.version),
                ));
                out.push(fact("Cipher suite", n.cipher_suite.to_string()));
                out.push(fact(
                    "Key exchange",
                    n.key_exchange_group.map_or("-".into(), |g| g.to_string()),
                ));
                out.push(fact(
                    "ALPN",
                    n.alpn.clone().unwrap_or_else(|| "(none)".into()),
                ));
            }
            None => out.push(fact(
                "Protocol",
                format!("{}, not encrypted", self.connection.http.http_version),
            )),
        }
        if let Some(ms) = self.tls.as_ref().and_then(|t| t.handshake_ms) {
            out.push(fact("Handshake", format!("{ms:.1} ms from connect")));
        }
        if let Some(syn) = &self.syn {
            out.push(fact("Your SYN", syn_summary(syn)));
        }
        if let Some(lb) = &self.load_balancer {
            out.push(fact(
                "Load balancer",
                format!(
                    "{} port {}, PROXY protocol v{} ({}): client address from its header",
                    lb.address,
                    lb.port,
                    lb.proxy_version,
                    match lb.kind {
                        crate::proxy::ViaKind::Proxied => "client named",
                        crate::proxy::ViaKind::HealthCheck => "LOCAL: health check",
                        crate::proxy::ViaKind::Unnamed => "client not named",
                    }
                ),
            ));
            if let Some(syn) = &lb.syn {
                out.push(fact("Balancer's SYN (not yours)", syn_summary(syn)));
            }
        }
        if let Some(ua) = &self.connection.http.user_agent {
            out.push(fact("User-Agent", ua.clone()));
        }
        out
    }
}

impl TlsView {
    pub fn arrival_sentence(&self) -> String {
        let a = &self.arrival;
        let mut text = format!(
            "{} bytes in {} read{}",
            thousands(a.bytes),
            a.read_count,
            if a.read_count == 1 { "" } else { "s" }
        );
        if a.tls_records > 0 {
            text.push_str(&format!(
                ", {} TLS record{}",
                a.tls_records,
                if a.tls_records == 1 { "" } else { "s" }
            ));
        }
        text.push_str(&format!(", complete after {:.1} ms", a.capture_ms));
        text
    }
}

impl HelloView {
    pub fn facts(&self) -> Vec<Fact> {
        let h = &self.hello;
        let versions: Vec<String> = h
            .supported_versions()
            .iter()
            .map(|v| v.to_string())
            .collect();
        vec![
            fact(
                "Record layer",
                h.records
                    .iter()
                    .map(|r| format!("{} ({} bytes)", r.version, thousands(usize::from(r.length))))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            fact(
                "Handshake length",
                format!("{} bytes", thousands(h.handshake_length as usize)),
            ),
            fact("legacy_version", h.legacy_version.to_string()),
            fact(
                "supported_versions",
                if versions.is_empty() {
                    "(absent)".into()
                } else {
                    versions.join(", ")
                },
            ),
            fact("Highest offered", self.highest_version.to_string()),
            fact("SNI", self.sni.clone().unwrap_or_else(|| "(none)".into())),
            fact(
                "ALPN",
                if self.alpn.is_empty() {
                    "(none)".into()
                } else {
                    self.alpn.join(", ")
                },
            ),
            fact("Session ID", format!("{} bytes", h.session_id.len())),
            fact(
                "Compression",
                h.compression_methods
                    .iter()
                    .map(|m| {
                        if *m == 0 {
                            "null".to_string()
                        } else {
                            format!("{m}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            fact("Random", crate::hello::model::to_hex(&h.random)),
        ]
    }

    pub fn cipher_rows(&self) -> Vec<CipherRow> {
        self.hello
            .cipher_suites
            .iter()
            .map(|c| cipher_row(*c))
            .collect()
    }

    pub fn extension_rows(&self) -> Vec<ExtensionRow> {
        self.hello
            .extensions
            .iter()
            .map(|e| ExtensionRow {
                hex: format!("0x{:04x}", e.kind.0),
                name: e
                    .kind
                    .label()
                    .map_or_else(|| "unknown".to_string(), str::to_owned),
                length: e.length,
                detail: extension_detail(e),
            })
            .collect()
    }
}

/// "MSS 1,460 (packets up to 1,500 bytes), TTL 64 (0 hops), window 64,240 ×2^7, SACK, timestamps".
pub fn syn_summary(syn: &SynInfo) -> String {
    let mut parts = Vec::new();
    match (syn.mss, syn.implied_mtu) {
        (Some(mss), Some(mtu)) => parts.push(format!(
            "MSS {} (packets up to {} bytes)",
            thousands(usize::from(mss)),
            thousands(mtu as usize)
        )),
        _ => parts.push("no MSS option".to_owned()),
    }
    parts.push(format!(
        "{} {} ({} hop{} from an initial {})",
        if syn.ip_version == 4 {
            "TTL"
        } else {
            "hop limit"
        },
        syn.ttl,
        syn.hops,
        if syn.hops == 1 { "" } else { "s" },
        syn.initial_ttl
    ));
    let mut window = format!("window {}", thousands(usize::from(syn.window)));
    if let Some(scale) = syn.window_scale {
        window.push_str(&format!(" ×2^{scale}"));
    }
    parts.push(window);
    if syn.sack_permitted {
        parts.push("SACK".into());
    }
    if syn.timestamps {
        parts.push("timestamps".into());
    }
    if syn.dont_fragment == Some(false) {
        parts.push("DF not set".into());
    }
    parts.join(", ")
}

fn cipher_row(c: CipherSuite) -> CipherRow {
    CipherRow {
        hex: format!("0x{:04x}", c.0),
        name: c
            .label()
            .map_or_else(|| "unknown".to_string(), str::to_owned),
        note: if c.is_grease() {
            "GREASE"
        } else if c.is_signalling() {
            "signalling value"
        } else {
            match c.is_modern() {
                Some(true) => "",
                Some(false) => "legacy",
                None => "unknown",
            }
        },
    }
}

/// One line describing a decoded extension body.
pub fn extension_detail(e: &Extension) -> String {
    let list = |items: Vec<String>| items.join(", ");
    match &e.decoded {
        ExtensionData::ServerName { names } => list(names.iter().map(|n| n.name.clone()).collect()),
        ExtensionData::Alpn { protocols } | ExtensionData::ApplicationSettings { protocols } => {
            list(protocols.iter().map(|p| p.name().into_owned()).collect())
        }
        ExtensionData::SupportedGroups { groups } => {
            list(groups.iter().map(|g| g.to_string()).collect())
        }
        ExtensionData::EcPointFormats { formats } => list(
            formats
                .iter()
                .map(|f| match f {
                    0 => "uncompressed".to_string(),
                    1 => "ansiX962_compressed_prime".to_string(),
                    2 => "ansiX962_compressed_char2".to_string(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        ExtensionData::SignatureAlgorithms { schemes } => list(
            schemes
                .iter()
                .map(|s| s.describe().unwrap_or_else(|| format!("0x{:04x}", s.0)))
                .collect(),
        ),
        ExtensionData::SupportedVersions { versions } => {
            list(versions.iter().map(|v| v.to_string()).collect())
        }
        ExtensionData::KeyShare { shares } => list(
            shares
                .iter()
                .map(|s| format!("{} ({} bytes)", s.group, thousands(s.key_exchange_length)))
                .collect(),
        ),
        ExtensionData::PskKeyExchangeModes { modes } => list(
            modes
                .iter()
                .map(|m| match m {
                    0 => "psk_ke".to_string(),
                    1 => "psk_dhe_ke".to_string(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        ExtensionData::PreSharedKey {
            identities,
            binders,
        } => {
            format!("{identities} identities, {binders} binders")
        }
        ExtensionData::SessionTicket { ticket_length: 0 } => "empty (requesting a ticket)".into(),
        ExtensionData::SessionTicket { ticket_length } => {
            format!("ticket of {} bytes", thousands(*ticket_length))
        }
        ExtensionData::Padding { padding_length } => {
            format!("{} bytes of padding", thousands(*padding_length))
        }
        ExtensionData::EncryptedClientHello(ech) => match ech.payload_length {
            Some(len) => format!(
                "outer, config {}, payload {} bytes",
                ech.config_id.unwrap_or(0),
                thousands(len)
            ),
            None => "inner".into(),
        },
        ExtensionData::RenegotiationInfo { .. } => "initial handshake".into(),
        ExtensionData::StatusRequest { status_type: 1 } => "OCSP".into(),
        ExtensionData::StatusRequest { status_type } => format!("type {status_type}"),
        ExtensionData::CompressCertificate { algorithms } => list(
            algorithms
                .iter()
                .map(|a| match a {
                    1 => "zlib".to_string(),
                    2 => "brotli".to_string(),
                    3 => "zstd".to_string(),
                    other => format!("0x{other:04x}"),
                })
                .collect(),
        ),
        ExtensionData::RecordSizeLimit { limit } => {
            format!("{} bytes", thousands(usize::from(*limit)))
        }
        ExtensionData::Empty => String::new(),
        ExtensionData::Malformed { reason } => format!("malformed: {reason}"),
        _ => String::new(),
    }
}
