//! Recent records (HTTPS attempts, probe observations), in memory, looked up by
//! client address.
//!
//! Bounded three ways so no client (or crowd of clients) can grow it without
//! limit: records kept per address, records kept in total, and an estimate of
//! the bytes they hold. Entries also expire (default one hour). The oldest go
//! first. A caller only ever gets the records of the address it asks for;
//! handlers ask only for the caller's own.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::attempt::TlsAttempt;

/// What the store needs to know about a record.
pub trait Recorded {
    fn address(&self) -> IpAddr;
    fn id(&self) -> u64;
    /// Bytes the record holds in memory, for the byte budgets.
    fn approx_bytes(&self) -> usize;
    /// Whether an address's full list may drop this record before older
    /// ones: it is context nobody's verdict rests on.
    fn expendable(&self) -> bool {
        false
    }
}

impl Recorded for TlsAttempt {
    fn address(&self) -> IpAddr {
        self.peer.ip()
    }

    fn id(&self) -> u64 {
        self.id
    }

    /// Its real footprint: the struct and every buffer it owns.
    fn approx_bytes(&self) -> usize {
        crate::attempt::footprint::of(self)
    }

    /// A connection that worked and that no test run named: behind a busy
    /// NAT address these are most of the list, and they must not push out
    /// the stuck and failed attempts a run's verdict rests on.
    fn expendable(&self) -> bool {
        self.succeeded() && self.run.get().is_none()
    }
}

/// How long a record stays safe from being dropped as expendable: a run's
/// connection is recorded when its handshake ends, a moment before the
/// request that names the run arrives.
const EXPENDABLE_AFTER: Duration = Duration::from_secs(10);

/// Limits for a [`RecentStore`].
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    pub per_address: usize,
    pub total: usize,
    /// Upper bound on the bytes held by all records together.
    pub total_bytes: usize,
    /// Upper bound on the bytes held by one address's records (its newest
    /// record is kept even when alone it is larger), so one address cannot
    /// push everyone else's records out of `total_bytes`.
    pub per_address_bytes: usize,
    pub ttl: Duration,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            per_address: 50,
            total: 20_000,
            total_bytes: 64 * 1024 * 1024,
            per_address_bytes: 2 * 1024 * 1024,
            ttl: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug)]
struct Entry<T> {
    at: Instant,
    record: Arc<T>,
    bytes: usize,
}

#[derive(Debug)]
struct Inner<T> {
    by_address: HashMap<IpAddr, VecDeque<Entry<T>>>,
    /// Global insertion order: (address, id), oldest first.
    order: VecDeque<(IpAddr, u64)>,
    bytes: usize,
}

impl<T> Default for Inner<T> {
    fn default() -> Self {
        Self {
            by_address: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }
}

/// Bounded, expiring, per-address store of recent records.
#[derive(Debug)]
pub struct RecentStore<T> {
    limits: StoreLimits,
    inner: Mutex<Inner<T>>,
}

impl<T: Recorded> RecentStore<T> {
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    pub fn record(&self, record: Arc<T>) {
        self.record_at(record, Instant::now());
    }

    pub fn record_at(&self, record: Arc<T>, now: Instant) {
        let address = record.address().to_canonical();
        let id = record.id();
        let bytes = record.approx_bytes();
        let mut evicted = Vec::new();
        {
            let mut inner = self.lock();
            let inner = &mut *inner;
            let list = inner.by_address.entry(address).or_default();
            list.push_back(Entry {
                at: now,
                record,
                bytes,
            });
            inner.bytes += bytes;
            inner.order.push_back((address, id));
            if list.len() > self.limits.per_address {
                // The oldest expendable record goes first, else the oldest.
                // (The global order finds a record dropped from the middle
                // gone when it reaches it, as it does one the cap dropped.)
                let at = list
                    .iter()
                    .position(|e| {
                        now.saturating_duration_since(e.at) >= EXPENDABLE_AFTER
                            && e.record.expendable()
                    })
                    .unwrap_or(0);
                if let Some(old) = list.remove(at) {
                    inner.bytes -= old.bytes;
                    evicted.push(old);
                }
            }
            let mut held: usize = list.iter().map(|e| e.bytes).sum();
            while held > self.limits.per_address_bytes && list.len() > 1 {
                if let Some(old) = list.pop_front() {
                    inner.bytes -= old.bytes;
                    held -= old.bytes;
                    evicted.push(old);
                }
            }
            self.evict(inner, now, &mut evicted);
        }
        // Freed once the lock is released: a record's last reference frees
        // dozens of buffers, and every other connection's attempt waits on
        // this lock.
        drop(evicted);
    }

    /// The address's records, newest first, expired ones left out.
    pub fn recent(&self, address: IpAddr) -> Vec<Arc<T>> {
        self.recent_at(address, Instant::now())
    }

    pub fn recent_at(&self, address: IpAddr, now: Instant) -> Vec<Arc<T>> {
        let address = address.to_canonical();
        let mut evicted = Vec::new();
        let mut inner = self.lock();
        self.evict(&mut inner, now, &mut evicted);
        let recent = inner
            .by_address
            .get(&address)
            .map(|list| list.iter().rev().map(|e| e.record.clone()).collect())
            .unwrap_or_default();
        drop(inner);
        drop(evicted);
        recent
    }

