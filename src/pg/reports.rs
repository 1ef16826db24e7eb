//! Saved reports in PostgreSQL: the same table, ids, retention and size cap
//! as the SQLite store, shared by every instance, so a report saved through
//! one opens through any other. [`ReportStore`] is blocking (callers run it
//! in `spawn_blocking`); each call drives its query on the server's runtime
//! and gives up after [`super::QUERY_TIMEOUT`] (saving: a little longer, it
//! must not be lost to a slow commit).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use tokio::runtime::Handle;

use super::{within, PgError, QUERY_TIMEOUT};
use crate::reports::store::{NewReport, ReportMeta, ReportStore, StoreError, StoredReport};

/// How long a save (insert, trim, commit) may take.
const SAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Retention and the size cap can touch many rows.
const PURGE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct PgReportStore {
    pool: Pool,
    runtime: Handle,
}

impl PgReportStore {
    /// A store on `pool`, whose queries run on `runtime` (the server's).
    pub fn new(pool: Pool, runtime: Handle) -> Self {
        Self { pool, runtime }
    }

    fn run<T>(
        &self,
        limit: Duration,
        work: impl std::future::Future<Output = Result<T, PgError>>,
    ) -> Result<T, StoreError> {
        self.runtime
            .block_on(within(limit, work))
            .map_err(|err| StoreError::Database(err.to_string()))
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn meta(row: &tokio_postgres::Row) -> ReportMeta {
    ReportMeta {
        id: row.get(0),
        created_at_ms: row.get(1),
        label: row.get(2),
        client_address: row.get(3),
        worst: row.get(4),
        summary: row.get(5),
    }
}

/// Deletes the oldest reports (never `keep`) until the rest fit in
/// `max_bytes`: the newest are kept while their running total fits.
const TRIM: &str = "DELETE FROM reports WHERE id IN (
     SELECT id FROM (
         SELECT id, SUM(size) OVER (ORDER BY created_at_ms DESC, id DESC) AS running
         FROM reports) newest_first
     WHERE running > $1::BIGINT AND id IS DISTINCT FROM $2::TEXT)";

impl ReportStore for PgReportStore {
    fn save(&self, r: &NewReport, max_total_bytes: u64) -> Result<(), StoreError> {
        let max = i64::try_from(max_total_bytes).unwrap_or(i64::MAX);
        self.run(SAVE_TIMEOUT, async {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO reports (id, created_at_ms, label, client_address, worst, summary, body, size, packets)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &r.id,
                    &millis(r.created_at),
                    &r.label,
                    &r.client_address,
                    &r.worst,
                    &r.summary,
                    &r.body,
                    &(r.size() as i64),
                    &r.packets,
                ],
            )
            .await?;
            tx.execute(TRIM, &[&max, &Some(r.id.as_str())]).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn get(&self, id: &str) -> Result<Option<StoredReport>, StoreError> {
        self.run(QUERY_TIMEOUT, async {
            let client = self.pool.get().await?;
            let row = client
                .query_opt(
                    "SELECT id, created_at_ms, label, client_address, worst, summary, body
                     FROM reports WHERE id = $1",
                    &[&id],
                )
                .await?;
            Ok(row.map(|row| StoredReport {
                meta: meta(&row),
                body: row.get(6),
            }))
        })
    }

    fn packets(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(QUERY_TIMEOUT, async {
            let client = self.pool.get().await?;
            let row = client
                .query_opt("SELECT packets FROM reports WHERE id = $1", &[&id])
                .await?;
            Ok(row.and_then(|row| row.get::<_, Option<Vec<u8>>>(0)))
        })
    }

    fn list(&self, label: Option<&str>, limit: usize) -> Result<Vec<ReportMeta>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(QUERY_TIMEOUT, async {
            let client = self.pool.get().await?;
            let rows = client
                .query(
                    "SELECT id, created_at_ms, label, client_address, worst, summary FROM reports
                     WHERE ($1::TEXT IS NULL OR label = $1) ORDER BY created_at_ms DESC LIMIT $2",
                    &[&label, &limit],
                )
                .await?;
            Ok(rows.iter().map(meta).collect())
        })
    }

    fn purge(&self, cutoff: SystemTime, max_bytes: u64) -> Result<usize, StoreError> {
        let max = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        self.run(PURGE_TIMEOUT, async {
            let client = self.pool.get().await?;
            let old = client
                .execute(
                    "DELETE FROM reports WHERE created_at_ms < $1",
                    &[&millis(cutoff)],
                )
                .await?;
            let over = client.execute(TRIM, &[&max, &None::<&str>]).await?;
            Ok(usize::try_from(old + over).unwrap_or(usize::MAX))
        })
    }
}
