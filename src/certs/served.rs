//! The certificate in service. rustls asks [`Served`] for it at every
//! handshake (one lock-free load), so installing a new one reaches the next
//! handshake while established connections keep the one they were given;
//! the [`ServerProfile`] that reports and diagnosis read is swapped with it.
//!
//! It also answers TLS-ALPN-01 validation (RFC 8737): a handshake offering
//! only `acme-tls/1` gets the challenge certificate for its SNI, or nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{CertError, Identity, ACME_TLS_ALPN};
use crate::profile::ServerProfile;

/// At most this many TLS-ALPN-01 challenge certificates at once (one per
/// name being validated; an order holds at most 100 names).
pub const MAX_ALPN_CHALLENGES: usize = 128;

/// A checked certificate and key, ready to serve, with what reports and logs
/// say about it.
#[derive(Debug)]
pub struct ServedCert {
    pub key: Arc<CertifiedKey>,
    pub profile: Arc<ServerProfile>,
    /// Where it came from: a file path, or "ACME".
    pub origin: String,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
    pub subject: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Certificates in the chain and their total DER size: what the
    /// certificate flight of every handshake carries.
    pub chain_len: usize,
    pub chain_bytes: usize,
}

impl ServedCert {
    /// Checks the pair (the key loads, and matches the leaf) and describes it.
    pub fn new(identity: Identity, origin: impl Into<String>) -> Result<Self, CertError> {
        let provider = super::provider();
        let Identity {
            chain,
            key,
            cert_path,
            key_path,
        } = identity;
        let bad_leaf = |reason: String| CertError::BadLeaf {
            path: cert_path.clone(),
            reason,
        };
        let leaf = chain
            .first()
            .ok_or_else(|| CertError::NoCertificate {
                path: cert_path.clone(),
            })?
            .clone();
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| bad_leaf(e.to_string()))?;
        let serial = super::acme::hex(parsed.raw_serial());
        let subject = parsed.subject().to_string();
        let not_before = asn1_time(parsed.validity().not_before);
        let not_after = asn1_time(parsed.validity().not_after);
        let signing_key =
            provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| CertError::BadKey {
                    path: key_path.clone(),
                    reason: e.to_string(),
                })?;
        let profile = super::profile(&provider, signing_key.as_ref(), &leaf).map_err(bad_leaf)?;
        let chain_len = chain.len();
        let chain_bytes = chain.iter().map(|c| c.len()).sum();
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            Ok(()) => {}
            // A key type rustls cannot compare: the handshake would show it.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(CertError::KeyMismatch {
                    cert: cert_path,
                    key: key_path,
                })
            }
            Err(other) => return Err(bad_leaf(other.to_string())),
        }
        Ok(Self {
            key: Arc::new(certified),
            profile: Arc::new(profile),
            origin: origin.into(),
            serial,
            subject,
            not_before,
            not_after,
            chain_len,
            chain_bytes,
        })
    }
}

fn asn1_time(t: x509_parser::time::ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        SystemTime::UNIX_EPOCH
    }
}

/// The certificate in service, and the profile reports read beside it.
#[derive(Debug)]
pub struct Served {
    current: ArcSwap<ServedCert>,
    profile: Arc<ArcSwap<ServerProfile>>,
    /// TLS-ALPN-01 challenge certificates by lowercase name.
    alpn_challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Served {
    /// Serves `first`, and keeps `profile` (the one the web state reads)
    /// equal to the profile of whatever is served.
    pub fn new(first: ServedCert, profile: Arc<ArcSwap<ServerProfile>>) -> Arc<Self> {
        profile.store(first.profile.clone());
        Arc::new(Self {
            current: ArcSwap::from_pointee(first),
            profile,
            alpn_challenges: RwLock::new(HashMap::new()),
        })
    }

    /// What is being served now.
    pub fn current(&self) -> Arc<ServedCert> {
        self.current.load_full()
    }

    /// Serves `cert` from the next handshake on.
    pub fn install(&self, cert: ServedCert) {
        tracing::info!(
            origin = %cert.origin,
            subject = %cert.subject,
            serial = %cert.serial,
            not_after = %humantime::format_rfc3339_seconds(cert.not_after),
            chain_certificates = cert.chain_len,
            chain_bytes = cert.chain_bytes,
            "serving a new certificate"
        );
        self.profile.store(cert.profile.clone());
        self.current.store(Arc::new(cert));
    }

    /// Answers TLS-ALPN-01 validation for `name` with `key` until removed.
    /// Returns false (and adds nothing) when the table is full.
    pub fn add_alpn_challenge(&self, name: &str, key: Arc<CertifiedKey>) -> bool {
        let name = name.to_ascii_lowercase();
        let Ok(mut map) = self.alpn_challenges.write() else {
            return false;
        };
        if map.len() >= MAX_ALPN_CHALLENGES && !map.contains_key(&name) {
            return false;
        }
        map.insert(name, key);
        true
    }

    pub fn remove_alpn_challenge(&self, name: &str) {
        if let Ok(mut map) = self.alpn_challenges.write() {
            map.remove(&name.to_ascii_lowercase());
        }
    }
}

impl ResolvesServerCert for Served {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // RFC 8737 §3: the validator offers acme-tls/1 and nothing else. A
        // client also offering h2 gets h2 and the real certificate.
        let acme_only = hello.alpn().is_some_and(|protocols| {
            let mut any = false;
            let all = protocols.into_iter().all(|p| {
                any = true;
                p == ACME_TLS_ALPN
            });
            any && all
        });
        if acme_only {
            let name = hello.server_name()?.to_ascii_lowercase();
            let map = self.alpn_challenges.read().ok()?;
            return map.get(&name).cloned();
        }
        Some(self.current.load().key.clone())
    }
}
