//! The server's own packet capture of every HTTPS connection: "tcpdump before
//! guessing", without shell access to the server. A packet socket with a
//! kernel filter ([`filter`]) and a memory-mapped ring (`sys::packet_ring`)
//! feeds one thread, which files each packet under its connection
//! ([`flows`]), within stated bounds; the web layer asks for an attempt's
//! connection and writes it out as pcapng ([`pcapng`]), for the attempt's own
//! address only.
//!
//! Owns: the capture thread and the flow table. Must not import the web
//! layer, the server or the diagnosis: an attempt reaches it as addresses and
//! a start time, and comes back as packets.
//!
//! Without `CAP_NET_RAW` (or with `--no-packet-capture`) everything else
//! works, and [`Off`] says why there are no packets.

pub mod filter;
pub mod flows;
pub mod ip;
pub mod pcapng;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use flows::{Captured, Connection, Counters, Kind, Limits};

#[cfg(target_os = "linux")]
use crate::sys::packet_ring::{PacketRing, RingShape};

/// The kernel ring: 4 blocks of 256 KiB (a block must hold the largest
/// packet, 64 KiB on loopback and with segmentation offload), each handed
/// over when full or 50 ms after it began. Each hand-over wakes the capture
/// thread (at 10 ms, the wake-ups alone were a third of its time), and the
/// ring's memory goes through the caches: with 1 MiB blocks, handshakes next
/// to it cost measurably more.
const RING_BLOCK: u32 = 1 << 18;
const RING_BLOCKS: u32 = 4;
const RING_RETIRE: Duration = Duration::from_millis(50);
/// How long the capture thread sleeps in `poll` when nothing arrives.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a download waits for the ring to hand over what it still holds.
const CATCH_UP: Duration = Duration::from_millis(500);

/// Checked capture settings (`--packet-memory-mb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub limits: Limits,
}

impl Settings {
    /// Settings for a flow table of `total_bytes`.
    pub fn within(total_bytes: usize) -> Self {
        Self {
            limits: Limits::within(total_bytes),
        }
    }

    /// The kernel ring's size in bytes.
    pub fn ring_bytes(&self) -> usize {
        RING_BLOCK as usize * RING_BLOCKS as usize
    }
}

/// Why there are no packets, in words for a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Off {
    /// `--no-packet-capture`.
    TurnedOff,
    /// The packet socket could not be opened (usually: no `CAP_NET_RAW`).
    Unavailable(String),
}

impl std::fmt::Display for Off {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Off::TurnedOff => f.write_str(
                "this server does not record packets (its operator turned capture off: --no-packet-capture)",
            ),
            Off::Unavailable(why) => write!(
                f,
                "this server cannot record packets ({why}; it needs CAP_NET_RAW)"
            ),
        }
    }
}

/// Memory and work, for metrics and the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub ring_bytes: usize,
    pub table_bytes: usize,
    pub table_limit: usize,
    pub connections: usize,
    pub counters: Counters,
    /// Packets the kernel dropped because the ring was full.
    pub ring_drops: u64,
}

/// The capture: running, or why not.
#[derive(Debug, Clone)]
pub struct Packets(Result<Arc<Recorder>, Off>);

