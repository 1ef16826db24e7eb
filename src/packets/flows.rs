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
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::ip::{self, End, Parsed};

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

/// Which ends a connection has, as the table keys it (the packet's bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    client: End,
    server: End,
}

impl Key {
    fn of(key: FlowKey) -> Self {
        Self {
            client: End::of(key.client),
            server: End::of(key.server),
        }
    }

    fn shown(&self) -> FlowKey {
        FlowKey {
            client: self.client.socket(),
            server: self.server.socket(),
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

/// Each kept packet's record, written into its connection's buffer just
/// before the packet's bytes: one buffer per connection, appended to, so
/// filing a packet touches the connection and the buffer's end, nothing else.
const RECORD: usize = 8 + 4 + 4 + 4 + 1 + 1;

fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Tcp => 0,
        Kind::OurTooBig => 1,
        Kind::TheirTooBig => 2,
    }
}

fn kind_of(byte: u8) -> Kind {
    match byte {
        1 => Kind::OurTooBig,
        2 => Kind::TheirTooBig,
        _ => Kind::Tcp,
    }
}

/// One connection: its packets, each a [`RECORD`] then its bytes, in one
/// buffer grown by doubling.
#[derive(Debug)]
struct Flow {
    id: u64,
    started: SystemTime,
    last: SystemTime,
    buffer: Vec<u8>,
    packets: u32,
    not_kept: u32,
    closed: bool,
}

impl Flow {
    /// What it holds on the heap (its record is charged by the table).
    fn heap(&self) -> usize {
        self.buffer.capacity()
    }

    /// The buffer's capacity once `more` bytes are added.
    fn heap_with(&self, more: usize) -> usize {
        if self.buffer.len() + more <= self.buffer.capacity() {
            self.buffer.capacity()
        } else {
            // A handshake's packets take a few KiB: start there, so most
            // connections never copy their buffer to grow it.
            (self.buffer.capacity() * 2)
                .max(self.buffer.len() + more)
                .max(4096)
        }
    }

    fn push(&mut self, at: SystemTime, bytes: &[u8], original_len: u32, inbound: bool, kind: Kind) {
        let to = self.heap_with(RECORD + bytes.len());
        if to > self.buffer.capacity() {
            // By hand, so what is charged is what is allocated.
            self.buffer.reserve_exact(to - self.buffer.len());
        }
        let nanos = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.buffer.extend_from_slice(&nanos.to_ne_bytes());
        self.buffer
            .extend_from_slice(&(bytes.len() as u32).to_ne_bytes());
        self.buffer.extend_from_slice(&original_len.to_ne_bytes());
        self.buffer.extend_from_slice(&0u32.to_ne_bytes());
        self.buffer.push(u8::from(inbound));
        self.buffer.push(kind_byte(kind));
        self.buffer.extend_from_slice(bytes);
        self.packets += 1;
    }

    fn captured(&self) -> Vec<Captured> {
        let mut out = Vec::with_capacity(self.packets as usize);
        let mut rest = &self.buffer[..];
        while rest.len() >= RECORD {
            let word = |at: usize| {
                u32::from_ne_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]])
            };
            let mut nanos = [0u8; 8];
            nanos.copy_from_slice(&rest[..8]);
            let len = word(8) as usize;
            let Some(data) = rest.get(RECORD..RECORD + len) else {
                break;
            };
            out.push(Captured {
                at: SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::from_ne_bytes(nanos)),
                data: data.into(),
                original_len: word(12),
                inbound: rest[20] != 0,
                kind: kind_of(rest[21]),
            });
            rest = &rest[RECORD + len..];
        }
        out
    }
}

/// One entry of the age order, or of an address's.
type Entry = (u64, Key);

/// What a connection costs beyond its buffer, at the worst the indexes can
/// be: its place in the table of live connections (inline, and a table just
/// grown is under half full), in the age order and its address's order (each
/// a deque that may have doubled).
const FLOW_OVERHEAD: usize = 9 * (std::mem::size_of::<Key>() + std::mem::size_of::<Flow>()) / 4
    + 4 * std::mem::size_of::<Entry>();

