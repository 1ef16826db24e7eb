//! Loads the server certificate, or generates a self-signed one for localhost on
//! first start, and builds the rustls server configuration and the
//! [`ServerProfile`] that diagnosis compares clients against.
//!
//! Startup code: errors carry the file they concern and a hint.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::CertSource;
use crate::hello::wire::{CipherSuite, NamedGroup, ProtocolVersion, SignatureScheme};
use crate::profile::ServerProfile;

/// Names the generated development certificate covers.
const DEV_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The certificate chain and key the server presents.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Where the chain was read from (or written to), for logs and tests.
    pub cert_path: PathBuf,
}

pub fn load(source: &CertSource) -> Result<Identity> {
    match source {
        CertSource::Files { cert, key } => read_pair(cert, key),
        CertSource::Generated { dir } => {
            let cert = dir.join("localhost.pem");
            let key = dir.join("localhost-key.pem");
            if !cert.exists() || !key.exists() {
                generate(dir, &cert, &key)?;
            }
            read_pair(&cert, &key)
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
    write_private(key_path, generated.key_pair.serialize_pem().as_bytes())?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed development certificate for localhost");
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn read_pair(cert: &Path, key: &Path) -> Result<Identity> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("opening certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading PEM certificates from {}", cert.display()))?;
    if chain.is_empty() {
        bail!(
            "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "reading a PEM private key from {} (PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    Ok(Identity {
        chain,
        key,
        cert_path: cert.to_path_buf(),
    })
}

/// The rustls configuration (TLS 1.2 and 1.3, aws-lc-rs with X25519MLKEM768
/// preferred, ALPN h2 and http/1.1, never resumed) and the profile describing it.
pub fn server_config(identity: Identity) -> Result<(Arc<ServerConfig>, ServerProfile)> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let issuer_cn = issuer_cn(&identity.chain[0]);
    let served_names = served_names(&identity.chain[0]).with_context(|| {
        format!(
            "reading subject names from {}",
            identity.cert_path.display()
        )
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(identity.key.clone_key())
        .with_context(|| {
            format!(
                "loading the private key for {}",
                identity.cert_path.display()
            )
        })?;
    let signature_schemes = all_signature_schemes()
        .filter(|s| {
            signing_key
                .choose_scheme(&[rustls::SignatureScheme::from(s.0)])
                .is_some()
        })
        .collect();
    let profile = ServerProfile {
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
        served_names,
        issuer_cn,
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("configuring TLS versions")?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .with_context(|| {
            format!(
                "certificate and key in {} do not match",
                identity.cert_path.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // No resumption, by design: a resumed handshake skips our certificate
    // flight, the largest thing we send and the one a black hole toward the
    // client swallows first, so every attempt must be a full handshake to
    // test that direction. No session cache and no TLS 1.3 tickets also
    // means no per-handshake ticket work and no per-client state kept.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok((Arc::new(config), profile))
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
fn served_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .context("parsing the leaf certificate")?;
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
