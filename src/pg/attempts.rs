//! Recent attempts shared between instances through PostgreSQL.
//!
//! Writing stays off the handshake's path: the connection task hands the
//! finished attempt (an `Arc`, no copy) to a bounded queue with `try_send`;
//! when the queue is full (in attempts, or in the bytes they hold: queued
//! attempts stay in memory even after the recent store lets them go) the
//! attempt is not shared and a counter says so ([`Counters::dropped`],
//! logged by the writer). The [`Writer`] task takes
//! what is queued, encodes it ([`StoredAttempt`]: raw bytes plus metadata)
//! and inserts it in one statement per batch. It also deletes what is older
//! than the recent window, and beyond the per-address and total row caps.
//!
//! Reading happens on request ([`SharedAttempts::fetch`]): the address's
//! rows from other processes, newest first, at most `per_address` of them
//! and at most `per_address_bytes` (the newest always), under a deadline.
//! Rows this process wrote are skipped (it holds them in memory); after a
//! restart the previous process's rows are someone else's, so they count.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{within, PgError, QUERY_TIMEOUT};
use crate::attempt::stored::StoredAttempt;
use crate::attempt::TlsAttempt;
use crate::recent::StoreLimits;

/// Attempts waiting to be written; beyond this they are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 4096;

/// Bytes the queued attempts may hold together (raw hello and reads log,
/// roughly): a flood of 64 KiB hellos cannot pile up behind a slow database.
pub const QUEUE_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Most attempts in one insert.
pub const MAX_BATCH: usize = 256;

/// How long one batch's insert may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often old rows are deleted (at most; more often for a short window).
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Rows kept in all, as a multiple of `--attempts-total` (one instance's
/// memory cap): room for several instances' attempts.
const TOTAL_ROWS_PER_INSTANCE_CAP: usize = 8;

/// How often a writer that keeps failing (or dropping) says so again.
const REPEAT_WARNING: Duration = Duration::from_secs(60);

/// What happened to attempts offered for sharing. Plain counters, for logs
/// and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Not shared: the queue was full (the database slower than handshakes).
    pub dropped: AtomicU64,
    /// Written to the database.
    pub written: AtomicU64,
    /// Lost to a failed or timed-out insert.
    pub write_failed: AtomicU64,
    /// Rows read that could not be decoded (another version's, or damaged).
    pub unreadable: AtomicU64,
    /// Bytes the queue holds now (see [`QUEUE_MAX_BYTES`]).
    pub queued_bytes: AtomicUsize,
}

/// What a queued attempt holds, roughly, in O(1): its kept bytes, its reads
/// log, and the record around them.
fn queued_size(a: &TlsAttempt) -> usize {
    a.raw.len() + a.arrival.reads.len() * std::mem::size_of::<crate::capture::ReadEvent>() + 1024
}

/// The shared attempt store as the rest of the server sees it.
#[derive(Debug)]
pub struct SharedAttempts {
    pool: Pool,
    origin: i64,
    limits: StoreLimits,
    queue: mpsc::Sender<Arc<TlsAttempt>>,
    counters: Arc<Counters>,
}

/// The background task that writes queued attempts and deletes old ones.
#[derive(Debug)]
pub struct Writer {
    pool: Pool,
    origin: i64,
    instance: Arc<str>,
    limits: StoreLimits,
    queue: mpsc::Receiver<Arc<TlsAttempt>>,
    counters: Arc<Counters>,
}

