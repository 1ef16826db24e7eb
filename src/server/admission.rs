//! Who may hold a connection on a listener, and who makes room.
//!
//! Each listener has its own limit, so a flood on one port never takes
//! another away. Each client address may hold at most a share of it
//! (`--max-connections-per-address`, a quarter by default: room for hundreds
//! of users behind one corporate NAT, yet one address can never fill the
//! listener). When a limit is reached the oldest connection that is not
//! serving a request (one that has sent nothing yet, or sits idle between
//! requests) makes room: the new connection's own address's first; when the
//! whole listener is full, the address holding the most. Only when every
//! candidate is busy is the new connection refused.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::activity::{Activity, Phase};

/// Limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_address: usize,
}

/// Counters an operator reads (and tests check).
#[derive(Debug, Default)]
pub struct Counters {
    pub admitted: AtomicU64,
    pub shed: AtomicU64,
    pub refused: AtomicU64,
    /// Closed for want of a valid PROXY header (`--proxy-protocol`).
    pub proxy_rejected: AtomicU64,
}

#[derive(Debug)]
struct Held {
    seq: u64,
    activity: Arc<Activity>,
}

#[derive(Debug, Default)]
struct Table {
    total: usize,
    next_seq: u64,
    /// Oldest first.
    by_address: HashMap<IpAddr, VecDeque<Held>>,
}

/// One listener's connections.
#[derive(Debug)]
pub struct Admission {
    name: &'static str,
    limits: Limits,
    table: Mutex<Table>,
    pub counters: Counters,
}

/// A place on the listener; dropping it (when the connection ends) frees it.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    address: IpAddr,
    seq: u64,
}

impl Admission {
    pub fn new(name: &'static str, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            name,
            limits,
            table: Mutex::new(Table::default()),
            counters: Counters::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The listener's name, for logs.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.lock().total
    }

    /// Connections `address` holds now.
    pub fn held_by(&self, address: IpAddr) -> usize {
        self.lock()
            .by_address
            .get(&address.to_canonical())
            .map_or(0, VecDeque::len)
    }

    /// Takes a place for a new connection from `address`, shedding another
    /// connection if a limit requires it; `None` when nobody can make room.
    pub fn admit(self: &Arc<Self>, address: IpAddr, activity: Arc<Activity>) -> Option<Ticket> {
        let address = address.to_canonical();
        let mut table = self.lock();
        let mine = table.by_address.get(&address).map_or(0, VecDeque::len);
        let room = if mine >= self.limits.per_address {
            shed_oldest_waiting(&mut table, address)
        } else if table.total >= self.limits.total {
            match heaviest(&table) {
                Some(heavy) => shed_oldest_waiting(&mut table, heavy),
                None => false,
            }
        } else {
            true
        };
        if !room {
            drop(table);
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = self.name, %address, "connection refused: limit reached and every connection is busy");
            return None;
        }
        if mine >= self.limits.per_address || table.total >= self.limits.total {
            // `shed_oldest_waiting` made room above.
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
        }
        let seq = table.next_seq;
        table.next_seq += 1;
        table
            .by_address
            .entry(address)
            .or_default()
            .push_back(Held { seq, activity });
        table.total += 1;
        drop(table);
        self.counters.admitted.fetch_add(1, Ordering::Relaxed);
        Some(Ticket {
            admission: self.clone(),
            address,
            seq,
        })
    }
}

/// The address holding the most connections.
fn heaviest(table: &Table) -> Option<IpAddr> {
    table
        .by_address
        .iter()
        .max_by_key(|(_, held)| held.len())
        .map(|(&address, _)| address)
}

/// Sheds `address`'s oldest connection that is not serving a request.
fn shed_oldest_waiting(table: &mut Table, address: IpAddr) -> bool {
    let Some(list) = table.by_address.get_mut(&address) else {
        return false;
    };
    let Some(index) = list
        .iter()
        .position(|held| held.activity.phase() != Phase::Busy)
    else {
        return false;
    };
    if let Some(victim) = list.remove(index) {
        victim.activity.shed();
    }
    if list.is_empty() {
        table.by_address.remove(&address);
    }
    table.total -= 1;
    true
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut table = self.admission.lock();
        let Some(list) = table.by_address.get_mut(&self.address) else {
            return; // shed: already removed
        };
        let Some(index) = list.iter().position(|held| held.seq == self.seq) else {
            return;
        };
        list.remove(index);
        if list.is_empty() {
            table.by_address.remove(&self.address);
        }
        table.total -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn activity() -> Arc<Activity> {
        Arc::new(Activity::new(Instant::now()))
    }

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    #[test]
    fn an_address_at_its_cap_sheds_its_own_oldest_waiting_connection() {
        let a = Admission::new(
            "test",
            Limits {
                total: 10,
                per_address: 3,
            },
        );
        let first = activity();
        let busy = activity();
        let _busy_request = busy.begin_request();
        let tickets: Vec<_> = [busy.clone(), first.clone(), activity()]
            .into_iter()
            .map(|act| a.admit(addr(1), act).expect("room"))
            .collect();
        assert_eq!(a.held_by(addr(1)), 3);
        // The busy one is older but is serving a request: the next oldest goes.
        let fourth = a.admit(addr(1), activity()).expect("room made");
        assert_eq!(a.held_by(addr(1)), 3);
        assert_eq!(a.counters.shed.load(Ordering::Relaxed), 1);
        drop(tickets);
        drop(fourth);
        assert_eq!(a.held(), 0);
    }

    #[test]
    fn a_full_listener_sheds_from_the_heaviest_address_not_the_newcomer() {
        let a = Admission::new(
            "test",
            Limits {
                total: 4,
                per_address: 3,
            },
        );
        let mut held: Vec<_> = (0..3)
            .map(|_| a.admit(addr(1), activity()).expect("room"))
            .collect();
        held.push(a.admit(addr(2), activity()).expect("room"));
        assert_eq!(a.held(), 4);
        let newcomer = a.admit(addr(3), activity()).expect("room made");
        assert_eq!(a.held_by(addr(1)), 2);
        assert_eq!(a.held_by(addr(2)), 1);
        assert_eq!(a.held_by(addr(3)), 1);
        drop(newcomer);
        drop(held);
        assert_eq!(a.held(), 0);
    }

    #[test]
    fn when_every_candidate_is_busy_the_newcomer_is_refused() {
        let a = Admission::new(
            "test",
            Limits {
                total: 10,
                per_address: 2,
            },
        );
        let busy: Vec<_> = (0..2).map(|_| activity()).collect();
        let _requests: Vec<_> = busy.iter().map(|b| b.begin_request()).collect();
        let _tickets: Vec<_> = busy
            .iter()
            .map(|b| a.admit(addr(1), b.clone()).expect("room"))
            .collect();
        assert!(a.admit(addr(1), activity()).is_none());
        assert_eq!(a.counters.refused.load(Ordering::Relaxed), 1);
        // Another address is unaffected.
        assert!(a.admit(addr(2), activity()).is_some());
    }
}
