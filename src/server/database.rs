//! With `--database-url`: opens PostgreSQL for saved reports and shared
//! attempts, and runs their background work (the attempt writer, and the
//! schema migration again while the database is not there yet).
//!
//! A database that cannot be reached at startup does not stop the server:
//! it serves from memory, reports say the shared attempts could not be read
//! and that reports cannot be saved, and the migration is retried until the
//! database answers. Only a URL that cannot be a database is fatal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use deadpool_postgres::Pool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::pg::attempts::{SharedAttempts, Writer};
use crate::pg::reports::PgReportStore;
use crate::reports::ReportStore;

/// How long startup waits for the database before going on without it.
const STARTUP_WAIT: Duration = Duration::from_secs(5);

/// How often a migration that failed is tried again.
const MIGRATION_RETRY: Duration = Duration::from_secs(10);

/// What the server keeps of an opened database.
pub(super) struct Opened {
    pub reports: Arc<dyn ReportStore>,
    pub attempts: Arc<SharedAttempts>,
    pub background: Background,
}

/// Work to start with the server.
#[derive(Debug)]
pub(super) struct Background {
    writer: Writer,
    /// Set when the schema is not there yet.
    migrate: Option<Pool>,
}

/// The background work, running.
#[derive(Debug)]
pub(super) struct Running {
    stop: watch::Sender<bool>,
    writer: JoinHandle<()>,
}

pub(super) async fn open(url: &str, config: &Config) -> Result<Opened> {
    let pool = crate::pg::pool(url).context("--database-url")?;
    let migrate = match crate::pg::within(STARTUP_WAIT, crate::pg::migrate(&pool)).await {
        Ok(()) => None,
        Err(err) => {
            tracing::error!(
                error = %err,
                "the shared database cannot be used yet: serving from this instance's memory, retrying"
            );
            Some(pool.clone())
        }
    };
    tracing::info!(
        instance = %config.instance_name,
        "saving reports in PostgreSQL and sharing recent attempts with other instances"
    );
    let reports: Arc<dyn ReportStore> = Arc::new(PgReportStore::new(
        pool.clone(),
        tokio::runtime::Handle::current(),
    ));
    let (attempts, writer) = SharedAttempts::new(
        pool,
        Arc::from(config.instance_name.as_str()),
        config.attempts,
    );
    Ok(Opened {
        reports,
        attempts,
        background: Background { writer, migrate },
    })
}

impl Background {
    pub(super) fn spawn(self) -> Running {
        if let Some(pool) = self.migrate {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(MIGRATION_RETRY).await;
                    match crate::pg::migrate(&pool).await {
                        Ok(()) => {
                            tracing::info!("the shared database is ready");
                            return;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "the shared database still cannot be used")
                        }
                    }
                }
            });
        }
        let (stop, stopped) = watch::channel(false);
        Running {
            stop,
            writer: tokio::spawn(self.writer.run(stopped)),
        }
    }
}

impl Running {
    /// Lets the writer write what is queued, until `deadline` at the latest.
    pub(super) async fn stop(self, deadline: Instant) {
        let _ = self.stop.send(true);
        if tokio::time::timeout_at(deadline, self.writer)
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown: attempts still queued for the shared database are not written"
            );
        }
    }
}

/// A random first attempt id below 2^52: ids of instances sharing attempts
/// do not collide, and stay exact as JSON numbers (JavaScript's 2^53).
pub(super) fn random_first_id() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 1;
    }
    (u64::from_le_bytes(bytes) >> 12).max(1)
}
