//! Report storage. [`ReportStore`] is what the web layer uses: the shared
//! database for several instances (`crate::pg::reports`) sits beside
//! [`SqliteReportStore`], the embedded default: one file under the data directory, WAL journal, every
//! commit fsynced (`synchronous=FULL`) so a report acknowledged to a client
//! survives a crash or `kill -9` right after.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_create_reports",
        include_str!("../../migrations/0001_create_reports.sql"),
    ),
    (
        "0002_report_packets",
        include_str!("../../migrations/0002_report_packets.sql"),
    ),
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("migration {name} failed: {source}")]
    Migrate {
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The shared database (`--database-url`; `crate::pg`).
    #[error("shared database: {0}")]
    Database(String),
}

impl StoreError {
    /// A short, safe sentence for users (no paths): what went wrong, in kind.
    pub fn public_message(&self) -> &'static str {
        match self {
            StoreError::Sql(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull =>
            {
                "the server's disk is full"
            }
            StoreError::Sql(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ReadOnly
                    || e.code == rusqlite::ErrorCode::CannotOpen =>
            {
                "the server's report storage is read-only"
            }
            StoreError::CreateDir { .. }
            | StoreError::Open { .. }
            | StoreError::Migrate { .. }
            | StoreError::Database(_) => "the server's report storage is unavailable",
            _ => "the server could not write the report",
        }
    }
}

/// What is saved: the JSON and the columns the operator view needs.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub id: String,
    pub created_at: SystemTime,
    pub label: Option<String>,
    pub client_address: String,
    pub worst: Option<String>,
    pub summary: String,
    pub body: String,
    /// The run's packets as pcapng, when any were captured.
    pub packets: Option<Vec<u8>>,
}

impl NewReport {
    /// What the report costs the store's budget: its JSON and its packets.
    pub fn size(&self) -> usize {
        self.body.len() + self.packets.as_ref().map_or(0, Vec::len)
    }
}

/// A stored report's listing row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMeta {
    pub id: String,
    pub created_at_ms: i64,
    pub label: Option<String>,
    pub client_address: String,
    pub worst: Option<String>,
    pub summary: String,
}

#[derive(Debug, Clone)]
pub struct StoredReport {
    pub meta: ReportMeta,
    pub body: String,
}

/// Where reports live. Implementations block; callers run them off the async
/// runtime (`spawn_blocking`).
pub trait ReportStore: Send + Sync + std::fmt::Debug {
    /// Saves `report`, then deletes the oldest reports until all of them
    /// together fit in `max_total_bytes` (the new one is never deleted).
    fn save(&self, report: &NewReport, max_total_bytes: u64) -> Result<(), StoreError>;
    fn get(&self, id: &str) -> Result<Option<StoredReport>, StoreError>;
    /// The report's packets (pcapng); `None` when the report does not exist
    /// or kept none.
    fn packets(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Newest first, optionally only one label.
    fn list(&self, label: Option<&str>, limit: usize) -> Result<Vec<ReportMeta>, StoreError>;
    /// Deletes reports created before `cutoff`, then the oldest until the bodies
    /// fit in `max_bytes`. Returns how many were deleted.
    fn purge(&self, cutoff: SystemTime, max_bytes: u64) -> Result<usize, StoreError>;
}

#[derive(Debug)]
pub struct SqliteReportStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteReportStore {
    /// Opens (creating if needed) `dir/reports.sqlite3` and migrates it.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("reports.sqlite3");
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let setup = || -> rusqlite::Result<()> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.busy_timeout(Duration::from_secs(5))?;
            Ok(())
        };
        setup().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        migrate(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic mid-statement leaves SQLite consistent (it rolls back); keep going.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let done: usize = conn
        .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        .map_err(StoreError::Sql)? as usize;
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(done) {
        let apply = || -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN")?;
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", (index + 1) as i64)?;
            conn.execute_batch("COMMIT")
        };
        apply().map_err(|source| {
            let _ = conn.execute_batch("ROLLBACK");
            StoreError::Migrate { name, source }
        })?;
    }
    Ok(())
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn meta(row: &rusqlite::Row<'_>) -> rusqlite::Result<ReportMeta> {
    Ok(ReportMeta {
        id: row.get(0)?,
        created_at_ms: row.get(1)?,
        label: row.get(2)?,
        client_address: row.get(3)?,
        worst: row.get(4)?,
        summary: row.get(5)?,
    })
}

impl ReportStore for SqliteReportStore {
    fn save(&self, r: &NewReport, max_total_bytes: u64) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO reports (id, created_at_ms, label, client_address, worst, summary, body, size, packets)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                r.id,
                millis(r.created_at),
                r.label,
                r.client_address,
                r.worst,
                r.summary,
                r.body,
                r.size() as i64,
                r.packets
            ],
        )?;
        trim(&tx, max_total_bytes, Some(&r.id))?;
        tx.commit()?;
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<StoredReport>, StoreError> {
        let conn = self.lock();
        let found = conn
            .query_row(
                "SELECT id, created_at_ms, label, client_address, worst, summary, body FROM reports WHERE id = ?1",
                params![id],
                |row| {
                    Ok(StoredReport {
                        meta: meta(row)?,
                        body: row.get(6)?,
                    })
                },
            )
            .optional()?;
        Ok(found)
    }

    fn packets(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.lock();
        let found = conn
            .query_row(
                "SELECT packets FROM reports WHERE id = ?1",
                params![id],
                |row| row.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()?;
        Ok(found.flatten())
    }

    fn list(&self, label: Option<&str>, limit: usize) -> Result<Vec<ReportMeta>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, created_at_ms, label, client_address, worst, summary FROM reports
             WHERE (?1 IS NULL OR label = ?1) ORDER BY created_at_ms DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![label, limit as i64], meta)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn purge(&self, cutoff: SystemTime, max_bytes: u64) -> Result<usize, StoreError> {
        let conn = self.lock();
        let mut deleted = conn.execute(
            "DELETE FROM reports WHERE created_at_ms < ?1",
            params![millis(cutoff)],
        )?;
        deleted += trim(&conn, max_bytes, None)?;
        Ok(deleted)
    }
}

