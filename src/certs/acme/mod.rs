//! Certificates from an ACME CA (RFC 8555), with instant-acme: the account
//! and the certificate are kept under the data directory ([`store`]), the
//! certificate is ordered when missing, not covering every name, or due
//! ([`schedule`]), validated by HTTP-01 or TLS-ALPN-01 ([`challenge`]), and
//! installed into [`Served`] without a restart. A failure is logged and
//! retried with backoff; the server keeps serving what it has.

pub mod challenge;
pub mod schedule;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};

pub use challenge::Http01Tokens;
use schedule::{Held, Next};
use store::{Store, StoreError};

use super::{CertError, Served, ServedCert};
use crate::config::{AcmeChallenge, AcmeSettings};

/// The origin [`ServedCert`]s issued here carry.
pub const ORIGIN: &str = "ACME";

/// How long one order may take in all (validation, finalization, download)
/// before it counts as failed and is retried.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// How long to poll an order for validation, then for its certificate.
const POLL_FOR: Duration = Duration::from_secs(120);

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why an order failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the issued certificate cannot be served: {0}")]
    Cert(#[from] CertError),
    #[error(transparent)]
    Challenge(#[from] challenge::ChallengeCertError),
    #[error("the CA offers no {kind} challenge for {name}")]
    NoChallenge { name: String, kind: &'static str },
    #[error("too many challenges at once")]
    ChallengesFull,
    #[error("authorization for {name} is {status}")]
    Authorization { name: String, status: String },
    #[error("the order is {status}{detail}")]
    Order { status: String, detail: String },
    #[error("the order took longer than {0:?}")]
    Timeout(Duration),
}

/// The certificate saved by an earlier run, if there is one that loads.
pub fn saved_certificate(settings: &AcmeSettings) -> Option<ServedCert> {
    let store = Store::new(&settings.data_dir, &settings.directory);
    match store.load_cert()? {
        Ok(cert) => Some(cert),
        Err(err) => {
            tracing::warn!(error = %err, "the saved ACME certificate cannot be served; ordering a new one");
            None
        }
    }
}

/// Keeps an ACME certificate in service: orders when needed, renews before
/// expiry, retries failures with backoff. Never returns.
pub async fn run(settings: AcmeSettings, served: Arc<Served>, tokens: Arc<Http01Tokens>) {
    let store = Store::new(&settings.data_dir, &settings.directory);
    let mut client = Client {
        settings,
        store,
        served,
        tokens,
        account: None,
    };
    let mut failures = 0u32;
    let mut earliest = SystemTime::now();
    loop {
        let now = SystemTime::now();
        if now < earliest {
            sleep_until(earliest).await;
            continue;
        }
        let current = client.served.current();
        let holding = (current.origin == ORIGIN).then(|| held(&current));
        match schedule::next(
            now,
            holding.as_ref(),
            &client.settings.domains,
            client.settings.renew_before,
        ) {
            Next::WaitUntil(due) => {
                earliest = due;
                continue;
            }
            Next::OrderNow(why) => {
                tracing::info!(
                    directory = %client.settings.directory,
                    domains = %client.settings.domains.join(","),
                    why,
                    "ordering a certificate"
                );
            }
        }
        let result = tokio::time::timeout(ORDER_TIMEOUT, client.order())
            .await
            .unwrap_or(Err(AcmeError::Timeout(ORDER_TIMEOUT)));
        match result {
            Ok(cert) => {
                failures = 0;
                let issued = held(&cert);
                earliest = schedule::after_issuance(
                    SystemTime::now(),
                    &issued,
                    client.settings.renew_before,
                );
                if earliest > schedule::renewal_time(&issued, client.settings.renew_before) {
                    tracing::warn!(
                        "--acme-renew-before is longer than the certificate's lifetime allows; renewing after a quarter of it instead"
                    );
                }
                client.served.install(cert);
                tracing::info!(
                    next_check = %humantime::format_rfc3339_seconds(earliest),
                    "ACME certificate installed"
                );
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                let delay = schedule::retry_delay(failures);
                tracing::warn!(
                    error = %err,
                    failures,
                    retry_in = %humantime::format_duration(delay),
                    "ACME order failed; still serving the current certificate"
                );
                if is_account_gone(&err) {
                    client.forget_account();
                }
                earliest = SystemTime::now() + delay;
            }
        }
    }
}

/// Sleeps until `t`, at most [`schedule::MAX_SLEEP`] at a time.
async fn sleep_until(t: SystemTime) {
    let left = t
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .min(schedule::MAX_SLEEP);
    tokio::time::sleep(left).await;
}

fn held(cert: &ServedCert) -> Held {
    Held {
        not_before: cert.not_before,
        not_after: cert.not_after,
        names: cert
            .profile
            .served_names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
    }
}

/// The CA no longer knows our account (a test CA restarted, an account
/// deactivated): a new one is made at the next try.
fn is_account_gone(err: &AcmeError) -> bool {
    matches!(err, AcmeError::Acme(instant_acme::Error::Api(problem))
        if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"))
}

struct Client {
    settings: AcmeSettings,
    store: Store,
    served: Arc<Served>,
    tokens: Arc<Http01Tokens>,
    account: Option<Account>,
}

/// Removes an order's challenge responses however the order ends.
struct Cleanup<'a> {
    tokens: &'a Http01Tokens,
    served: &'a Served,
    token_list: Vec<String>,
    alpn_names: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for token in &self.token_list {
            self.tokens.remove(token);
        }
        for name in &self.alpn_names {
            self.served.remove_alpn_challenge(name);
        }
    }
}

impl Client {
    fn forget_account(&mut self) {
        self.account = None;
        let path = self.store.dir().join("account.json");
        if let Err(err) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove the stale ACME account");
        }
    }

    /// The account: cached, else restored from disk, else created (agreeing
    /// to the CA's terms of service, which running with --acme-directory means).
    async fn account(&mut self) -> Result<Account, AcmeError> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        self.store.prepare(&self.settings.directory)?;
        let builder = || match &self.settings.ca_bundle {
            Some(pem) => Account::builder_with_root(pem),
            None => Account::builder(),
        };
        let account = match self.store.load_account()? {
            Some(credentials) => builder()?.from_credentials(credentials).await?,
            None => {
                let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder()?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.settings.directory.clone(),
                        None,
                    )
                    .await?;
                self.store.save_account(&credentials)?;
                tracing::info!(id = account.id(), dir = %self.store.dir().display(), "created an ACME account");
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }

    /// One order, from account to installed-ready certificate.
    async fn order(&mut self) -> Result<ServedCert, AcmeError> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .settings
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let mut cleanup = Cleanup {
            tokens: &self.tokens,
            served: &self.served,
            token_list: Vec::new(),
            alpn_names: Vec::new(),
        };
        let (kind, kind_name) = match self.settings.challenge {
            AcmeChallenge::Http01 => (ChallengeType::Http01, "http-01"),
            AcmeChallenge::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
        };
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            let name = authorization.identifier().to_string();
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(AcmeError::Authorization {
                        name,
                        status: format!("{other:?}").to_lowercase(),
                    })
                }
            }
            let mut challenge =
                authorization
                    .challenge(kind.clone())
                    .ok_or_else(|| AcmeError::NoChallenge {
                        name: name.clone(),
                        kind: kind_name,
                    })?;
            let key_authorization = challenge.key_authorization();
            match self.settings.challenge {
                AcmeChallenge::Http01 => {
                    let token = challenge.token.clone();
                    if !self.tokens.insert(&token, key_authorization.as_str()) {
                        return Err(AcmeError::ChallengesFull);
                    }
                    cleanup.token_list.push(token);
                }
                AcmeChallenge::TlsAlpn01 => {
                    let cert = challenge::tls_alpn_certificate(
                        &name,
                        key_authorization.digest().as_ref(),
                    )?;
                    if !self.served.add_alpn_challenge(&name, cert) {
                        return Err(AcmeError::ChallengesFull);
                    }
                    cleanup.alpn_names.push(name.clone());
                }
            }
            challenge.set_ready().await?;
        }
        let polling = RetryPolicy::new()
            .initial_delay(Duration::from_millis(500))
            .timeout(POLL_FOR);
        let status = order.poll_ready(&polling).await?;
        if status != OrderStatus::Ready {
            let mut detail = String::new();
            let mut authorizations = order.authorizations();
            while let Some(Ok(mut authorization)) = authorizations.next().await {
                if authorization.refresh().await.is_err() {
                    continue;
                }
                for problem in authorization
                    .challenges
                    .iter()
                    .filter_map(|c| c.error.as_ref())
                {
                    detail.push_str(&format!("; {problem}"));
                }
            }
            return Err(AcmeError::Order {
                status: format!("{status:?}").to_lowercase(),
                detail,
            });
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&polling).await?;
        drop(cleanup);
        let identity = super::parse_pair(
            chain_pem.as_bytes(),
            key_pem.as_bytes(),
            &self.store.cert_path(),
            &self.store.key_path(),
        )?;
        let cert = ServedCert::new(identity, ORIGIN)?;
        if let Err(err) = self.store.save_cert(&chain_pem, &key_pem) {
            // Served all the same; the next start orders again.
            tracing::error!(error = %err, "cannot save the ACME certificate");
        }
        Ok(cert)
    }
}
