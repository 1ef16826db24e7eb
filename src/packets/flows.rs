//! The captured packets of recent connections, per connection, within stated
//! bounds: a connection keeps at most [`Limits::per_connection_packets`]
//! packets and [`Limits::per_connection_bytes`] (past that, a packet keeps
//! its first [`HEADERS_KEPT`] bytes, its headers, while they fit); one client
//! address at most [`Limits::per_address_bytes`] (its own oldest connections
//! go first); all together at most [`Limits::total_bytes`] (the oldest
//! connection anywhere goes first). Every byte is charged at its real size:
//! the packet bytes, each packet's record, each connection's record and its
//! index entries.
//!
//! A connection starts with the client's SYN: packets of a connection whose
//! SYN was not seen, and ICMP about a connection we do not hold, are counted
//! and dropped, so traffic that never opened a connection cannot take room.
//! Pure: fed packets and times by the capture thread, read by the web layer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use super::ip::{self, Parsed};

/// Bytes a packet keeps once its connection is past its byte bound: the IP
/// and TCP headers with options (60 + 60), so sequence numbers and flags stay
/// readable.
pub const HEADERS_KEPT: usize = 120;

/// How long a packet stays after its connection began.
pub const KEEP_FOR: Duration = Duration::from_secs(15 * 60);

/// Within this long of its last packet, a SYN on the same addresses and ports
/// is the same connection's retransmitted SYN, not a new connection.
const SAME_CONNECTION: Duration = Duration::from_secs(30);

/// An attempt starts when its connection is accepted, after its SYN was
/// captured; this much slack covers the two clocks' reading order.
const ACCEPT_SLACK: Duration = Duration::from_millis(100);

/// The bounds (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total_bytes: usize,
    pub per_address_bytes: usize,
    pub per_connection_bytes: usize,
    pub per_connection_packets: usize,
}

impl Limits {
    /// The defaults for `total_bytes` (`--packet-memory`): an address gets an
    /// eighth, a connection 256 KiB and 128 packets.
    pub fn within(total_bytes: usize) -> Self {
        let per_address_bytes = (total_bytes / 8).max(1);
        Self {
            total_bytes,
            per_address_bytes,
            per_connection_bytes: per_address_bytes.min(256 * 1024),
            per_connection_packets: 128,
        }
    }
}

/// Which ends a connection has: the client's, and ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

impl FlowKey {
    /// With IPv4-mapped IPv6 addresses (a dual-stack listener's view) shown
    /// as the IPv4 addresses the packets carry.
    pub fn new(client: SocketAddr, server: SocketAddr) -> Self {
        let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
        Self {
            client: canonical(client),
            server: canonical(server),
        }
    }
}

/// What kind of packet it is, for the file's comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    /// Our own ICMP "fragmentation needed" / "packet too big" toward the client.
    OurTooBig,
    /// One that reached us about a packet of ours (from a router on the path).
    TheirTooBig,
}

/// One packet as captured.
#[derive(Debug, Clone)]
pub struct Captured {
    pub at: SystemTime,
    /// From the IP header on; shorter than `original_len` when cut.
    pub data: Box<[u8]>,
    pub original_len: u32,
    /// Sent by the client (or a router toward us), rather than by us.
    pub inbound: bool,
    pub kind: Kind,
}

/// One connection's packets, as handed out.
#[derive(Debug, Clone)]
pub struct Connection {
    pub key: FlowKey,
    pub packets: Vec<Captured>,
    /// Packets past the connection's bounds, not kept.
    pub not_kept: u32,
}

/// One kept packet's place in its connection's bytes.
#[derive(Debug, Clone, Copy)]
struct Kept {
    at: SystemTime,
    offset: u32,
    len: u32,
    original_len: u32,
    inbound: bool,
    kind: Kind,
}

/// One connection: its packets' records and, in one buffer, their bytes
/// (one allocation growing by doubling, not one per packet).
#[derive(Debug)]
struct Flow {
    key: FlowKey,
    started: SystemTime,
    last: SystemTime,
    /// An older connection on the same addresses and ports, if still held.
    previous: Option<u64>,
    packets: Vec<Kept>,
    data: Vec<u8>,
    not_kept: u32,
    closed: bool,
}

/// A connection's record, its entries in the three indexes, and slack for
/// the maps' load factor and the tree's nodes.
const FLOW_OVERHEAD: usize = std::mem::size_of::<Flow>()
    + std::mem::size_of::<FlowKey>()
    + 4 * std::mem::size_of::<u64>()
    + 64;

