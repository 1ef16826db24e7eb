//! Connections to the HTTPS port whose attempt has not ended yet.
//!
//! An attempt is recorded when its handshake ends, and a stalled ClientHello
//! ends only at the hello timeout. A customer should not have to wait for it:
//! while a connection hangs, this registry lets a report show it as it stands
//! ("1,460 of 1,981 bytes so far, 1 segment held out of order, waiting 4 s"),
//! read on demand from counters the capture updates and a fresh `TCP_INFO`.
//! Nothing is sampled in the background; a report pays for what it reads.
//!
//! Bounded by the connections themselves: an entry lives exactly as long as
//! its connection's capture and handshake, and reports read at most
//! [`MAX_SHOWN`] per address.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::time::Instant;

use crate::attempt::{AfterHandshake, Arrival, IcmpProbe, Outcome, SentData, StallEnd, TlsAttempt};
use crate::capture::ReadEvent;
use crate::tcp::{SynInfo, TcpHandle, TcpInfo};

/// Entries a report reads per address: the newest ones.
pub const MAX_SHOWN: usize = 16;

/// Where a pending connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the ClientHello.
    ReadingHello,
    /// The hello is complete; the handshake is under way.
    Handshaking,
}

/// One connection in progress. Its capture updates the counters.
#[derive(Debug)]
pub struct Pending {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub started: Instant,
    pub started_at: SystemTime,
    handle: Option<TcpHandle>,
    /// The client's SYN: what ties a stuck connection to the machine that
    /// opened it, before any request could.
    syn: Option<Arc<SynInfo>>,
    stage: AtomicU8,
    /// ClientHello bytes received so far, and the total its headers announced
    /// (0 while unknown).
    received: AtomicU64,
    expected: AtomicU64,
    reads: AtomicU64,
    first_read: AtomicU64,
    /// Our ICMP test so far (set when sent, final when the hello ends).
    icmp: Mutex<Option<IcmpProbe>>,
}

impl Pending {
    pub fn set_icmp(&self, probe: IcmpProbe) {
        *self.icmp.lock().unwrap_or_else(|p| p.into_inner()) = Some(probe);
    }

    /// After each read of the ClientHello: bytes so far, the size of this
    /// read, and the total the headers announced (when known).
    pub fn set_progress(&self, received: usize, read: usize, expected: Option<usize>) {
        if self.reads.fetch_add(1, Ordering::Relaxed) == 0 {
            self.first_read.store(read as u64, Ordering::Relaxed);
        }
        self.received.store(received as u64, Ordering::Relaxed);
        self.expected
            .store(expected.unwrap_or(0) as u64, Ordering::Relaxed);
    }

    pub fn set_stage(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Relaxed);
    }

    /// How it stands now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            id: self.id,
            peer: self.peer,
            local: self.local,
            started_at: self.started_at,
            waited_ms: crate::capture::ms(self.started.elapsed()),
            stage: match self.stage.load(Ordering::Relaxed) {
                0 => Stage::ReadingHello,
                _ => Stage::Handshaking,
            },
            received: self.received.load(Ordering::Relaxed) as usize,
            reads: self.reads.load(Ordering::Relaxed) as usize,
            first_read: self.first_read.load(Ordering::Relaxed) as usize,
            expected: match self.expected.load(Ordering::Relaxed) {
                0 => None,
                n => Some(n as usize),
            },
            tcp: self.handle.as_ref().and_then(TcpHandle::info),
            syn: self.syn.clone(),
            icmp: self.icmp.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// A pending connection as read at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub started_at: SystemTime,
    pub waited_ms: f64,
    pub stage: Stage,
    pub received: usize,
    pub reads: usize,
    pub first_read: usize,
    pub expected: Option<usize>,
    pub tcp: Option<TcpInfo>,
    pub syn: Option<Arc<SynInfo>>,
    pub icmp: Option<IcmpProbe>,
}

/// A "no change" after our ICMP is only said once the client had this long
/// to react (it resends within a round trip when the message reaches it).
const ICMP_VERDICT_AFTER_MS: f64 = 2000.0;

/// A connection shows as stalled once it has waited this long with nothing
/// new arriving (the same bar as a stalled transfer).
const STALLED_AFTER_MS: u32 = crate::attempt::STALL_AFTER_MS;

impl Snapshot {
    /// Our ICMP test as it stands: final once the hello ended (rescued or
    /// not); while it still hangs, "no change" only after the client had
    /// time to react.
    fn icmp_so_far(&self) -> Option<IcmpProbe> {
        match self.icmp.clone()? {
            IcmpProbe::NoChange {
                message,
                mtu,
                sent_at_ms,
                held_segments,
                ..
            } if self.stage == Stage::ReadingHello => {
                let waited_ms = self.waited_ms - sent_at_ms;
                (waited_ms >= ICMP_VERDICT_AFTER_MS).then_some(IcmpProbe::NoChange {
                    message,
                    mtu,
                    sent_at_ms,
                    waited_ms,
                    held_segments,
                })
            }
            other => Some(other),
        }
    }

