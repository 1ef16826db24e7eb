//! ACME state on disk, under the data directory, so a restart reuses the
//! account and the certificate instead of ordering again:
//!
//! ```text
//! <data-dir>/acme/<first 16 hex digits of SHA-256(directory URL)>/
//!     directory.txt   the directory URL (for people)
//!     account.json    account id and key (0600)
//!     cert.pem        the issued chain, leaf first
//!     key.pem         its private key (0600)
//! ```
//!
//! One folder per directory URL: an account exists only at the CA that made
//! it, and switching between staging and production must not mix them.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::certs::{self, CertError, ServedCert};

/// Why ACME state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an ACME account file: {reason}", path.display())]
    Account { path: PathBuf, reason: String },
}

/// Where one ACME directory's state lives.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path, directory_url: &str) -> Self {
        let digest = Sha256::digest(directory_url.as_bytes());
        let name = super::hex(&digest[..8]);
        Self {
            dir: data_dir.join("acme").join(name),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// Creates the folder and notes which directory it belongs to.
    pub fn prepare(&self, directory_url: &str) -> Result<(), StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let note = self.dir.join("directory.txt");
        fs::write(&note, format!("{directory_url}\n")).map_err(io(&note))
    }

    /// The saved account, if any.
    pub fn load_account(&self) -> Result<Option<instant_acme::AccountCredentials>, StoreError> {
        let path = self.account_path();
        let bytes = match certs::read_bounded(&path) {
            Ok(bytes) => bytes,
            Err(CertError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(CertError::Read { source, .. }) => return Err(StoreError::Io { path, source }),
            Err(other) => {
                return Err(StoreError::Account {
                    path,
                    reason: other.to_string(),
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Account {
                path,
                reason: e.to_string(),
            })
    }

    pub fn save_account(
        &self,
        credentials: &instant_acme::AccountCredentials,
    ) -> Result<(), StoreError> {
        let path = self.account_path();
        let json = serde_json::to_vec_pretty(credentials).map_err(|e| StoreError::Account {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        certs::write_private(&path, &json).map_err(|source| StoreError::Io { path, source })
    }

    /// The saved certificate, checked; `None` when there is none yet.
    pub fn load_cert(&self) -> Option<Result<ServedCert, CertError>> {
        let (cert, key) = (self.cert_path(), self.key_path());
        if !cert.exists() || !key.exists() {
            return None;
        }
        Some(certs::read_pair(&cert, &key).and_then(|id| ServedCert::new(id, "ACME")))
    }

    /// Saves an issued chain and its key: the key first, each through a
    /// renamed temporary file. A crash between the two leaves a pair that
    /// does not match, which loads as no certificate and is ordered again.
    pub fn save_cert(&self, chain_pem: &str, key_pem: &str) -> Result<(), StoreError> {
        let (cert, key) = (self.cert_path(), self.key_path());
        certs::write_private(&key, key_pem.as_bytes())
            .map_err(|source| StoreError::Io { path: key, source })?;
        certs::write_private(&cert, chain_pem.as_bytes())
            .map_err(|source| StoreError::Io { path: cert, source })
    }
}
