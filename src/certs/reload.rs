//! `--tls-cert`/`--tls-key` read again on SIGHUP and whenever their contents
//! change (checked every `--tls-reload-interval`). A pair that loads is
//! served from the next handshake on; one that does not (unparseable, key
//! not matching the certificate, a file missing mid-replacement) is logged
//! once per version, with its path and the reason, and the current
//! certificate stays in service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{CertError, Served, ServedCert};

/// SIGHUP, registered when the server binds: from then on a SIGHUP never
/// ends the process (its default action), whatever the certificate source.
#[derive(Debug)]
pub struct Hangup(Option<tokio::signal::unix::Signal>);

impl Hangup {
    /// Must run inside the runtime.
    pub fn register() -> Self {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Self(Some(signal)),
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; certificate files are still checked for changes");
                Self(None)
            }
        }
    }

    /// The next SIGHUP (never, if none could be registered).
    pub async fn recv(&mut self) {
        match &mut self.0 {
            Some(signal) => {
                if signal.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// A version of the pair: the SHA-256 of both files' bytes.
pub type Version = [u8; 32];

/// The pair to start with, and its version: read once, so a file replaced
/// while the server starts is still seen as a change.
pub fn load_first(cert: &Path, key: &Path) -> Result<(ServedCert, Version), CertError> {
    let cert_pem = super::read_bounded(cert)?;
    let key_pem = super::read_bounded(key)?;
    let identity = super::parse_pair(&cert_pem, &key_pem, cert, key)?;
    let served = ServedCert::new(identity, cert.display().to_string())?;
    Ok((served, version(&cert_pem, &key_pem)))
}

fn version(cert: &[u8], key: &[u8]) -> Version {
    let mut hash = Sha256::new();
    hash.update((cert.len() as u64).to_be_bytes());
    hash.update(cert);
    hash.update(key);
    hash.finalize().into()
}

/// Watches the pair the server started with (`first`, from
/// [`load_first`]). Never returns.
pub async fn watch(
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
    served: Arc<Served>,
    first: Version,
    mut hangup: Hangup,
) {
    let mut loaded: Option<Version> = Some(first);
    let mut rejected: Option<Version> = None;
    let mut unreadable: Option<String> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let signalled = tokio::select! {
            _ = tick.tick() => false,
            () = hangup.recv() => true,
        };
        if signalled {
            tracing::info!(cert = %cert.display(), key = %key.display(), "SIGHUP: reloading the certificate");
        }
        let (cert_pem, key_pem) = match read(&cert, &key).await {
            Ok(pair) => pair,
            Err(err) => {
                // Logged when it starts (or on SIGHUP), not at every check.
                let text = err.to_string();
                if signalled || unreadable.as_deref() != Some(&text) {
                    tracing::warn!(cert = %cert.display(), key = %key.display(), error = %text,
                        "the certificate files cannot be read; keeping the current certificate");
                    unreadable = Some(text);
                }
                continue;
            }
        };
        unreadable = None;
        let v = version(&cert_pem, &key_pem);
        if !signalled && (loaded == Some(v) || rejected == Some(v)) {
            continue;
        }
        let origin = cert.display().to_string();
        match super::parse_pair(&cert_pem, &key_pem, &cert, &key)
            .and_then(|identity| ServedCert::new(identity, origin))
        {
            Ok(new) => {
                served.install(new);
                loaded = Some(v);
                rejected = None;
            }
            Err(err) => {
                tracing::warn!(cert = %cert.display(), key = %key.display(), error = %err,
                    "the new certificate cannot be served; keeping the current one");
                rejected = Some(v);
            }
        }
    }
}

/// Both files, read off the runtime's threads.
async fn read(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    let (cert, key) = (cert.to_path_buf(), key.to_path_buf());
    match tokio::task::spawn_blocking(move || {
        Ok((super::read_bounded(&cert)?, super::read_bounded(&key)?))
    })
    .await
    {
        Ok(result) => result,
        Err(join) => Err(CertError::Read {
            path: PathBuf::new(),
            source: std::io::Error::other(join.to_string()),
        }),
    }
}