#[derive(Debug, Default)]
struct Address {
    bytes: usize,
    /// Its connections, oldest first.
    flows: VecDeque<Entry>,
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
    /// The newest connection on each addresses-and-ports, inline: a packet
    /// is filed with one lookup.
    live: HashMap<Key, Flow, Hasher>,
    /// Older connections whose addresses and ports a newer one took (a
    /// client reusing its port), by id: rare.
    older: BTreeMap<u64, (Key, Flow)>,
    /// Every connection oldest first. An address that drops its own oldest
    /// leaves its entry here until it reaches the front; each entry is
    /// charged to the total until then.
    order: VecDeque<Entry>,
    by_address: HashMap<[u8; 16], Address, Hasher>,
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
            live: HashMap::default(),
            older: BTreeMap::new(),
            order: VecDeque::new(),
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
        self.live.len() + self.older.len()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Ours and theirs for a packet `from` → `to`: (key, sent by the client).
    fn key(&self, from: End, to: End) -> Option<(Key, bool)> {
        if self.ports.contains(&to.port) {
            Some((
                Key {
                    client: from,
                    server: to,
                },
                true,
            ))
        } else if self.ports.contains(&from.port) {
            Some((
                Key {
                    client: to,
                    server: from,
                },
                false,
            ))
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
                Some((key, _)) if sender.address == key.server.address => {
                    (key, false, Kind::OurTooBig, 0)
                }
                Some((key, _)) => (key, true, Kind::TheirTooBig, 0),
                None => return,
            },
        };
        let opens = kind == Kind::Tcp && inbound && flags & (ip::SYN | ip::ACK) == ip::SYN;
        // One lookup for most packets; a SYN may open a connection first.
        if opens {
            let same = |f: &Flow| {
                !f.closed && at.duration_since(f.last).unwrap_or_default() < SAME_CONNECTION
            };
            if !self.live.get(&key).is_some_and(same) {
                self.open(key, at);
            }
        }
        let limits = self.limits;
        let Some(flow) = self.live.get_mut(&key) else {
            self.counters.unmatched += 1;
            return;
        };
        flow.last = at;
        if kind == Kind::Tcp && flags & (ip::FIN | ip::RST) != 0 {
            flow.closed = true;
        }
        let headers = HEADERS_KEPT.min(data.len());
        let fits = |bytes: usize| {
            FLOW_OVERHEAD + flow.heap_with(RECORD + bytes) <= limits.per_connection_bytes
        };
        let keep = if flow.packets as usize >= limits.per_connection_packets {
            0
        } else if fits(data.len()) {
            data.len()
        } else if fits(headers) {
            headers
        } else {
            0
        };
        if keep == 0 {
            flow.not_kept += 1;
            self.counters.not_kept += 1;
            return;
        }
        let before = flow.heap();
        flow.push(
            at,
            &data[..keep],
            original_len.max(data.len() as u32),
            inbound,
            kind,
        );
        self.counters.kept += 1;
        // Charged by capacity: most packets fit what the buffer holds already.
        let grown = flow.heap() - before;
        if grown > 0 {
            let id = flow.id;
            let client = key.client.address;
            self.bytes += grown;
            if let Some(address) = self.by_address.get_mut(&client) {
                address.bytes += grown;
            }
            self.enforce(client, id);
        }
    }

    /// A new connection on `key`; the one it replaces there (a reused port)
    /// moves to `older`.
    fn open(&mut self, key: Key, at: SystemTime) {
        let id = self.next;
        self.next += 1;
        let flow = Flow {
            id,
            started: at,
            last: at,
            buffer: Vec::new(),
            packets: 0,
            not_kept: 0,
            closed: false,
        };
        if let Some(replaced) = self.live.insert(key, flow) {
            self.older.insert(replaced.id, (key, replaced));
        }
        self.order.push_back((id, key));
        let address = self.by_address.entry(key.client.address).or_default();
        address.flows.push_back((id, key));
        address.bytes += FLOW_OVERHEAD;
        self.bytes += FLOW_OVERHEAD;
    }

    /// Drops the address's oldest connections, then the oldest anywhere,
    /// until both bounds hold; never `keep` (the connection just added to).
    fn enforce(&mut self, client: [u8; 16], keep: u64) {
        while let Some(address) = self.by_address.get(&client) {
            if address.bytes <= self.limits.per_address_bytes {
                break;
            }
            match address.flows.iter().find(|(id, _)| *id != keep) {
                Some(&oldest) => {
                    self.remove(oldest);
                    self.counters.evicted += 1;
                }
                None => break,
            }
        }
        while self.bytes > self.limits.total_bytes {
            let Some(&(id, key)) = self.order.front() else {
                break;
            };
            if id == keep {
                break;
            }
            if self.remove((id, key)) {
                self.counters.evicted += 1;
            }
        }
    }

    /// Drops connections that began more than [`KEEP_FOR`] before `now`
    /// (the capture thread calls it once per block of packets).
    pub fn expire(&mut self, now: SystemTime) {
        let Some(cutoff) = now.checked_sub(KEEP_FOR) else {
            return;
        };
        while let Some(&entry) = self.order.front() {
            match self.find(entry) {
                Some(flow) if flow.started >= cutoff => break,
                Some(_) => {
                    self.remove(entry);
                    self.counters.expired += 1;
                }
                None => {
                    self.order.pop_front();
                    self.bytes -= std::mem::size_of::<Entry>();
                }
            }
        }
    }

    fn find(&self, (id, key): Entry) -> Option<&Flow> {
        match self.live.get(&key) {
            Some(flow) if flow.id == id => Some(flow),
            _ => self.older.get(&id).map(|(_, f)| f),
        }
    }

    /// Drops a connection; whether it was still held. Its entry in the age
    /// order goes now if it is the front, else when it reaches the front.
    fn remove(&mut self, (id, key): Entry) -> bool {
        let flow = match self.live.get(&key) {
            Some(f) if f.id == id => self.live.remove(&key),
            _ => self.older.remove(&id).map(|(_, f)| f),
        };
        if self.order.front() == Some(&(id, key)) {
            self.order.pop_front();
        } else if flow.is_some() {
            // Stays charged, as an entry, until it reaches the front.
            self.bytes += std::mem::size_of::<Entry>();
        }
        let Some(flow) = flow else {
            self.bytes -= std::mem::size_of::<Entry>();
            return false;
        };
        let size = FLOW_OVERHEAD + flow.heap();
        self.bytes -= size;
        let client = key.client.address;
        if let Some(address) = self.by_address.get_mut(&client) {
            address.bytes -= size;
            // Connections go oldest first, so this is nearly always the front.
            if address.flows.front() == Some(&(id, key)) {
                address.flows.pop_front();
            } else {
                address.flows.retain(|&(i, _)| i != id);
            }
            if address.flows.is_empty() {
                self.by_address.remove(&client);
            }
        }
        true
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
        let key = Key::of(FlowKey::new(client, server));
        let latest_start = started_at + ACCEPT_SLACK;
        let begun = |f: &&Flow| f.started <= latest_start;
        let flow = self.live.get(&key).filter(begun).or_else(|| {
            self.older
                .values()
                .rev()
                .filter(|(k, _)| *k == key)
                .map(|(_, f)| f)
                .find(begun)
        })?;
        Some(Connection {
            key: key.shown(),
            packets: flow.captured(),
            not_kept: flow.not_kept,
        })
    }

    /// Everything charged, counted again from scratch (for tests).
    #[cfg(test)]
    fn recount(&self) -> (usize, usize) {
        let flows: usize = self
            .live
            .values()
            .chain(self.older.values().map(|(_, f)| f))
            .map(|f| FLOW_OVERHEAD + f.heap())
            .sum();
        let stale = self
            .order
            .iter()
            .filter(|&&e| self.find(e).is_none())
            .count();
        let by_address = self.by_address.values().map(|a| a.bytes).sum();
        (flows + stale * std::mem::size_of::<Entry>(), by_address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

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
        assert!(t
            .live
            .values()
            .all(|f| FLOW_OVERHEAD + f.heap() <= 16 * 1024));
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
        let (held, by_address) = t.recount();
        assert_eq!(held, t.bytes());
        assert!(by_address <= t.bytes());
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
