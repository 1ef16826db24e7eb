//! The certificate the HTTPS listener presents: loading a PEM pair (checked:
//! parseable, key matching the leaf), generating a self-signed one for
//! localhost on first start, and the rustls server configuration built around
//! a swappable certificate ([`Served`]).
//!
//! - [`served`]: the certificate in service and its [`ServerProfile`]; rustls
//!   asks it for the certificate at every handshake, so a swap reaches new
//!   handshakes while established connections keep theirs.
//! - [`reload`]: `--tls-cert`/`--tls-key` read again on SIGHUP and on change.
//! - [`acme`]: certificates from an ACME CA (RFC 8555), renewed before expiry.

pub mod acme;
pub mod reload;
pub mod served;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::CertSource;
use crate::hello::wire::{CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme};
use crate::profile::ServerProfile;
pub use served::{Served, ServedCert};

/// Names the generated development certificate covers.
const DEV_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Largest certificate or key file read. Real chains are a few KiB; the bound
/// keeps a wrong path (a log, a disk image) from being read whole at every
/// reload check.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The application protocols (ALPN ids) we serve, in our order of preference:
/// one list for the rustls config and the profile diagnosis reads, so what we
/// tell a client we speak is what the handshake offered.
pub const SERVED_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Why a certificate or key cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is larger than {MAX_PEM_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: unreadable PEM certificate: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("{}: the leaf certificate cannot be parsed: {reason}", path.display())]
    BadLeaf { path: PathBuf, reason: String },
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

/// The certificate chain and key the server presents.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Where the chain was read from (or written to), for logs and tests.
    pub cert_path: PathBuf,
    /// Where the key was read from, for logs.
    pub key_path: PathBuf,
}

/// The certificate to start with: the configured files, or the generated
/// development certificate (also what ACME starts with until it has one).
pub fn load(source: &CertSource) -> Result<Identity> {
    match source {
        CertSource::Files { cert, key, .. } => Ok(read_pair(cert, key)?),
        CertSource::Generated { dir } | CertSource::Acme { dir, .. } => {
            let cert = dir.join("localhost.pem");
            let key = dir.join("localhost-key.pem");
            if !cert.exists() || !key.exists() {
                generate(dir, &cert, &key)?;
            }
            Ok(read_pair(&cert, &key)?)
        }
    }
}

fn generate(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("creating certificate directory {}", dir.display()))?;
    let names: Vec<String> = DEV_NAMES.iter().map(|s| s.to_string()).collect();
    let generated = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    fs::write(cert_path, generated.cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    write_private(key_path, generated.signing_key.serialize_pem().as_bytes())
        .with_context(|| format!("writing {}", key_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed development certificate for localhost");
    Ok(())
}

/// Writes a file only its owner can read (private keys, ACME credentials),
/// through a temporary file renamed into place, so a crash or a concurrent
/// reader never sees half a key.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// Reads a file of at most [`MAX_PEM_BYTES`].
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, CertError> {
    let read = |source| CertError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(CertError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Reads a PEM chain (leaf first) and its key.
pub fn read_pair(cert: &Path, key: &Path) -> Result<Identity, CertError> {
    let cert_pem = read_bounded(cert)?;
    let key_pem = read_bounded(key)?;
    parse_pair(&cert_pem, &key_pem, cert, key)
}

/// Parses a PEM chain and key already read; `cert` and `key` name them in errors.
pub fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert: &Path,
    key: &Path,
) -> Result<Identity, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::BadCertificate {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CertError::BadKey {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(Identity {
        chain,
        key: private,
        cert_path: cert.to_path_buf(),
        key_path: key.to_path_buf(),
    })
}

/// The crypto provider every certificate is loaded with.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls configuration (TLS 1.2 and 1.3, aws-lc-rs with X25519MLKEM768
/// preferred, ALPN h2 and http/1.1, never resumed) around `served`, which
/// chooses the certificate at each handshake. `acme_tls_alpn` also offers
/// `acme-tls/1`, so TLS-ALPN-01 validation can reach its challenge certificate.
pub fn server_config(served: Arc<Served>, acme_tls_alpn: bool) -> Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("configuring TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(served);
    config.alpn_protocols = SERVED_ALPN.iter().map(|p| p.as_bytes().to_vec()).collect();
    if acme_tls_alpn {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    // No resumption, by design: a resumed handshake skips our certificate
    // flight, the largest thing we send and the one a black hole toward the
    // client swallows first, so every attempt must be a full handshake to
    // test that direction. No session cache and no TLS 1.3 tickets also
    // means no per-handshake ticket work and no per-client state kept.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// What this server accepts and serves, for a certificate whose key signs
/// with `signing_key`.
fn profile(
    provider: &rustls::crypto::CryptoProvider,
    signing_key: &dyn rustls::sign::SigningKey,
    leaf: &CertificateDer<'_>,
) -> Result<ServerProfile, String> {
    let signature_schemes = all_signature_schemes()
        .filter(|s| {
            signing_key
                .choose_scheme(&[rustls::SignatureScheme::from(s.0)])
                .is_some()
        })
        .collect();
    Ok(ServerProfile {
        versions: vec![ProtocolVersion::TLS_1_3, ProtocolVersion::TLS_1_2],
        cipher_suites: provider
            .cipher_suites
            .iter()
            .map(|s| CipherSuite(u16::from(s.suite())))
            .collect(),
        groups: provider
            .kx_groups
            .iter()
            .map(|g| NamedGroup(u16::from(g.name())))
            .collect(),
        signature_schemes,
        alpn_protocols: SERVED_ALPN.iter().map(|p| (*p).to_owned()).collect(),
        served_names: served_names(leaf)?,
        issuer_cn: issuer_cn(leaf),
    })
}

fn all_signature_schemes() -> impl Iterator<Item = SignatureScheme> {
    [
        SignatureScheme::ECDSA_SECP256R1_SHA256,
        SignatureScheme::ECDSA_SECP384R1_SHA384,
        SignatureScheme::ECDSA_SECP521R1_SHA512,
        SignatureScheme::ED25519,
        SignatureScheme::RSA_PSS_RSAE_SHA256,
        SignatureScheme::RSA_PSS_RSAE_SHA384,
        SignatureScheme::RSA_PSS_RSAE_SHA512,
        SignatureScheme::RSA_PKCS1_SHA256,
        SignatureScheme::RSA_PKCS1_SHA384,
        SignatureScheme::RSA_PKCS1_SHA512,
    ]
    .into_iter()
}

/// The common name of the leaf's issuer, if it has one.
fn issuer_cn(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert.issuer().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_owned())
}

/// DNS names and IP addresses from the leaf's subjectAltName (or its CN when
/// it has none, as old certificates do).
fn served_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push(dns.to_string()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => {
                        names.push(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string())
                    }
                    16 => {
                        let mut octets = [0u8; 16];
                        octets.copy_from_slice(ip);
                        names.push(std::net::Ipv6Addr::from(octets).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            names.push(cn.to_string());
        }
    }
    Ok(names)
}
