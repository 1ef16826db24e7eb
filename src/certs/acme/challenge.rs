//! What the CA fetches to validate our names: HTTP-01 tokens (served by the
//! web routes at `/.well-known/acme-challenge/{token}`) and TLS-ALPN-01
//! challenge certificates (served by [`super::super::Served`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// At most this many HTTP-01 tokens at once (one per name being validated).
pub const MAX_TOKENS: usize = 128;

/// HTTP-01 key authorizations by token, while an order is being validated.
#[derive(Debug, Default)]
pub struct Http01Tokens {
    map: RwLock<HashMap<String, String>>,
}

impl Http01Tokens {
    /// The key authorization for `token`, if one is being validated.
    pub fn get(&self, token: &str) -> Option<String> {
        self.map.read().ok()?.get(token).cloned()
    }

    /// Serves `key_authorization` for `token` until removed; false when full.
    pub fn insert(&self, token: &str, key_authorization: &str) -> bool {
        let Ok(mut map) = self.map.write() else {
            return false;
        };
        if map.len() >= MAX_TOKENS && !map.contains_key(token) {
            return false;
        }
        map.insert(token.to_owned(), key_authorization.to_owned());
        true
    }

    pub fn remove(&self, token: &str) {
        if let Ok(mut map) = self.map.write() {
            map.remove(token);
        }
    }
}

/// Why a challenge certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("making the TLS-ALPN-01 certificate for {name}: {reason}")]
pub struct ChallengeCertError {
    name: String,
    reason: String,
}

/// The self-signed certificate TLS-ALPN-01 asks for (RFC 8737 §3): `name` as
/// its only subjectAltName and the SHA-256 of the key authorization in a
/// critical acmeIdentifier extension.
pub fn tls_alpn_certificate(
    name: &str,
    key_authorization_digest: &[u8],
) -> Result<Arc<CertifiedKey>, ChallengeCertError> {
    let fail = |reason: String| ChallengeCertError {
        name: name.to_owned(),
        reason,
    };
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(|e| fail(e.to_string()))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(
        key_authorization_digest,
    )];
    let key = rcgen::KeyPair::generate().map_err(|e| fail(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `CertifiedKey::from_der`: its consistency check parses the
    // certificate with webpki, which refuses the critical acmeIdentifier
    // extension this certificate exists to carry.
    let signing_key = super::super::provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| fail(e.to_string()))?;
    let certified = CertifiedKey::new(vec![cert.der().clone()], signing_key);
    Ok(Arc::new(certified))
}