    /// Total attempts held (for metrics and tests).
    pub fn len(&self) -> usize {
        self.lock().by_address.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        // A panic while holding this lock leaves only plain data behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes out the oldest attempts while any limit is exceeded or they have
    /// expired, into `evicted` (for the caller to free outside the lock).
    fn evict(&self, inner: &mut Inner<T>, now: Instant, evicted: &mut Vec<Entry<T>>) {
        while let Some(&(address, id)) = inner.order.front() {
            let Some(list) = inner.by_address.get_mut(&address) else {
                inner.order.pop_front();
                continue;
            };
            // Already dropped by the per-address cap.
            if list.front().is_none_or(|e| e.record.id() != id) {
                if list.is_empty() {
                    inner.by_address.remove(&address);
                }
                inner.order.pop_front();
                continue;
            }
            let expired = list
                .front()
                .is_some_and(|e| now.saturating_duration_since(e.at) >= self.limits.ttl);
            let over =
                inner.order.len() > self.limits.total || inner.bytes > self.limits.total_bytes;
            if !expired && !over {
                break;
            }
            if let Some(old) = list.pop_front() {
                inner.bytes -= old.bytes;
                evicted.push(old);
            }
            if list.is_empty() {
                inner.by_address.remove(&address);
            }
            inner.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::{Outcome, StallEnd};
    use std::net::SocketAddr;

    fn attempt(id: u64, ip: [u8; 4]) -> Arc<TlsAttempt> {
        let mut a = TlsAttempt::fixture(id, SocketAddr::from((ip, 40000)));
        a.outcome = Outcome::NoData {
            ended: StallEnd::Timeout,
        };
        Arc::new(a)
    }

    fn ids(list: &[Arc<TlsAttempt>]) -> Vec<u64> {
        list.iter().map(|a| a.id).collect()
    }

    #[test]
    fn returns_only_the_callers_attempts_newest_first() {
        let store = RecentStore::<TlsAttempt>::new(StoreLimits::default());
        let now = Instant::now();
        store.record_at(attempt(1, [127, 0, 0, 1]), now);
        store.record_at(attempt(2, [127, 0, 0, 2]), now);
        store.record_at(attempt(3, [127, 0, 0, 1]), now);
        assert_eq!(
            ids(&store.recent_at([127, 0, 0, 1].into(), now)),
            vec![3, 1]
        );
        assert_eq!(ids(&store.recent_at([127, 0, 0, 2].into(), now)), vec![2]);
        assert!(store.recent_at([127, 0, 0, 3].into(), now).is_empty());
    }

    #[test]
    fn a_full_address_drops_other_clients_successes_before_a_runs_evidence() {
        let limits = StoreLimits {
            per_address: 3,
            ..StoreLimits::default()
        };
        let store = RecentStore::<TlsAttempt>::new(limits);
        let t0 = Instant::now();
        let completed = |id| {
            let mut a = (*attempt(id, [10, 0, 0, 9])).clone();
            a.outcome = Outcome::Completed;
            Arc::new(a)
        };
        // A run's stuck hello, then a neighbour's handshakes that worked.
        store.record_at(attempt(1, [10, 0, 0, 9]), t0);
        store.record_at(completed(2), t0);
        store.record_at(completed(3), t0);
        let later = t0 + Duration::from_secs(11);
        store.record_at(completed(4), later);
        store.record_at(completed(5), later);
        assert_eq!(
            ids(&store.recent_at([10, 0, 0, 9].into(), later)),
            vec![5, 4, 1]
        );
        // Young successes may still be named by a run: the oldest goes.
        store.record_at(completed(6), later);
        assert_eq!(
            ids(&store.recent_at([10, 0, 0, 9].into(), later)),
            vec![6, 5, 4]
        );
        // The global order skips what was dropped from the middle.
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn caps_per_address_and_in_total() {
        let limits = StoreLimits {
            per_address: 2,
            total: 3,
            ..StoreLimits::default()
        };
        let store = RecentStore::<TlsAttempt>::new(limits);
        let now = Instant::now();
        for id in 1..=4 {
            store.record_at(attempt(id, [10, 0, 0, 1]), now);
        }
        assert_eq!(ids(&store.recent_at([10, 0, 0, 1].into(), now)), vec![4, 3]);
        store.record_at(attempt(5, [10, 0, 0, 2]), now);
        store.record_at(attempt(6, [10, 0, 0, 3]), now);
        assert_eq!(store.len(), 3);
        assert_eq!(ids(&store.recent_at([10, 0, 0, 1].into(), now)), vec![4]);
    }

    #[test]
    fn one_address_with_huge_records_cannot_push_out_another() {
        let limits = StoreLimits {
            total_bytes: 100 * 1024,
            per_address_bytes: 40 * 1024,
            ..StoreLimits::default()
        };
        let store = RecentStore::<TlsAttempt>::new(limits);
        let now = Instant::now();
        store.record_at(attempt(1, [10, 0, 0, 9]), now);
        for id in 2..200 {
            let mut big = (*attempt(id, [10, 0, 0, 1])).clone();
            big.raw = vec![0; 16 * 1024];
            store.record_at(Arc::new(big), now);
        }
        assert_eq!(ids(&store.recent_at([10, 0, 0, 9].into(), now)), vec![1]);
        let hostile = store.recent_at([10, 0, 0, 1].into(), now);
        assert!(hostile.len() <= 2, "{}", hostile.len());
        assert_eq!(hostile[0].id, 199, "the newest is kept");
    }

    #[test]
    fn expires_old_attempts() {
        let store = RecentStore::<TlsAttempt>::new(StoreLimits::default());
        let then = Instant::now();
        store.record_at(attempt(1, [127, 0, 0, 1]), then);
        let later = then + Duration::from_secs(3601);
        assert!(store.recent_at([127, 0, 0, 1].into(), later).is_empty());
        assert!(store.is_empty());
    }
}