#[derive(Debug)]
struct Recorder {
    table: Mutex<flows::FlowTable>,
    ring_bytes: usize,
    /// When the thread last found the ring empty (ns since the epoch): every
    /// packet captured a ring-retire interval before it is in the table.
    idle_at: AtomicU64,
    ring_drops: AtomicU64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Packets {
    /// Capture turned off, or unavailable, for `why`.
    pub fn off(why: Off) -> Self {
        Self(Err(why))
    }

    /// Starts capturing TCP on `ports` (ours, on `address`) and the ICMP
    /// about it, in this network namespace; `None` settings: turned off.
    pub fn start(address: IpAddr, ports: &[u16], settings: Option<Settings>) -> Self {
        let Some(settings) = settings else {
            return Self::off(Off::TurnedOff);
        };
        match open(address, ports, settings) {
            Ok(packets) => packets,
            Err(why) => Self::off(Off::Unavailable(why)),
        }
    }

    /// Why there are no packets, if there are none.
    pub fn unavailable(&self) -> Option<&Off> {
        self.0.as_ref().err()
    }

    /// Waits (briefly) until every packet captured before this call is in
    /// the table: the kernel hands the ring over a block at a time.
    pub async fn caught_up(&self) {
        let Ok(recorder) = &self.0 else { return };
        let wanted = now_ns() + RING_RETIRE.as_nanos() as u64;
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        while recorder.idle_at.load(Ordering::Acquire) < wanted
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The packets of the connection `client` → `server` whose attempt
    /// started at `started_at` (`Ok(None)`: none kept, or no longer).
    pub fn connection(
        &self,
        client: SocketAddr,
        server: SocketAddr,
        started_at: SystemTime,
    ) -> Result<Option<Connection>, Off> {
        let recorder = self.0.as_ref().map_err(Off::clone)?;
        let table = recorder.table.lock().unwrap_or_else(|p| p.into_inner());
        Ok(table.connection(client, server, started_at))
    }

    pub fn usage(&self) -> Option<Usage> {
        let recorder = self.0.as_ref().ok()?;
        let table = recorder.table.lock().unwrap_or_else(|p| p.into_inner());
        Some(Usage {
            ring_bytes: recorder.ring_bytes,
            table_bytes: table.bytes(),
            table_limit: table.limits().total_bytes,
            connections: table.connections(),
            counters: table.counters(),
            ring_drops: recorder.ring_drops.load(Ordering::Relaxed),
        })
    }
}

#[cfg(target_os = "linux")]
fn open(address: IpAddr, ports: &[u16], settings: Settings) -> Result<Packets, String> {
    let program = filter::program(ports).map_err(|e| e.to_string())?;
    let shape = RingShape {
        block_size: RING_BLOCK,
        blocks: RING_BLOCKS,
        retire_after: RING_RETIRE,
    };
    // A listener on a loopback address is reached over loopback only, where
    // every packet is seen arriving: the kernel need not hand over (and the
    // filter drop) each one a second time as it leaves.
    let loopback = address.to_canonical().is_loopback();
    let (interface, incoming_only) = if loopback {
        (Some(filter::LOOPBACK_INDEX), true)
    } else {
        (None, false)
    };
    let ring = PacketRing::open(&program, shape, interface, incoming_only)
        .map_err(|e| format!("packet socket: {e}"))?;
    let recorder = Arc::new(Recorder {
        table: Mutex::new(flows::FlowTable::new(ports, settings.limits)),
        ring_bytes: shape.bytes(),
        idle_at: AtomicU64::new(0),
        ring_drops: AtomicU64::new(0),
    });
    let weak = Arc::downgrade(&recorder);
    std::thread::Builder::new()
        .name("tlsdiag-packets".into())
        .spawn(move || read(ring, weak))
        .map_err(|e| format!("capture thread: {e}"))?;
    Ok(Packets(Ok(recorder)))
}

#[cfg(not(target_os = "linux"))]
fn open(_: IpAddr, _: &[u16], _: Settings) -> Result<Packets, String> {
    Err("packet sockets are Linux-only".into())
}

/// The capture thread: files each block's packets under one lock, until the
/// server lets go of the recorder.
#[cfg(target_os = "linux")]
fn read(mut ring: PacketRing, recorder: Weak<Recorder>) {
    /// Blocks filed per lock, so a reader never waits behind a long backlog.
    const BLOCKS_PER_LOCK: usize = 2;
    let mut last_stats = std::time::Instant::now();
    loop {
        let Some(recorder) = recorder.upgrade() else {
            return;
        };
        if ring.ready() {
            let mut table = recorder.table.lock().unwrap_or_else(|p| p.into_inner());
            table.expire(SystemTime::now());
            for _ in 0..BLOCKS_PER_LOCK {
                if ring.take(|p| table.add(p.at, p.data, p.original_len)) == 0 {
                    break;
                }
            }
        } else {
            // Nothing handed over: every packet older than one retire
            // interval is in the table.
            recorder.idle_at.store(now_ns(), Ordering::Release);
            if let Err(err) = ring.wait(IDLE_POLL) {
                tracing::error!(error = %err, "packet capture stopped");
                return;
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = std::time::Instant::now();
            if let Ok(drops) = ring.drops() {
                recorder
                    .ring_drops
                    .fetch_add(u64::from(drops), Ordering::Relaxed);
            }
        }
    }
}

/// One attempt's part of a file: its packets, and what its first packet's
/// comment says about it.
#[derive(Debug)]
pub struct Part {
    pub comment: String,
    pub connection: Connection,
}

/// A pcapng file of `parts`, in order, at most `limit` bytes, with
/// `comment` on its section.
pub fn file(parts: &[Part], comment: &str, limit: usize) -> Vec<u8> {
    let mut out = pcapng::Pcapng::new(limit);
    for part in parts {
        for (index, packet) in part.connection.packets.iter().enumerate() {
            let note = match packet.kind {
                _ if index == 0 => Some(part.comment.clone()),
                Kind::OurTooBig => Some(
                    "tlsdiag's own ICMP toward the client: the ClientHello looked stuck behind a black hole"
                        .to_owned(),
                ),
                Kind::TheirTooBig => {
                    Some("ICMP from the path: a router says our packet was too big".to_owned())
                }
                Kind::Tcp => None,
            };
            out.packet(packet, note.as_deref());
        }
    }
    let mut comment = comment.to_owned();
    let not_kept: u32 = parts.iter().map(|p| p.connection.not_kept).sum();
    if not_kept > 0 {
        comment.push_str(&format!(
            "\n{not_kept} later packets were past their connection's bound and not kept"
        ));
    }
    out.finish(&comment)
}
