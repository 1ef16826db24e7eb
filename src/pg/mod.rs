//! PostgreSQL, for several instances (`--database-url`): one database holds
//! the saved reports and the recent attempts every instance saw, so a
//! customer whose HTTPS reached one instance and whose plain-HTTP request
//! reached another still sees their attempts, and a saved link opens on any.
//!
//! - this module: the connection pool, its timeouts, and the schema
//!   migrations (`migrations/postgres/`, applied once under an advisory lock,
//!   so instances starting together do not race).
//! - [`reports`]: [`reports::PgReportStore`], the report store.
//! - [`attempts`]: [`attempts::SharedAttempts`], the attempts every instance
//!   writes (in batches, off the handshake's path) and reads on request.
//!
//! Every query has a deadline: with the database gone, reports still come
//! from this instance's memory, a few seconds late at worst, and say so.

pub mod attempts;
pub mod reports;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// Schema migrations, applied in order; `tlsdiag_migrations` records which ran.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_create_reports",
        include_str!("../../migrations/postgres/0001_create_reports.sql"),
    ),
    (
        2,
        "0002_create_attempts",
        include_str!("../../migrations/postgres/0002_create_attempts.sql"),
    ),
    (
        3,
        "0003_report_packets",
        include_str!("../../migrations/postgres/0003_report_packets.sql"),
    ),
];

/// Key of the advisory lock held while migrating (any constant unique to us).
const MIGRATION_LOCK: i64 = 0x746c_7364_6961_6701;

/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one query may take before its caller goes on without it.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections held at most: readers (reports) and the writer together.
const POOL_SIZE: usize = 16;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    #[error("--database-url is not a PostgreSQL URL or connection string: {0}")]
    Url(tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("migration {name} failed: {source}")]
    Migrate {
        name: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
}

impl PgError {
    /// A short sentence for users (no host names, no credentials).
    pub fn public_message(&self) -> &'static str {
        match self {
            PgError::Timeout(_) => "the shared database did not answer in time",
            PgError::Pool(_) => "the shared database cannot be reached",
            _ => "the shared database returned an error",
        }
    }
}

/// A pool for `url`, not yet connected (connections open on first use).
pub fn pool(url: &str) -> Result<Pool, PgError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(PgError::Url)?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.application_name("tlsdiag");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // A connection whose server went away is closed: replaced, not reused.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(QUERY_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(QUERY_TIMEOUT))
        .build()?)
}

/// Runs `work` under `limit`: a database that hangs costs the caller that
/// long, never more.
pub async fn within<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, PgError>>,
) -> Result<T, PgError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(PgError::Timeout(limit)))
}

/// Connects and applies the migrations not yet applied. Called at startup:
/// an instance told to share a database it cannot use does not start.
pub async fn migrate(pool: &Pool) -> Result<(), PgError> {
    within(Duration::from_secs(30), async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        // Held until commit: a second instance waits here, then finds
        // everything applied.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS tlsdiag_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        let done: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM tlsdiag_migrations",
                &[],
            )
            .await?
            .get(0);
        for &(version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > done) {
            tx.batch_execute(sql)
                .await
                .map_err(|source| PgError::Migrate { name, source })?;
            tx.execute(
                "INSERT INTO tlsdiag_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_is_not_postgres_is_refused_before_any_connection() {
        assert!(matches!(pool("mysql://x@y/z"), Err(PgError::Url(_))));
        assert!(pool("postgres://tlsdiag@127.0.0.1:5432/tlsdiag").is_ok());
        assert!(pool("host=/run/postgresql user=tlsdiag dbname=tlsdiag").is_ok());
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, (version, _, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, i + 1);
        }
    }
}
