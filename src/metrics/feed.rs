//! Outcome counts by source network, kept off the handshake's path: the
//! connection task only puts `(address, class)` on a bounded channel (std's
//! `sync_channel`: a preallocated ring, so no allocation and no lock; when it
//! is full the event is counted as dropped). A thread of its own takes events
//! in batches, finds each address's network (a binary search in the AS table)
//! and counts it ([`ByNetwork`]); a task watches the table file and swaps in a
//! new table when it changes and parses. The state mutex is held only for a
//! batch or a scrape, never across an await.
//!
//! (tokio's bounded channel was measured allocating a block every few dozen
//! sends: `tests/metrics_alloc.rs`.)

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::asn::{AsTable, TableError, MAX_FILE_BYTES};
use super::class::OutcomeClass;
use super::network::Network;
use super::topn::{ByNetwork, ROTATE_EVERY};

/// Events waiting for the accounting task at most (~16 bytes each).
pub const QUEUE: usize = 16_384;
/// Events taken per batch (one lock per batch).
const BATCH: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Event {
    ip: IpAddr,
    class: OutcomeClass,
}

/// What the accounting task counts and a scrape reads.
#[derive(Debug)]
pub struct NetworkCounts {
    state: Mutex<NetState>,
    /// Events lost to a full queue.
    pub dropped: AtomicU64,
    /// Table files loaded after start, and refused.
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
}

#[derive(Debug)]
pub struct NetState {
    pub by: ByNetwork,
    pub table: Option<Arc<AsTable>>,
}

impl NetworkCounts {
    pub fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The connection tasks' end of the channel.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: SyncSender<Event>,
    counts: Arc<NetworkCounts>,
}

impl Feed {
    /// Queues one attempt for counting; never waits.
    pub fn send(&self, ip: IpAddr, class: OutcomeClass) {
        if self.tx.try_send(Event { ip, class }).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn counts(&self) -> &Arc<NetworkCounts> {
        &self.counts
    }
}

/// The background side, started by the server.
#[derive(Debug)]
pub struct FeedTasks {
    rx: Receiver<Event>,
    counts: Arc<NetworkCounts>,
    table: Option<(PathBuf, Stamp)>,
    reload_every: Duration,
}

/// Creates the channel and the state, with the table loaded at start (if any).
pub fn new(
    top_networks: usize,
    table: Option<(PathBuf, Stamp, AsTable)>,
    reload_every: Duration,
) -> (Feed, FeedTasks) {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let (watch, table) = match table {
        Some((path, stamp, table)) => (Some((path, stamp)), Some(Arc::new(table))),
        None => (None, None),
    };
    let counts = Arc::new(NetworkCounts {
        state: Mutex::new(NetState {
            by: ByNetwork::new(top_networks),
            table,
        }),
        dropped: AtomicU64::new(0),
        reloads: AtomicU64::new(0),
        reload_failures: AtomicU64::new(0),
    });
    (
        Feed {
            tx,
            counts: counts.clone(),
        },
        FeedTasks {
            rx,
            counts,
            table: watch,
            reload_every,
        },
    )
}

impl FeedTasks {
    /// Starts the accounting thread (it ends when every [`Feed`] is gone) and,
    /// with a table file, the task watching it (which needs a tokio runtime).
    pub fn start(self) -> std::io::Result<()> {
        let FeedTasks {
            rx,
            counts,
            table,
            reload_every,
        } = self;
        if let Some((path, stamp)) = table {
            tokio::spawn(watch_table(
                path,
                stamp,
                reload_every,
                Arc::downgrade(&counts),
            ));
        }
        std::thread::Builder::new()
            .name("tlsdiag-metrics".into())
            .spawn(move || account(&rx, &counts))?;
        Ok(())
    }
}

/// Counts events in batches (one lock each) and re-chooses the labelled
/// networks every [`ROTATE_EVERY`].
fn account(rx: &Receiver<Event>, counts: &NetworkCounts) {
    let mut rotate_at = Instant::now() + ROTATE_EVERY;
    loop {
        let wait = rotate_at.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(first) => {
                let mut state = counts.lock();
                let NetState { by, table } = &mut *state;
                let table = table.as_deref();
                for event in std::iter::once(first).chain(rx.try_iter().take(BATCH - 1)) {
                    let network = Network::of(event.ip, table);
                    by.record(network, event.class, |n| n.labels(table));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= rotate_at {
            rotate_at = Instant::now() + ROTATE_EVERY;
            let mut state = counts.lock();
            let NetState { by, table } = &mut *state;
            let table = table.as_deref();
            by.rotate(|n| n.labels(table));
        }
    }
}

/// What identifies one version of the table file: a replaced file (new
/// inode), a rewritten one (mtime) or a grown one (size) all differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// Reads and parses the table (blocking: call it off the runtime's threads).
pub fn load(path: &Path) -> Result<(Stamp, AsTable), TableError> {
    use std::io::Read;
    let io = |e: std::io::Error| TableError::Io(e.to_string());
    let before = stamp(path).map_err(io)?;
    if before.len > MAX_FILE_BYTES {
        return Err(TableError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(before.len as usize);
    // One byte more than allowed: a file growing while read is still caught.
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let table = AsTable::parse(&bytes)?;
    Ok((before, table))
}

/// Polls the file's stamp; on a change, loads it off the runtime and swaps it
/// in, or keeps the old table and logs why. Ends with the counts.
async fn watch_table(
    path: PathBuf,
    mut seen: Stamp,
    every: Duration,
    counts: std::sync::Weak<NetworkCounts>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if counts.strong_count() == 0 {
            return;
        }
        let check = path.clone();
        let now = match tokio::task::spawn_blocking(move || stamp(&check)).await {
            Ok(Ok(now)) => now,
            Ok(Err(err)) => {
                // Being replaced, or gone: the table in use stays.
                tracing::debug!(path = %path.display(), error = %err, "cannot stat the AS table");
                continue;
            }
            Err(_) => continue,
        };
        if now == seen {
            continue;
        }
        seen = now;
        let file = path.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&file)).await;
        let Some(counts) = counts.upgrade() else {
            return;
        };
        match loaded {
            Ok(Ok((stamp, table))) => {
                seen = stamp;
                let ranges = table.ranges();
                counts.lock().table = Some(Arc::new(table));
                counts.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(path = %path.display(), ranges, "AS table reloaded");
            }
            Ok(Err(err)) => {
                counts.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %path.display(), error = %err, "AS table not reloaded; keeping the one in use");
            }
            Err(err) => {
                counts.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %path.display(), error = %err, "AS table reload task failed; keeping the one in use");
            }
        }
    }
}
