//! What this server accepts: versions, suites, groups, signature schemes,
//! application protocols (ALPN) and the names its certificate covers. Built
//! from the rustls config and the certificate (again whenever the certificate
//! changes); read by diagnosis to explain mismatches ("you offered X, we
//! support Y").

use serde::Serialize;

use crate::hello::wire::{CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerProfile {
    pub versions: Vec<ProtocolVersion>,
    pub cipher_suites: Vec<CipherSuite>,
    pub groups: Vec<NamedGroup>,
    pub signature_schemes: Vec<SignatureScheme>,
    /// The application protocols (ALPN ids, RFC 7301) we serve, in our order of
    /// preference. `acme-tls/1`, offered only so a CA validating TLS-ALPN-01
    /// reaches its challenge certificate, is left out: telling a client to
    /// offer it would be wrong.
    pub alpn_protocols: Vec<String>,
    /// DNS names and IP addresses the certificate covers (`*.` wildcards allowed).
    pub served_names: Vec<String>,
    /// The common name of our certificate's issuer: a client shown another
    /// issuer is talking to someone else (an intercepting proxy).
    pub issuer_cn: Option<String>,
}

impl ServerProfile {
    /// Whether a client asking for `name` gets a certificate that matches it
    /// (RFC 6125: case-insensitive, a wildcard covers exactly one left-most label).
    pub fn serves(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.served_names.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(suffix) => name
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => pattern == name,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_names_like_a_client_would() {
        let p = ServerProfile {
            served_names: vec!["localhost".into(), "*.example.com".into()],
            ..Default::default()
        };
        assert!(p.serves("LOCALHOST."));
        assert!(p.serves("diag.example.com"));
        assert!(!p.serves("example.com"));
        assert!(!p.serves("a.b.example.com"));
        assert!(!p.serves("evil.test"));
    }
}