    /// The attempt as it would be recorded if it ended now, when it is
    /// visibly stuck: a ClientHello that stopped arriving, or our handshake
    /// reply that stopped being acknowledged. `None` while it is just young.
    pub fn as_stalled_attempt(&self) -> Option<TlsAttempt> {
        let tcp = self.tcp?;
        let outcome = match self.stage {
            Stage::ReadingHello => {
                let quiet = tcp.last_data_recv_ms.min(self.waited_ms as u32);
                if quiet < STALLED_AFTER_MS {
                    return None;
                }
                if self.received == 0 && tcp.rcv_ooopack == 0 {
                    Outcome::NoData {
                        ended: StallEnd::Waiting,
                    }
                } else {
                    Outcome::HelloIncomplete {
                        received: self.received,
                        expected: self.expected,
                        ended: StallEnd::Waiting,
                        out_of_order_segments: tcp.rcv_ooopack,
                    }
                }
            }
            // Our reply unacknowledged and resent after long enough. (Not the
            // time since the last ACK: a client that just gave up sends one
            // with its FIN, and its attempt is not recorded yet.)
            Stage::Handshaking
                if self.waited_ms >= f64::from(STALLED_AFTER_MS) && {
                    let flight = SentData::from_tcp(&tcp);
                    flight.acknowledged < flight.written && flight.retransmissions > 0
                } =>
            {
                Outcome::HandshakeTimeout
            }
            Stage::Handshaking => return None,
        };
        Some(TlsAttempt {
            id: self.id,
            peer: self.peer,
            local: self.local,
            started_at: self.started_at,
            arrival: Arrival {
                bytes: self.received,
                read_count: self.reads,
                // The first read's size is what the hello-incomplete finding
                // shows as "first piece"; its time is not kept.
                reads: (self.reads > 0)
                    .then_some(ReadEvent {
                        at_ms: 0.0,
                        bytes: self.first_read,
                    })
                    .into_iter()
                    .collect(),
                capture_ms: self.waited_ms,
            },
            raw: Vec::new(),
            client_hello: None,
            fingerprint_cache: Default::default(),
            negotiated: None,
            handshake_ms: (self.stage == Stage::Handshaking).then_some(self.waited_ms),
            outcome,
            syn: self.syn.clone(),
            tcp: Some(tcp),
            // What we announced is known while it hangs; whether a cached
            // path MTU shrank it is looked up when it is recorded.
            our_mss: crate::attempt::OurMss::of(
                &tcp,
                self.syn.as_deref(),
                self.peer.ip().to_canonical().is_ipv4(),
                || None,
            ),
            handshake_flight: (self.stage == Stage::Handshaking).then(|| SentData::from_tcp(&tcp)),
            after_handshake: AfterHandshake::default(),
            icmp_probe: self.icmp_so_far(),
            first_request: Default::default(),
            run: Default::default(),

            seen_by: None,
            balancer: None,
        })
    }
}

/// All pending connections, by client address, then by id (ids grow, so the
/// newest are last; adding and removing one costs a tree step, however many
/// connections one address holds).
#[derive(Debug, Default)]
pub struct InFlight {
    by_address: Mutex<HashMap<IpAddr, BTreeMap<u64, Arc<Pending>>>>,
}

/// Removes its entry when the connection's attempt ends (or its task dies).
#[derive(Debug)]
pub struct Registration<'a> {
    registry: &'a InFlight,
    pending: Arc<Pending>,
}

impl Registration<'_> {
    pub fn pending(&self) -> &Pending {
        &self.pending
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let address = self.pending.peer.ip().to_canonical();
        let mut map = self.registry.lock();
        if let Some(list) = map.get_mut(&address) {
            list.remove(&self.pending.id);
            if list.is_empty() {
                map.remove(&address);
            }
        }
    }
}

impl InFlight {
    /// `started` and `started_at` are the connection's accept, on both clocks.
    pub fn register(
        &self,
        id: u64,
        (peer, local): (SocketAddr, SocketAddr),
        (handle, syn): (Option<TcpHandle>, Option<Arc<SynInfo>>),
        (started, started_at): (Instant, SystemTime),
    ) -> Registration<'_> {
        let pending = Arc::new(Pending {
            id,
            peer,
            local,
            started,
            started_at,
            handle,
            syn,
            stage: AtomicU8::new(Stage::ReadingHello as u8),
            received: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            first_read: AtomicU64::new(0),
            icmp: Mutex::new(None),
        });
        self.lock()
            .entry(peer.ip().to_canonical())
            .or_default()
            .insert(id, pending.clone());
        Registration {
            registry: self,
            pending,
        }
    }

    /// The address's pending connections, newest first, read now.
    pub fn snapshots(&self, address: IpAddr) -> Vec<Snapshot> {
        let newest: Vec<Arc<Pending>> = self
            .lock()
            .get(&address.to_canonical())
            .map(|list| list.values().rev().take(MAX_SHOWN).cloned().collect())
            .unwrap_or_default();
        // TCP_INFO is read outside the lock.
        newest.iter().map(|p| p.snapshot()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, BTreeMap<u64, Arc<Pending>>>> {
        // Only plain data behind it; keep serving after a panic elsewhere.
        self.by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], 40000))
    }

    #[test]
    fn an_entry_lives_as_long_as_its_registration() {
        let registry = InFlight::default();
        let local = SocketAddr::from(([127, 0, 0, 1], 8443));
        let now = (Instant::now(), SystemTime::now());
        let a = registry.register(1, (addr(2), local), (None, None), now);
        a.pending().set_progress(1460, 1460, Some(1981));
        {
            let _b = registry.register(2, (addr(2), local), (None, None), now);
            let _other = registry.register(3, (addr(3), local), (None, None), now);
            let shown = registry.snapshots(addr(2).ip());
            assert_eq!(shown.iter().map(|s| s.id).collect::<Vec<_>>(), [2, 1]);
        }
        let shown = registry.snapshots(addr(2).ip());
        assert_eq!(shown.len(), 1);
        assert_eq!((shown[0].received, shown[0].expected), (1460, Some(1981)));
        drop(a);
        assert!(registry.snapshots(addr(2).ip()).is_empty());
        assert!(registry.by_address.lock().unwrap().is_empty());
    }
}