/// Deletes the oldest reports (never `keep`) until the rest fit in `max_bytes`.
fn trim(conn: &Connection, max_bytes: u64, keep: Option<&str>) -> Result<usize, StoreError> {
    let total: i64 = conn.query_row("SELECT COALESCE(SUM(size), 0) FROM reports", [], |r| {
        r.get(0)
    })?;
    if total as u64 <= max_bytes {
        return Ok(0);
    }
    let mut excess = total as u64 - max_bytes;
    let mut victims = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT id, size FROM reports ORDER BY created_at_ms, id")?;
        let mut rows = stmt.query([])?;
        while excess > 0 {
            let Some(row) = rows.next()? else { break };
            let id: String = row.get(0)?;
            if keep == Some(id.as_str()) {
                continue;
            }
            let size: i64 = row.get(1)?;
            victims.push(id);
            excess = excess.saturating_sub(size as u64);
        }
    }
    let mut deleted = 0;
    for id in victims {
        deleted += conn.execute("DELETE FROM reports WHERE id = ?1", params![id])?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, at: SystemTime, label: Option<&str>, body: &str) -> NewReport {
        NewReport {
            id: id.into(),
            created_at: at,
            label: label.map(str::to_owned),
            client_address: "192.0.2.1".into(),
            worst: Some("error".into()),
            summary: "s".into(),
            body: body.into(),
            packets: None,
        }
    }

    #[test]
    fn saves_lists_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        {
            let store = SqliteReportStore::open(dir.path()).unwrap();
            store
                .save(
                    &report("a", now - Duration::from_secs(5), Some("ACME-1"), "{}"),
                    u64::MAX,
                )
                .unwrap();
            store
                .save(&report("b", now, None, "{\"x\":1}"), u64::MAX)
                .unwrap();
        }
        let store = SqliteReportStore::open(dir.path()).unwrap();
        assert_eq!(store.get("b").unwrap().unwrap().body, "{\"x\":1}");
        assert!(store.get("zzz").unwrap().is_none());
        let all: Vec<String> = store
            .list(None, 10)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(all, ["b", "a"]);
        let acme: Vec<String> = store
            .list(Some("ACME-1"), 10)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(acme, ["a"]);
    }

    #[test]
    fn retention_deletes_old_reports_and_the_cap_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteReportStore::open(dir.path()).unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        store
            .save(&report("old", now - 31 * day, None, "x"), u64::MAX)
            .unwrap();
        for (i, id) in ["r1", "r2", "r3"].iter().enumerate() {
            store
                .save(
                    &report(
                        id,
                        now - Duration::from_secs(10 - i as u64),
                        None,
                        &"y".repeat(100),
                    ),
                    u64::MAX,
                )
                .unwrap();
        }
        assert_eq!(store.purge(now - 30 * day, u64::MAX).unwrap(), 1);
        assert!(store.get("old").unwrap().is_none());
        // Cap at 250 bytes: the oldest (r1) goes, r2 and r3 (200 bytes) stay.
        assert_eq!(store.purge(now - 30 * day, 250).unwrap(), 1);
        let left: Vec<String> = store
            .list(None, 10)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(left, ["r3", "r2"]);
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_a_clear_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = SqliteReportStore::open(file.path()).unwrap_err();
        assert!(
            err.to_string().contains("cannot create the data directory"),
            "{err}"
        );
        assert_eq!(
            err.public_message(),
            "the server's report storage is unavailable"
        );
    }
}