impl SharedAttempts {
    /// The store and its writer (to be spawned: [`Writer::run`]). `instance`
    /// tags every row this process writes.
    pub fn new(pool: Pool, instance: Arc<str>, limits: StoreLimits) -> (Arc<Self>, Writer) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let origin = random_origin();
        let counters = Arc::new(Counters::default());
        let store = Arc::new(Self {
            pool: pool.clone(),
            origin,
            limits,
            queue: tx,
            counters: counters.clone(),
        });
        let writer = Writer {
            pool,
            origin,
            instance,
            limits,
            queue: rx,
            counters,
        };
        (store, writer)
    }

    /// Queues `attempt` for sharing; never waits. A full queue drops it.
    pub fn offer(&self, attempt: &Arc<TlsAttempt>) {
        let size = queued_size(attempt);
        let held = self
            .counters
            .queued_bytes
            .fetch_add(size, Ordering::Relaxed);
        if held + size > QUEUE_MAX_BYTES || self.queue.try_send(attempt.clone()).is_err() {
            self.counters
                .queued_bytes
                .fetch_sub(size, Ordering::Relaxed);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Attempts from `ip` that other processes saw since `since`, newest
    /// first, within the caps, or why they cannot be read.
    pub async fn fetch(
        &self,
        ip: IpAddr,
        since: SystemTime,
    ) -> Result<Vec<Arc<TlsAttempt>>, PgError> {
        let address = ip.to_canonical().to_string();
        let since_ms = millis(since);
        let max_rows = i64::try_from(self.limits.per_address).unwrap_or(i64::MAX);
        let max_bytes = i64::try_from(self.limits.per_address_bytes).unwrap_or(i64::MAX);
        let rows = within(QUERY_TIMEOUT, async {
            let client = self.pool.get().await?;
            Ok(client
                .query(
                    "SELECT attempt_id, instance, address, started_at_ms, hello, syn, meta FROM (
                         SELECT row_id, attempt_id, instance, address, started_at_ms, hello, syn, meta,
                                octet_length(hello) + COALESCE(octet_length(syn), 0) + octet_length(meta) AS own,
                                SUM(octet_length(hello) + COALESCE(octet_length(syn), 0) + octet_length(meta))
                                    OVER (ORDER BY started_at_ms DESC, row_id DESC) AS running
                         FROM attempts
                         WHERE address = $1 AND origin <> $2 AND started_at_ms >= $3
                         ORDER BY started_at_ms DESC, row_id DESC
                         LIMIT $4) newest
                     WHERE running - own < $5::BIGINT
                     ORDER BY started_at_ms DESC, row_id DESC",
                    &[&address, &self.origin, &since_ms, &max_rows, &max_bytes],
                )
                .await?)
        })
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let stored = StoredAttempt {
                attempt_id: row.get(0),
                instance: row.get(1),
                address: row.get(2),
                started_at_ms: row.get(3),
                hello: row.get(4),
                syn: row.get(5),
                meta: row.get(6),
            };
            match stored.decode() {
                Ok(attempt) => out.push(Arc::new(attempt)),
                Err(err) => {
                    self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %err, "skipping a shared attempt that cannot be read");
                }
            }
        }
        Ok(out)
    }
}

impl Writer {
    /// Writes until `stop` turns true, then writes what is still queued
    /// (the caller bounds how long that may take) and returns.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut purge = tokio::time::interval(PURGE_EVERY.min(self.limits.ttl));
        let mut health = Health::default();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                received = self.queue.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        return;
                    }
                    self.write(&mut batch, &mut health).await;
                }
                _ = purge.tick() => self.purge().await,
                () = stopping(&mut stop) => break,
            }
        }
        // Stopping: what is queued now, then done.
        loop {
            while batch.len() < MAX_BATCH {
                match self.queue.try_recv() {
                    Ok(attempt) => batch.push(attempt),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            self.write(&mut batch, &mut health).await;
        }
    }

    async fn write(&self, batch: &mut Vec<Arc<TlsAttempt>>, health: &mut Health) {
        let rows: Vec<StoredAttempt> = batch
            .drain(..)
            .map(|a| {
                self.counters
                    .queued_bytes
                    .fetch_sub(queued_size(&a), Ordering::Relaxed);
                StoredAttempt::encode(&a, &self.instance)
            })
            .collect();
        let count = rows.len() as u64;
        match within(WRITE_TIMEOUT, insert(&self.pool, self.origin, rows)).await {
            Ok(()) => {
                self.counters.written.fetch_add(count, Ordering::Relaxed);
                if health.failing {
                    tracing::info!("shared attempts: writing to the database again");
                }
                health.failing = false;
            }
            Err(err) => {
                let lost = self
                    .counters
                    .write_failed
                    .fetch_add(count, Ordering::Relaxed)
                    + count;
                if !health.failing || health.due() {
                    tracing::warn!(
                        error = %err, lost_total = lost,
                        "shared attempts: cannot write to the database; other instances will not see these attempts"
                    );
                }
                health.failing = true;
            }
        }
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > health.dropped_reported && health.due() {
            tracing::warn!(
                dropped_total = dropped,
                queue = QUEUE_CAPACITY,
                "shared attempts: queue full, attempts dropped (not shared with other instances)"
            );
            health.dropped_reported = dropped;
        }
    }

    async fn purge(&self) {
        let cutoff = millis(SystemTime::now())
            - i64::try_from(self.limits.ttl.as_millis()).unwrap_or(i64::MAX);
        let per_address = i64::try_from(self.limits.per_address).unwrap_or(i64::MAX);
        let total = i64::try_from(
            self.limits
                .total
                .saturating_mul(TOTAL_ROWS_PER_INSTANCE_CAP),
        )
        .unwrap_or(i64::MAX);
        let result = within(Duration::from_secs(30), async {
            let client = self.pool.get().await?;
            let mut deleted = client
                .execute("DELETE FROM attempts WHERE started_at_ms < $1", &[&cutoff])
                .await?;
            deleted += client
                .execute(
                    "DELETE FROM attempts WHERE row_id IN (
                         SELECT row_id FROM (
                             SELECT row_id, row_number() OVER (
                                 PARTITION BY address ORDER BY started_at_ms DESC, row_id DESC) AS n
                             FROM attempts) ranked
                         WHERE n > $1)",
                    &[&per_address],
                )
                .await?;
            deleted += client
                .execute(
                    "DELETE FROM attempts WHERE row_id <= (
                         SELECT row_id FROM attempts ORDER BY row_id DESC OFFSET $1 LIMIT 1)",
                    &[&total],
                )
                .await?;
            Ok(deleted)
        })
        .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "shared attempts: deleted old rows"),
            Err(err) => tracing::warn!(error = %err, "shared attempts: cannot delete old rows"),
        }
    }
}