impl Flow {
    fn size(&self) -> usize {
        FLOW_OVERHEAD + self.packets.capacity() * std::mem::size_of::<Kept>() + self.data.capacity()
    }

    /// What the flow would take with `bytes` more kept in one more packet.
    fn size_with(&self, bytes: usize) -> usize {
        let records = match self.packets.len() == self.packets.capacity() {
            true => grown(self.packets.capacity(), 1, 4),
            false => self.packets.capacity(),
        };
        let data = match self.data.len() + bytes > self.data.capacity() {
            true => grown(self.data.capacity(), bytes, 512),
            false => self.data.capacity(),
        };
        FLOW_OVERHEAD + records * std::mem::size_of::<Kept>() + data
    }

    fn push(&mut self, kept: Kept, bytes: &[u8]) {
        if self.packets.len() == self.packets.capacity() {
            let to = grown(self.packets.capacity(), 1, 4);
            self.packets.reserve_exact(to - self.packets.len());
        }
        if self.data.len() + bytes.len() > self.data.capacity() {
            let to = grown(self.data.capacity(), bytes.len(), 512);
            self.data.reserve_exact(to - self.data.len());
        }
        self.packets.push(kept);
        self.data.extend_from_slice(bytes);
    }

    fn captured(&self) -> Vec<Captured> {
        self.packets
            .iter()
            .map(|k| Captured {
                at: k.at,
                data: self.data[k.offset as usize..(k.offset + k.len) as usize].into(),
                original_len: k.original_len,
                inbound: k.inbound,
                kind: k.kind,
            })
            .collect()
    }
}

/// The capacity a buffer of `capacity` grows to, to take `more`: doubled
/// (at least `least`), and by hand, so what is charged is what is allocated.
fn grown(capacity: usize, more: usize, least: usize) -> usize {
    (capacity * 2).max(capacity + more).max(least)
}

#[derive(Debug, Default)]
struct Address {
    bytes: usize,
    /// Its connections, oldest first.
    flows: VecDeque<u64>,
}

/// Seeded per process: the keys are addresses and ports that peers choose.
type Hasher = foldhash::fast::RandomState;

/// What the table has done, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets kept (whole or cut to their headers).
    pub kept: u64,
    /// Packets past a connection's bounds.
    pub not_kept: u64,
    /// Packets of no connection we hold (no SYN seen, or already evicted).
    pub unmatched: u64,
    /// Connections dropped to stay within the address or total bound.
    pub evicted: u64,
    /// Connections dropped for age ([`KEEP_FOR`]).
    pub expired: u64,
}

/// The table. One writer (the capture thread), readers behind the same lock.
#[derive(Debug)]
pub struct FlowTable {
    limits: Limits,
    ports: Vec<u16>,
    /// By id: ids grow, so the first is the oldest.
    flows: BTreeMap<u64, Flow>,
    /// The newest connection on each addresses-and-ports.
    by_key: HashMap<FlowKey, u64, Hasher>,
    by_address: HashMap<IpAddr, Address, Hasher>,
    next: u64,
    bytes: usize,
    counters: Counters,
}