/// One insert for the whole batch: the columns as arrays, unnested.
async fn insert(pool: &Pool, origin: i64, rows: Vec<StoredAttempt>) -> Result<(), PgError> {
    let mut instance = Vec::with_capacity(rows.len());
    let mut attempt_id = Vec::with_capacity(rows.len());
    let mut address = Vec::with_capacity(rows.len());
    let mut started = Vec::with_capacity(rows.len());
    let mut hello = Vec::with_capacity(rows.len());
    let mut syn = Vec::with_capacity(rows.len());
    let mut meta = Vec::with_capacity(rows.len());
    for r in rows {
        instance.push(r.instance);
        attempt_id.push(r.attempt_id);
        address.push(r.address);
        started.push(r.started_at_ms);
        hello.push(r.hello);
        syn.push(r.syn);
        meta.push(r.meta);
    }
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO attempts (origin, instance, attempt_id, address, started_at_ms, hello, syn, meta)
             SELECT $1, * FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[], $6::BYTEA[], $7::BYTEA[], $8::TEXT[])",
            &[&origin, &instance, &attempt_id, &address, &started, &hello, &syn, &meta],
        )
        .await?;
    Ok(())
}

/// The writer's memory of what it has already warned about.
#[derive(Debug, Default)]
struct Health {
    failing: bool,
    dropped_reported: u64,
    last_warning: Option<Instant>,
}

impl Health {
    /// Whether a repeated warning may be logged now (and, if so, notes it).
    fn due(&mut self) -> bool {
        let now = Instant::now();
        let due = self
            .last_warning
            .is_none_or(|at| now.duration_since(at) >= REPEAT_WARNING);
        if due {
            self.last_warning = Some(now);
        }
        due
    }
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

fn random_origin() -> i64 {
    let mut bytes = [0u8; 8];
    // Without randomness, the time still tells two processes apart.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = millis(SystemTime::now()).to_le_bytes();
    }
    i64::from_le_bytes(bytes)
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::{Arrival, Outcome, StallEnd};

    fn attempt(raw_bytes: usize) -> Arc<TlsAttempt> {
        Arc::new(TlsAttempt {
            id: 1,
            peer: "192.0.2.1:40000".parse().expect("addr"),
            local: "192.0.2.2:443".parse().expect("addr"),
            started_at: SystemTime::now(),
            arrival: Arrival {
                bytes: raw_bytes,
                read_count: 1,
                reads: vec![],
                capture_ms: 1.0,
            },
            raw: vec![0x16; raw_bytes],
            client_hello: None,
            fingerprint_cache: Default::default(),
            negotiated: None,
            handshake_ms: None,
            outcome: Outcome::NoData {
                ended: StallEnd::Timeout,
            },
            syn: None,
            tcp: None,
            handshake_flight: None,
            after_handshake: Default::default(),
            icmp_probe: None,
            seen_by: None,
            balancer: None,
            first_request: Default::default(),
            run: Default::default(),
            our_mss: None,
        })
    }

    /// A store whose database is never reached: only the queue is exercised.
    fn store() -> (Arc<SharedAttempts>, Writer) {
        let pool = crate::pg::pool("postgres://nobody@127.0.0.1:1/none").expect("pool");
        SharedAttempts::new(pool, Arc::from("t"), StoreLimits::default())
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (store, _writer) = store();
        for _ in 0..QUEUE_CAPACITY + 10 {
            store.offer(&attempt(10));
        }
        assert_eq!(store.counters().dropped.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn large_hellos_fill_the_queue_by_bytes_first() {
        let (store, _writer) = store();
        for _ in 0..1000 {
            store.offer(&attempt(64 * 1024));
        }
        let held = store.counters().queued_bytes.load(Ordering::Relaxed);
        let dropped = store.counters().dropped.load(Ordering::Relaxed);
        assert!(held <= QUEUE_MAX_BYTES, "{held}");
        // 32 MiB hold about 500 of them; the rest are dropped.
        assert!((450..=550).contains(&(1000 - dropped)), "{dropped} dropped");
    }
}