impl FlowTable {
    /// A table for connections to our `ports`.
    pub fn new(ports: &[u16], limits: Limits) -> Self {
        Self {
            limits,
            ports: ports.to_vec(),
            flows: BTreeMap::new(),
            by_key: HashMap::default(),
            by_address: HashMap::default(),
            next: 0,
            bytes: 0,
            counters: Counters::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes held, as charged against [`Limits::total_bytes`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn connections(&self) -> usize {
        self.flows.len()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Ours and theirs for a packet `from` → `to`: (key, sent by the client).
    fn key(&self, from: SocketAddr, to: SocketAddr) -> Option<(FlowKey, bool)> {
        if self.ports.contains(&to.port()) {
            Some((FlowKey::new(from, to), true))
        } else if self.ports.contains(&from.port()) {
            Some((FlowKey::new(to, from), false))
        } else {
            None
        }
    }

    /// Takes one captured packet (`data` from its IP header on).
    pub fn add(&mut self, at: SystemTime, data: &[u8], original_len: u32) {
        let Some(parsed) = ip::parse(data) else {
            return;
        };
        let (key, inbound, kind, flags) = match parsed {
            Parsed::Tcp { from, to, flags } => match self.key(from, to) {
                Some((key, inbound)) => (key, inbound, Kind::Tcp, flags),
                None => return,
            },
            Parsed::TooBig { from, to, sender } => match self.key(from, to) {
                Some((key, _)) if sender.to_canonical() == key.server.ip() => {
                    (key, false, Kind::OurTooBig, 0)
                }
                Some((key, _)) => (key, true, Kind::TheirTooBig, 0),
                None => return,
            },
        };
        let opens = kind == Kind::Tcp && inbound && flags & (ip::SYN | ip::ACK) == ip::SYN;
        let latest = self.by_key.get(&key).copied();
        let id = match latest {
            Some(id) if !opens => id,
            Some(id)
                if self.flows.get(&id).is_some_and(|f| {
                    !f.closed && at.duration_since(f.last).unwrap_or_default() < SAME_CONNECTION
                }) =>
            {
                id
            }
            _ if opens => self.open(key, at, latest),
            _ => {
                self.counters.unmatched += 1;
                return;
            }
        };
        let Some(flow) = self.flows.get_mut(&id) else {
            return;
        };
        let before = flow.size();
        flow.last = at;
        if kind == Kind::Tcp && flags & (ip::FIN | ip::RST) != 0 {
            flow.closed = true;
        }
        let bound = self.limits.per_connection_bytes;
        let headers = HEADERS_KEPT.min(data.len());
        let keep = if flow.packets.len() >= self.limits.per_connection_packets {
            0
        } else if flow.size_with(data.len()) <= bound {
            data.len()
        } else if flow.size_with(headers) <= bound {
            headers
        } else {
            0
        };
        if keep == 0 {
            flow.not_kept += 1;
            self.counters.not_kept += 1;
            return;
        }
        let kept = Kept {
            at,
            offset: flow.data.len() as u32,
            len: keep as u32,
            original_len: original_len.max(data.len() as u32),
            inbound,
            kind,
        };
        flow.push(kept, &data[..keep]);
        self.counters.kept += 1;
        // Charged by capacity: most packets fit what the buffers hold already.
        let grown = flow.size() - before;
        if grown > 0 {
            let client = key.client.ip();
            self.bytes += grown;
            if let Some(address) = self.by_address.get_mut(&client) {
                address.bytes += grown;
            }
            self.enforce(client, id);
        }
    }

    fn open(&mut self, key: FlowKey, at: SystemTime, previous: Option<u64>) -> u64 {
        let id = self.next;
        self.next += 1;
        let flow = Flow {
            key,
            started: at,
            last: at,
            previous,
            packets: Vec::new(),
            data: Vec::new(),
            not_kept: 0,
            closed: false,
        };
        let size = flow.size();
        self.flows.insert(id, flow);
        self.by_key.insert(key, id);
        let address = self.by_address.entry(key.client.ip()).or_default();
        address.flows.push_back(id);
        address.bytes += size;
        self.bytes += size;
        id
    }

    /// Drops the address's oldest connections, then the oldest anywhere,
    /// until both bounds hold; never `keep` (the connection just added to).
    fn enforce(&mut self, client: IpAddr, keep: u64) {
        while let Some(address) = self.by_address.get(&client) {
            if address.bytes <= self.limits.per_address_bytes {
                break;
            }
            match address.flows.iter().find(|&&id| id != keep) {
                Some(&oldest) => {
                    self.remove(oldest);
                    self.counters.evicted += 1;
                }
                None => break,
            }
        }
        while self.bytes > self.limits.total_bytes {
            match self.flows.keys().find(|&&id| id != keep) {
                Some(&oldest) => {
                    self.remove(oldest);
                    self.counters.evicted += 1;
                }
                None => break,
            }
        }
    }

    /// Drops connections that began more than [`KEEP_FOR`] before `now`
    /// (the capture thread calls it once per block of packets).
    pub fn expire(&mut self, now: SystemTime) {
        let Some(cutoff) = now.checked_sub(KEEP_FOR) else {
            return;
        };
        while let Some((&id, flow)) = self.flows.first_key_value() {
            if flow.started >= cutoff {
                break;
            }
            self.remove(id);
            self.counters.expired += 1;
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(flow) = self.flows.remove(&id) else {
            return;
        };
        let size = flow.size();
        self.bytes -= size;
        if self.by_key.get(&flow.key) == Some(&id) {
            match flow.previous.filter(|p| self.flows.contains_key(p)) {
                Some(previous) => self.by_key.insert(flow.key, previous),
                None => self.by_key.remove(&flow.key),
            };
        }
        let client = flow.key.client.ip();
        if let Some(address) = self.by_address.get_mut(&client) {
            address.bytes -= size;
            // Connections go oldest first, so this is nearly always the front.
            if address.flows.front() == Some(&id) {
                address.flows.pop_front();
            } else {
                address.flows.retain(|&i| i != id);
            }
            if address.flows.is_empty() {
                self.by_address.remove(&client);
            }
        }
    }

    /// The packets of the connection `client` → `server` whose attempt
    /// started at `started_at`: the newest one on those addresses and ports
    /// that began before it (a client may reuse its port later).
    pub fn connection(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        started_at: SystemTime,
    ) -> Option<Connection> {
        let key = FlowKey::new(client, server);
        let latest_start = started_at + ACCEPT_SLACK;
        let mut id = self.by_key.get(&key).copied();
        while let Some(flow) = id.and_then(|id| self.flows.get(&id)) {
            if flow.started <= latest_start {
                return Some(Connection {
                    key,
                    packets: flow.captured(),
                    not_kept: flow.not_kept,
                });
            }
            id = flow.previous;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "198.18.0.1:50000";
    const SERVER: &str = "198.18.0.2:443";

    fn tcp(from: &str, to: &str, flags: u8, payload: usize) -> Vec<u8> {
        let (from, to): (SocketAddr, SocketAddr) = (from.parse().unwrap(), to.parse().unwrap());
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (from.ip(), to.ip()) else {
            panic!("IPv4 only here")
        };
        let total = 40 + payload;
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&from.port().to_be_bytes());
        p.extend_from_slice(&to.port().to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        p.resize(total, 0xab);
        p
    }

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)
    }

    fn table(total: usize) -> FlowTable {
        FlowTable::new(&[443], Limits::within(total))
    }

    fn handshake(t: &mut FlowTable, client: &str, start: u64) {
        t.add(at(start), &tcp(client, SERVER, ip::SYN, 0), 40);
        t.add(
            at(start + 1),
            &tcp(SERVER, client, ip::SYN | ip::ACK, 0),
            40,
        );
        t.add(at(start + 2), &tcp(client, SERVER, ip::ACK, 517), 557);
    }

    #[test]
    fn a_connection_is_its_packets_both_ways_from_the_syn() {
        let mut t = table(1 << 20);
        // Before the SYN: nobody's connection.
        t.add(at(0), &tcp(CLIENT, SERVER, ip::ACK, 10), 50);
        handshake(&mut t, CLIENT, 1);
        let c = t
            .connection(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), at(5))
            .unwrap();
        let shape: Vec<(bool, usize)> = c
            .packets
            .iter()
            .map(|p| (p.inbound, p.data.len()))
            .collect();
        assert_eq!(shape, [(true, 40), (false, 40), (true, 557)]);
        assert_eq!(t.counters().unmatched, 1);
        // A dual-stack listener names the client as an IPv4-mapped address.
        let mapped: SocketAddr = "[::ffff:198.18.0.1]:50000".parse().unwrap();
        assert!(t
            .connection(mapped, SERVER.parse().unwrap(), at(5))
            .is_some());
        // Another port of the same client is another connection.
        assert!(t
            .connection(
                "198.18.0.1:50001".parse().unwrap(),
                SERVER.parse().unwrap(),
                at(5)
            )
            .is_none());
    }

    #[test]
    fn our_icmp_and_a_routers_are_told_apart() {
        let mut t = table(1 << 20);
        handshake(&mut t, CLIENT, 0);
        let quoted = tcp(CLIENT, SERVER, ip::ACK, 0);
        let icmp = |sender: [u8; 4], dst: [u8; 4]| {
            let mut p = vec![0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0];
            p.extend_from_slice(&sender);
            p.extend_from_slice(&dst);
            p.extend_from_slice(&[3, 4, 0, 0, 0, 0, 5, 0x78]);
            p.extend_from_slice(&quoted[..28]);
            p
        };
        t.add(at(10), &icmp([198, 18, 0, 2], [198, 18, 0, 1]), 56);
        t.add(at(11), &icmp([198, 18, 9, 9], [198, 18, 0, 2]), 56);
        let c = t
            .connection(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), at(0))
            .unwrap();
        let kinds: Vec<_> = c.packets.iter().map(|p| (p.kind, p.inbound)).collect();
        assert_eq!(
            &kinds[3..],
            [(Kind::OurTooBig, false), (Kind::TheirTooBig, true)]
        );
    }

    #[test]
    fn a_connection_keeps_its_headers_past_its_byte_bound_then_stops() {
        let mut t = FlowTable::new(
            &[443],
            Limits {
                total_bytes: 1 << 20,
                per_address_bytes: 1 << 20,
                per_connection_bytes: 16 * 1024,
                per_connection_packets: 20,
            },
        );
        handshake(&mut t, CLIENT, 0);
        for i in 0..40 {
            t.add(at(10 + i), &tcp(SERVER, CLIENT, ip::ACK, 1400), 1440);
        }
        let c = t
            .connection(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), at(0))
            .unwrap();
        assert!(c.packets.len() <= 20);
        assert_eq!(c.packets.len() + c.not_kept as usize, 43);
        assert!(t.flows.values().all(|f| f.size() <= 16 * 1024));
        let cut = c
            .packets
            .iter()
            .filter(|p| p.data.len() == HEADERS_KEPT)
            .count();
        assert!(cut > 0, "headers kept once the bytes ran out");
        assert!(c
            .packets
            .iter()
            .all(|p| p.original_len as usize >= p.data.len()));
    }

    #[test]
    fn one_address_cannot_push_out_another() {
        let mut t = table(256 * 1024);
        handshake(&mut t, "198.18.0.7:40000", 0);
        for port in 0..2000u16 {
            let flooder = format!("198.18.0.66:{}", 1024 + port);
            handshake(&mut t, &flooder, 10 + u64::from(port));
            assert!(t.bytes() <= t.limits().total_bytes);
        }
        assert!(t
            .connection(
                "198.18.0.7:40000".parse().unwrap(),
                SERVER.parse().unwrap(),
                at(0)
            )
            .is_some());
        assert!(t.counters().evicted > 1000);
        // What is charged is what is held.
        let held: usize = t.flows.values().map(Flow::size).sum();
        assert_eq!(held, t.bytes());
        let by_address: usize = t.by_address.values().map(|a| a.bytes).sum();
        assert_eq!(by_address, t.bytes());
    }

    #[test]
    fn many_addresses_stay_within_the_total_oldest_first() {
        let mut t = table(64 * 1024);
        for i in 0..1000u32 {
            let client = format!("198.18.{}.{}:40000", 1 + i / 250, i % 250);
            handshake(&mut t, &client, u64::from(i));
            assert!(t.bytes() <= 64 * 1024);
        }
        let newest = t.connection(
            "198.18.4.249:40000".parse().unwrap(),
            SERVER.parse().unwrap(),
            at(999),
        );
        assert!(newest.is_some());
        assert!(t
            .connection(
                "198.18.1.0:40000".parse().unwrap(),
                SERVER.parse().unwrap(),
                at(0)
            )
            .is_none());
    }

    #[test]
    fn old_connections_expire_and_a_reused_port_is_a_new_connection() {
        let mut t = table(1 << 20);
        handshake(&mut t, CLIENT, 0);
        t.add(at(100), &tcp(CLIENT, SERVER, ip::RST, 0), 40);
        handshake(&mut t, CLIENT, 200);
        let later = t
            .connection(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), at(200))
            .unwrap();
        assert_eq!(later.packets.len(), 3);
        let earlier = t
            .connection(CLIENT.parse().unwrap(), SERVER.parse().unwrap(), at(0))
            .unwrap();
        assert_eq!(earlier.packets.len(), 4);
        let much_later = KEEP_FOR.as_millis() as u64 + 1000;
        t.expire(at(much_later));
        handshake(&mut t, "198.18.0.9:1", much_later);
        assert_eq!(t.connections(), 1);
        assert_eq!(t.counters().expired, 2);
    }

    #[test]
    fn a_retransmitted_syn_stays_in_its_connection() {
        let mut t = table(1 << 20);
        t.add(at(0), &tcp(CLIENT, SERVER, ip::SYN, 0), 40);
        t.add(at(1000), &tcp(CLIENT, SERVER, ip::SYN, 0), 40);
        assert_eq!(t.connections(), 1);
    }
}
